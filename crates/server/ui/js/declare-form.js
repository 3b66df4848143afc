// declare-form.js — the collapsible "Add a queue / Add an exchange" form: vhost, name,
// durability, auto-delete, kind-specific fields and typed arguments.

import { h, field, select } from './dom.js';
import { form, submitButton, textInput, boolSelect } from './forms.js';
import { kvEditor } from './kv-editor.js';
import { vhostSelect } from './vhosts.js';
import { notifySuccess } from './notify.js';

/**
 * `fields`: extra [label, control] pairs; `submit({vhost, name, body})` performs the PUT,
 * where body = {durable, auto_delete, arguments}. `onDone()` runs after success.
 */
export function declareForm({ noun, fields = [], suggestions, submit, onDone }) {
  const vhost = vhostSelect();
  const name = textInput({ name: 'name', required: true });
  const durable = select([['true', 'Durable'], ['false', 'Transient']]);
  const autoDelete = boolSelect(false);
  const args = kvEditor({ legend: 'Arguments', suggestions });
  const el = form({ 'aria-label': `Add ${noun}` }, [
    h('div.form-row', {},
      field('Virtual host', vhost),
      field('Name', name),
      fields.map(([label, control]) => field(label, control)),
      field('Durability', durable),
      field('Auto delete', autoDelete)),
    args.element,
    h('div.form-actions', {}, submitButton(`Add ${noun}`)),
  ], async () => {
    const body = { durable: durable.value === 'true', auto_delete: autoDelete.value === 'true', arguments: args.value() };
    await submit({ vhost: vhost.value, name: name.value.trim(), body });
    notifySuccess(`The ${noun} "${name.value.trim()}" was added in vhost ${vhost.value}.`);
    name.value = '';
    args.reset();
    onDone?.();
  }, `Adding the ${noun}`);
  return h('details.card.add-form', {}, h('summary', {}, `Add a new ${noun}`), el);
}
