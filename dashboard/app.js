// The agent health dashboard: loads the REST API once, then applies `health:update`
// messages from the WebSocket (reassembling parts), and reconnects when the socket drops.
// No framework and no external requests; Chart.js is vendored under vendor/.
(() => {
  'use strict';

  const loc = window.location;
  const config = Object.assign(
    {
      api: loc.origin,
      ws: (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws',
    },
    window.HEALTH_CONFIG || {},
  );
  const KEY_STORAGE = 'agent-health.api-key';
  // Cards drawn before the full lists arrive: more than a large screen shows.
  const FIRST_PAGE = 60;
  const UPTIME_EVERY_MS = 5 * 60 * 1000;

  const state = {
    key: null,
    agents: [],
    integrations: [],
    alerts: [],
    system: null,
    updatedAt: null,
    socket: null,
    retryMs: 1000,
    retryTimer: null,
    parts: new Map(),
    charts: {},
    historyAgent: null,
    channels: [],
    rules: [],
    silences: [],
    openLogs: new Set(),
    logs: new Map(),
    detail: null,
    detailLoadedAt: 0,
    // Integration id → its last 24 hourly slots (uptime bars).
    uptime: new Map(),
    // Only the first page of each list is held (the first paint); the full lists follow.
    partial: false,
  };
  const $ = (id) => document.getElementById(id);

  // ---- formatting -------------------------------------------------------------------
  const escapeHtml = (value) =>
    String(value ?? '').replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    })[c]);
  const percent = (ratio) => (ratio == null ? '–' : `${Math.round(ratio * 1000) / 10}%`);
  const number = (value, digits = 1) =>
    value == null ? '–' : String(Math.round(value * 10 ** digits) / 10 ** digits);
  const when = (iso) => {
    if (!iso) return 'never';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  };
  // "2 min ago": what an operator reads at a glance; the exact time is the title.
  const ago = (iso) => {
    if (!iso) return 'never';
    const ms = Date.now() - new Date(iso).getTime();
    if (Number.isNaN(ms)) return iso;
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  };
  // The text is filled in by refreshTimes, so a row's markup stays the same as time passes
  // and patchList leaves it in place.
  const timeAgo = (iso) => `<time data-ago datetime="${escapeHtml(iso || '')}" title="${escapeHtml(when(iso))}"></time>`;
  function refreshTimes() {
    for (const t of document.querySelectorAll('time[data-ago]')) {
      const text = ago(t.getAttribute('datetime'));
      if (t.textContent !== text) t.textContent = text;
    }
  }

  // Updates a list in place: a row whose markup did not change keeps its element (so a
  // button under the pointer stays put while updates arrive every second), changed rows
  // are replaced, rows are put in order, gone ones removed.
  function patchList(list, items, key, html, empty) {
    if (items.length === 0) {
      list.innerHTML = empty;
      return;
    }
    if (!list.firstElementChild || list.firstElementChild.dataset.key === undefined) {
      // First draw: one parse of the whole list is several times faster than row by row.
      const markups = items.map(html);
      list.innerHTML = markups.join('');
      [...list.children].forEach((el, i) => {
        el.dataset.key = key(items[i]);
        el.rowHtml = markups[i];
      });
      return;
    }
    const old = new Map();
    for (const el of [...list.children]) {
      if (el.dataset.key === undefined) el.remove();
      else old.set(el.dataset.key, el);
    }
    items.forEach((item, i) => {
      const k = key(item);
      const markup = html(item);
      let el = old.get(k);
      if (!el || el.rowHtml !== markup) {
        const t = document.createElement('template');
        t.innerHTML = markup.trim();
        const fresh = t.content.firstElementChild;
        fresh.dataset.key = k;
        fresh.rowHtml = markup;
        if (el) el.replaceWith(fresh);
        el = fresh;
      }
      old.delete(k);
      const at = list.children[i];
      if (at !== el) list.insertBefore(el, at || null);
    });
    for (const el of old.values()) el.remove();
  }
  // A success rate of 50 % must not look like one of 95 %.
  const rateClass = (ratio) => (ratio == null ? '' : ratio < 0.8 ? 'bad-value' : ratio < 0.95 ? 'warn-value' : '');
  const usageClass = (pct) => (pct == null ? '' : pct > 90 ? 'bad-value' : pct > 80 ? 'warn-value' : '');
  const link = (kind, id, text) => `<a href="#/${kind}/${encodeURIComponent(id)}">${escapeHtml(text)}</a>`;
  const badge = (kind, value) =>
    `<span class="badge ${kind}-${escapeHtml(value)}">${escapeHtml(value)}</span>`;

  // ---- API --------------------------------------------------------------------------
  class AuthError extends Error {}

  async function api(path, options = {}) {
    const response = await fetch(config.api + path, {
      ...options,
      headers: {
        Authorization: `Bearer ${state.key}`,
        'Content-Type': 'application/json',
        ...(options.headers || {}),
      },
    });
    const body = await response.json().catch(() => null);
    // 401, or API Gateway's own 403 for a key its authorizer refused (auth.js).
    if (window.keyRefused(response.status, body)) {
      throw new AuthError(body?.error?.message || 'the API key is not valid (unknown or revoked)');
    }
    if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
    return body;
  }

  // ---- rendering --------------------------------------------------------------------
  function renderSystem() {
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

  function renderAlerts() {
    $('alert-count').textContent = `(${state.alerts.length})`;
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

  // ---- search, filter, sort ---------------------------------------------------------
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
    const badness = kind === 'agent' ? (x) => (x.success_rate == null ? -1 : 1 - x.success_rate) : (x) => x.error_rate ?? -1;
    const last = kind === 'agent' ? (x) => time(x.last_active) : (x) => time(x.last_used);
    const order = {
      name: byName,
      status: (a, b) => rank(a.status) - rank(b.status) || byName(a, b),
      rate: (a, b) => badness(b) - badness(a) || byName(a, b),
      recent: (a, b) => last(b) - last(a) || byName(a, b),
    }[sort];
    // `filter` made a new array: sorting it leaves the state's lists as the API gave them.
    return out.sort(order || byName);
  }
  const countText = (visible, all, total) => {
    const of = state.partial ? total : all.length;
    return visible.length === of ? `(${of})` : `(${visible.length} of ${of})`;
  };
  function renderStatusOptions() {
    const statuses = [...new Set([...state.agents, ...state.integrations].map((x) => x.status))].sort((a, b) => rank(a) - rank(b));
    const select = $('status-filter');
    const options = `<option value="">any</option>${statuses.map((s) => `<option value="${escapeHtml(s)}">${escapeHtml(s)}</option>`).join('')}`;
    if (select.dataset.options === options) return;
    const chosen = select.value;
    select.dataset.options = options;
    select.innerHTML = options;
    select.value = statuses.includes(chosen) ? chosen : '';
  }

  function renderAgents() {
    const agents = shown(state.agents, 'agent');
    $('agent-count').textContent = countText(agents, state.agents, state.system?.total_agents);
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

  function renderIntegrations() {
    const integrations = shown(state.integrations, 'integration');
    $('integration-count').textContent = countText(integrations, state.integrations, state.system?.total_integrations);
    patchList($('integrations'), integrations, (i) => i.integration_id, (i) => `<li data-integration="${escapeHtml(i.integration_id)}">
          <div class="name">${link('integration', i.integration_id, i.integration_name)}</div>
          ${badge('st', i.status)} ${badge('st', i.connection_status)}
          <div class="detail"><span data-field="latency_ms">${i.latency_ms == null ? '–' : `${number(i.latency_ms, 0)} ms`}</span>
            · p95 ${i.latency_p95_ms == null ? '–' : `${number(i.latency_p95_ms, 0)} ms`}
            · errors <span class="${i.error_rate >= 0.05 ? 'bad-value' : ''}">${percent(i.error_rate)}</span> · ${escapeHtml(i.state)}</div>
          ${uptimeBar(i.integration_id)}
        </li>`, '<li class="empty">No integration matches.</li>');
  }

  function renderHosts() {
    const hosts = state.system?.hosts || [];
    $('host-count').textContent = `(${hosts.length})`;
    patchList($('hosts'), hosts, (h) => h.host_id, (h) => `<li data-host="${escapeHtml(h.host_id)}">
          <span class="name">${link('host', h.host_id, h.host_id)}</span>
          <span class="meta">CPU <span class="${usageClass(h.cpu_usage)}">${number(h.cpu_usage)}%</span>
            · memory <span class="${usageClass(h.memory_usage)}">${number(h.memory_usage)}%</span>
            · ${timeAgo(h.last_seen)}</span>
        </li>`, '<li class="empty">No host reported in the last 2 minutes.</li>');
  }

  function renderUpdated() {
    $('updated').textContent = state.updatedAt ? when(state.updatedAt) : 'never';
    if (state.updatedAt) $('updated').setAttribute('datetime', state.updatedAt);
  }

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

  // ---- charts -----------------------------------------------------------------------
  function charts() {
    if (!window.Chart) return null;
    if (!state.charts.score) {
      const common = {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { position: 'bottom' } },
      };
      state.charts.score = new window.Chart($('score-chart'), {
        type: 'line',
        data: { labels: [], datasets: [{ label: 'Health score', data: [], borderColor: '#2457a6', tension: 0.2 }] },
        options: { ...common, scales: { y: { min: 0, max: 1 } } },
      });
      state.charts.load = new window.Chart($('load-chart'), {
        type: 'line',
        data: {
          labels: [],
          datasets: [
            { label: 'CPU %', data: [], borderColor: '#b3261e', pointRadius: 1.5 },
            { label: 'Memory %', data: [], borderColor: '#1b7f3b', pointRadius: 1.5 },
          ],
        },
        options: { ...common, scales: { y: { min: 0, max: 100 } } },
      });
    }
    return state.charts;
  }

  async function loadHistory() {
    const agent = $('history-agent').value;
    state.historyAgent = agent || null;
    const c = charts();
    if (!c || !agent) return;
    const history = await api(`/api/health/history/agent?entity_id=${encodeURIComponent(agent)}&days=30`);
    c.score.data.labels = history.history.map((p) => p.timestamp.slice(0, 10));
    c.score.data.datasets[0].data = history.history.map((p) => p.health_score);
    c.score.update();
  }

  const hourLabel = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  // The last 24 hours of all hosts by hour, from stored history; the live point follows.
  async function loadLoadHistory() {
    const c = charts();
    if (!c) return;
    const history = await api('/api/health/history/system?hours=24');
    const points = history.history;
    c.load.data.labels = points.map((p) => hourLabel(p.timestamp));
    c.load.data.datasets[0].data = points.map((p) => p.metrics.cpu_avg);
    c.load.data.datasets[1].data = points.map((p) => p.metrics.memory_avg);
    state.loadHours = points.length;
    document.body.dataset.loadHours = String(points.length);
    addLoadPoint();
  }

  // The live point: the hosts' current mean, replaced by each update.
  function addLoadPoint() {
    const c = charts();
    if (!c || !state.system) return;
    const n = state.loadHours ?? 0;
    c.load.data.labels.length = Math.min(c.load.data.labels.length, n);
    c.load.data.datasets.forEach((d) => { d.data.length = Math.min(d.data.length, n); });
    c.load.data.labels.push('now');
    c.load.data.datasets[0].data.push(state.system.cpu_usage);
    c.load.data.datasets[1].data.push(state.system.memory_usage);
    c.load.update();
  }

  // ---- drill-down pages ------------------------------------------------------------
  // `#/agent/<id>`, `#/integration/<id>`, `#/host/<id>`: one source's figures, its 30 days,
  // its SLOs and alerts, drawn from the lists the page already holds plus its history.
  const KINDS = { agent: 'agent', integration: 'integration', host: 'system' };

  function parseRoute() {
    const m = /^#\/(agent|integration|host)\/(.+)$/.exec(loc.hash);
    return m ? { kind: m[1], id: decodeURIComponent(m[2]) } : null;
  }

  function detailSource() {
    const d = state.detail;
    if (!d) return null;
    if (d.kind === 'agent') return state.agents.find((a) => a.agent_id === d.id) || null;
    if (d.kind === 'integration') return state.integrations.find((i) => i.integration_id === d.id) || null;
    return (state.system?.hosts || []).find((h) => h.host_id === d.id) || null;
  }

  function detailCharts() {
    if (!window.Chart) return null;
    if (!state.charts.detailScore) {
      const common = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } };
      state.charts.detailScore = new window.Chart($('detail-score-chart'), {
        type: 'line',
        data: { labels: [], datasets: [{ label: 'Health score', data: [], borderColor: '#2457a6', tension: 0.2 }] },
        options: { ...common, scales: { y: { min: 0, max: 1 } } },
      });
      state.charts.detailSecond = new window.Chart($('detail-second-chart'), {
        type: 'line',
        data: { labels: [], datasets: [] },
        options: { ...common, scales: { y: { min: 0 } } },
      });
      state.charts.detailHostHours = new window.Chart($('detail-host-hours-chart'), {
        type: 'line',
        data: {
          labels: [],
          datasets: [
            { label: 'CPU mean', data: [], borderColor: '#b3261e' },
            { label: 'CPU peak', data: [], borderColor: '#e08a82', borderDash: [4, 3] },
            { label: 'Memory mean', data: [], borderColor: '#1b7f3b' },
          ],
        },
        options: { ...common, scales: { y: { min: 0, max: 100 } } },
      });
      state.charts.detailHours = new window.Chart($('detail-hours-chart'), {
        type: 'bar',
        data: {
          labels: [],
          datasets: [
            { label: 'Succeeded', data: [], backgroundColor: '#1b7f3b', stack: 'n' },
            { label: 'Failed', data: [], backgroundColor: '#b3261e', stack: 'n' },
            { label: 'p95 (ms)', data: [], type: 'line', borderColor: '#9a6200', yAxisID: 'ms', pointRadius: 1.5 },
          ],
        },
        options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, min: 0 }, ms: { position: 'right', min: 0, grid: { display: false } } } },
      });
    }
    return state.charts;
  }

  function renderDetail() {
    const d = state.detail;
    const src = detailSource();
    const figures = [];
    if (d.kind === 'agent' && src) {
      $('detail-name').textContent = src.agent_name;
      $('detail-status').innerHTML = badge('st', src.status);
      figures.push(['Success rate', percent(src.success_rate), rateClass(src.success_rate), 'success_rate'],
        ['p50', src.latency_p50_ms == null ? '–' : `${number(src.latency_p50_ms, 0)} ms`, '', 'latency_p50_ms'],
        ['p95', src.latency_p95_ms == null ? '–' : `${number(src.latency_p95_ms, 0)} ms`, '', 'latency_p95_ms'],
        ['p99', src.latency_p99_ms == null ? '–' : `${number(src.latency_p99_ms, 0)} ms`, '', 'latency_p99_ms'],
        ['Executions (1 h)', String(src.metrics.recent_executions), '', 'recent_executions'],
        ['Tokens (1 h)', `${src.metrics.input_tokens ?? 0} in · ${src.metrics.output_tokens ?? 0} out`, '', 'tokens'],
        ['Operation', src.current_operation || '–', '', 'current_operation'],
        ['Last active', ago(src.last_active), '', 'last_active']);
    } else if (d.kind === 'integration' && src) {
      $('detail-name').textContent = src.integration_name;
      $('detail-status').innerHTML = `${badge('st', src.status)} ${badge('st', src.connection_status)}`;
      figures.push(['Error rate', percent(src.error_rate), src.error_rate >= 0.05 ? 'bad-value' : '', 'error_rate'],
        ['p50', src.latency_p50_ms == null ? '–' : `${number(src.latency_p50_ms, 0)} ms`, '', 'latency_p50_ms'],
        ['p95', src.latency_p95_ms == null ? '–' : `${number(src.latency_p95_ms, 0)} ms`, '', 'latency_p95_ms'],
        ['p99', src.latency_p99_ms == null ? '–' : `${number(src.latency_p99_ms, 0)} ms`, '', 'latency_p99_ms'],
        ['State', src.state, '', 'state'],
        ['Last used', ago(src.last_used), '', 'last_used']);
    } else if (d.kind === 'host' && src) {
      $('detail-name').textContent = src.host_id;
      $('detail-status').innerHTML = '';
      figures.push(['CPU', `${number(src.cpu_usage)}%`, usageClass(src.cpu_usage), 'cpu_usage'],
        ['Memory', `${number(src.memory_usage)}%`, usageClass(src.memory_usage), 'memory_usage'],
        ['Last sample', ago(src.last_seen), '', 'last_seen']);
    } else {
      $('detail-name').textContent = d.id;
      $('detail-status').innerHTML = '';
      figures.push(['Status', d.kind === 'host' ? 'not reporting' : 'unknown', '', 'status']);
    }
    $('detail-figures').innerHTML = figures
      .map(([label, value, cls, field]) => `<div class="tile"><dt>${label}</dt><dd class="${cls}" data-field="${field}">${escapeHtml(value)}</dd></div>`)
      .join('');
    const sourceType = d.kind === 'host' ? 'system' : d.kind;
    const alerts = state.alerts.filter((a) => a.source_type === sourceType && a.source_id === d.id);
    $('detail-alerts').innerHTML = alerts.length === 0
      ? '<li class="empty">No active alerts.</li>'
      : alerts.map((a) => `<li data-detail-alert="${escapeHtml(a.alert_id)}">${badge('sev', a.severity)}
          <span class="name">${escapeHtml(a.message)}</span>
          <span class="meta">raised ${timeAgo(a.timestamp)}${a.acknowledged ? ' · acknowledged' : ''}</span></li>`).join('');
  }

  function renderSlos(slos) {
    const d = state.detail;
    const mine = slos.filter((s) => s.source_type === d.kind && s.source_id === d.id);
    $('detail-slos').innerHTML = mine.length === 0
      ? '<li class="empty">No SLO for this source.</li>'
      : mine.map((s) => {
        const left = Math.max(0, Math.min(1, s.error_budget_remaining));
        const what = s.objective === 'latency'
          ? `${number(s.target * 100, 2)}% under ${number(s.threshold_ms, 0)} ms`
          : s.objective === 'availability' ? `availability ${number(s.target * 100, 3)}%` : `error rate under ${number(s.target * 100, 3)}%`;
        return `<li data-slo="${escapeHtml(s.slo_id)}" data-status="${escapeHtml(s.status)}">
          <span class="name">${escapeHtml(s.slo_id)}</span> ${badge('slo', s.status)}
          <span class="meta">${escapeHtml(what)} over ${s.window_days} d · now ${s.current == null ? '–' : `${number(s.current * 100, 3)}%`}
            · budget left <span data-field="error_budget_remaining">${number(s.error_budget_remaining * 100, 1)}%</span>
            · burn ${number(s.burn_rate_1h, 2)}× (1 h), ${number(s.burn_rate_6h, 2)}× (6 h), ${number(s.burn_rate_3d, 2)}× (3 d)</span>
          <span class="budget" data-status="${escapeHtml(s.status)}" title="error budget left"><span style="width:${Math.round(left * 100)}%"></span></span>
        </li>`;
      }).join('');
  }

  // Durations as people say them: "4 min", "2 h 5 min".
  const span = (ms) => {
    if (ms == null || Number.isNaN(ms)) return '–';
    const m = Math.round(ms / 60000);
    if (m < 1) return `${Math.round(ms / 1000)} s`;
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  };
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

  function renderAlertHistory(alerts) {
    const at = (iso) => (iso ? new Date(iso).getTime() : null);
    const toAck = alerts.filter((a) => a.acknowledged_at).map((a) => at(a.acknowledged_at) - at(a.timestamp));
    const toResolve = alerts.filter((a) => a.resolved_at).map((a) => at(a.resolved_at) - at(a.timestamp));
    $('detail-mttx').textContent = `${alerts.length} alert${alerts.length === 1 ? '' : 's'} · mean time to acknowledge ${span(mean(toAck))} · mean time to resolve ${span(mean(toResolve))}`;
    $('detail-history').innerHTML = alerts.length === 0
      ? '<li class="empty">No alerts in the last 30 days.</li>'
      : alerts.map((a) => `<li data-history-alert="${escapeHtml(a.alert_id)}" data-resolved="${!!a.resolved_at}">
          ${badge('sev', a.severity)} <span class="name">${escapeHtml(a.message)}</span>
          <span class="meta">${escapeHtml(when(a.timestamp))}
            · ${a.acknowledged_at ? `acknowledged after ${span(at(a.acknowledged_at) - at(a.timestamp))}` : 'not acknowledged'}
            · ${a.resolved_at ? `resolved after ${span(at(a.resolved_at) - at(a.timestamp))}` : 'active'}</span></li>`).join('');
  }

  function renderFailures(failures) {
    $('detail-failures').innerHTML = failures.length === 0
      ? '<li class="empty">No failure in the last 30 days.</li>'
      : failures.map((f) => `<li data-failure="${escapeHtml(f.execution_id || f.timestamp)}">
          <span class="name">${escapeHtml(f.operation || (f.execution_id ? 'execution' : 'call'))}</span>
          <span class="meta">${timeAgo(f.timestamp)}${f.execution_id ? ` · ${escapeHtml(f.execution_id)}` : ''}${f.duration_ms == null ? '' : ` · ${number(f.duration_ms, 0)} ms`}</span>
          <pre class="error-text">${escapeHtml(f.error || 'no error text')}</pre></li>`).join('');
  }

  // This week (today and the 6 days before) against the 7 before, from the daily points:
  // volume and success rate exactly; p95 as the worst day's (days' percentiles do not add up).
  function renderWeeks(points, kind) {
    const day = (iso) => Math.floor(new Date(iso).getTime() / 86400000);
    const today = Math.floor(Date.now() / 86400000);
    const week = (from, to) => {
      const days = points.filter((p) => day(p.timestamp) >= from && day(p.timestamp) <= to);
      const m = (p) => p.metrics;
      const volume = days.reduce((n, p) => n + (kind === 'agent' ? m(p).completed + m(p).failed : m(p).calls), 0);
      const bad = days.reduce((n, p) => n + (kind === 'agent' ? m(p).failed : m(p).failures), 0);
      const p95s = days.map((p) => m(p).latency_p95_ms).filter((v) => v != null);
      return { volume, rate: volume ? (volume - bad) / volume : null, p95: p95s.length ? Math.max(...p95s) : null };
    };
    const now = week(today - 6, today);
    const before = week(today - 13, today - 7);
    const change = (a, b, fmt) => (a == null || b == null ? '–' : fmt(a - b));
    const rows = [
      [kind === 'agent' ? 'Executions' : 'Calls', now.volume, before.volume, String, (x) => `${x >= 0 ? '+' : ''}${x}`, 'volume'],
      ['Success rate', now.rate, before.rate, percent, (x) => `${x >= 0 ? '+' : ''}${number(x * 100, 1)} points`, 'rate'],
      ['p95 (worst day)', now.p95, before.p95, (x) => (x == null ? '–' : `${number(x, 0)} ms`), (x) => `${x >= 0 ? '+' : ''}${number(x, 0)} ms`, 'p95'],
    ];
    $('detail-weeks').innerHTML = `<thead><tr><th></th><th>This week</th><th>Last week</th><th>Change</th></tr></thead><tbody>${rows
      .map(([label, a, b, fmt, diff, key]) => `<tr data-week="${key}"><th>${label}</th><td>${fmt(a)}</td><td>${fmt(b)}</td><td>${change(a, b, diff)}</td></tr>`)
      .join('')}</tbody>`;
  }

  function renderHours(hourly) {
    const c = detailCharts();
    const slots = hourly[0]?.slots || [];
    document.body.dataset.detailHours = String(slots.length);
    if (!c) return;
    const chart = c.detailHours;
    chart.data.labels = slots.map((s) => new Date(s.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    chart.data.datasets[0].data = slots.map((s) => s.total - s.failed);
    chart.data.datasets[1].data = slots.map((s) => s.failed);
    chart.data.datasets[2].data = slots.map((s) => s.latency_p95_ms);
    chart.update();
  }

  function renderHostHours(points) {
    document.body.dataset.detailHostHours = String(points.length);
    const c = detailCharts();
    if (!c) return;
    const chart = c.detailHostHours;
    chart.data.labels = points.map((p) => hourLabel(p.timestamp));
    chart.data.datasets[0].data = points.map((p) => p.metrics.cpu_avg);
    chart.data.datasets[1].data = points.map((p) => p.metrics.cpu_max);
    chart.data.datasets[2].data = points.map((p) => p.metrics.memory_avg);
    chart.update();
  }

  async function loadDetail() {
    const d = state.detail;
    if (!d) return;
    state.detailLoadedAt = Date.now();
    $('detail-error').textContent = '';
    const path = `/api/health/history/${KINDS[d.kind]}?entity_id=${encodeURIComponent(d.id)}&days=30`;
    const sourceType = d.kind === 'host' ? 'system' : d.kind;
    const host = d.kind === 'host';
    const source = `source_type=${sourceType}&source_id=${encodeURIComponent(d.id)}`;
    // Hosts have hourly CPU and memory, and no failures, volume or weeks to compare.
    $('detail-hours-figure').hidden = host;
    $('detail-weeks-figure').hidden = host;
    $('detail-host-hours-figure').hidden = !host;
    $('detail-failures-panel').hidden = host;
    const [history, slos, alertHistory, failures, hourly] = await Promise.all([
      api(path).catch((error) => { $('detail-error').textContent = error.message; return { history: [] }; }),
      host ? Promise.resolve([]) : api('/api/health/slos').catch(() => []),
      api(`/api/health/alerts?${source}&include_resolved=true`).catch(() => []),
      host ? Promise.resolve([]) : api(`/api/health/failures?${source}`).catch(() => []),
      host
        ? api(`/api/health/history/system?entity_id=${encodeURIComponent(d.id)}&hours=24`).catch(() => ({ history: [] }))
        : api(`/api/health/hourly?${source}&hours=24`).catch(() => []),
    ]);
    if (state.detail !== d) return;
    renderSlos(slos);
    renderAlertHistory(alertHistory);
    if (!host) {
      renderFailures(failures);
      renderWeeks(history.history, d.kind);
      renderHours(hourly);
    } else {
      renderHostHours(hourly.history);
    }
    const c = detailCharts();
    if (!c) return;
    const points = history.history;
    c.detailScore.data.labels = points.map((p) => p.timestamp.slice(0, 10));
    c.detailScore.data.datasets[0].data = points.map((p) => p.health_score);
    c.detailScore.update();
    const second = c.detailSecond;
    second.data.labels = c.detailScore.data.labels;
    if (d.kind === 'host') {
      $('detail-second-caption').textContent = 'CPU and memory per day (%, mean and peak)';
      second.data.datasets = [
        { label: 'CPU mean', data: points.map((p) => p.metrics.cpu_avg), borderColor: '#b3261e' },
        { label: 'CPU peak', data: points.map((p) => p.metrics.cpu_max), borderColor: '#e08a82', borderDash: [4, 3] },
        { label: 'Memory mean', data: points.map((p) => p.metrics.memory_avg), borderColor: '#1b7f3b' },
      ];
    } else {
      $('detail-second-caption').textContent = d.kind === 'agent' ? 'Execution time per day (ms)' : 'Latency per day (ms)';
      second.data.datasets = [
        { label: 'p50', data: points.map((p) => p.metrics.latency_p50_ms), borderColor: '#1b7f3b' },
        { label: 'p95', data: points.map((p) => p.metrics.latency_p95_ms), borderColor: '#9a6200' },
        { label: 'p99', data: points.map((p) => p.metrics.latency_p99_ms), borderColor: '#b3261e' },
      ];
    }
    second.update();
    document.body.dataset.detail = `${d.kind}/${d.id}`;
    document.body.dataset.detailPoints = String(points.length);
  }

  function route() {
    const r = parseRoute();
    state.detail = r;
    $('dashboard').hidden = !!r || !state.key;
    $('detail').hidden = !r;
    if (!r) {
      delete document.body.dataset.detail;
      return;
    }
    window.scrollTo(0, 0);
    renderDetail();
    refreshTimes();
    loadDetail().catch(showLoadError);
  }

  // ---- live updates -----------------------------------------------------------------
  function setConnection(kind, text) {
    const el = $('connection');
    el.dataset.state = kind;
    el.textContent = text;
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

  function connect() {
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

  // ---- loading and actions ----------------------------------------------------------
  // With `first`, only the first page of agents and integrations: a screenful drawn
  // while the full lists (thousands of cards) are still on their way.
  async function refresh(first = false) {
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

  async function loadUptime() {
    const hourly = await api('/api/health/hourly?source_type=integration&hours=24');
    state.uptime = new Map(hourly.map((h) => [h.source_id, h.slots]));
    renderIntegrations();
  }

  function showLoadError(error) {
    if (error instanceof AuthError) {
      askForKey(error.message);
      return;
    }
    setConnection('offline', `Cannot load: ${error.message}`);
  }

  async function acknowledge(button) {
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

  // ---- notifications ----------------------------------------------------------------
  function renderNotifications() {
    $('channels').innerHTML = state.channels.length === 0
      ? '<li class="empty">No channels: alerts reach only this page.</li>'
      : state.channels.map((c) => {
        const target = c.url || (c.to || []).join(', ') || c.topic_arn || (c.routing_key ? 'routing key ***' : '');
        return `<li data-channel="${escapeHtml(c.channel_id)}">
          <span class="name">${escapeHtml(c.name)}</span> ${badge('kind', c.type)}
          <span class="meta">${escapeHtml(target)}${c.enabled ? '' : ' · disabled'}</span>
          <button type="button" data-test="${escapeHtml(c.channel_id)}">Test</button>
          <button type="button" class="link" data-delete-channel="${escapeHtml(c.channel_id)}">Delete</button>
          <span class="result" data-result-of="${escapeHtml(c.channel_id)}" role="status"></span>
        </li>`;
      }).join('');
    $('rules').innerHTML = state.rules.length === 0
      ? '<li class="empty">No rules: no alert is sent anywhere.</li>'
      : state.rules.map((r) => {
        const m = r.match || {};
        const what = [m.severity && m.severity.join('/'), m.source_type && m.source_type.join('/'), m.source_id]
          .filter(Boolean).join(' · ') || 'every alert';
        return `<li data-rule="${escapeHtml(r.rule_id)}">
          <span class="name">${escapeHtml(r.rule_id)}</span>
          <span class="meta">${escapeHtml(what)} → ${escapeHtml(r.channels.join(', '))} · wait ${r.group_wait_s} s · repeat ${Math.round(r.repeat_interval_s / 60)} min</span>
          <button type="button" class="link" data-delete-rule="${escapeHtml(r.rule_id)}">Delete</button>
        </li>`;
      }).join('');
    $('silences').innerHTML = state.silences.length === 0
      ? '<li class="empty">Nothing silenced.</li>'
      : state.silences.map((x) => {
        const m = x.match || {};
        const what = [m.severity && m.severity.join('/'), m.source_type && m.source_type.join('/'), m.source_id]
          .filter(Boolean).join(' · ') || 'every alert';
        const span = x.schedule
          ? `${x.schedule.days && x.schedule.days.length ? x.schedule.days.join(',') : 'daily'} ${x.schedule.start} ${x.schedule.timezone}, ${x.schedule.duration_minutes} min`
          : `until ${when(x.ends_at)}`;
        return `<li data-silence="${escapeHtml(x.silence_id)}" data-active="${x.active}">
          <span class="name">${escapeHtml(what)}</span>
          <span class="meta">${escapeHtml(span)}${x.comment ? ` · ${escapeHtml(x.comment)}` : ''} · by ${escapeHtml(x.created_by)}</span>
          <button type="button" class="link" data-end-silence="${escapeHtml(x.silence_id)}">${x.schedule ? 'Remove' : 'End now'}</button>
        </li>`;
      }).join('');
  }

  async function loadNotifications() {
    const [channels, rules, silences] = await Promise.all([
      api('/api/health/channels'),
      api('/api/health/notification-rules'),
      api('/api/health/silences'),
    ]);
    Object.assign(state, { channels, rules, silences });
    renderNotifications();
  }

  // Runs an admin action; a key without the admin scope gets the API's message.
  async function notifyAction(action) {
    $('notify-error').textContent = '';
    try {
      await action();
      await loadNotifications();
    } catch (error) {
      $('notify-error').textContent = error.message;
    }
  }

  function channelBody(form) {
    const f = Object.fromEntries(new FormData(form));
    const body = { type: f.type };
    if (f.name) body.name = f.name;
    const target = f.target.trim();
    if (f.type === 'webhook') Object.assign(body, { url: target, secret: f.secret });
    if (f.type === 'slack') body.url = target;
    if (f.type === 'email') body.to = target.split(',').map((t) => t.trim()).filter(Boolean);
    if (f.type === 'sns') body.topic_arn = target;
    if (f.type === 'pagerduty') body.routing_key = target;
    return [f.id.trim(), body];
  }

  // The log's rows live in the state, so the alert's row can be redrawn by any update.
  async function toggleLog(button) {
    const id = button.dataset.log;
    if (state.openLogs.has(id)) {
      state.openLogs.delete(id);
      renderAlerts();
      return;
    }
    state.openLogs.add(id);
    state.logs.delete(id);
    renderAlerts();
    let rows;
    try {
      const log = await api(`/api/health/alerts/${encodeURIComponent(id)}/notifications`);
      rows = log.length === 0
        ? '<li class="empty">No notifications (no rule matches, or silenced).</li>'
        : log.map((n) => `<li data-notification="${escapeHtml(n.notification_id)}">
            ${badge('delivery', n.status)} ${escapeHtml(n.kind)} to ${escapeHtml(n.channel_id)}
            · ${n.attempts} attempt${n.attempts === 1 ? '' : 's'}${n.delivered_at ? ` · delivered ${escapeHtml(when(n.delivered_at))}` : ''}
            ${n.last_error ? `<span class="error">${escapeHtml(n.last_error)}</span>` : ''}</li>`).join('');
    } catch (error) {
      rows = `<li class="error">${escapeHtml(error.message)}</li>`;
    }
    state.logs.set(id, rows);
    renderAlerts();
  }

  function initNotifications() {
    $('channel-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const [id, body] = channelBody(event.target);
      notifyAction(async () => {
        await api(`/api/health/channels/${encodeURIComponent(id)}`, { method: 'PUT', body: JSON.stringify(body) });
        event.target.reset();
      });
    });
    $('rule-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(event.target));
      const match = {};
      if (f.severity === 'critical') match.severity = ['critical'];
      if (f.severity === 'warning') match.severity = ['critical', 'warning'];
      if (f.source_id.trim()) match.source_id = f.source_id.trim();
      const body = {
        channels: f.channels.split(',').map((c) => c.trim()).filter(Boolean),
        match,
        group_wait_s: Number(f.group_wait_s),
        repeat_interval_s: Number(f.repeat_min) * 60,
      };
      notifyAction(async () => {
        await api(`/api/health/notification-rules/${encodeURIComponent(f.id.trim())}`, { method: 'PUT', body: JSON.stringify(body) });
        event.target.reset();
      });
    });
    $('silence-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const f = Object.fromEntries(new FormData(event.target));
      const match = {};
      if (f.severity) match.severity = [f.severity];
      if (f.source_id.trim()) match.source_id = f.source_id.trim();
      const ends = new Date(Date.now() + Number(f.minutes) * 60000);
      const body = { match, ends_at: ends.toISOString().replace(/\.\d{3}Z$/, 'Z'), comment: f.comment };
      notifyAction(async () => {
        await api('/api/health/silences', { method: 'POST', body: JSON.stringify(body) });
        event.target.reset();
        await refresh();
      });
    });
    $('dashboard').addEventListener('click', async (event) => {
      const b = event.target.closest('button');
      if (!b) return;
      if (b.dataset.log) toggleLog(b);
      if (b.dataset.test) {
        const out = document.querySelector(`[data-result-of="${CSS.escape(b.dataset.test)}"]`);
        out.textContent = 'Sending…';
        try {
          const r = await api(`/api/health/channels/${encodeURIComponent(b.dataset.test)}/test`, { method: 'POST' });
          out.textContent = r.delivered ? 'Delivered' : `Not delivered: ${r.error}`;
          out.dataset.delivered = String(r.delivered);
        } catch (error) {
          out.textContent = error.message;
        }
      }
      if (b.dataset.deleteChannel) notifyAction(() => api(`/api/health/channels/${encodeURIComponent(b.dataset.deleteChannel)}`, { method: 'DELETE' }));
      if (b.dataset.deleteRule) notifyAction(() => api(`/api/health/notification-rules/${encodeURIComponent(b.dataset.deleteRule)}`, { method: 'DELETE' }));
      if (b.dataset.endSilence) {
        notifyAction(async () => {
          await api(`/api/health/silences/${encodeURIComponent(b.dataset.endSilence)}`, { method: 'DELETE' });
          await refresh();
        });
      }
    });
  }

  function askForKey(message) {
    localStorage.removeItem(KEY_STORAGE);
    if (state.socket) {
      const socket = state.socket;
      state.socket = null;
      socket.close();
    }
    $('dashboard').hidden = true;
    $('detail').hidden = true;
    $('key-form').hidden = false;
    $('key-error').textContent = message || '';
    setConnection('offline', 'Not connected');
    $('key-input').focus();
  }

  async function start(key) {
    state.key = key;
    localStorage.setItem(KEY_STORAGE, key);
    $('key-form').hidden = true;
    $('dashboard').hidden = !!parseRoute();
    setConnection('connecting', 'Connecting…');
    try {
      await refresh(true);
      // Navigation start to the figures, alerts and the first cards and integrations on
      // screen.
      window.dashboardContentMs = performance.now();
      if (state.partial) await refresh();
    } catch (error) {
      showLoadError(error);
      return;
    }
    window.dashboardListedMs = performance.now();
    connect();
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
    for (const id of ['search', 'status-filter', 'sort']) {
      $(id).addEventListener('input', () => { renderAgents(); renderIntegrations(); });
    }
    initNotifications();
    $('key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const key = $('key-input').value.trim();
      if (key) start(key);
    });
    window.addEventListener('hashchange', () => { if (state.key) route(); });
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
})();
