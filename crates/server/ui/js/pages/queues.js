// pages/queues.js — all queues, one server-side page at a time, and the "Add queue" form.

import { api, path } from '../api.js';
import { fmtInt, fmtRate, statRate } from '../format.js';
import { tableState } from '../table.js';
import { listPage } from '../list-page.js';
import { declareForm } from '../declare-form.js';
import { QUEUE_ARGUMENTS } from '../kv-editor.js';
import { link, queueHref, stateBadge, featureBadges } from '../widgets.js';

const state = tableState();

const columns = [
  { label: 'Virtual host', sort: 'vhost', render: (q) => q.vhost },
  { label: 'Name', sort: 'name', render: (q) => link(queueHref(q.vhost, q.name), q.name) },
  { label: 'Type', sort: 'type', render: (q) => q.type || 'classic' },
  { label: 'Features', render: featureBadges },
  { label: 'State', sort: 'state', render: (q) => stateBadge(q.state) },
  { label: 'Ready', sort: 'messages_ready', num: true, render: (q) => fmtInt(q.messages_ready) },
  { label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (q) => fmtInt(q.messages_unacknowledged) },
  { label: 'Total', sort: 'messages', num: true, render: (q) => fmtInt(q.messages) },
  { label: 'Consumers', sort: 'consumers', num: true, render: (q) => fmtInt(q.consumers) },
  { label: 'Incoming', sort: 'message_stats.publish_details.rate', num: true, render: (q) => fmtRate(statRate(q, 'publish')) },
  { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, render: (q) => fmtRate(statRate(q, 'deliver_get')) },
  { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, render: (q) => fmtRate(statRate(q, 'ack')) },
];

export default function render(root, _params, { signal }) {
  let table = null;
  const add = declareForm({
    noun: 'queue',
    suggestions: QUEUE_ARGUMENTS,
    submit: ({ vhost, name, body }) => api.put(path`/queues/${vhost}/${name}`, body),
    onDone: () => table.reload(),
  });
  table = listPage(root, { title: 'Queues', resource: 'queues', columns, state, signal, perVhost: true, before: [add] });
}
