// What every module shares: where the API is, and the page's one state object (the lists
// as last loaded, the key and socket, the charts, the open drill-down). Modules change its
// fields; the object itself is never replaced.
export const loc = window.location;
export const config = Object.assign(
  {
    api: loc.origin,
    ws: (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws',
  },
  window.HEALTH_CONFIG || {},
);
export const KEY_STORAGE = 'agent-health.api-key';
// Cards of a list page (the server pages, searches, filters and sorts the lists).
export const LIST_PAGE = 100;
// Most ids a watch may name, and most bytes a client message may have (the server's
// bounds).
export const MAX_WATCHED = 300;
export const MAX_WATCH_BYTES = 32 * 1024;
// Hosts count as reporting this long after their last sample (as the system object).
export const HOST_FRESH_MS = 2 * 60 * 1000;
// How long typing pauses before the search goes to the server.
export const SEARCH_PAUSE_MS = 200;
export const UPTIME_EVERY_MS = 5 * 60 * 1000;

export const state = {
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
  // The last delta applied (its process's epoch and its number), loads in flight, and the
  // deltas that came during them.
  feed: { epoch: null, seq: 0 },
  deltaAt: null,
  loading: 0,
  queued: [],
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
  // Per list: how many match the selection in all, and the next page's path (null on the
  // last page).
  // Whether pages were loaded yet.
  lists: { agent: { total: 0, next: null }, integration: { total: 0, next: null }, held: false },
  // Only the summary's first alerts are held (the first paint); the whole list follows.
  partialAlerts: false,
  // Active alerts in all, from the summary, while only its first ones are held.
  alertTotal: 0,
  // The drill-down's source when the loaded pages do not hold it.
  detailItem: null,
  // The last watch sent on this socket (its JSON), and whether the held pages are to be
  // read again once it took effect.
  watched: null,
  rewatched: false,
};
