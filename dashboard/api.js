// The REST client, and what the page shows when it cannot use the API: the key form when
// the key is refused (AuthError), and the header's connection state.
import { $ } from './format.js';
import { KEY_STORAGE, config, state } from './state.js';

class AuthError extends Error {}

export async function api(path, options = {}) {
  const response = await fetch(config.api + path, {
    ...options,
    headers: {
      Authorization: `Bearer ${state.key}`,
      'Content-Type': 'application/json',
      ...(options.headers || {}),
    },
  });
  if (options.onResponse) options.onResponse(response);
  const body = await response.json().catch(() => null);
  // 401, or API Gateway's own 403 for a key its authorizer refused (auth.js).
  if (window.keyRefused(response.status, body)) {
    throw new AuthError(body?.error?.message || 'the API key is not valid (unknown or revoked)');
  }
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

// One page of a list: its items, how many match in all (`X-Total-Count`) and the next
// page's path (from the `Link` header), or null on the last page.
export async function apiPage(path) {
  let headers;
  const items = await api(path, { onResponse: (response) => { headers = response.headers; } });
  // A page by id has no count (the store would read the whole list to give one): the
  // caller takes the fleet's size from the system figures instead.
  const count = headers?.get('X-Total-Count');
  const total = count == null ? null : Number(count);
  const link = headers?.get('Link') || '';
  const next = /^<([^>]+)>;\s*rel="next"/.exec(link);
  return { items, total, next: next ? next[1] : null };
}

export function setConnection(kind, text) {
  const el = $('connection');
  el.dataset.state = kind;
  el.textContent = text;
}

export function showLoadError(error) {
  if (error instanceof AuthError) {
    askForKey(error.message);
    return;
  }
  setConnection('offline', `Cannot load: ${error.message}`);
}

export function askForKey(message) {
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
