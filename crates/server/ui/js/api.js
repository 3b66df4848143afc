// api.js — fetch wrapper for the management HTTP API: JSON in and out, Basic auth on every
// request, errors as ApiError ({"error", "reason"} bodies), and a 401 that is re-checked
// against /api/whoami so only rejected credentials (not a refused action) end the session.

import { authHeader } from './session.js';

export class ApiError extends Error {
  constructor(status, error, reason, statusText = '') {
    super(reason || error || statusText || (status ? `HTTP ${status}` : 'Network error'));
    this.status = status;
    this.error = error;
    this.reason = reason;
  }

  /** "reason (HTTP 400 bad_request)" for display. */
  describe() {
    if (!this.status) return `${this.message}: the server could not be reached.`;
    const code = this.error && this.error !== this.message ? ` ${this.error}` : '';
    return `${this.message} (HTTP ${this.status}${code})`;
  }
}

let onUnauthorized = () => {};

/** Called when the server rejects the session's credentials. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Tagged template that percent-encodes every interpolated value: path`/queues/${vhost}/${name}`. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

/** Query string from an object, skipping undefined/empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function parseBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: '', reason: text.slice(0, 300) };
  }
}

async function send(method, p, { body, headers = {}, signal } = {}) {
  const init = {
    method,
    signal,
    cache: 'no-store',
    credentials: 'omit', // never let the browser pop up its own Basic-auth dialog
    headers: { ...headers }, // no Accept header: RabbitMQ answers 406 to DELETE …/contents with one
  };
  const auth = authHeader();
  if (auth) init.headers.Authorization = auth;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`api${p}`, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'Network error');
  }
  return { res, data: await parseBody(res) };
}

/** One API call. Resolves to the parsed JSON (null when empty); rejects with ApiError. */
export async function request(method, p, options = {}) {
  const { res, data } = await send(method, p, options);
  if (res.ok) return data;
  if (res.status === 401 && p !== '/whoami') {
    const check = await send('GET', '/whoami');
    if (check.res.status === 401) onUnauthorized();
  }
  throw new ApiError(res.status, data?.error, data?.reason, res.statusText);
}

export const api = {
  get: (p, o) => request('GET', p, o),
  put: (p, body, o = {}) => request('PUT', p, { ...o, body }),
  post: (p, body, o = {}) => request('POST', p, { ...o, body }),
  del: (p, o) => request('DELETE', p, o),
};

/** Run `fn` now and then every `ms` until `signal` aborts; skips ticks while the tab is hidden. */
export function every(ms, fn, signal) {
  let timer;
  const tick = async () => {
    if (signal.aborted) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch {
        // `fn` reports its own errors; polling goes on.
      }
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  tick();
}
