// Browser test of the dashboard, run by tests/tests/dashboard.rs against a local stack it
// seeded: Debian's chromium, driven by playwright-core, checks what an operator sees.
// Env: BASE_URL, API_KEY, ARTIFACTS. Protocol with the Rust side: this script prints
// `DROP` when it wants the server to close the page's WebSocket, and waits for a line
// `dropped` on stdin. It prints `RESULT <json>` and exits 0 when every check passed.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync, writeFileSync } from 'node:fs';

const base = process.env.BASE_URL;
const key = process.env.API_KEY;
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });
const origin = new URL(base);
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function api(path, init = {}) {
  const res = await fetch(base + path, {
    ...init,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
  });
  check(res.ok, `${path} answered ${res.status}`);
  return res.json();
}

const percent = (r) => `${Math.round(r * 1000) / 10}%`;
const deepLinkOf = (agent) => `${base}/#/agent/${encodeURIComponent(agent.agent_id)}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const problems = [];
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.on('request', (req) => {
    const url = new URL(req.url());
    const local = url.hostname === origin.hostname && url.port === origin.port;
    if (!local && url.protocol !== 'data:') problems.push(`external request: ${req.url()}`);
  });
  // Notes when Chart.js defines its global, so each load can check that the page's first
  // API request came before: index.html runs the app's modules first so that Chart.js
  // parses while the requests travel.
  await context.addInitScript(() => {
    Object.defineProperty(window, 'Chart', {
      configurable: true,
      set(value) {
        window.chartRanMs = performance.now();
        Object.defineProperty(window, 'Chart', { value, writable: true, configurable: true });
      },
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));

  // Load time: navigation start to the dashboard drawn with every list and chart, five times.
  const loads = [];
  for (let i = 0; i < 5; i += 1) {
    // From a blank page each time: a hash-only change would not reload the document.
    await page.goto('about:blank');
    await page.goto(`${base}/#key=${key}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
    // Each load from a quiet server: the page's later requests (uptime bars, stored hours)
    // must not run into the next load's.
    await page.waitForLoadState('networkidle');
    loads.push(await page.evaluate(() => [window.dashboardContentMs, window.dashboardReadyMs, window.dashboardFetchedMs, window.dashboardListedMs]));
    const [firstRequest, chartRan] = await page.evaluate(() => [
      Math.min(...performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/')).map((e) => e.startTime)),
      window.chartRanMs,
    ]);
    check(firstRequest < chartRan, `the first API request (${firstRequest} ms) starts before Chart.js runs (${chartRan} ms)`);
    (result.first_request_ms ||= []).push(Math.round(firstRequest));
    (result.chart_ran_ms ||= []).push(Math.round(chartRan));
    // Where the time goes: each API request's duration in the browser, the last load's.
    result.requests_ms = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/'))
      .map((e) => [new URL(e.name).pathname + new URL(e.name).search, [Math.round(e.startTime), Math.round(e.duration)]])));
  }
  // Listed: the whole list of active alerts drawn after the first paint's first ones.
  result.listed_ms = loads.map(([, , , listed]) => Math.round(listed));
  result.fetched_ms = loads.map(([, , fetched]) => Math.round(fetched));
  // Content: figures, alerts, cards and integrations drawn; ready: charts and socket too.
  result.content_ms = loads.map(([content]) => Math.round(content));
  result.load_ms = loads.map(([, ready]) => Math.round(ready));
  // The load figures as soon as they are known (a measurement run at 10,000 agents reads
  // them even if a later step runs out of time).
  console.log(`LOADS ${JSON.stringify({ content_ms: result.content_ms, fetched_ms: result.fetched_ms, listed_ms: result.listed_ms, load_ms: result.load_ms, requests_ms: result.requests_ms })}`);
  check(!(await page.evaluate(() => window.location.hash)), 'the key is removed from the URL');

  // What the page shows matches the API.
  const [agents, integrations, system, alerts] = await Promise.all([
    api('/api/health/agents'), api('/api/health/integrations'), api('/api/health/system'),
    api('/api/health/alerts'),
  ]);
  result.agents = agents.length;
  result.integrations = integrations.length;
  // The server pages the lists: the first page, by id, and "Show more" for the next.
  const PAGE = 100;
  const byName = (list, name) => [...list].sort((a, b) => (name(a).toLowerCase() < name(b).toLowerCase() ? -1 : name(a).toLowerCase() > name(b).toLowerCase() ? 1 : 0));
  const shownIds = (attr) => page.locator(`[data-${attr}]`).evaluateAll((els, a) => els.map((e) => e.dataset[a]), attr);
  // The API's whole list is by id.
  const firstAgents = agents.slice(0, PAGE).map((a) => a.agent_id);
  check(JSON.stringify(await shownIds('agent')) === JSON.stringify(firstAgents), 'the first page of agents, by id');
  check((await page.locator('#agent-count').textContent()) === `(${agents.length})`, 'the count is of every agent');
  await page.click('#agents-more');
  await page.waitForFunction((n) => document.querySelectorAll('[data-agent]').length === n, Math.min(agents.length, 2 * PAGE), { timeout: 10000 });
  check((await page.locator('#agents-more').textContent()) === `Show more agents (${agents.length - 2 * PAGE} more)`, 'what is left to show');
  for (const a of agents.slice(0, 20)) {
    const card = page.locator(`[data-agent="${a.agent_id}"]`);
    check((await card.locator('.name').textContent()) === a.agent_name, `${a.agent_id} name`);
    check((await card.locator('.badge').textContent()) === a.status, `${a.agent_id} status`);
    const rate = await card.locator('[data-field="success_rate"]').textContent();
    check(rate === percent(a.success_rate), `${a.agent_id} success rate ${rate} vs ${a.success_rate}`);
    const op = await card.locator('[data-field="current_operation"]').textContent();
    check(op === (a.current_operation || '–'), `${a.agent_id} operation`);
  }
  const firstIntegrations = integrations.slice(0, PAGE).map((i) => i.integration_id);
  check(JSON.stringify(await shownIds('integration')) === JSON.stringify(firstIntegrations), 'the first page of integrations, by id');
  const tile = (name) => page.locator(`[data-tile="${name}"] dd`).textContent();
  check(await tile('agents') === `${system.active_agents}/${system.total_agents}`, 'active agents x/y');
  check(await tile('integrations') === `${system.healthy_integrations}/${system.total_integrations}`,
    'healthy integrations x/y');
  check(await tile('queue') === String(system.queue_depth), 'queue depth');
  const shownAlerts = await page.locator('[data-alert]').evaluateAll((els) => els.map((e) => e.dataset.alert));
  check(JSON.stringify(shownAlerts) === JSON.stringify(alerts.map((a) => a.alert_id)),
    `alerts in the API's order (critical first): ${shownAlerts} vs ${alerts.map((a) => a.alert_id)}`);
  check(alerts[0].severity === 'critical', 'the seeded critical alert comes first');

  // Search, filter and sort: what is shown is what the API's lists say matches.
  const probe = agents[Math.floor(agents.length / 2)];
  const fragment = probe.agent_name.slice(-3).toLowerCase();
  await page.fill('#search', fragment);
  const matching = agents.filter((a) => a.agent_name.toLowerCase().includes(fragment) || a.agent_id.toLowerCase().includes(fragment));
  await page.waitForFunction((n) => document.querySelectorAll('[data-agent]').length === n, Math.min(matching.length, PAGE), { timeout: 10000 });
  await page.waitForFunction((t) => document.getElementById('agent-count').textContent === t, `(${matching.length} of ${agents.length})`, { timeout: 10000 });
  await page.fill('#search', '');
  const worst = agents.some((a) => a.status === 'error') ? 'error' : agents[0].status;
  await page.selectOption('#status-filter', worst);
  const ofStatus = agents.filter((a) => a.status === worst).length;
  await page.waitForFunction((n) => document.querySelectorAll('[data-agent]').length === n, Math.min(ofStatus, PAGE), { timeout: 10000 });
  await page.waitForFunction((t) => document.getElementById('agent-count').textContent === t, `(${ofStatus} of ${agents.length})`, { timeout: 10000 });
  check(await page.locator(`[data-agent] .badge:not(:text-is("${worst}"))`).count() === 0, `only ${worst} agents shown`);
  await page.selectOption('#status-filter', '');
  await page.selectOption('#sort', 'rate');
  // Agents without executions in the hour have no rate to judge: they come last.
  const lowest = Math.min(...agents.map((a) => (a.metrics.recent_executions > 0 ? a.success_rate : 2)));
  await page.waitForFunction((t) => document.querySelector('[data-agent] [data-field="success_rate"]')?.textContent === t, percent(lowest), { timeout: 10000 });
  const firstRate = await page.locator('[data-agent] [data-field="success_rate"]').first().textContent();
  check(firstRate === percent(lowest), `worst rate first: ${firstRate} vs ${percent(lowest)}`);
  // By name (case-insensitive, ties by id), as the server orders it.
  await page.selectOption('#sort', 'name');
  const firstByName = byName(agents, (a) => a.agent_name).slice(0, PAGE).map((a) => a.agent_id);
  await page.waitForFunction((ids) => JSON.stringify([...document.querySelectorAll('[data-agent]')].map((e) => e.dataset.agent)) === ids, JSON.stringify(firstByName), { timeout: 10000 });
  await page.selectOption('#sort', 'id');
  await page.waitForFunction((ids) => JSON.stringify([...document.querySelectorAll('[data-agent]')].map((e) => e.dataset.agent)) === ids, JSON.stringify(firstAgents), { timeout: 10000 });
  result.search = { fragment, matching: matching.length, status: worst, of_status: ofStatus };

  // The CPU and memory chart starts from the stored hours, not from when the page opened.
  const loadHours = await api('/api/health/history/system?hours=24');
  check(loadHours.data_points >= 1, 'the hosts have an hour of samples');
  await page.waitForFunction((n) => document.body.dataset.loadHours === String(n), loadHours.data_points, { timeout: 10000 });

  // Uptime bars: 24 hourly slots per integration, and the day's availability the API gives.
  await page.waitForSelector('[data-integration] [data-uptime]', { timeout: 15000 });
  const hourly = await api('/api/health/hourly?source_type=integration&hours=24');
  const busiest = hourly.find((h) => h.slots.some((s) => s.total > 0));
  check(busiest, 'an integration with calls in the last 24 hours');
  const bar = page.locator(`[data-integration="${busiest.source_id}"] [data-uptime]`);
  check(await bar.locator('i').count() === 24, 'one slot per hour');
  const calls = busiest.slots.reduce((n, s) => n + s.total, 0);
  const failedCalls = busiest.slots.reduce((n, s) => n + s.failed, 0);
  check(await bar.getAttribute('data-uptime') === percent((calls - failedCalls) / calls), 'the bar\'s availability');

  // Acknowledge with a click; the API agrees.
  const target = alerts.find((a) => !a.acknowledged);
  check(target, 'an unacknowledged alert to click');
  await page.locator(`[data-alert="${target.alert_id}"] button[data-ack]`).click();
  await page.waitForSelector(`[data-alert="${target.alert_id}"][data-acknowledged="true"]`, { timeout: 10000 });
  const after = await api('/api/health/alerts');
  check(after.find((a) => a.alert_id === target.alert_id)?.acknowledged === true, 'acknowledged through the API');
  result.acknowledged = target.alert_id;

  // A new alert appears live, without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  await api('/api/health/events', {
    method: 'POST',
    body: JSON.stringify({ events: [{ event_id: `browser-${Date.now()}`, type: 'host.sample',
      host_id: 'browser-test-host', cpu_usage: 97, memory_usage: 30 }] }),
  });
  const live = Date.now();
  await page.waitForSelector('[data-alert] .meta:has-text("browser-test-host")', { timeout: 20000 });
  result.new_alert_after_ms = Date.now() - live;
  check(await page.evaluate(() => window.__sameDocument === true), 'no reload happened');

  // A change made through the API arrives as a delta: that card changes, no other does.
  const cardFields = (ids) => page.evaluate((list) => list.map((id) => {
    const card = document.querySelector(`[data-agent="${id}"]`);
    return ['.name', '.badge', '[data-field="success_rate"]', '[data-field="current_operation"]']
      .map((sel) => card?.querySelector(sel)?.textContent);
  }), ids);
  const changedAgent = agents[5];
  const others = agents.slice(0, 5).map((a) => a.agent_id);
  const othersBefore = await cardFields(others);
  const deltasBefore = await page.evaluate(() => window.dashboardDeltas || 0);
  await api('/api/health/events', {
    method: 'POST',
    body: JSON.stringify({ events: [{ event_id: `delta-${Date.now()}`, type: 'execution.started',
      agent_id: changedAgent.agent_id, execution_id: `delta-x-${Date.now()}`, operation: 'Delta check' }] }),
  });
  const changedAt = Date.now();
  await page.waitForSelector(`[data-agent="${changedAgent.agent_id}"] [data-field="current_operation"]:has-text("Delta check")`, { timeout: 20000 });
  result.delta_change_after_ms = Date.now() - changedAt;
  check(await page.evaluate(() => window.dashboardDeltas || 0) > deltasBefore, 'the change came as a delta');
  check(JSON.stringify(await cardFields(others)) === JSON.stringify(othersBefore), 'no other card changed');
  check(!(await page.evaluate(() => window.dashboardReloads)), 'no delta was missed, so nothing reloaded');
  check(await page.evaluate(() => window.__sameDocument === true), 'the delta applied without a reload');

  // A missed delta: the page sees the gap in the numbers and loads the lists again.
  const gapContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  let dropNext = false;
  let droppedDelta = false;
  const fromServer = [];
  const toServer = [];
  await gapContext.routeWebSocket(/\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => { toServer.push(m); server.send(m); });
    server.onMessage((m) => {
      fromServer.push(m);
      if (dropNext && typeof m === 'string' && m.includes('"type":"health:delta"')) {
        dropNext = false;
        droppedDelta = true;
        return;
      }
      ws.send(m);
    });
  });
  const gapPage = await gapContext.newPage();
  await gapPage.goto(`${base}/#key=${key}`);
  await gapPage.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
  await gapPage.waitForFunction(() => (window.dashboardDeltas || 0) >= 1, null, { timeout: 20000 });
  // The page watches what it shows: it told the server its first page of agents, and a
  // change of an agent it does not show is not sent to it.
  const watch = toServer.map((m) => JSON.parse(m)).filter((m) => m.action === 'watch').pop();
  check(!toServer.some((m) => JSON.parse(m).agents?.length === 0), 'no empty watch before the pages came');
  check(watch && JSON.stringify(watch.agents) === JSON.stringify(firstAgents.slice(0, PAGE)), `the page watches its agents: ${JSON.stringify(watch)?.slice(0, 200)}`);
  const deltasNow = await gapPage.evaluate(() => window.dashboardDeltas);
  await gapPage.waitForFunction((n) => window.dashboardDeltas >= n + 2, deltasNow, { timeout: 20000 });
  const shownAgent = agents.find((a) => a.agent_id === firstAgents[1]);
  const hiddenAgent = agents[agents.length - 1];
  fromServer.length = 0;
  await api('/api/health/events', {
    method: 'POST',
    body: JSON.stringify({ events: [shownAgent, hiddenAgent].map((a) => ({ event_id: `watch-${a.agent_id}-${Date.now()}`,
      type: 'execution.started', agent_id: a.agent_id, execution_id: `watch-x-${Date.now()}`, operation: 'Watch check' })) }),
  });
  await gapPage.waitForSelector(`[data-agent="${shownAgent.agent_id}"] [data-field="current_operation"]:has-text("Watch check")`, { timeout: 20000 });
  check(!fromServer.some((m) => m.includes(`"agent_id":"${hiddenAgent.agent_id}"`)), `${hiddenAgent.agent_id}, not on the page, was not sent to it`);
  result.watched_agents = watch.agents.length;
  const listsBefore = await gapPage.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/health/agents')).length);
  dropNext = true;
  await gapPage.waitForFunction(() => (window.dashboardReloads || 0) >= 1, null, { timeout: 20000 });
  check(droppedDelta, 'the route dropped a delta');
  await gapPage.waitForFunction((n) => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/health/agents')).length > n, listsBefore, { timeout: 10000 });
  await gapPage.waitForSelector(`[data-agent="${changedAgent.agent_id}"] [data-field="current_operation"]:has-text("Delta check")`, { timeout: 10000 });
  result.missed_delta_reloads = await gapPage.evaluate(() => window.dashboardReloads);
  await gapContext.close();

  // The server drops the socket: the page says so, then reconnects by itself.
  console.log('DROP');
  const reply = await lines.next();
  check(reply.value === 'dropped', `expected "dropped", got ${reply.value}`);
  await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: 10000 });
  result.drop_message = await page.locator('#connection').textContent();
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 20000 });
  check(await page.evaluate(() => window.__sameDocument === true), 'reconnected without a reload');

  // Notifications: add an email channel and test it; silence the hot hosts.
  await page.fill('#channel-form [name=id]', 'ops-mail');
  await page.fill('#channel-form [name=name]', 'Ops mail');
  await page.selectOption('#channel-form [name=type]', 'email');
  await page.fill('#channel-form [name=target]', 'ops@example.com, oncall@example.com');
  await page.click('#channel-form button[type=submit]');
  await page.waitForSelector('[data-channel="ops-mail"]', { timeout: 10000 });
  const channels = await api('/api/health/channels');
  const mail = channels.find((c) => c.channel_id === 'ops-mail');
  check(mail && mail.type === 'email' && mail.name === 'Ops mail' && mail.to.length === 2,
    `the channel is stored: ${JSON.stringify(channels)}`);
  await page.click('[data-channel="ops-mail"] button[data-test]');
  await page.waitForSelector('[data-result-of="ops-mail"][data-delivered]', { timeout: 15000 });
  result.channel_test = await page.locator('[data-result-of="ops-mail"]').textContent();
  // This stack has no mail transport configured: the Test button says so.
  check(result.channel_test.includes('HEALTH_EMAIL_TRANSPORT'), `test result: ${result.channel_test}`);
  await page.fill('#silence-form [name=source_id]', 'worker-*');
  await page.fill('#silence-form [name=minutes]', '30');
  await page.fill('#silence-form [name=comment]', 'load test');
  await page.click('#silence-form button[type=submit]');
  await page.waitForSelector('#silences [data-silence]', { timeout: 10000 });
  const silences = await api('/api/health/silences');
  check(silences.length === 1 && silences[0].match.source_id === 'worker-*' && silences[0].comment === 'load test',
    `the silence is stored: ${JSON.stringify(silences)}`);
  await page.waitForSelector('[data-alert][data-silenced="true"] .meta:has-text("worker-1")', { timeout: 20000 });
  const silencedAlerts = (await api('/api/health/alerts')).filter((a) => a.silenced).map((a) => a.source_id);
  check(silencedAlerts.includes('worker-1'), `the API marks the silenced alert: ${silencedAlerts}`);
  // The delivery log of an alert opens in place (empty: no rule routes it anywhere).
  await page.locator('[data-alert] button[data-log]').first().click();
  await page.waitForSelector('[data-log-of]:not([hidden]) li', { timeout: 10000 });

  await page.screenshot({ path: `${artifacts}/dashboard-1280.png`, fullPage: true });
  // The README's picture of the overview: the first screen at 1280 x 800.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${artifacts}/docs-dashboard.png` });

  // Values are coloured by how bad they are: a failing agent's rate is not drawn as a good one.
  const failing = agents.find((a) => a.success_rate < 0.8);
  if (failing) {
    const cls = await page.locator(`[data-agent="${failing.agent_id}"] [data-field="success_rate"]`).getAttribute('class');
    check(cls.includes('bad-value'), `a ${percent(failing.success_rate)} success rate is marked bad`);
  }
  // Every host that reports has its own row.
  const hostsNow = (await api('/api/health/system')).hosts.map((h) => h.host_id);
  await page.waitForFunction((n) => document.querySelectorAll('[data-host]').length === n, hostsNow.length, { timeout: 10000 });
  for (const id of hostsNow) check(await page.locator(`[data-host="${id}"]`).count() === 1, `a row for host ${id}`);

  // Drill-down: the card's name opens the agent's page: its figures (p95 included), its 30
  // days from stored history, its SLO with the budget left, its alerts; and back.
  // One whose executions succeed: its SLO then burns nothing, so no burn alert arrives
  // between the page's reads and the test's.
  const chosen = agents.find((a) => a.latency_p95_ms != null && a.success_rate === 1);
  check(chosen, 'an agent with durations and no failure');
  const sloId = `${chosen.agent_id}-success`;
  await api(`/api/health/slos/${sloId}`, {
    method: 'PUT',
    body: JSON.stringify({ source_type: 'agent', source_id: chosen.agent_id, objective: 'availability', target: 0.9 }),
  });
  const slo = (await api('/api/health/slos')).find((x) => x.slo_id === sloId);
  const opened = Date.now();
  await page.locator(`[data-agent="${chosen.agent_id}"] h3 a`).click();
  await page.waitForSelector(`body[data-detail="agent/${chosen.agent_id}"]`, { timeout: 10000 });
  result.detail_ms = Date.now() - opened;
  check(await page.locator('#dashboard').isHidden(), 'the drill-down replaces the overview');
  check(await page.locator('#detail-name').textContent() === chosen.agent_name, 'the agent is named');
  check(await page.locator('#detail-figures [data-field="latency_p95_ms"]').textContent()
    === `${Math.round(chosen.latency_p95_ms)} ms`, 'p95 as the API gives it');
  check(await page.locator('#detail-figures [data-field="tokens"]').textContent()
    === `${chosen.metrics.input_tokens} in · ${chosen.metrics.output_tokens} out` && chosen.metrics.input_tokens >= 1000,
    `the hour's model tokens as the API gives them: ${JSON.stringify(chosen.metrics)}`);
  const days = Number(await page.evaluate(() => document.body.dataset.detailPoints));
  const history = await api(`/api/health/history/agent?entity_id=${chosen.agent_id}&days=30`);
  check(days === history.history.length && days >= 1, `every day with data is charted: ${days}`);
  check(history.history.at(-1).metrics.latency_p95_ms != null, 'history points carry percentiles');
  await page.waitForSelector(`[data-slo="${sloId}"]`, { timeout: 10000 });
  check(await page.locator(`[data-slo="${sloId}"] [data-field="error_budget_remaining"]`).textContent()
    === `${Math.round(slo.error_budget_remaining * 1000) / 10}%`, 'the SLO budget as the API gives it');
  // The alert history lists the source's alerts, resolved ones included, as the API does.
  const past = await api(`/api/health/alerts?source_type=agent&source_id=${chosen.agent_id}&include_resolved=true`);
  check(past.length >= 1, `the agent has alerts (it is silent): ${JSON.stringify(past)}`);
  await page.waitForFunction((n) => document.querySelectorAll('[data-history-alert]').length === n, past.length, { timeout: 10000 });
  check((await page.locator('#detail-mttx').textContent()).startsWith(`${past.length} alert`), 'the history counts them');
  // Recent failures, the last 24 hours by hour, and this week against the last.
  const failures = await api(`/api/health/failures?source_type=agent&source_id=${chosen.agent_id}`);
  await page.waitForSelector('#detail-failures li', { timeout: 10000 });
  check(await page.locator('#detail-failures [data-failure]').count() === failures.length, 'one row per failure');
  check(await page.evaluate(() => document.body.dataset.detailHours) === '24', '24 hourly slots charted');
  const today = Math.floor(Date.now() / 86400000);
  const thisWeek = history.history
    .filter((p) => Math.floor(new Date(p.timestamp).getTime() / 86400000) > today - 7)
    .reduce((n, p) => n + p.metrics.completed + p.metrics.failed, 0);
  check(await page.locator('[data-week="volume"] td').first().textContent() === String(thisWeek), 'this week\'s executions');
  // A failing agent's page lists its failures with the error text the events carried.
  const failingAgent = agents.find((a) => a.success_rate != null && a.success_rate < 1);
  if (failingAgent) {
    const theirs = await api(`/api/health/failures?source_type=agent&source_id=${failingAgent.agent_id}`);
    await page.goto(`${base}/#/agent/${encodeURIComponent(failingAgent.agent_id)}`);
    await page.waitForSelector(`body[data-detail="agent/${failingAgent.agent_id}"]`, { timeout: 10000 });
    await page.waitForFunction((n) => document.querySelectorAll('#detail-failures [data-failure]').length === n, theirs.length, { timeout: 10000 });
    check(theirs.length > 0, `${failingAgent.agent_id} has stored failures`);
    check(await page.locator('#detail-failures .error-text').first().textContent() === (theirs[0].error || 'no error text'), 'the error text');
    result.failures_shown = theirs.length;
    // A host's page charts its stored hours.
    const hostHours = await api('/api/health/history/system?entity_id=worker-1&hours=24');
    await page.goto(`${base}/#/host/worker-1`);
    await page.waitForSelector('body[data-detail="host/worker-1"]', { timeout: 10000 });
    await page.waitForFunction((n) => document.body.dataset.detailHostHours === String(n), hostHours.data_points, { timeout: 10000 });
    check(hostHours.data_points >= 1, 'worker-1 has stored hours');
    check(await page.locator('#detail-failures-panel').isHidden(), 'a host has no failures list');
    await page.goto(deepLinkOf(chosen));
    await page.waitForSelector(`body[data-detail="agent/${chosen.agent_id}"]`, { timeout: 10000 });
  }
  await page.screenshot({ path: `${artifacts}/detail-1280.png`, fullPage: true });
  // The README's picture of a drill-down page: its first screen.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${artifacts}/docs-drilldown.png` });
  // A link to a page survives a reload, and the phone sees it whole.
  const deepLink = page.url();
  const phoneDetail = await context.newPage();
  await phoneDetail.setViewportSize({ width: 390, height: 844 });
  await phoneDetail.goto(deepLink);
  await phoneDetail.waitForSelector(`body[data-detail="agent/${chosen.agent_id}"]`, { timeout: 15000 });
  const detailOverflow = await phoneDetail.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(detailOverflow <= 0, `the phone drill-down is ${detailOverflow}px wider than the screen`);
  await phoneDetail.screenshot({ path: `${artifacts}/detail-phone.png`, fullPage: true });
  await phoneDetail.close();
  await page.click('#detail-back');
  await page.waitForSelector('#dashboard:not([hidden])', { timeout: 10000 });
  check(await page.locator('#detail').isHidden(), 'back to the overview');

  // Phone width: same content, nothing wider than the screen.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  phone.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console error (phone): ${msg.text()}`); });
  phone.on('pageerror', (err) => problems.push(`page error (phone): ${err.message}`));
  await phone.goto(base + '/');
  await phone.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the phone layout is ${overflow}px wider than the screen`);
  check(await phone.locator('[data-agent]').count() === Math.min(agents.length, PAGE), 'phone shows the first page of agents');
  await phone.screenshot({ path: `${artifacts}/dashboard-phone.png`, fullPage: true });

  // In AWS, API Gateway refuses an unknown or revoked key itself, with its own 403
  // {"message":"Forbidden"} rather than our error body: the page asks for a new key, as
  // after a 401 (dashboard/auth.js).
  const refused = await context.newPage();
  refused.on('pageerror', (err) => problems.push(`page error (refused key): ${err.message}`));
  await refused.route('**/api/health/**', (route) =>
    route.fulfill({ status: 403, contentType: 'application/json', body: '{"message":"Forbidden"}' }));
  await refused.goto(`${base}/#key=ahm_refused_by_the_authorizer`);
  await refused.waitForSelector('#key-form:not([hidden])', { timeout: 10000 });
  check(await refused.locator('#dashboard').isHidden(), 'a key API Gateway refused hides the dashboard');
  await refused.close();

  check(problems.length === 0, problems.join('\n'));
  writeFileSync(`${artifacts}/dashboard-result.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`RESULT ${JSON.stringify(result)}`);
} finally {
  await browser.close();
  stdin.close();
}
