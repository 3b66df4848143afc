// session.js — the logged-in user's credentials (sessionStorage) and identity (whoami).

const KEY = 'warren.credentials';

/** Who is logged in, filled from GET /api/whoami. */
export const session = { name: '', tags: [] };

export function saveCredentials(username, password) {
  sessionStorage.setItem(KEY, JSON.stringify({ username, password }));
}

export function hasCredentials() {
  return sessionStorage.getItem(KEY) !== null;
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
  session.name = '';
  session.tags = [];
}

/** The Authorization header value, or null when logged out. Handles non-ASCII (UTF-8). */
export function authHeader() {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  const { username, password } = JSON.parse(raw);
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

export function isAdmin() {
  return session.tags.includes('administrator');
}
