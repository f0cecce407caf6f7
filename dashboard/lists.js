// The agent and integration lists as the server pages them: the search, status filter and
// sort go to the API (`q`, `status`, `sort`), which answers one page of what matches, how
// many match (`X-Total-Count`) and the next page's URL (`Link`). A fleet of 10,000 never
// reaches the browser whole: the page holds what it shows, and "Show more" asks for the
// next page.
import { apiPage } from './api.js';
import { $ } from './format.js';
import { LIST_PAGE, state } from './state.js';

// The statuses each list can be filtered by, as the API takes them (worst first).
export const STATUSES = {
  agent: ['error', 'paused', 'idle', 'active'],
  integration: ['error', 'degraded', 'healthy'],
};
const PATHS = { agent: '/api/health/agents', integration: '/api/health/integrations' };

// What the controls ask for. By id by default: the store keeps each list in id order, so
// a page by id reads just that page, where any other order reads the whole fleet.
function selection() {
  return {
    q: $('search').value.trim(),
    status: $('status-filter').value,
    sort: $('sort').value || 'id',
  };
}

function firstPath(kind, { q, status, sort }, limit) {
  const params = new URLSearchParams({ limit: String(limit), sort });
  if (q) params.set('q', q.slice(0, 128));
  if (status) params.set('status', status);
  return `${PATHS[kind]}?${params}`;
}

// The first page of a list for the controls' selection. A status the kind never has
// matches nothing, without asking.
async function firstPage(kind, chosen, limit) {
  if (chosen.status && !STATUSES[kind].includes(chosen.status)) return { items: [], total: 0, next: null };
  return apiPage(firstPath(kind, chosen, limit));
}

// Loads the first page of both lists (of each, as many items as `held` says: at least a
// page, at most the API's 1,000). Returns the pages, for the caller to put in the state
// when it draws.
export async function loadFirstPages(held = {}) {
  const chosen = selection();
  const size = (n) => Math.min(Math.max(n || 0, LIST_PAGE), 1000);
  const [agents, integrations] = await Promise.all([
    firstPage('agent', chosen, size(held.agent)),
    firstPage('integration', chosen, size(held.integration)),
  ]);
  return { agents, integrations };
}

// Puts loaded first pages in the state.
export function holdPages({ agents, integrations }) {
  state.agents = agents.items;
  state.integrations = integrations.items;
  state.lists.agent = { total: agents.total, next: agents.next };
  state.lists.integration = { total: integrations.total, next: integrations.next };
  state.lists.held = true;
}

// The next page of one list, appended; what a delta changed meanwhile stays.
export async function loadMore(kind) {
  const list = state.lists[kind];
  if (!list.next) return;
  const page = await apiPage(list.next);
  const key = kind === 'agent' ? 'agent_id' : 'integration_id';
  const held = kind === 'agent' ? state.agents : state.integrations;
  const have = new Set(held.map((x) => x[key]));
  held.push(...page.items.filter((x) => !have.has(x[key])));
  state.lists[kind] = { total: page.total, next: page.next };
}
