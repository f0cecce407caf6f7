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
// Cards drawn before the full lists arrive: more than a large screen shows.
export const FIRST_PAGE = 60;
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
  // Only the first page of each list is held (the first paint); the full lists follow.
  partial: false,
  // Active alerts in all, from the summary, while only its first ones are held.
  alertTotal: 0,
};
