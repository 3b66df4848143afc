// pages/queue.js — one queue: stats and details (refreshed every 5 s), consumers, bindings,
// publish, get and move messages, purge and delete.

import { h, section, dl, replace } from '../dom.js';
import { api, path } from '../api.js';
import { actionButton } from '../forms.js';
import { confirmAction } from '../dialog.js';
import { notifySuccess } from '../notify.js';
import { fmtInt, fmtRate, fmtBool, fmtJson, statRate } from '../format.js';
import { dataTable } from '../table.js';
import { pageHeader, statTiles, stateBadge, link, connectionHref } from '../widgets.js';
import { loadOrNotFound, keepFresh, deleteButton } from '../detail.js';
import { queueBindings } from '../bindings.js';
import { publishSection } from '../publish-form.js';
import { getMessagesSection, moveMessagesSection } from '../queue-actions.js';

const STATS = [
  { key: 'messages_ready', label: 'Ready' },
  { key: 'messages_unacknowledged', label: 'Unacked' },
  { key: 'messages', label: 'Total' },
  { key: 'consumers', label: 'Consumers' },
  { key: 'publish', label: 'Incoming', format: fmtRate },
  { key: 'deliver_get', label: 'Deliver / get', format: fmtRate },
  { key: 'ack', label: 'Ack', format: fmtRate },
  { key: 'redeliver', label: 'Redeliver', format: fmtRate },
];

const consumerColumns = [
  { label: 'Channel', render: (c) => link(connectionHref(c.channel_details?.connection_name ?? ''), c.channel_details?.name ?? '–') },
  { label: 'Consumer tag', render: (c) => h('code', {}, c.consumer_tag) },
  { label: 'Ack required', render: (c) => fmtBool(c.ack_required) },
  { label: 'Exclusive', render: (c) => fmtBool(c.exclusive) },
  { label: 'Prefetch', num: true, render: (c) => fmtInt(c.prefetch_count) },
  { label: 'Active', render: (c) => fmtBool(c.active) },
];

function details(q) {
  return dl([
    ['Type', q.type || 'classic'],
    ['State', stateBadge(q.state)],
    ['Durable', fmtBool(q.durable)],
    ['Auto delete', fmtBool(q.auto_delete)],
    ['Exclusive', fmtBool(q.exclusive)],
    ['Arguments', h('code', {}, fmtJson(q.arguments))],
    ['Policy', q.policy || '–'],
    ['Node', q.node || '–'],
  ]);
}

export default async function render(root, { vhost, name }, { signal }) {
  const self = path`/queues/${vhost}/${name}`;
  const first = await loadOrNotFound(root, self, signal, { what: 'Queue', backHref: '#/queues', backText: 'Back to queues' });
  if (!first) return;

  const stats = statTiles(STATS, 'Queue statistics');
  const info = h('div');
  const consumers = dataTable({ caption: 'Consumers', columns: consumerColumns, empty: 'No consumers.' });
  const update = (q) => {
    const values = { ...q };
    for (const key of ['publish', 'deliver_get', 'ack', 'redeliver']) values[key] = statRate(q, key);
    stats.set(values);
    replace(info, details(q));
    consumers.setRows(q.consumer_details || []);
  };
  const refresh = keepFresh(self, signal, update, 'Refreshing the queue');

  const purge = actionButton('Purge messages', async () => {
    if (!await confirmAction({ title: 'Purge queue?', message: `Remove all ready messages from "${name}" in vhost ${vhost}? This cannot be undone.`, confirmLabel: 'Purge' })) return;
    await api.del(`${self}/contents`);
    notifySuccess(`Queue "${name}" purged.`);
    await refresh();
  }, { what: 'Purging' });
  const remove = deleteButton({
    label: 'Delete queue', url: self, then: '/queues', done: `Queue "${name}" deleted.`,
    message: `Delete queue "${name}" in vhost ${vhost} and all its messages?`,
  });

  root.append(
    pageHeader(name, { kicker: `Queue · virtual host ${vhost}`, actions: [purge, remove] }),
    h('div.grid-2', {}, section('Messages', stats.element), section('Details', info)),
    section('Consumers', consumers.element),
    queueBindings(vhost, name),
    h('div.grid-2', {}, publishSection({ vhost, exchange: '', routingKey: name }), getMessagesSection(vhost, name)),
    moveMessagesSection(vhost, name, refresh),
  );
  update(first);
}
