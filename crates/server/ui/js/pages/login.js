// pages/login.js — username/password form; the credentials are checked with GET /api/whoami.

import { h, field } from '../dom.js';
import { form, submitButton, textInput } from '../forms.js';
import { saveCredentials, clearSession } from '../session.js';
import { navigate } from '../router.js';
import { ApiError } from '../api.js';
import { loadIdentity } from '../identity.js';

export default function render(root, _params, { returnTo }) {
  clearSession();
  const username = textInput({ name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p.form-error', { role: 'alert', id: 'login-error' });

  const loginForm = form({ class: 'login-form', 'aria-describedby': error.id }, [
    field('Username', username),
    field('Password', password),
    error,
    submitButton('Log in'),
  ], async () => {
    error.textContent = '';
    saveCredentials(username.value, password.value);
    try {
      await loadIdentity();
    } catch (err) {
      clearSession();
      if (err instanceof ApiError && err.status === 401) {
        error.textContent = `Login failed: ${err.reason || 'wrong username or password'}.`;
        password.select();
        return;
      }
      throw err;
    }
    navigate(returnTo && returnTo !== '/login' ? returnTo : '/');
  }, 'Logging in');

  root.append(h('div.login', {},
    h('div.login-card', {},
      h('img', { src: 'favicon.svg', alt: '', width: 48, height: 48 }),
      h('h1', { tabindex: '-1' }, 'Warren'),
      h('p.muted', {}, 'Log in to manage the broker.'),
      loginForm)));
  username.focus();
}
