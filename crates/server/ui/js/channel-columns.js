// channel-columns.js — table columns for channels (Channels page and a connection's page).

import { fmtInt, fmtRate, statRate } from './format.js';
import { link, connectionHref, stateBadge } from './widgets.js';

function mode(c) {
  return [c.confirm ? 'confirm' : null, c.transactional ? 'transactional' : null].filter(Boolean).join(', ') || '–';
}

export const channelColumns = [
  { label: 'Channel', sort: 'name', render: (c) => link(connectionHref(c.connection_details?.name ?? ''), c.name) },
  { label: 'User', sort: 'user', render: (c) => c.user },
  { label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost },
  { label: 'State', sort: 'state', render: (c) => stateBadge(c.state) },
  { label: 'Mode', render: mode },
  { label: 'Prefetch', sort: 'prefetch_count', num: true, render: (c) => fmtInt(c.prefetch_count) },
  { label: 'Consumers', sort: 'consumer_count', num: true, render: (c) => fmtInt(c.consumer_count) },
  { label: 'Unacked', sort: 'messages_unacknowledged', num: true, render: (c) => fmtInt(c.messages_unacknowledged) },
  { label: 'Unconfirmed', sort: 'messages_unconfirmed', num: true, render: (c) => fmtInt(c.messages_unconfirmed) },
  { label: 'Publish', sort: 'message_stats.publish_details.rate', num: true, render: (c) => fmtRate(statRate(c, 'publish')) },
  { label: 'Deliver / get', sort: 'message_stats.deliver_get_details.rate', num: true, render: (c) => fmtRate(statRate(c, 'deliver_get')) },
  { label: 'Ack', sort: 'message_stats.ack_details.rate', num: true, render: (c) => fmtRate(statRate(c, 'ack')) },
];
