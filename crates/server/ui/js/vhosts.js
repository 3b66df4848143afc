// vhosts.js — the list of virtual hosts (cached per page view) and the shared vhost selector.

import { h, uid } from './dom.js';
import { api } from './api.js';

const KEY = 'warren.vhost';
let cache = null;

/** Names of the vhosts this user can see (one GET /api/vhosts, cached until `fresh`). */
export function vhostNames(fresh = false) {
  if (fresh || !cache) cache = api.get('/vhosts').then((list) => list.map((v) => v.name)).catch((err) => { cache = null; throw err; });
  return cache;
}

/** The vhost chosen in list pages; '' means all. */
export function currentVhost() {
  return sessionStorage.getItem(KEY) || '';
}

/** <select> of vhosts; with `all`, an "All" option. Fills in asynchronously. */
export function vhostSelect({ all = false, value = currentVhost(), onChange } = {}) {
  const sel = h('select', { id: uid('vhost'), name: 'vhost' });
  if (all) sel.append(h('option', { value: '' }, 'All'));
  vhostNames().then((names) => {
    for (const name of names) sel.append(h('option', { value: name }, name));
    const fallback = all ? '' : (names.includes('/') ? '/' : names[0] ?? '');
    sel.value = names.includes(value) || (all && value === '') ? value : fallback;
  }).catch(() => {});
  sel.addEventListener('change', () => {
    if (all) sessionStorage.setItem(KEY, sel.value);
    onChange?.(sel.value);
  });
  return sel;
}

/** The toolbar field: "Virtual host [All ▾]". */
export function vhostFilter(onChange) {
  const sel = vhostSelect({ all: true, onChange });
  return h('div.field', {}, h('label', { for: sel.id }, 'Virtual host'), sel);
}

/** Clear the cache after adding or deleting a vhost. */
export function forgetVhosts() {
  cache = null;
}
