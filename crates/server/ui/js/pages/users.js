// pages/users.js — Admin › Users: the users table and the "Add a user" form (name, password,
// tags with quick buttons), as in RabbitMQ's tutorials: PUT /api/users/{name}.

import { h, field } from '../dom.js';
import { api, path } from '../api.js';
import { form, submitButton, textInput } from '../forms.js';
import { tagsField } from '../tags-field.js';
import { dataTable } from '../table.js';
import { notifySuccess, notifyError } from '../notify.js';
import { normalizeTags } from '../format.js';
import { pageHeader, adminTabs, tagBadges, link } from '../widgets.js';

/** Password + confirmation inputs; check() throws when they differ. */
export function passwordPair(required) {
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required });
  const confirm = h('input', { type: 'password', name: 'password-confirm', autocomplete: 'new-password', required });
  return {
    fields: [field('Password', password), field('Confirm password', confirm)],
    value: () => password.value,
    check() {
      if (password.value !== confirm.value) throw new Error('The two passwords do not match');
    },
    reset() { password.value = ''; confirm.value = ''; },
  };
}

export default function render(root) {
  const access = new Map();
  const table = dataTable({
    caption: 'Users',
    empty: 'No users.',
    columns: [
      { label: 'Name', render: (u) => link(`#${path`/admin/users/${u.name}`}`, u.name) },
      { label: 'Tags', render: (u) => tagBadges(normalizeTags(u.tags)) },
      { label: 'Can access virtual hosts', render: (u) => access.get(u.name)?.join(', ') || h('span.muted', {}, 'No access') },
      { label: 'Has password', render: (u) => (u.password_hash ? 'yes' : 'no') },
    ],
  });
  const reload = async () => {
    try {
      const [users, perms] = await Promise.all([api.get('/users'), api.get('/permissions').catch(() => [])]);
      access.clear();
      for (const p of perms) access.set(p.user, [...(access.get(p.user) || []), p.vhost]);
      table.setRows(users);
    } catch (err) {
      notifyError(err, 'Loading users');
    }
  };

  const name = textInput({ name: 'username', required: true, autocomplete: 'off' });
  const pw = passwordPair(true);
  const tags = tagsField();
  const add = form({ 'aria-label': 'Add a user' }, [
    h('div.form-row', {}, field('Username', name), pw.fields),
    tags.element,
    h('div.form-actions', {}, submitButton('Add user')),
  ], async () => {
    pw.check();
    const username = name.value.trim();
    await api.put(path`/users/${username}`, { password: pw.value(), tags: tags.value() });
    notifySuccess(`User "${username}" added. Give it permissions on its page.`);
    name.value = '';
    pw.reset();
    await reload();
  }, 'Adding the user');

  root.append(
    pageHeader('Users', { kicker: 'Admin' }),
    adminTabs('users'),
    h('section.card', { 'aria-label': 'All users' }, table.element),
    h('details.card.add-form', {}, h('summary', {}, 'Add a user'), add),
  );
  reload();
}
