// notify.js — the page's message area: errors (role="alert", stay until dismissed) and
// confirmations (role="status", fade after a few seconds).

import { h } from './dom.js';

const root = document.getElementById('notices');
const alerts = h('div.notice-list', { role: 'alert' });
const statuses = h('div.notice-list', { role: 'status' });
root.append(alerts, statuses);

function notice(kind, text, region, ttl) {
  for (const existing of region.children) {
    if (existing.dataset.text === text) return existing;
  }
  const el = h(`div.notice.${kind}`, { dataset: { text } },
    h('span.notice-text', {}, text),
    h('button.icon-btn', { type: 'button', 'aria-label': 'Dismiss message', onClick: () => el.remove() }, '×'));
  region.append(el);
  if (ttl) setTimeout(() => el.remove(), ttl);
  return el;
}

/** Show an error (ApiError or any Error or string), optionally prefixed with what failed. */
export function notifyError(err, what = '') {
  const text = typeof err?.describe === 'function' ? err.describe() : String(err?.message || err);
  return notice('error', what ? `${what}: ${text}` : text, alerts, 0);
}

export function notifySuccess(text) {
  return notice('success', text, statuses, 6000);
}

export function notifyWarning(text) {
  return notice('warning', text, statuses, 10000);
}

let flashed = '';

/** A confirmation to show after the next navigation (e.g. "Queue deleted"). */
export function flash(text) {
  flashed = text;
}

/** Clear the message area when a new page opens; a pending flash() message is shown. */
export function clearNotices() {
  alerts.replaceChildren();
  statuses.replaceChildren();
  if (flashed) notifySuccess(flashed);
  flashed = '';
}
