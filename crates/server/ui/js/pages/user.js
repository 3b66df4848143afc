// pages/user.js — Admin › one user: change password/tags (an empty password keeps the old
// one by sending its password_hash back), permissions, topic permissions, delete.

import { h } from '../dom.js';
import { api, path } from '../api.js';
import { form, submitButton } from '../forms.js';
import { tagsField } from '../tags-field.js';
import { notifySuccess } from '../notify.js';
import { normalizeTags } from '../format.js';
import { pageHeader, adminTabs, tagBadges } from '../widgets.js';
import { permissionsSection } from '../permissions.js';
import { loadOrNotFound, deleteButton } from '../detail.js';
import { passwordPair } from './users.js';

export default async function render(root, { name }, { signal }) {
  const self = path`/users/${name}`;
  let user = await loadOrNotFound(root, self, signal, { what: 'User', backHref: '#/admin/users', backText: 'Back to users' });
  if (!user) return;

  const currentTags = h('p', {}, 'Tags: ', tagBadges(normalizeTags(user.tags)));
  const tags = tagsField(normalizeTags(user.tags).join(', '));
  const pw = passwordPair(false);
  const update = form({ 'aria-label': 'Update this user' }, [
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: name, hidden: true, tabindex: '-1', 'aria-hidden': 'true' }),
    h('div.form-row', {}, pw.fields),
    h('small.hint', {}, 'Leave the password empty to keep the current one.'),
    tags.element,
    h('div.form-actions', {}, submitButton('Update user')),
  ], async () => {
    pw.check();
    const body = pw.value()
      ? { password: pw.value(), tags: tags.value() }
      : { password_hash: user.password_hash ?? '', hashing_algorithm: user.hashing_algorithm, tags: tags.value() };
    await api.put(self, body);
    user = await api.get(self);
    currentTags.replaceChildren('Tags: ', ...[tagBadges(normalizeTags(user.tags))].flat());
    pw.reset();
    notifySuccess(`User "${name}" updated.`);
  }, 'Updating the user');

  const remove = deleteButton({
    label: 'Delete user', url: self, then: '/admin/users', done: `User "${name}" deleted.`,
    message: `Delete user "${name}" and all its permissions?`,
  });

  root.append(
    pageHeader(name, { kicker: 'Admin · user', actions: [remove] }),
    adminTabs('users'),
    h('section.card', { 'aria-label': 'Update this user' }, h('h2', {}, 'Update this user'), currentTags, update),
    permissionsSection('permissions', { user: name }),
    permissionsSection('topic-permissions', { user: name }),
  );
}
