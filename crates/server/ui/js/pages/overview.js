// pages/overview.js — totals, queued messages, message rates and two live charts, polling
// GET /api/overview every 5 s. Samples are kept for 10 minutes across page visits.

import { h, section, dl, replace } from '../dom.js';
import { fmtInt, fmtRate, statRate } from '../format.js';
import { lineChart } from '../chart.js';
import { pageHeader, statTiles } from '../widgets.js';
import { dataTable } from '../table.js';
import { keepFresh } from '../detail.js';

const WINDOW_MS = 10 * 60 * 1000;
const history = []; // [{t, values: {...rates, ...queued}}], oldest first

const RATES = [
  { key: 'publish', label: 'Publish', color: '--series-1' },
  { key: 'deliver_get', label: 'Deliver / get', color: '--series-2' },
  { key: 'ack', label: 'Ack', color: '--series-3' },
  { key: 'confirm', label: 'Confirm', color: '--series-4' },
  { key: 'redeliver', label: 'Redeliver', color: '--series-5' },
  { key: 'return_unroutable', label: 'Returned unroutable', color: '--series-6' },
];
const QUEUED = [
  { key: 'messages_ready', label: 'Ready', color: '--series-1' },
  { key: 'messages_unacknowledged', label: 'Unacked', color: '--series-2' },
  { key: 'messages', label: 'Total', color: '--series-3' },
];

function record(overview) {
  const t = Date.now();
  const values = {};
  for (const r of RATES) values[r.key] = statRate(overview, r.key);
  for (const q of QUEUED) values[q.key] = overview.queue_totals?.[q.key] ?? 0;
  history.push({ t, values });
  while (history.length && history[0].t < t - WINDOW_MS) history.shift();
}

function nodeInfo(o) {
  return dl([
    ['Product', [o.product_name, o.product_version].filter(Boolean).join(' ') || '–'],
    ['Node', o.node || '–'],
    ['Cluster', o.cluster_name || '–'],
    ...(o.erlang_version ? [['Erlang', o.erlang_version]] : []),
    ...(o.management_version ? [['Management API', o.management_version]] : []),
  ]);
}

export default function render(root, _params, { signal }) {
  const objects = statTiles([
    { key: 'connections', label: 'Connections', href: '#/connections' },
    { key: 'channels', label: 'Channels', href: '#/channels' },
    { key: 'exchanges', label: 'Exchanges', href: '#/exchanges' },
    { key: 'queues', label: 'Queues', href: '#/queues' },
    { key: 'consumers', label: 'Consumers' },
  ], 'Object totals');
  const queued = statTiles([
    { key: 'messages', label: 'Messages' },
    { key: 'messages_ready', label: 'Ready' },
    { key: 'messages_unacknowledged', label: 'Unacked' },
  ], 'Queued messages');
  const rates = lineChart({ title: 'Message rates (per second)', series: RATES, format: fmtRate, signal });
  const depth = lineChart({ title: 'Queued messages', series: QUEUED, format: fmtInt, integer: true, signal });
  rates.element.id = 'chart-rates';
  depth.element.id = 'chart-queued';
  const info = h('div', {}, 'Loading…');
  const listeners = dataTable({
    caption: 'Listeners',
    columns: [
      { label: 'Protocol', render: (l) => l.protocol },
      { label: 'Address', render: (l) => l.ip_address },
      { label: 'Port', render: (l) => String(l.port), num: true },
    ],
  });

  root.append(
    pageHeader('Overview'),
    h('div.grid-2', {},
      section('Totals', objects.element),
      section('Queued messages', queued.element)),
    h('div.grid-2', {}, h('section.card', {}, rates.element), h('section.card', {}, depth.element)),
    h('div.grid-2', {}, section('Node', info), section('Listeners', listeners.element)),
  );

  let shown = false;
  keepFresh('/overview', signal, (o) => {
    record(o);
    objects.set(o.object_totals || {});
    queued.set(o.queue_totals || {});
    rates.update(history);
    depth.update(history);
    if (!shown) {
      shown = true;
      replace(info, nodeInfo(o));
      listeners.setRows(o.listeners || []);
    }
  }, 'Refreshing the overview', 0);
}
