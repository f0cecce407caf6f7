// Formatting values into markup, and the DOM helpers that draw it. No state and no
// requests, so every module may use it.
export const escapeHtml = (value) =>
  String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
export const percent = (ratio) => (ratio == null ? '–' : `${Math.round(ratio * 1000) / 10}%`);
export const number = (value, digits = 1) =>
  value == null ? '–' : String(Math.round(value * 10 ** digits) / 10 ** digits);
export const when = (iso) => {
  if (!iso) return 'never';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
};
// "2 min ago": what an operator reads at a glance; the exact time is the title.
export const ago = (iso) => {
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
export const timeAgo = (iso) => `<time data-ago datetime="${escapeHtml(iso || '')}" title="${escapeHtml(when(iso))}"></time>`;

// A success rate of 50 % must not look like one of 95 %.
export const rateClass = (ratio) => (ratio == null ? '' : ratio < 0.8 ? 'bad-value' : ratio < 0.95 ? 'warn-value' : '');
export const usageClass = (pct) => (pct == null ? '' : pct > 90 ? 'bad-value' : pct > 80 ? 'warn-value' : '');
export const link = (kind, id, text) => `<a href="#/${kind}/${encodeURIComponent(id)}">${escapeHtml(text)}</a>`;
export const badge = (kind, value) =>
  `<span class="badge ${kind}-${escapeHtml(value)}">${escapeHtml(value)}</span>`;

export const hourLabel = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

// Durations as people say them: "4 min", "2 h 5 min".
export const span = (ms) => {
  if (ms == null || Number.isNaN(ms)) return '–';
  const m = Math.round(ms / 60000);
  if (m < 1) return `${Math.round(ms / 1000)} s`;
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
};
export const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

export const $ = (id) => document.getElementById(id);

export function refreshTimes() {
  for (const t of document.querySelectorAll('time[data-ago]')) {
    const text = ago(t.getAttribute('datetime'));
    if (t.textContent !== text) t.textContent = text;
  }
}

// Updates a list in place: a row whose markup did not change keeps its element (so a
// button under the pointer stays put while updates arrive every second), changed rows
// are replaced, rows are put in order, gone ones removed.
export function patchList(list, items, key, html, empty) {
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
