// detail.js — helpers for pages showing one object: first load with a friendly 404, a
// background refresh every 5 s, and the confirmed "Delete …" button.

import { api, every } from './api.js';
import { notifyError, flash } from './notify.js';
import { notFound } from './widgets.js';
import { actionButton } from './forms.js';
import { confirmAction } from './dialog.js';
import { navigate } from './router.js';

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

/** A danger button: confirm, DELETE `url`, then go to `then` with `done` as the message. */
export function deleteButton({ label, message, url, then, done, onDeleted }) {
  return actionButton(label, async () => {
    if (!await confirmAction({ title: `${label}?`, message, confirmLabel: label })) return;
    await api.del(url);
    onDeleted?.();
    flash(done);
    navigate(then);
  }, { cls: 'danger', what: label });
}
