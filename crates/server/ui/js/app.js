// app.js — entry point: routes, the login gate, the header (user, tags, admin link) and
// page lifecycle (each page gets an AbortSignal that fires when the user navigates away).

import { route, startRouter, navigate, currentPath } from './router.js';
import { session, hasCredentials, clearSession, isAdmin } from './session.js';
import { setUnauthorizedHandler } from './api.js';
import { clearNotices, notifyError, notifyWarning } from './notify.js';
import { h, replace } from './dom.js';
import { tagBadges } from './widgets.js';
import { loadIdentity } from './identity.js';

route('/login', () => import('./pages/login.js'));
route('/', () => import('./pages/overview.js'), 'overview');
route('/connections', () => import('./pages/connections.js'), 'connections');
route('/connections/:name', () => import('./pages/connection.js'), 'connections');
route('/channels', () => import('./pages/channels.js'), 'channels');
route('/exchanges', () => import('./pages/exchanges.js'), 'exchanges');
route('/exchanges/:vhost/:name', () => import('./pages/exchange.js'), 'exchanges');
route('/queues', () => import('./pages/queues.js'), 'queues');
route('/queues/:vhost/:name', () => import('./pages/queue.js'), 'queues');
route('/admin/users', () => import('./pages/users.js'), 'admin');
route('/admin/users/:name', () => import('./pages/user.js'), 'admin');
route('/admin/vhosts', () => import('./pages/vhosts.js'), 'admin');
route('/admin/vhosts/:name', () => import('./pages/vhost.js'), 'admin');

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const footer = document.getElementById('footer');
let controller = null;
let returnTo = '/';
let pendingWarning = '';
let firstRender = true;

function showShell(section) {
  const loggedIn = section !== undefined;
  topbar.hidden = !loggedIn;
  footer.hidden = !loggedIn;
  if (!loggedIn) return;
  replace(document.getElementById('who-name'), session.name);
  replace(document.getElementById('who-tags'), tagBadges(session.tags));
  document.querySelector('[data-admin]').hidden = !isAdmin();
  for (const a of topbar.querySelectorAll('.nav a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render(match) {
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  clearNotices();
  if (pendingWarning) { notifyWarning(pendingWarning); pendingWarning = ''; }

  if (match?.path !== '/login') {
    if (!hasCredentials()) {
      returnTo = currentPath();
      navigate('/login');
      return;
    }
    if (!session.name) {
      try {
        await loadIdentity();
      } catch (err) {
        if (err.status === 401) sessionRejected();
        else notifyError(err, 'Checking your login');
        return;
      }
      if (signal.aborted) return;
    }
  }
  showShell(match?.path === '/login' ? undefined : match?.section ?? '');

  const page = h('div.page');
  replace(main, page);
  if (!match) {
    replace(page, h('h1', { tabindex: '-1' }, 'Page not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  if (match.section === 'admin' && !isAdmin()) {
    replace(page, h('h1', { tabindex: '-1' }, 'Administrators only'), h('p', {}, 'Your user has no administrator tag.'));
    return;
  }
  try {
    const mod = await match.load();
    if (signal.aborted) return;
    await mod.default(page, match.params, { signal, returnTo });
  } catch (err) {
    if (err.name !== 'AbortError' && !signal.aborted) notifyError(err, 'Loading this page');
  }
  if (signal.aborted) return;
  const heading = page.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Warren` : 'Warren';
  if (!firstRender) heading?.focus({ preventScroll: false });
  firstRender = false;
}

function sessionRejected() {
  if (!hasCredentials()) return;
  clearSession();
  returnTo = currentPath();
  pendingWarning = 'Your credentials were rejected; please log in again.';
  navigate('/login');
}

setUnauthorizedHandler(sessionRejected);

document.getElementById('logout').addEventListener('click', () => {
  clearSession();
  returnTo = '/';
  navigate('/login');
});

document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  (main.querySelector('h1') || main).focus();
});

startRouter(render);
