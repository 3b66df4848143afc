// list-page.js — the shape shared by the Queues/Exchanges/Connections/Channels pages: a header,
// optional forms, and a server-paged table of GET /api/{resource}[/{vhost}].

import { h } from './dom.js';
import { api, path, query } from './api.js';
import { pagedTable, pageParams } from './table.js';
import { vhostFilter, currentVhost } from './vhosts.js';
import { pageHeader } from './widgets.js';

/** Renders into `root` and returns the paged table ({reload}). */
export function listPage(root, { title, resource, columns, state, signal, perVhost = false, before = [] }) {
  let table = null;
  const tools = perVhost ? [vhostFilter(() => { state.page = 1; table.reload(); })] : [];
  table = pagedTable({
    caption: title, columns, state, signal, tools,
    fetchPage(st, sig) {
      const vhost = perVhost ? currentVhost() : '';
      const base = vhost ? path`/${resource}/${vhost}` : `/${resource}`;
      return api.get(base + query(pageParams(st)), { signal: sig });
    },
  });
  root.append(pageHeader(title), ...before, h('section.card', {}, table.element));
  return table;
}
