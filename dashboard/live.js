// The four lists every page draws from (agents, integrations, alerts, system) and how they
// stay current: loaded over REST (refresh), then replaced by each `health:update` from the
// WebSocket (reassembled from its parts); a dropped socket reconnects with exponential
// backoff and catches up over REST. renderAll redraws whatever shows the lists.
import { api, setConnection, showLoadError } from './api.js';
import { addLoadPoint } from './charts.js';
import { loadDetail, renderDetail } from './detail.js';
import { $, refreshTimes } from './format.js';
import {
  renderAgents, renderAlerts, renderHosts, renderIntegrations, renderStatusOptions, renderSystem, renderUpdated,
} from './overview.js';
import { FIRST_PAGE, config, state } from './state.js';

function renderAll() {
  renderStatusOptions();
  renderSystem();
  renderAlerts();
  renderAgents();
  renderIntegrations();
  renderHosts();
  renderUpdated();
  if (state.detail) renderDetail();
  refreshTimes();
}

// With `first`, only the first page of agents and integrations: a screenful drawn
// while the full lists (thousands of cards) are still on their way.
export async function refresh(first = false) {
  const page = first ? `?limit=${FIRST_PAGE}` : '';
  const [agents, integrations, alerts, system] = await Promise.all([
    api(`/api/health/agents${page}`),
    api(`/api/health/integrations${page}`),
    api('/api/health/alerts'),
    api('/api/health/system'),
  ]);
  // Navigation start to the four lists fetched, before drawing (the browser test splits
  // the load time with it).
  window.dashboardFetchedMs = window.dashboardFetchedMs || performance.now();
  // A live update may have brought the full lists meanwhile: a first page must not
  // replace them.
  if (first && !state.partial && state.agents.length > agents.length) return;
  state.partial = first && (agents.length < system.total_agents || integrations.length < system.total_integrations);
  Object.assign(state, { agents, integrations, alerts, system, updatedAt: new Date().toISOString() });
  renderAll();
}

function applyUpdate(data) {
  state.partial = false;
  state.agents = data.agents;
  state.integrations = data.integrations;
  state.alerts = data.alerts;
  state.system = data.system;
  state.updatedAt = data.timestamp;
  renderAll();
  addLoadPoint();
  // Today's point of the 30-day charts moves with the events: reload now and then.
  if (state.detail && Date.now() - state.detailLoadedAt > 30000) loadDetail().catch(() => {});
}

// Parts share a timestamp; concatenating each array in part order gives the update.
function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type !== 'health:update') return;
  if (!message.parts) {
    applyUpdate(message.data);
    return;
  }
  const stamp = message.data.timestamp;
  const got = state.parts.get(stamp) || new Map();
  got.set(message.part, message.data);
  state.parts.set(stamp, got);
  if (got.size < message.parts) return;
  state.parts.delete(stamp);
  const ordered = [...got.keys()].sort((a, b) => a - b).map((k) => got.get(k));
  const whole = structuredClone(ordered[0]);
  for (const part of ordered.slice(1)) {
    whole.agents.push(...part.agents);
    whole.integrations.push(...part.integrations);
    whole.alerts.push(...part.alerts);
    whole.system.hosts.push(...part.system.hosts);
  }
  // Older incomplete updates will never complete once a newer one did.
  for (const key of state.parts.keys()) if (key < stamp) state.parts.delete(key);
  applyUpdate(whole);
}

export function connect() {
  clearTimeout(state.retryTimer);
  const socket = new WebSocket(`${config.ws}?token=${encodeURIComponent(state.key)}`);
  state.socket = socket;
  let opened = false;
  socket.addEventListener('open', () => {
    opened = true;
    const wasDown = state.retryMs > 1000 || $('connection').dataset.state === 'reconnecting';
    state.retryMs = 1000;
    setConnection('live', 'Live');
    // Catch up on what happened while the socket was down.
    if (wasDown) refresh().catch(showLoadError);
  });
  socket.addEventListener('message', onMessage);
  socket.addEventListener('close', () => {
    if (state.socket !== socket) return;
    const delay = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, 30000);
    setConnection(
      'reconnecting',
      `${opened ? 'Connection lost' : 'Cannot connect'}: reconnecting in ${Math.round(delay / 1000)} s`,
    );
    state.retryTimer = setTimeout(connect, delay);
  });
}
