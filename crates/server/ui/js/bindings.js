// bindings.js — a queue's or an exchange's bindings: tables with "Unbind" and an add form.
//   queue:    GET /api/queues/{v}/{q}/bindings, POST /api/bindings/{v}/e/{x}/q/{q}
//   exchange: GET /api/exchanges/{v}/{x}/bindings/source|destination, POST /api/bindings/{v}/e/{x}/{q|e}/{d}
//   unbind:   DELETE /api/bindings/{v}/e/{source}/{q|e}/{destination}/{properties_key}

import { h, field, select, section, replace } from './dom.js';
import { api, path } from './api.js';
import { form, submitButton, textInput, actionButton } from './forms.js';
import { kvEditor, BINDING_ARGUMENTS } from './kv-editor.js';
import { dataTable } from './table.js';
import { confirmAction } from './dialog.js';
import { notifySuccess, notifyError } from './notify.js';
import { fmtJson } from './format.js';
import { destinationLink } from './widgets.js';
import { suggestInput, namesIn } from './suggest.js';

const letter = (type) => (type === 'exchange' ? 'e' : 'q');

function unbindButton(b, reload) {
  if (b.source === '') return h('span.muted', {}, 'implicit');
  return actionButton('Unbind', async () => {
    const ok = await confirmAction({
      title: 'Remove binding?',
      message: `Unbind ${b.destination_type} "${b.destination}" from exchange "${b.source}" (routing key "${b.routing_key}")?`,
      confirmLabel: 'Unbind',
    });
    if (!ok) return;
    await api.del(path`/bindings/${b.vhost}/e/${b.source}/${letter(b.destination_type)}/${b.destination}/${b.properties_key}`);
    notifySuccess('Binding removed.');
    await reload();
  }, { cls: 'secondary.small', what: 'Unbinding' });
}

function bindingTable(caption, endColumn, reload) {
  return dataTable({
    caption,
    empty: 'No bindings.',
    columns: [
      endColumn,
      { label: 'Routing key', render: (b) => h('code', {}, b.routing_key) },
      { label: 'Arguments', render: (b) => fmtJson(b.arguments) },
      { label: 'Action', render: (b) => unbindButton(b, reload) },
    ],
  });
}

/** The add-binding form: `endFields` pick the other end; `submit(body)` posts. */
function bindingForm(endFields, submit, reload) {
  const key = textInput({ name: 'routing_key' });
  const args = kvEditor({ legend: 'Arguments', suggestions: BINDING_ARGUMENTS });
  return form({ 'aria-label': 'Add binding' }, [
    h('div.form-row', {}, endFields, field('Routing key', key)),
    args.element,
    h('div.form-actions', {}, submitButton('Bind')),
  ], async () => {
    await submit({ routing_key: key.value, arguments: args.value() });
    notifySuccess('Binding added.');
    key.value = '';
    args.reset();
    await reload();
  }, 'Adding the binding');
}

async function fill(table, url) {
  try {
    table.setRows(await api.get(url));
  } catch (err) {
    notifyError(err, 'Loading bindings');
  }
}

/** Bindings of queue `queue` in `vhost`. */
export function queueBindings(vhost, queue) {
  const reload = () => fill(table, path`/queues/${vhost}/${queue}/bindings`);
  const table = bindingTable('Bindings to this queue', {
    label: 'From exchange', render: (b) => (b.source === '' ? h('span.muted', {}, '(default exchange)') : destinationLink(vhost, 'exchange', b.source)),
  }, reload);
  const exchange = suggestInput({ name: 'exchange', required: true }, namesIn('exchanges', vhost));
  const add = bindingForm([field('From exchange', exchange)], (body) => {
    const x = exchange.querySelector('input').value;
    return api.post(path`/bindings/${vhost}/e/${x}/q/${queue}`, body);
  }, reload);
  reload();
  return section('Bindings', table.element, h('h3.subhead', {}, 'Add binding from an exchange'), add);
}

/** Bindings where exchange `name` is the source and where it is the destination. */
export function exchangeBindings(vhost, name) {
  if (name === '') {
    return section('Bindings', h('p.muted', {}, 'The default exchange is implicitly bound to every queue, with the queue name as routing key. It cannot be bound explicitly.'));
  }
  const reload = () => Promise.all([
    fill(outgoing, path`/exchanges/${vhost}/${name}/bindings/source`),
    fill(incoming, path`/exchanges/${vhost}/${name}/bindings/destination`),
  ]);
  const outgoing = bindingTable('Bindings from this exchange', {
    label: 'To', render: (b) => [h('span.muted', {}, `${b.destination_type} `), destinationLink(vhost, b.destination_type, b.destination)],
  }, reload);
  const incoming = bindingTable('Bindings to this exchange', {
    label: 'From exchange', render: (b) => destinationLink(vhost, 'exchange', b.source),
  }, reload);
  const type = select([['queue', 'Queue'], ['exchange', 'Exchange']]);
  const destHolder = h('div.field-slot');
  let dest = null;
  const setDest = () => {
    dest = suggestInput({ name: 'destination', required: true }, namesIn(type.value === 'queue' ? 'queues' : 'exchanges', vhost));
    replace(destHolder, field(type.value === 'queue' ? 'To queue' : 'To exchange', dest));
  };
  type.addEventListener('change', setDest);
  setDest();
  const add = bindingForm([field('Destination type', type), destHolder], (body) => {
    const d = dest.querySelector('input').value;
    return api.post(path`/bindings/${vhost}/e/${name}/${letter(type.value)}/${d}`, body);
  }, reload);
  reload();
  return section('Bindings',
    h('h3.subhead', {}, 'This exchange routes to'), outgoing.element,
    h('h3.subhead', {}, 'Exchanges routing to this one'), incoming.element,
    h('h3.subhead', {}, 'Add binding from this exchange'), add);
}
