// permissions.js — a user's or a vhost's permissions (configure/write/read regexes) or topic
// permissions (exchange/write/read): table with "Clear" and a "Set" form.
//   list: GET /api/vhosts/{v}/{kind} or /api/users/{u}/{kind}
//   set:  PUT /api/{kind}/{v}/{u}      clear: DELETE /api/{kind}/{v}/{u}
// where kind is 'permissions' or 'topic-permissions'.

import { h, field, section, uid } from './dom.js';
import { api, path } from './api.js';
import { form, submitButton, textInput, actionButton } from './forms.js';
import { dataTable } from './table.js';
import { confirmAction } from './dialog.js';
import { notifySuccess, notifyError } from './notify.js';
import { vhostSelect } from './vhosts.js';

const KINDS = {
  permissions: { title: 'Permissions', fields: [['configure', '.*'], ['write', '.*'], ['read', '.*']] },
  'topic-permissions': { title: 'Topic permissions', fields: [['exchange', 'amq.topic'], ['write', '.*'], ['read', '.*']] },
};

function userSelect() {
  const sel = h('select', { id: uid('user'), name: 'user' });
  api.get('/users').then((users) => sel.append(...users.map((u) => h('option', { value: u.name }, u.name)))).catch(() => {});
  return sel;
}

const cap = (s) => s[0].toUpperCase() + s.slice(1);

/** `kind`: 'permissions' | 'topic-permissions'; exactly one of `vhost`, `user` is given. */
export function permissionsSection(kind, { vhost, user }) {
  const { title, fields } = KINDS[kind];
  const other = vhost !== undefined ? 'user' : 'vhost';
  const listUrl = vhost !== undefined ? path`/vhosts/${vhost}/${kind}` : path`/users/${user}/${kind}`;

  const reload = async () => {
    try {
      table.setRows(await api.get(listUrl));
    } catch (err) {
      notifyError(err, `Loading ${title.toLowerCase()}`);
    }
  };
  const clear = (p) => actionButton('Clear', async () => {
    if (!await confirmAction({ title: `Clear ${title.toLowerCase()}?`, message: `Remove ${title.toLowerCase()} of user "${p.user}" in vhost ${p.vhost}?`, confirmLabel: 'Clear' })) return;
    await api.del(path`/${kind}/${p.vhost}/${p.user}`);
    notifySuccess(`${title} cleared.`);
    await reload();
  }, { cls: 'secondary.small', what: `Clearing ${title.toLowerCase()}` });
  const table = dataTable({
    caption: title,
    empty: other === 'user' ? 'No user has access.' : 'No access to any virtual host.',
    columns: [
      { label: other === 'user' ? 'User' : 'Virtual host', render: (p) => p[other] },
      ...fields.map(([f]) => ({ label: cap(f), render: (p) => h('code', {}, p[f]) })),
      { label: 'Action', render: clear },
    ],
  });

  const otherSelect = other === 'user' ? userSelect() : vhostSelect();
  const inputs = fields.map(([f, initial]) => [f, textInput({ name: f, value: initial })]);
  const setForm = form({ 'aria-label': `Set ${title.toLowerCase()}` }, [
    h('div.form-row', {},
      field(other === 'user' ? 'User' : 'Virtual host', otherSelect),
      inputs.map(([f, input]) => field(cap(f), input)),
      h('div.form-actions', {}, submitButton(`Set ${title.toLowerCase()}`))),
  ], async () => {
    const v = vhost ?? otherSelect.value;
    const u = user ?? otherSelect.value;
    await api.put(path`/${kind}/${v}/${u}`, Object.fromEntries(inputs.map(([f, input]) => [f, input.value])));
    notifySuccess(`${title} set for user "${u}" in vhost ${v}.`);
    await reload();
  }, `Setting ${title.toLowerCase()}`);

  reload();
  return section(title, table.element, setForm);
}
