// The Chart.js charts, each made on first use. Chart.js is a deferred classic script that
// index.html runs after the modules (so the API requests start first): window.Chart does not
// exist yet when this module loads, and without it every function here returns early.
import { api } from './api.js';
import { $, hourLabel } from './format.js';
import { state } from './state.js';

// What every chart shares.
const COMMON = {
  responsive: true,
  maintainAspectRatio: false,
  animation: false,
  plugins: { legend: { position: 'bottom' } },
};

function lineChart(id, datasets, y) {
  return new window.Chart($(id), {
    type: 'line',
    data: { labels: [], datasets },
    options: { ...COMMON, scales: { y } },
  });
}

// A health score from 0 to 1, day by day.
function scoreChart(id) {
  const score = { label: 'Health score', data: [], borderColor: '#2457a6', tension: 0.2 };
  return lineChart(id, [score], { min: 0, max: 1 });
}

function charts() {
  if (!window.Chart) return null;
  if (!state.charts.score) {
    state.charts.score = scoreChart('score-chart');
    state.charts.load = lineChart('load-chart', [
      { label: 'CPU %', data: [], borderColor: '#b3261e', pointRadius: 1.5 },
      { label: 'Memory %', data: [], borderColor: '#1b7f3b', pointRadius: 1.5 },
    ], { min: 0, max: 100 });
  }
  return state.charts;
}

export async function loadHistory() {
  const agent = $('history-agent').value;
  state.historyAgent = agent || null;
  const c = charts();
  if (!c || !agent) return;
  const history = await api(`/api/health/history/agent?entity_id=${encodeURIComponent(agent)}&days=30`);
  c.score.data.labels = history.history.map((p) => p.timestamp.slice(0, 10));
  c.score.data.datasets[0].data = history.history.map((p) => p.health_score);
  c.score.update();
}

// The last 24 hours of all hosts by hour, from stored history; the live point follows.
export async function loadLoadHistory() {
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
export function addLoadPoint() {
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

export function detailCharts() {
  if (!window.Chart) return null;
  if (!state.charts.detailScore) {
    state.charts.detailScore = scoreChart('detail-score-chart');
    state.charts.detailSecond = lineChart('detail-second-chart', [], { min: 0 });
    state.charts.detailHostHours = lineChart('detail-host-hours-chart', [
      { label: 'CPU mean', data: [], borderColor: '#b3261e' },
      { label: 'CPU peak', data: [], borderColor: '#e08a82', borderDash: [4, 3] },
      { label: 'Memory mean', data: [], borderColor: '#1b7f3b' },
    ], { min: 0, max: 100 });
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
      options: { ...COMMON, scales: { x: { stacked: true }, y: { stacked: true, min: 0 }, ms: { position: 'right', min: 0, grid: { display: false } } } },
    });
  }
  return state.charts;
}
