// pages/connection.js — one connection: details, client properties, its channels, and
// "close connection" (DELETE /api/connections/{name} with an X-Reason header).

import { h, section, dl, field } from '../dom.js';
import { api, path } from '../api.js';
import { form, submitButton, textInput } from '../forms.js';
import { confirmAction } from '../dialog.js';
import { flash } from '../notify.js';
import { navigate } from '../router.js';
import { fmtInt, fmtBool, fmtTime } from '../format.js';
import { dataTable } from '../table.js';
import { pageHeader, stateBadge } from '../widgets.js';
import { loadOrNotFound, keepFresh } from '../detail.js';
import { channelColumns } from '../channel-columns.js';

function details(c) {
  const p = c.client_properties || {};
  return dl([
    ['User', c.user],
    ['Virtual host', c.vhost],
    ['State', stateBadge(c.state)],
    ['Protocol', c.protocol],
    ['Client', [p.product, p.version].filter(Boolean).join(' ') || '–'],
    ['Platform', p.platform || '–'],
    ['Connection name', c.user_provided_name || p.connection_name || '–'],
    ['Peer', `${c.peer_host}:${c.peer_port}`],
    ['Local', `${c.host}:${c.port}`],
    ['Authentication', c.auth_mechanism || '–'],
    ['TLS', fmtBool(c.ssl)],
    ['Heartbeat', c.timeout !== undefined ? `${c.timeout} s` : '–'],
    ['Frame max', fmtInt(c.frame_max)],
    ['Channel max', fmtInt(c.channel_max)],
    ['Connected at', fmtTime(c.connected_at)],
    ['Capabilities', h('code', {}, Object.keys(p.capabilities || {}).filter((k) => p.capabilities[k]).join(', ') || '–')],
  ]);
}

/** ASCII only: header values must be ByteStrings. */
function headerSafe(text) {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

export default async function render(root, { name }, { signal }) {
  const self = path`/connections/${name}`;
  const conn = await loadOrNotFound(root, self, signal, { what: 'Connection', backHref: '#/connections', backText: 'Back to connections' });
  if (!conn) return;
  const channels = dataTable({ caption: 'Channels of this connection', columns: channelColumns, empty: 'No channels.' });
  const reason = textInput({ name: 'reason', value: 'Closed from the management UI' });
  const close = form({ 'aria-label': 'Close this connection' }, [
    h('div.form-row', {}, field('Reason sent to the client', reason)),
    h('div.form-actions', {}, submitButton('Force close', 'danger')),
  ], async () => {
    if (!await confirmAction({ title: 'Close connection?', message: `Close connection "${name}"? The client will be disconnected.`, confirmLabel: 'Close connection' })) return;
    await api.del(self, { headers: { 'X-Reason': headerSafe(reason.value) } });
    flash('Connection closed.');
    navigate('/connections');
  }, 'Closing the connection');

  root.append(
    pageHeader(name, { kicker: 'Connection' }),
    h('div.grid-2', {}, section('Details', details(conn)), section('Close this connection', close)),
    section('Channels', channels.element),
  );
  keepFresh(`${self}/channels`, signal, (list) => channels.setRows(list), 'Loading channels', 0);
}
