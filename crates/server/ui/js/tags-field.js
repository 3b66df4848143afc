// tags-field.js — the user-tags input with quick toggle buttons (administrator, monitoring…).

import { h, uid } from './dom.js';

const QUICK_TAGS = ['administrator', 'monitoring', 'policymaker', 'management'];

function split(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Returns {element, value()} where value() is the comma-separated tag string. */
export function tagsField(initial = '') {
  const input = h('input', { type: 'text', id: uid('tags'), name: 'tags', value: initial, autocomplete: 'off', spellcheck: 'false' });
  const hintId = `${input.id}-hint`;
  input.setAttribute('aria-describedby', hintId);
  const buttons = QUICK_TAGS.map((tag) => h('button.chip', {
    type: 'button',
    'aria-pressed': 'false',
    dataset: { tag },
    onClick: () => {
      const tags = split(input.value);
      input.value = (tags.includes(tag) ? tags.filter((t) => t !== tag) : [...tags, tag]).join(', ');
      sync();
    },
  }, tag));
  function sync() {
    const tags = split(input.value);
    for (const b of buttons) b.setAttribute('aria-pressed', String(tags.includes(b.dataset.tag)));
  }
  input.addEventListener('input', sync);
  sync();
  const element = h('div.field', {},
    h('label', { for: input.id }, 'Tags'),
    input,
    h('div.chips', { role: 'group', 'aria-label': 'Toggle a tag' }, buttons,
      h('button.chip', { type: 'button', onClick: () => { input.value = ''; sync(); } }, 'none')),
    h('small.hint', { id: hintId }, 'Comma-separated. administrator can do everything; monitoring and management can use this UI.'));
  return { element, value: () => split(input.value).join(',') };
}
