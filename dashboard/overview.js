// The overview page: system tiles, alerts, the agents, integrations and hosts, and the
// integrations' uptime bars. The lists hold pages the server searched, filtered and sorted
// (lists.js); `shown` keeps what they hold in that order as deltas change it.
import { api } from './api.js';
import { $, badge, escapeHtml, link, number, patchList, percent, rateClass, timeAgo, usageClass, when } from './format.js';
import { STATUSES } from './lists.js';
import { state } from './state.js';

export function renderSystem() {
  const s = state.system;
  if (!s) return;
  const tiles = [
    ['CPU', `${number(s.cpu_usage)}%`, 'cpu'],
    ['Memory', `${number(s.memory_usage)}%`, 'memory'],
    ['Queue depth', String(s.queue_depth), 'queue'],
    ['Active agents', `${s.active_agents}/${s.total_agents}`, 'agents'],
    ['Healthy integrations', `${s.healthy_integrations}/${s.total_integrations}`, 'integrations'],
    ['Alerts', `${s.alerts.critical} critical · ${s.alerts.warning} warning`, 'alerts'],
  ];
  $('system').innerHTML = tiles
    .map(([label, value, key]) =>
      `<div class="tile" data-tile="${key}"><dt>${label}</dt><dd>${escapeHtml(value)}</dd></div>`)
    .join('');
}

export function renderAlerts() {
  // While only the summary's first alerts are held, the count is the summary's.
  $('alert-count').textContent = `(${state.partialAlerts ? state.alertTotal : state.alerts.length})`;
  patchList($('alerts'), state.alerts, (a) => a.alert_id, (a) => {
      const ack = a.acknowledged
        ? `<span class="acked">Acknowledged${a.acknowledged_by ? ` by ${escapeHtml(a.acknowledged_by)}` : ''}</span>`
        : `<button type="button" data-ack="${escapeHtml(a.alert_id)}">Acknowledge</button>`;
      const silenced = a.silenced ? '<span class="badge silenced" title="Notifications held by a silence">silenced</span>' : '';
      const open = state.openLogs.has(a.alert_id);
      return `<li data-alert="${escapeHtml(a.alert_id)}" data-acknowledged="${a.acknowledged}" data-silenced="${!!a.silenced}">
          ${badge('sev', a.severity)} ${silenced}
          <span class="message">${escapeHtml(a.message)}</span>
          <span class="meta">${escapeHtml(a.source_type)} ${escapeHtml(a.source_id)} · ${escapeHtml(when(a.timestamp))}</span>
          ${ack}
          <button type="button" class="link" data-log="${escapeHtml(a.alert_id)}" aria-expanded="${open}">Deliveries</button>
          <ol class="log" data-log-of="${escapeHtml(a.alert_id)}" ${open ? '' : 'hidden'}>${open ? state.logs.get(a.alert_id) || '<li class="empty">Loading…</li>' : ''}</ol>
        </li>`;
  }, '<li class="empty">No active alerts.</li>');
}

// Search, filter and sort.
// Worst first: what needs a look comes to the top.
const STATUS_RANK = { error: 0, failed: 0, down: 0, disconnected: 0, degraded: 1, paused: 2, idle: 3, unknown: 3, active: 4, healthy: 4, connected: 4 };
const rank = (status) => STATUS_RANK[status] ?? 3;
const time = (iso) => (iso ? new Date(iso).getTime() : 0);
function shown(list, kind) {
  const query = $('search').value.trim().toLowerCase();
  const status = $('status-filter').value;
  const id = kind === 'agent' ? (x) => x.agent_id : (x) => x.integration_id;
  const name = kind === 'agent' ? (x) => x.agent_name : (x) => x.integration_name;
  const out = list.filter((x) => (!query || name(x).toLowerCase().includes(query) || id(x).toLowerCase().includes(query))
    && (!status || x.status === status));
  const sort = $('sort').value;
  // Plain comparisons: this runs on every update (each second) over thousands of rows.
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  const byName = (a, b) => cmp(name(a).toLowerCase(), name(b).toLowerCase()) || cmp(id(a), id(b));
  // A "worse" rate is a low success rate for agents and a high error rate for integrations.
  // As the server orders them: agents without executions in the hour have no rate (last).
  const badness = kind === 'agent'
    ? (x) => (x.metrics?.recent_executions > 0 ? 1 - x.success_rate : -1)
    : (x) => x.error_rate ?? -1;
  const last = kind === 'agent' ? (x) => time(x.last_active) : (x) => time(x.last_used);
  const order = {
    id: (a, b) => cmp(id(a), id(b)),
    name: byName,
    status: (a, b) => rank(a.status) - rank(b.status) || byName(a, b),
    rate: (a, b) => badness(b) - badness(a) || byName(a, b),
    recent: (a, b) => last(b) - last(a) || byName(a, b),
  }[sort];
  // `filter` made a new array: sorting it leaves the state's lists as the API gave them.
  return out.sort(order || byName);
}
// "(1000)" when nothing is searched or filtered, else "(12 of 1000)": how many match (the
// server counts them) of how many there are; "Show more" while pages are left.
function showCount(kind, all) {
  const { next } = state.lists[kind];
  const held = kind === 'agent' ? state.agents.length : state.integrations.length;
  // Pages by id come without a count: every one of the kind matches.
  const total = state.lists[kind].total ?? all ?? held;
  const filtered = $('search').value.trim() || $('status-filter').value;
  const of = all ?? total;
  $(`${kind}-count`).textContent = filtered ? `(${total} of ${of})` : `(${of})`;
  const more = $(`${kind}s-more`);
  more.hidden = !next;
  more.textContent = `Show more ${kind}s (${Math.max(0, total - held)} more)`;
}
export function renderStatusOptions() {
  // Every status either list can have, worst first.
  const statuses = [...new Set([...STATUSES.agent, ...STATUSES.integration])].sort((a, b) => rank(a) - rank(b));
  const select = $('status-filter');
  const options = `<option value="">any</option>${statuses.map((s) => `<option value="${escapeHtml(s)}">${escapeHtml(s)}</option>`).join('')}`;
  if (select.dataset.options === options) return;
  const chosen = select.value;
  select.dataset.options = options;
  select.innerHTML = options;
  select.value = statuses.includes(chosen) ? chosen : '';
}

export function renderAgents() {
  const agents = shown(state.agents, 'agent');
  showCount('agent', state.system?.total_agents);
  patchList($('agents'), agents, (a) => a.agent_id, (a) => `<li class="card" data-agent="${escapeHtml(a.agent_id)}">
          <h3><span class="name">${link('agent', a.agent_id, a.agent_name)}</span>${badge('st', a.status)}</h3>
          <dl>
            <dt>Success rate</dt><dd data-field="success_rate" class="${rateClass(a.success_rate)}">${percent(a.success_rate)}</dd>
            <dt>Confidence</dt><dd data-field="confidence_score">${number(a.confidence_score, 2)}</dd>
            <dt>Operation</dt><dd data-field="current_operation">${escapeHtml(a.current_operation || '–')}</dd>
            <dt>p95</dt><dd data-field="latency_p95_ms">${a.latency_p95_ms == null ? '–' : `${number(a.latency_p95_ms, 0)} ms`}</dd>
            <dt>Trend</dt><dd data-field="health_trend">${escapeHtml(a.health_trend)}</dd>
            <dt>Last active</dt><dd>${timeAgo(a.last_active)}</dd>
          </dl>
        </li>`, '<li class="empty">No agent matches.</li>');
  const select = $('history-agent');
  const chosen = state.historyAgent;
  // Rebuilt only when the agents change: an open menu must not close under the user.
  const options = state.agents
    .map((a) => `<option value="${escapeHtml(a.agent_id)}">${escapeHtml(a.agent_name)}</option>`)
    .join('');
  if (select.dataset.options === options) return;
  select.dataset.options = options;
  select.innerHTML = options;
  if (chosen && state.agents.some((a) => a.agent_id === chosen)) select.value = chosen;
  else {
    // Start with an agent that has run something: a fresh or paused one has no history.
    const first = state.agents.find((a) => a.last_active) || state.agents[0];
    if (first) select.value = first.agent_id;
  }
}

// The last 24 hours in hourly slots, and the share of successful calls over them.
function uptimeBar(id) {
  const slots = state.uptime.get(id);
  if (!slots) return '';
  let total = 0;
  let failed = 0;
  const cells = slots.map((s) => {
    total += s.total;
    failed += s.failed;
    const cls = s.availability == null ? '' : s.availability >= 0.99 ? 'up' : s.availability >= 0.95 ? 'part' : 'down';
    const what = s.availability == null ? 'no calls' : `${percent(s.availability)} of ${s.total}`;
    return `<i class="${cls}" title="${escapeHtml(when(s.start))}: ${what}"></i>`;
  }).join('');
  const overall = total ? percent((total - failed) / total) : '–';
  return `<div class="uptime" data-uptime="${overall}" aria-label="Availability per hour, last 24 hours">${cells}</div>
      <span class="uptime-text">24 h: ${overall}</span>`;
}

export function renderIntegrations() {
  const integrations = shown(state.integrations, 'integration');
  showCount('integration', state.system?.total_integrations);
  patchList($('integrations'), integrations, (i) => i.integration_id, (i) => `<li data-integration="${escapeHtml(i.integration_id)}">
          <div class="name">${link('integration', i.integration_id, i.integration_name)}</div>
          ${badge('st', i.status)} ${badge('st', i.connection_status)}
          <div class="detail"><span data-field="latency_ms">${i.latency_ms == null ? '–' : `${number(i.latency_ms, 0)} ms`}</span>
            · p95 ${i.latency_p95_ms == null ? '–' : `${number(i.latency_p95_ms, 0)} ms`}
            · errors <span class="${i.error_rate >= 0.05 ? 'bad-value' : ''}">${percent(i.error_rate)}</span> · ${escapeHtml(i.state)}</div>
          ${uptimeBar(i.integration_id)}
        </li>`, '<li class="empty">No integration matches.</li>');
}

export function renderHosts() {
  const hosts = state.system?.hosts || [];
  $('host-count').textContent = `(${hosts.length})`;
  patchList($('hosts'), hosts, (h) => h.host_id, (h) => `<li data-host="${escapeHtml(h.host_id)}">
          <span class="name">${link('host', h.host_id, h.host_id)}</span>
          <span class="meta">CPU <span class="${usageClass(h.cpu_usage)}">${number(h.cpu_usage)}%</span>
            · memory <span class="${usageClass(h.memory_usage)}">${number(h.memory_usage)}%</span>
            · ${timeAgo(h.last_seen)}</span>
        </li>`, '<li class="empty">No host reported in the last 2 minutes.</li>');
}

export function renderUpdated() {
  $('updated').textContent = state.updatedAt ? when(state.updatedAt) : 'never';
  if (state.updatedAt) $('updated').setAttribute('datetime', state.updatedAt);
}

export async function loadUptime() {
  const hourly = await api('/api/health/hourly?source_type=integration&hours=24');
  state.uptime = new Map(hourly.map((h) => [h.source_id, h.slots]));
  renderIntegrations();
}

export async function acknowledge(button) {
  const id = button.dataset.ack;
  button.disabled = true;
  $('alerts-error').textContent = '';
  try {
    const alert = await api(`/api/health/alerts/${encodeURIComponent(id)}/acknowledge`, {
      method: 'POST',
      body: JSON.stringify({ notes: 'acknowledged from the dashboard' }),
    });
    state.alerts = state.alerts.map((a) => (a.alert_id === id ? { ...a, ...alert } : a));
    renderAlerts();
  } catch (error) {
    button.disabled = false;
    $('alerts-error').textContent = `Cannot acknowledge: ${error.message}`;
  }
}
