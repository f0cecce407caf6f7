// The agent health dashboard's entry module: opens the WebSocket, loads the REST API once,
// then applies `health:delta` messages, and reconnects when the socket drops.
// No framework, no bundler and no external requests; Chart.js is vendored under vendor/.
// index.html runs this module before the deferred Chart.js script, so the first API
// requests are on their way while Chart.js is parsed; no module imports Chart.js (charts.js
// reads window.Chart when it first draws).
import { askForKey, setConnection, showLoadError } from './api.js';
import { addLoadPoint, loadHistory, loadLoadHistory } from './charts.js';
import { parseRoute, route } from './detail.js';
import { $, refreshTimes } from './format.js';
import { loadMore } from './lists.js';
import { connect, disconnect, refresh, reselect, watchHeld } from './live.js';
import { initNotifications, loadNotifications } from './notifications.js';
import { acknowledge, loadUptime, renderAgents, renderIntegrations } from './overview.js';
import { KEY_STORAGE, SEARCH_PAUSE_MS, UPTIME_EVERY_MS, loc, state } from './state.js';

async function start(key) {
  state.key = key;
  localStorage.setItem(KEY_STORAGE, key);
  $('key-form').hidden = true;
  $('dashboard').hidden = !!parseRoute();
  setConnection('connecting', 'Connecting…');
  // The socket opens before the lists load, so no delta computed after the lists were
  // read is missed: one that was computed before only repeats what they hold.
  connect();
  try {
    await refresh(true);
  } catch (error) {
    disconnect();
    showLoadError(error);
    return;
  }
  window.dashboardListedMs = performance.now();
  addLoadPoint();
  await loadHistory().catch(() => {});
  await loadNotifications().catch((error) => { $('notify-error').textContent = error.message; });
  // Navigation start to a fully drawn dashboard; the browser test records it.
  window.dashboardReadyMs = performance.now();
  document.body.dataset.ready = 'true';
  // Extras after the page is usable: stored hours of CPU and memory, uptime bars.
  loadLoadHistory().catch(() => {});
  loadUptime().catch(() => {});
  setInterval(() => loadUptime().catch(() => {}), UPTIME_EVERY_MS);
  window.dispatchEvent(new Event('dashboard:ready'));
  if (parseRoute()) route();
}

function init() {
  // The local stack prints a URL with `#key=...`: the fragment never reaches a server.
  const fromUrl = new URLSearchParams(loc.hash.slice(1)).get('key');
  if (fromUrl) window.history.replaceState(null, '', loc.pathname + loc.search);
  $('alerts').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-ack]');
    if (button) acknowledge(button);
  });
  $('history-agent').addEventListener('change', () => loadHistory().catch(showLoadError));
  // The server searches, filters and sorts; typing asks once per pause.
  let typing = null;
  $('search').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => reselect().catch(showLoadError), SEARCH_PAUSE_MS);
  });
  for (const id of ['status-filter', 'sort']) {
    $(id).addEventListener('input', () => reselect().catch(showLoadError));
  }
  for (const kind of ['agent', 'integration']) {
    $(`${kind}s-more`).addEventListener('click', async (event) => {
      event.target.disabled = true;
      try {
        await loadMore(kind);
        if (kind === 'agent') renderAgents(); else renderIntegrations();
        watchHeld();
      } catch (error) {
        showLoadError(error);
      } finally {
        event.target.disabled = false;
      }
    });
  }
  initNotifications();
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (key) start(key);
  });
  window.addEventListener('hashchange', () => { if (state.key) route(); });
  // detail.js cannot import live.js (it is imported by it): it asks for a new watch so.
  window.addEventListener('dashboard:watch', () => watchHeld());
  setInterval(refreshTimes, 5000);
  $('detail-back').addEventListener('click', (event) => {
    event.preventDefault();
    window.history.pushState(null, '', loc.pathname + loc.search);
    route();
  });
  const key = fromUrl || localStorage.getItem(KEY_STORAGE);
  if (key) start(key);
  else askForKey('');
}

init();
