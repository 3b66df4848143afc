// publish-form.js — "Publish message" form: POST /api/exchanges/{vhost}/{exchange}/publish.
// On a queue page the exchange is the default one and the routing key is the queue name.

import { h, field, select, section } from './dom.js';
import { api, path } from './api.js';
import { form, submitButton, textInput } from './forms.js';
import { kvEditor, MESSAGE_PROPERTIES } from './kv-editor.js';
import { notifySuccess, notifyWarning } from './notify.js';

/** `exchange`: name ('' = default); `routingKey`: fixed key (the queue), or undefined to ask. */
export function publishSection({ vhost, exchange, routingKey }) {
  const key = routingKey === undefined ? textInput({ name: 'routing_key' }) : null;
  const mode = select([['2', 'Persistent (2)'], ['1', 'Non-persistent (1)']]);
  const contentType = textInput({ name: 'content_type', placeholder: 'e.g. text/plain' });
  const headers = kvEditor({ legend: 'Headers', noun: 'header' });
  const props = kvEditor({ legend: 'Other properties', noun: 'property', suggestions: MESSAGE_PROPERTIES });
  const payload = h('textarea', { name: 'payload', rows: 5 });
  const encoding = select([['string', 'String (UTF-8)'], ['base64', 'Base64']]);
  const result = h('output.result', { 'aria-live': 'polite' });

  const el = form({ 'aria-label': 'Publish message', class: 'publish-form' }, [
    routingKey !== undefined
      ? h('p.muted', {}, 'Published through the default exchange with routing key ', h('code', {}, routingKey), '.')
      : null,
    h('div.form-row', {},
      key ? field('Routing key', key) : null,
      field('Delivery mode', mode),
      field('Content type', contentType),
      field('Payload encoding', encoding)),
    headers.element,
    props.element,
    field('Payload', payload),
    h('div.form-actions', {}, submitButton('Publish message'), result),
  ], async () => {
    result.textContent = '';
    const properties = { delivery_mode: Number(mode.value), headers: headers.value(), ...props.value() };
    if (contentType.value.trim()) properties.content_type = contentType.value.trim();
    const answer = await api.post(path`/exchanges/${vhost}/${exchange || 'amq.default'}/publish`, {
      properties,
      routing_key: key ? key.value : routingKey,
      payload: payload.value,
      payload_encoding: encoding.value,
    });
    result.dataset.routed = String(Boolean(answer?.routed));
    if (answer?.routed) {
      result.textContent = 'Published and routed.';
      notifySuccess('Message published.');
    } else {
      result.textContent = 'Published, but not routed to any queue.';
      notifyWarning('Message published, but no queue was bound to receive it.');
    }
  }, 'Publishing');
  return section('Publish message', el);
}
