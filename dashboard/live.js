// The four lists every page draws from (agents, integrations, alerts, system) and how they
// stay current: loaded over REST (refresh), then changed by each `health:delta` from the
// WebSocket (`mode=delta`: only the entities and alerts that changed, numbered; parts
// reassembled), and by `health:alerts` between cycles. A delta that is not the next of
// its epoch means one was missed: the lists are loaded again. A dropped socket reconnects
// with exponential backoff and catches up over REST. renderAll redraws what shows them.
import { api, setConnection, showLoadError } from './api.js';
import { addLoadPoint } from './charts.js';
import { loadDetail, renderDetail } from './detail.js';
import { $, refreshTimes } from './format.js';
import {
  renderAgents, renderAlerts, renderHosts, renderIntegrations, renderStatusOptions, renderSystem, renderUpdated,
} from './overview.js';
import { holdPages, loadFirstPages } from './lists.js';
import { HOST_FRESH_MS, MAX_WATCHED, MAX_WATCH_BYTES, config, state } from './state.js';

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

// Loads what the overview shows: the summary and the first page of each list (one round
// of requests: the first paint), then the whole list of active alerts when the summary
// held only its first ones. With `first`, notes when the first paint is on screen.
export async function refresh(first = false) {
  state.loading += 1;
  try {
    await load();
    // Navigation start to the figures, the first alerts and the first cards on screen.
    if (first) window.dashboardContentMs = performance.now();
    if (state.partialAlerts) await loadAlerts();
  } finally {
    state.loading -= 1;
  }
  // Deltas that came while the lists loaded apply on top of them.
  if (!state.loading && state.queued.length) {
    for (const data of state.queued.splice(0)) merge(data);
    renderAll();
  }
}

async function load() {
  const [pages, summary] = await Promise.all([loadFirstPages(), api('/api/health/summary')]);
  // Navigation start to the first requests answered, before drawing (the browser test
  // splits the load time with it).
  window.dashboardFetchedMs = window.dashboardFetchedMs || performance.now();
  holdPages(pages);
  watchHeld();
  state.system = summary.system;
  state.alerts = summary.alerts.first;
  state.alertTotal = summary.alerts.total;
  state.partialAlerts = summary.alerts.total > summary.alerts.first.length;
  state.updatedAt = new Date().toISOString();
  renderAll();
}

async function loadAlerts() {
  state.alerts = await api('/api/health/alerts');
  state.partialAlerts = false;
  renderAlerts();
}

// The controls changed: the first pages of what they select now. Only the latest
// request's answer is drawn (typing sends one per pause).
let selecting = 0;
export async function reselect() {
  const mine = ++selecting;
  const pages = await loadFirstPages();
  if (mine !== selecting) return;
  holdPages(pages);
  renderAgents();
  renderIntegrations();
  watchHeld();
}

// Tells the server which agents and integrations the page holds (the pages and an open
// drill-down's source), so its deltas carry only their changes. Past the server's bound the
// page asks for every change instead. A changed watch takes effect from a later cycle: what
// changed between the pages' read and then is fetched again after the next delta.
export function watchHeld() {
  const socket = state.socket;
  // Before the first pages arrive the page holds nothing yet: an empty watch would hide
  // every change meanwhile.
  if (!socket || socket.readyState !== WebSocket.OPEN || !state.lists.held) return;
  const agents = state.agents.map((a) => a.agent_id);
  const integrations = state.integrations.map((i) => i.integration_id);
  const extra = state.detailItem;
  if (extra?.kind === 'agent' && !agents.includes(extra.id)) agents.push(extra.id);
  if (extra?.kind === 'integration' && !integrations.includes(extra.id)) integrations.push(extra.id);
  let text = JSON.stringify({ action: 'watch', agents, integrations });
  // Past the server's bounds (ids, or bytes: long ids), every change instead.
  if (agents.length + integrations.length > MAX_WATCHED
    || new TextEncoder().encode(text).length > MAX_WATCH_BYTES) {
    text = JSON.stringify({ action: 'watch', all: true });
  }
  if (text === state.watched) return;
  socket.send(text);
  state.watched = text;
  state.rewatched = true;
}

// After a new watch took effect: the held pages read again (as many items as they hold).
async function rereadHeld() {
  const mine = ++selecting;
  const pages = await loadFirstPages({ agent: state.agents.length, integration: state.integrations.length });
  if (mine !== selecting) return;
  holdPages(pages);
  renderAgents();
  renderIntegrations();
}

function applyUpdate(data) {
  state.agents = data.agents;
  state.integrations = data.integrations;
  state.alerts = data.alerts;
  state.system = data.system;
  state.updatedAt = data.timestamp;
  afterUpdate();
}

function afterUpdate() {
  renderAll();
  addLoadPoint();
  // Today's point of the 30-day charts moves with the events: reload now and then.
  if (state.detail && Date.now() - state.detailLoadedAt > 30000) loadDetail().catch(() => {});
}

// Replaces the entries of `list` whose `key` matches one of `changed`; with `add`, adds
// the others and keeps the list in `key` order (as the API sorts it). The agent and
// integration pages only take changes of what they hold: what else changed shows when
// the user asks for its page.
function upsert(list, changed, key, add = true) {
  const at = new Map(list.map((x, i) => [x[key], i]));
  for (const item of changed) {
    if (at.has(item[key])) list[at.get(item[key])] = item;
    else if (add) list.push(item);
  }
  if (add && changed.some((item) => !at.has(item[key]))) list.sort((a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0));
}

const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
// As the API lists active alerts: critical first, then newest, then by id.
function sortAlerts(alerts) {
  alerts.sort((a, b) => (SEVERITY_RANK[a.severity] ?? 3) - (SEVERITY_RANK[b.severity] ?? 3)
    || (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0)
    || (a.alert_id < b.alert_id ? -1 : a.alert_id > b.alert_id ? 1 : 0));
}

function merge(data) {
  upsert(state.agents, data.agents || [], 'agent_id', false);
  upsert(state.integrations, data.integrations || [], 'integration_id', false);
  // A drill-down's source the pages do not hold changes too (it is watched).
  const extra = state.detailItem;
  const list = extra && { agent: data.agents, integration: data.integrations }[extra.kind];
  const key = extra && `${extra.kind}_id`;
  const fresh = (list || []).find((x) => x[key] === extra.id);
  if (fresh) extra.item = fresh;
  if (state.system) {
    // Deltas name hosts that changed, never one that went quiet: the system object lists
    // hosts that reported in the last 2 minutes, and so does the page, by the delta's time.
    const now = new Date(data.timestamp).getTime();
    const hosts = (state.system.hosts || []).filter((h) => now - new Date(h.last_seen).getTime() <= HOST_FRESH_MS);
    upsert(hosts, data.hosts || [], 'host_id');
    Object.assign(state.system, data.system, { hosts });
  }
  const gone = new Set(data.alerts.resolved);
  state.alerts = state.alerts.filter((a) => !gone.has(a.alert_id));
  upsert(state.alerts, [...data.alerts.raised, ...data.alerts.changed], 'alert_id');
  sortAlerts(state.alerts);
  state.updatedAt = data.timestamp;
  state.deltaAt = data.timestamp;
}

// A delta applies only as the next of its epoch; otherwise one was missed and the lists
// load again (the first delta after a load starts the count).
function applyDelta(message) {
  const { epoch, seq, data } = message;
  const next = state.feed.epoch === epoch && seq === state.feed.seq + 1;
  const first = state.feed.epoch === null;
  state.feed = { epoch, seq };
  if (!next && !first) {
    window.dashboardReloads = (window.dashboardReloads || 0) + 1;
    refresh().catch(showLoadError);
    return;
  }
  window.dashboardDeltas = (window.dashboardDeltas || 0) + 1;
  if (state.loading) {
    state.queued.push(data);
    return;
  }
  merge(data);
  afterUpdate();
  if (state.rewatched) {
    state.rewatched = false;
    rereadHeld().catch(showLoadError);
  }
}

// Between cycles: the tenant's active alerts whole (no sequence number).
function applyAlerts(data) {
  // Older than the last delta (both are the server's times): already superseded.
  if (state.loading || (state.deltaAt && data.timestamp < state.deltaAt)) return;
  state.alerts = data.alerts;
  state.partialAlerts = false;
  if (state.system) Object.assign(state.system, data.system, { hosts: state.system.hosts });
  renderAll();
}

// Parts of one message share its key (a delta's epoch and seq, an update's timestamp);
// each array concatenated over the parts in order gives the whole.
function assemble(message, key, join) {
  const got = state.parts.get(key) || new Map();
  got.set(message.part, message);
  state.parts.set(key, got);
  if (got.size < message.parts) return null;
  state.parts.delete(key);
  const ordered = [...got.keys()].sort((a, b) => a - b).map((k) => got.get(k));
  const whole = structuredClone(ordered[0]);
  for (const part of ordered.slice(1)) join(whole.data, part.data);
  return whole;
}

function joinUpdate(whole, part) {
  whole.agents.push(...part.agents);
  whole.integrations.push(...part.integrations);
  whole.alerts.push(...part.alerts);
  whole.system.hosts.push(...part.system.hosts);
}

function joinDelta(whole, part) {
  for (const list of ['agents', 'integrations', 'hosts']) if (whole[list]) whole[list].push(...part[list]);
  for (const list of ['raised', 'changed', 'resolved']) whole.alerts[list].push(...part.alerts[list]);
}

function onMessage(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return;
  }
  if (message.type === 'health:alerts') {
    applyAlerts(message.data);
    return;
  }
  if (message.type === 'health:delta') {
    const whole = message.parts ? assemble(message, `${message.epoch}:${message.seq}`, joinDelta) : message;
    if (whole) applyDelta(whole);
    return;
  }
  if (message.type !== 'health:update') return;
  const stamp = message.data.timestamp;
  const whole = message.parts ? assemble(message, stamp, joinUpdate) : message;
  if (!whole) return;
  // Older incomplete updates will never complete once a newer one did.
  for (const key of state.parts.keys()) if (key < stamp) state.parts.delete(key);
  applyUpdate(whole.data);
}

// Closes the socket without reconnecting (the lists could not load: a bad key).
export function disconnect() {
  clearTimeout(state.retryTimer);
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close();
}

export function connect() {
  clearTimeout(state.retryTimer);
  const socket = new WebSocket(`${config.ws}?token=${encodeURIComponent(state.key)}&mode=delta`);
  state.socket = socket;
  let opened = false;
  socket.addEventListener('open', () => {
    opened = true;
    const wasDown = state.retryMs > 1000 || $('connection').dataset.state === 'reconnecting';
    state.retryMs = 1000;
    setConnection('live', 'Live');
    // A new socket starts a new count of deltas; catch up on what happened while the
    // socket was down.
    state.feed = { epoch: null, seq: 0 };
    // A new connection watches nothing yet.
    state.watched = null;
    if (wasDown) refresh().catch(showLoadError);
    else watchHeld();
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
