// detail.js — helpers for pages showing one object: first load with a friendly 404, then
// a background refresh every 5 s.

import { api, every } from './api.js';
import { notifyError } from './notify.js';
import { notFound } from './widgets.js';

/** GET `url`; on 404 show "<what> not found" with a link back and resolve to null. */
export async function loadOrNotFound(root, url, signal, { what, backHref, backText }) {
  try {
    return await api.get(url, { signal });
  } catch (err) {
    if (err.status !== 404) throw err;
    notFound(root, what, backHref, backText);
    return null;
  }
}

/** GET `url` every 5 s (first after `delay` ms) and pass the answer to `onData`. */
export function keepFresh(url, signal, onData, what, delay = 5000) {
  const refresh = async () => {
    try {
      onData(await api.get(url, { signal }));
    } catch (err) {
      if (err.name !== 'AbortError') notifyError(err, what);
    }
  };
  setTimeout(() => every(5000, refresh, signal), delay);
  return refresh;
}
