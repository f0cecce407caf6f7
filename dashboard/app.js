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
  const MAX_LOAD_POINTS = 240;

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
    if (response.status === 401) throw new AuthError(body?.error?.message || 'the API key is not valid');
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

  function renderAgents() {
    $('agent-count').textContent = `(${state.agents.length})`;
    patchList($('agents'), state.agents, (a) => a.agent_id, (a) => `<li class="card" data-agent="${escapeHtml(a.agent_id)}">
          <h3><span class="name">${link('agent', a.agent_id, a.agent_name)}</span>${badge('st', a.status)}</h3>
          <dl>
            <dt>Success rate</dt><dd data-field="success_rate" class="${rateClass(a.success_rate)}">${percent(a.success_rate)}</dd>
            <dt>Confidence</dt><dd data-field="confidence_score">${number(a.confidence_score, 2)}</dd>
            <dt>Operation</dt><dd data-field="current_operation">${escapeHtml(a.current_operation || '–')}</dd>
            <dt>p95</dt><dd data-field="latency_p95_ms">${a.latency_p95_ms == null ? '–' : `${number(a.latency_p95_ms, 0)} ms`}</dd>
            <dt>Trend</dt><dd data-field="health_trend">${escapeHtml(a.health_trend)}</dd>
            <dt>Last active</dt><dd>${timeAgo(a.last_active)}</dd>
          </dl>
        </li>`, '');
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

  function renderIntegrations() {
    $('integration-count').textContent = `(${state.integrations.length})`;
    patchList($('integrations'), state.integrations, (i) => i.integration_id, (i) => `<li data-integration="${escapeHtml(i.integration_id)}">
          <div class="name">${link('integration', i.integration_id, i.integration_name)}</div>
          ${badge('st', i.status)} ${badge('st', i.connection_status)}
          <div class="detail"><span data-field="latency_ms">${i.latency_ms == null ? '–' : `${number(i.latency_ms, 0)} ms`}</span>
            · p95 ${i.latency_p95_ms == null ? '–' : `${number(i.latency_p95_ms, 0)} ms`}
            · errors <span class="${i.error_rate >= 0.05 ? 'bad-value' : ''}">${percent(i.error_rate)}</span> · ${escapeHtml(i.state)}</div>
        </li>`, '');
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

  function addLoadPoint() {
    const c = charts();
    if (!c || !state.system) return;
    const labels = c.load.data.labels;
    labels.push(new Date(state.updatedAt || Date.now()).toLocaleTimeString());
    c.load.data.datasets[0].data.push(state.system.cpu_usage);
    c.load.data.datasets[1].data.push(state.system.memory_usage);
    if (labels.length > MAX_LOAD_POINTS) {
      labels.shift();
      c.load.data.datasets.forEach((d) => d.data.shift());
    }
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

  async function loadDetail() {
    const d = state.detail;
    if (!d) return;
    state.detailLoadedAt = Date.now();
    $('detail-error').textContent = '';
    const path = `/api/health/history/${KINDS[d.kind]}?entity_id=${encodeURIComponent(d.id)}&days=30`;
    const sourceType = d.kind === 'host' ? 'system' : d.kind;
    const [history, slos, alertHistory] = await Promise.all([
      api(path).catch((error) => { $('detail-error').textContent = error.message; return { history: [] }; }),
      d.kind === 'host' ? Promise.resolve([]) : api('/api/health/slos').catch(() => []),
      api(`/api/health/alerts?source_type=${sourceType}&source_id=${encodeURIComponent(d.id)}&include_resolved=true`).catch(() => []),
    ]);
    if (state.detail !== d) return;
    renderSlos(slos);
    renderAlertHistory(alertHistory);
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
  async function refresh() {
    const [agents, integrations, alerts, system] = await Promise.all([
      api('/api/health/agents'),
      api('/api/health/integrations'),
      api('/api/health/alerts'),
      api('/api/health/system'),
    ]);
    // Navigation start to the four lists fetched, before drawing (the browser test splits
    // the load time with it).
    window.dashboardFetchedMs = window.dashboardFetchedMs || performance.now();
    Object.assign(state, { agents, integrations, alerts, system, updatedAt: new Date().toISOString() });
    renderAll();
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
      await refresh();
    } catch (error) {
      showLoadError(error);
      return;
    }
    // Navigation start to the figures, alerts, cards and integrations on screen.
    window.dashboardContentMs = performance.now();
    connect();
    addLoadPoint();
    await loadHistory().catch(() => {});
    await loadNotifications().catch((error) => { $('notify-error').textContent = error.message; });
    // Navigation start to a fully drawn dashboard; the browser test records it.
    window.dashboardReadyMs = performance.now();
    document.body.dataset.ready = 'true';
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
