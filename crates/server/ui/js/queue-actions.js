// queue-actions.js — the queue page's message tools: get messages (POST …/get) and move
// messages (POST …/move, a Warren extension that RabbitMQ answers with 404/405).

import { h, field, select, section, dl, replace } from './dom.js';
import { api, path } from './api.js';
import { form, submitButton } from './forms.js';
import { notifySuccess, notifyError } from './notify.js';
import { fmtInt, fmtBool, exchangeLabel } from './format.js';
import { suggestInput, namesIn } from './suggest.js';

const ACK_MODES = [
  ['ack_requeue_true', 'Nack, requeue'],
  ['ack_requeue_false', 'Ack (remove)'],
  ['reject_requeue_true', 'Reject, requeue'],
  ['reject_requeue_false', 'Reject, no requeue'],
];

/** Properties come as an object, or as [] when empty (RabbitMQ's JSON of an empty list). */
function propertyPairs(props) {
  if (!props || Array.isArray(props)) return [];
  return Object.entries(props).map(([k, v]) => [k, typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : String(v)]);
}

function messageCard(m, i, total) {
  return h('article.message', {},
    h('h3', {}, `Message ${i + 1} of ${total}`),
    dl([
      ['Exchange', exchangeLabel(m.exchange)],
      ['Routing key', h('code', {}, m.routing_key)],
      ['Redelivered', fmtBool(m.redelivered)],
      ['Left in queue', fmtInt(m.message_count)],
      ...propertyPairs(m.properties),
      ['Payload', `${fmtInt(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
    ]),
    h('pre.payload', { tabindex: '0', 'aria-label': `Payload of message ${i + 1}` }, m.payload));
}

export function getMessagesSection(vhost, name) {
  const count = h('input', { type: 'number', min: 1, value: 1, name: 'count', required: true });
  const ackmode = select(ACK_MODES);
  const encoding = select([['auto', 'Auto'], ['base64', 'Base64']]);
  const truncate = h('input', { type: 'number', min: 1, value: 50000, name: 'truncate' });
  const results = h('div.messages', { 'aria-live': 'polite' });
  const el = form({ 'aria-label': 'Get messages' }, [
    h('p.muted', {}, 'Getting messages removes them unless they are requeued; requeued messages come back marked redelivered. Auto encoding shows UTF-8 payloads as text and others as base64.'),
    h('div.form-row', {}, field('Ack mode', ackmode), field('Encoding', encoding)),
    h('div.form-row', {}, field('Messages', count), field('Truncate payloads after (bytes)', truncate)),
    h('div.form-actions', {}, submitButton('Get messages')),
  ], async () => {
    const messages = await api.post(path`/queues/${vhost}/${name}/get`, {
      count: Number(count.value) || 1, ackmode: ackmode.value, encoding: encoding.value, truncate: Number(truncate.value) || 50000,
    });
    replace(results, messages.length
      ? messages.map((m, i) => messageCard(m, i, messages.length))
      : h('p.muted.empty-queue', {}, 'The queue is empty.'));
  }, 'Getting messages');
  return section('Get messages', el, results);
}

export function moveMessagesSection(vhost, name, onMoved) {
  const dest = suggestInput({ name: 'destination', required: true }, namesIn('queues', vhost));
  const result = h('output.result', { 'aria-live': 'polite' });
  const el = form({ 'aria-label': 'Move messages' }, [
    h('p.muted', {}, 'Moves every ready message to another queue in this virtual host (a Warren extension of the management API).'),
    h('div.form-row', {}, field('Destination queue', dest), h('div.form-actions', {}, submitButton('Move messages'))),
    result,
  ], async () => {
    const destination = dest.querySelector('input').value.trim();
    result.textContent = '';
    try {
      const answer = await api.post(path`/queues/${vhost}/${name}/move`, { destination });
      result.textContent = `Moved ${fmtInt(answer?.moved ?? 0)} message${answer?.moved === 1 ? '' : 's'}.`;
      notifySuccess(`Moved ${fmtInt(answer?.moved ?? 0)} messages to "${destination}".`);
      onMoved?.();
    } catch (err) {
      if (err.status === 404 || err.status === 405) {
        result.textContent = 'Not supported by this server.';
        notifyError(`${err.describe()}. Moving messages is a Warren extension; this server does not offer it, or the destination queue does not exist`, 'Moving messages');
        return;
      }
      throw err;
    }
  }, 'Moving messages');
  return section('Move messages', el);
}
