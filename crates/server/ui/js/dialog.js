// dialog.js — an accessible confirmation dialog (<dialog> + showModal: focus trap, Esc closes).

import { h } from './dom.js';

/** Ask before a destructive action. Resolves true when confirmed. */
export function confirmAction({ title, message, confirmLabel = 'Delete' }) {
  return new Promise((resolve) => {
    const titleId = 'confirm-title';
    const dialog = h('dialog.confirm', { 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        h('p', {}, message),
        h('div.actions', {},
          h('button.btn.secondary', { value: 'cancel', autofocus: true }, 'Cancel'),
          h('button.btn.danger', { value: 'confirm' }, confirmLabel))));
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(dialog.returnValue === 'confirm');
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
