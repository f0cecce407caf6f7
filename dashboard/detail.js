// The drill-down pages, `#/agent/<id>`, `#/integration/<id>` and `#/host/<id>`: one
// source's figures, its 30 days, its SLOs and alerts, drawn from the lists the page already
// holds plus its history.
import { api, showLoadError } from './api.js';
import { detailCharts } from './charts.js';
import {
  $, ago, badge, escapeHtml, hourLabel, mean, number, percent, rateClass, refreshTimes, span, timeAgo, usageClass, when,
} from './format.js';
import { loc, state } from './state.js';

const KINDS = { agent: 'agent', integration: 'integration', host: 'system' };

export function parseRoute() {
  const m = /^#\/(agent|integration|host)\/(.+)$/.exec(loc.hash);
  return m ? { kind: m[1], id: decodeURIComponent(m[2]) } : null;
}

// The source as the loaded pages hold it (kept current by deltas), else as fetched for
// this page: the lists hold pages, not the whole fleet.
function detailSource() {
  const d = state.detail;
  if (!d) return null;
  let held;
  if (d.kind === 'agent') held = state.agents.find((a) => a.agent_id === d.id);
  else if (d.kind === 'integration') held = state.integrations.find((i) => i.integration_id === d.id);
  else held = (state.system?.hosts || []).find((h) => h.host_id === d.id);
  const fetched = state.detailItem;
  return held || (fetched && fetched.kind === d.kind && fetched.id === d.id ? fetched.item : null);
}

// Fetches the source of a drill-down the pages do not hold: an agent by its endpoint, an
// integration by searching its id.
async function fetchSource(d) {
  if (d.kind === 'agent') return api(`/api/health/agent/${encodeURIComponent(d.id)}`).catch(() => null);
  if (d.kind === 'integration') {
    const found = await api(`/api/health/integrations?q=${encodeURIComponent(d.id.slice(0, 128))}`).catch(() => []);
    return found.find((i) => i.integration_id === d.id) || null;
  }
  return null;
}

export function renderDetail() {
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

export async function loadDetail() {
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
  const [item, history, slos, alertHistory, failures, hourly] = await Promise.all([
    detailSource() ? Promise.resolve(null) : fetchSource(d),
    api(path).catch((error) => { $('detail-error').textContent = error.message; return { history: [] }; }),
    host ? Promise.resolve([]) : api('/api/health/slos').catch(() => []),
    api(`/api/health/alerts?${source}&include_resolved=true`).catch(() => []),
    host ? Promise.resolve([]) : api(`/api/health/failures?${source}`).catch(() => []),
    host
      ? api(`/api/health/history/system?entity_id=${encodeURIComponent(d.id)}&hours=24`).catch(() => ({ history: [] }))
      : api(`/api/health/hourly?${source}&hours=24`).catch(() => []),
  ]);
  if (state.detail !== d) return;
  if (item) {
    state.detailItem = { kind: d.kind, id: d.id, item };
    renderDetail();
    // Its changes come live too.
    window.dispatchEvent(new Event('dashboard:watch'));
  }
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

export function route() {
  const r = parseRoute();
  state.detail = r;
  // A source fetched for another drill-down is no longer shown (nor watched).
  if (state.detailItem && (r?.kind !== state.detailItem.kind || r?.id !== state.detailItem.id)) {
    state.detailItem = null;
    window.dispatchEvent(new Event('dashboard:watch'));
  }
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
