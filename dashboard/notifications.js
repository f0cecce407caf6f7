// The notification settings (channels, rules, silences) and each alert's delivery log.
import { api } from './api.js';
import { $, badge, escapeHtml, when } from './format.js';
import { refresh } from './live.js';
import { renderAlerts } from './overview.js';
import { state } from './state.js';

// A list's items, or the line that says it is empty.
function listItems(items, empty, item) {
  return items.length === 0 ? `<li class="empty">${empty}</li>` : items.map(item).join('');
}

// What a rule or a silence matches, in words.
function matchText(match) {
  const m = match || {};
  return [m.severity && m.severity.join('/'), m.source_type && m.source_type.join('/'), m.source_id]
    .filter(Boolean).join(' · ') || 'every alert';
}

function renderNotifications() {
  $('channels').innerHTML = listItems(state.channels, 'No channels: alerts reach only this page.', (c) => {
    const target = c.url || (c.to || []).join(', ') || c.topic_arn || (c.routing_key ? 'routing key ***' : '');
    return `<li data-channel="${escapeHtml(c.channel_id)}">
        <span class="name">${escapeHtml(c.name)}</span> ${badge('kind', c.type)}
        <span class="meta">${escapeHtml(target)}${c.enabled ? '' : ' · disabled'}</span>
        <button type="button" data-test="${escapeHtml(c.channel_id)}">Test</button>
        <button type="button" class="link" data-delete-channel="${escapeHtml(c.channel_id)}">Delete</button>
        <span class="result" data-result-of="${escapeHtml(c.channel_id)}" role="status"></span>
      </li>`;
  });
  $('rules').innerHTML = listItems(state.rules, 'No rules: no alert is sent anywhere.', (r) => {
    const what = matchText(r.match);
    return `<li data-rule="${escapeHtml(r.rule_id)}">
        <span class="name">${escapeHtml(r.rule_id)}</span>
        <span class="meta">${escapeHtml(what)} → ${escapeHtml(r.channels.join(', '))} · wait ${r.group_wait_s} s · repeat ${Math.round(r.repeat_interval_s / 60)} min</span>
        <button type="button" class="link" data-delete-rule="${escapeHtml(r.rule_id)}">Delete</button>
      </li>`;
  });
  $('silences').innerHTML = listItems(state.silences, 'Nothing silenced.', (x) => {
    const what = matchText(x.match);
    const span = x.schedule
      ? `${x.schedule.days && x.schedule.days.length ? x.schedule.days.join(',') : 'daily'} ${x.schedule.start} ${x.schedule.timezone}, ${x.schedule.duration_minutes} min`
      : `until ${when(x.ends_at)}`;
    return `<li data-silence="${escapeHtml(x.silence_id)}" data-active="${x.active}">
        <span class="name">${escapeHtml(what)}</span>
        <span class="meta">${escapeHtml(span)}${x.comment ? ` · ${escapeHtml(x.comment)}` : ''} · by ${escapeHtml(x.created_by)}</span>
        <button type="button" class="link" data-end-silence="${escapeHtml(x.silence_id)}">${x.schedule ? 'Remove' : 'End now'}</button>
      </li>`;
  });
}

export async function loadNotifications() {
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

export function initNotifications() {
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
