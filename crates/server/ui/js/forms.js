// forms.js — form plumbing: submit handlers that show errors, buttons with a busy state.

import { h } from './dom.js';
import { notifyError } from './notify.js';

/** Disable `button` while `fn` runs. */
export async function busy(button, fn) {
  if (button) { button.disabled = true; button.setAttribute('aria-busy', 'true'); }
  try {
    return await fn();
  } finally {
    if (button) { button.disabled = false; button.removeAttribute('aria-busy'); }
  }
}

async function guarded(button, fn, what) {
  try {
    await busy(button, fn);
  } catch (err) {
    if (err.name !== 'AbortError') notifyError(err, what);
  }
}

/** A <form> whose submit runs `fn(form)`; errors go to the message area prefixed with `what`. */
export function form(props, children, fn, what) {
  const el = h('form', { novalidate: false, ...props }, children);
  el.addEventListener('submit', (event) => {
    event.preventDefault();
    guarded(el.querySelector('button[type="submit"]'), () => fn(el), what);
  });
  return el;
}

/** A button that runs `fn` on click with the same busy/error handling. */
export function actionButton(label, fn, { cls = 'secondary', what = '', ...props } = {}) {
  const btn = h(`button.btn.${cls}`, { type: 'button', ...props }, label);
  btn.addEventListener('click', () => guarded(btn, fn, what));
  return btn;
}

export function submitButton(label, cls = 'primary') {
  return h(`button.btn.${cls}`, { type: 'submit' }, label);
}

export function textInput(props = {}) {
  return h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...props });
}

/** Yes/no <select> whose value() is a boolean. */
export function boolSelect(initial) {
  return h('select', {}, h('option', { value: 'true', selected: initial }, 'Yes'), h('option', { value: 'false', selected: !initial }, 'No'));
}
