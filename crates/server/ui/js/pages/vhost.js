// pages/vhost.js — Admin › one virtual host: details, permissions, topic permissions, delete.

import { section, dl } from '../dom.js';
import { path } from '../api.js';
import { fmtInt, normalizeTags } from '../format.js';
import { pageHeader, adminTabs } from '../widgets.js';
import { permissionsSection } from '../permissions.js';
import { loadOrNotFound, deleteButton } from '../detail.js';
import { forgetVhosts } from '../vhosts.js';

export default async function render(root, { name }, { signal }) {
  const self = path`/vhosts/${name}`;
  const vhost = await loadOrNotFound(root, self, signal, { what: 'Virtual host', backHref: '#/admin/vhosts', backText: 'Back to virtual hosts' });
  if (!vhost) return;
  const remove = deleteButton({
    label: 'Delete virtual host', url: self, then: '/admin/vhosts', done: `Virtual host "${name}" deleted.`,
    message: `Delete virtual host "${name}" with all its exchanges, queues and messages?`,
    onDeleted: forgetVhosts,
  });

  root.append(
    pageHeader(name, { kicker: 'Admin · virtual host', actions: [remove] }),
    adminTabs('vhosts'),
    section('Details', dl([
      ['Description', vhost.description || '–'],
      ['Tags', normalizeTags(vhost.tags).join(', ') || '–'],
      ['Messages', fmtInt(vhost.messages)],
      ['Ready', fmtInt(vhost.messages_ready)],
      ['Unacked', fmtInt(vhost.messages_unacknowledged)],
    ], { grid: true })),
    permissionsSection('permissions', { vhost: name }),
    permissionsSection('topic-permissions', { vhost: name }),
  );
}
