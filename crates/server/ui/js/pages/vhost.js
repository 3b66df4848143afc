// pages/vhost.js — Admin › one virtual host: details, permissions, topic permissions, delete.

import { h, section, dl } from '../dom.js';
import { api, path } from '../api.js';
import { actionButton } from '../forms.js';
import { confirmAction } from '../dialog.js';
import { flash } from '../notify.js';
import { navigate } from '../router.js';
import { fmtInt, normalizeTags } from '../format.js';
import { pageHeader, adminTabs } from '../widgets.js';
import { permissionsSection } from '../permissions.js';
import { loadOrNotFound } from '../detail.js';
import { forgetVhosts } from '../vhosts.js';

export default async function render(root, { name }, { signal }) {
  const self = path`/vhosts/${name}`;
  const vhost = await loadOrNotFound(root, self, signal, { what: 'Virtual host', backHref: '#/admin/vhosts', backText: 'Back to virtual hosts' });
  if (!vhost) return;
  const remove = actionButton('Delete virtual host', async () => {
    if (!await confirmAction({ title: 'Delete virtual host?', message: `Delete virtual host "${name}" with all its exchanges, queues and messages?`, confirmLabel: 'Delete virtual host' })) return;
    await api.del(self);
    forgetVhosts();
    flash(`Virtual host "${name}" deleted.`);
    navigate('/admin/vhosts');
  }, { cls: 'danger', what: 'Deleting the virtual host' });

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
