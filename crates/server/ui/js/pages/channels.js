// pages/channels.js — all channels, paged on the server.

import { tableState } from '../table.js';
import { listPage } from '../list-page.js';
import { channelColumns } from '../channel-columns.js';

const state = tableState();

export default function render(root, _params, { signal }) {
  listPage(root, { title: 'Channels', resource: 'channels', columns: channelColumns, state, signal });
}
