// router.js — hash routing: '#/queues/%2F/orders' matches '/queues/:vhost/:name' with
// params decoded ({vhost: '/', name: 'orders'}). Pages are loaded lazily.

const routes = [];

/** Register a route: pattern like '/queues/:vhost/:name', a page loader, a nav section. */
export function route(pattern, load, section) {
  routes.push({ parts: pattern.split('/').filter(Boolean), load, section });
}

/** The current hash path, '/' when empty. */
export function currentPath() {
  const hash = location.hash.replace(/^#/, '');
  return hash.startsWith('/') ? hash : '/';
}

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null; // malformed %-escape: no route matches
  }
}

/** Find the route for a path; null when none matches. */
export function match(p) {
  const segments = p.split('/').filter(Boolean);
  for (const r of routes) {
    if (r.parts.length !== segments.length) continue;
    const params = {};
    const ok = r.parts.every((part, i) => {
      if (part.startsWith(':')) {
        params[part.slice(1)] = decode(segments[i]);
        return params[part.slice(1)] !== null;
      }
      return part === segments[i];
    });
    if (ok) return { ...r, params, path: p };
  }
  return null;
}

/** Go to a hash path (already encoded). */
export function navigate(p) {
  if (currentPath() === p) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = `#${p}`;
}

/** Call `render(match)` now and on every hash change (skip-link style '#main' hashes are ignored). */
export function startRouter(render) {
  const run = () => {
    if (location.hash && !location.hash.startsWith('#/')) return;
    render(match(currentPath()));
  };
  window.addEventListener('hashchange', run);
  run();
}
