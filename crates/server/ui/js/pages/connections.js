// pages/connections.js — client connections, paged on the server.

import { h } from '../dom.js';
import { fmtInt, fmtByteRate, detailRate } from '../format.js';
import { tableState } from '../table.js';
import { listPage } from '../list-page.js';
import { link, connectionHref, stateBadge } from '../widgets.js';

const state = tableState();

function client(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || '–';
}

const columns = [
  {
    label: 'Name', sort: 'name',
    render: (c) => [link(connectionHref(c.name), c.name), c.user_provided_name ? h('div.muted', {}, c.user_provided_name) : null],
  },
  { label: 'User', sort: 'user', render: (c) => c.user },
  { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost },
  { label: 'State', sort: 'state', render: (c) => stateBadge(c.state) },
  { label: 'Protocol', sort: 'protocol', render: (c) => c.protocol },
  { label: 'Client', render: client },
  { label: 'Channels', sort: 'channels', num: true, render: (c) => fmtInt(c.channels) },
  { label: 'From client', sort: 'recv_oct_details.rate', num: true, render: (c) => fmtByteRate(detailRate(c, 'recv_oct')) },
  { label: 'To client', sort: 'send_oct_details.rate', num: true, render: (c) => fmtByteRate(detailRate(c, 'send_oct')) },
];

export default function render(root, _params, { signal }) {
  listPage(root, { title: 'Connections', resource: 'connections', columns, state, signal });
}
