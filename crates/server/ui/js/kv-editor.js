// kv-editor.js — editable key/value rows with a type per row (string/number/boolean), used
// for queue/exchange/binding arguments, message headers and message properties.

import { h, uid } from './dom.js';

const TYPES = ['string', 'number', 'boolean'];

function parseValue(key, raw, type) {
  if (type === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`"${key}" must be a number`);
    return n;
  }
  if (type === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (v !== 'true' && v !== 'false') throw new Error(`"${key}" must be true or false`);
    return v === 'true';
  }
  return raw;
}

/**
 * `legend`: fieldset title; `noun`: what one row is ("argument"); `suggestions`: {name: type}
 * offered in a datalist (choosing one sets its type).
 */
export function kvEditor({ legend, noun = 'argument', suggestions = {} }) {
  const listId = uid('kv-list');
  const rows = h('div.kv-rows');
  const datalist = h('datalist', { id: listId }, Object.keys(suggestions).map((name) => h('option', { value: name })));

  function renumber() {
    [...rows.children].forEach((row, i) => {
      const n = i + 1;
      row.querySelector('.kv-key-label').textContent = `${noun} ${n} name`;
      row.querySelector('.kv-value-label').textContent = `${noun} ${n} value`;
      row.querySelector('.kv-type-label').textContent = `${noun} ${n} type`;
      row.querySelector('.kv-remove').setAttribute('aria-label', `Remove ${noun} ${n}`);
    });
  }

  function addRow() {
    const key = h('input', { type: 'text', id: uid('kv'), list: listId, autocomplete: 'off', spellcheck: 'false', class: 'kv-key' });
    const value = h('input', { type: 'text', id: uid('kv'), autocomplete: 'off', spellcheck: 'false', class: 'kv-value' });
    const type = h('select', { id: uid('kv'), class: 'kv-type' }, TYPES.map((t) => h('option', { value: t }, t)));
    key.addEventListener('change', () => {
      if (suggestions[key.value]) type.value = suggestions[key.value];
    });
    const row = h('div.kv-row', {},
      h('label.sr-only.kv-key-label', { for: key.id }), key,
      h('label.sr-only.kv-value-label', { for: value.id }), value,
      h('label.sr-only.kv-type-label', { for: type.id }), type,
      h('button.icon-btn.kv-remove', { type: 'button', onClick: () => { row.remove(); renumber(); } }, '×'));
    rows.append(row);
    renumber();
    return key;
  }

  const element = h('fieldset.kv', {},
    h('legend', {}, legend),
    h('div.kv-head', { 'aria-hidden': 'true' }, h('span', {}, 'Name'), h('span', {}, 'Value'), h('span', {}, 'Type')),
    rows, datalist,
    h('button.btn.secondary.small', { type: 'button', onClick: () => addRow().focus() }, `Add ${noun}`));
  addRow();

  return {
    element,
    /** The rows as an object; rows with an empty name are ignored. Throws on a bad value. */
    value() {
      const out = {};
      for (const row of rows.children) {
        const key = row.querySelector('.kv-key').value.trim();
        if (!key) continue;
        out[key] = parseValue(key, row.querySelector('.kv-value').value, row.querySelector('.kv-type').value);
      }
      return out;
    },
    reset() {
      rows.replaceChildren();
      addRow();
    },
  };
}

/** Common x-arguments for queues, with their types. */
export const QUEUE_ARGUMENTS = {
  'x-message-ttl': 'number', 'x-expires': 'number', 'x-max-length': 'number',
  'x-max-length-bytes': 'number', 'x-overflow': 'string', 'x-dead-letter-exchange': 'string',
  'x-dead-letter-routing-key': 'string', 'x-single-active-consumer': 'boolean',
  'x-max-priority': 'number', 'x-queue-type': 'string', 'x-queue-mode': 'string',
};

export const EXCHANGE_ARGUMENTS = { 'alternate-exchange': 'string' };

export const BINDING_ARGUMENTS = { 'x-match': 'string' };

/** AMQP basic properties (other than headers and delivery_mode) for the publish form. */
export const MESSAGE_PROPERTIES = {
  content_type: 'string', content_encoding: 'string', priority: 'number', correlation_id: 'string',
  reply_to: 'string', expiration: 'string', message_id: 'string', timestamp: 'number',
  type: 'string', user_id: 'string', app_id: 'string',
};
