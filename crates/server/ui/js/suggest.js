// suggest.js — a text input whose <datalist> is filled from the server as the user types
// (one small filtered page, never the full list: fine with 100,000 queues).

import { h, uid } from './dom.js';
import { api, path, query } from './api.js';

/** Input + datalist; `fetchNames(text)` resolves to a list of names. */
export function suggestInput(props, fetchNames) {
  const list = h('datalist', { id: uid('suggest') });
  const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', list: list.id, ...props });
  let timer;
  let last = null;
  const refresh = () => {
    const text = input.value;
    if (text === last) return;
    last = text;
    fetchNames(text)
      .then((names) => list.replaceChildren(...names.map((n) => h('option', { value: n }))))
      .catch(() => {});
  };
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  input.addEventListener('focus', refresh, { once: true });
  return h('span.suggest', {}, input, list);
}

/** Names of up to 20 queues or exchanges in `vhost` whose name contains `text`. */
export function namesIn(kind, vhost) {
  return async (text) => {
    const page = await api.get(path`/${kind}/${vhost}` + query({ page: 1, page_size: 20, pagination: true, name: text, use_regex: false, columns: 'name' }));
    return (page?.items || []).map((i) => i.name).filter(Boolean);
  };
}
