// pages/vhosts.js — Admin › Virtual hosts: table and "Add a virtual host" (PUT /api/vhosts/{name}).

import { h, field } from '../dom.js';
import { api, path } from '../api.js';
import { form, submitButton, textInput } from '../forms.js';
import { dataTable } from '../table.js';
import { notifySuccess, notifyError } from '../notify.js';
import { fmtInt, fmtRate, statRate } from '../format.js';
import { pageHeader, adminTabs, link } from '../widgets.js';
import { forgetVhosts } from '../vhosts.js';

export default function render(root) {
  const table = dataTable({
    caption: 'Virtual hosts',
    columns: [
      { label: 'Name', render: (v) => link(`#${path`/admin/vhosts/${v.name}`}`, v.name) },
      { label: 'Description', render: (v) => v.description || '' },
      { label: 'Ready', num: true, render: (v) => fmtInt(v.messages_ready) },
      { label: 'Unacked', num: true, render: (v) => fmtInt(v.messages_unacknowledged) },
      { label: 'Total', num: true, render: (v) => fmtInt(v.messages) },
      { label: 'Publish', num: true, render: (v) => fmtRate(statRate(v, 'publish')) },
      { label: 'Deliver / get', num: true, render: (v) => fmtRate(statRate(v, 'deliver_get')) },
    ],
  });
  const reload = async () => {
    try {
      table.setRows(await api.get('/vhosts'));
    } catch (err) {
      notifyError(err, 'Loading virtual hosts');
    }
  };
  const name = textInput({ name: 'name', required: true });
  const description = textInput({ name: 'description' });
  const add = form({ 'aria-label': 'Add a virtual host' }, [
    h('div.form-row', {}, field('Name', name), field('Description', description), h('div.form-actions', {}, submitButton('Add virtual host'))),
  ], async () => {
    const vhost = name.value.trim();
    await api.put(path`/vhosts/${vhost}`, description.value.trim() ? { description: description.value.trim() } : {});
    forgetVhosts();
    notifySuccess(`Virtual host "${vhost}" added.`);
    name.value = '';
    description.value = '';
    await reload();
  }, 'Adding the virtual host');

  root.append(
    pageHeader('Virtual hosts', { kicker: 'Admin' }),
    adminTabs('vhosts'),
    h('section.card', { 'aria-label': 'All virtual hosts' }, table.element),
    h('details.card.add-form', {}, h('summary', {}, 'Add a virtual host'), add),
  );
  reload();
}
