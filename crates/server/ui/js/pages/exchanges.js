// pages/exchanges.js — all exchanges, paged on the server, and the "Add exchange" form.

import { api, path } from '../api.js';
import { select } from '../dom.js';
import { boolSelect } from '../forms.js';
import { fmtRate, statRate, exchangeLabel } from '../format.js';
import { tableState } from '../table.js';
import { listPage } from '../list-page.js';
import { declareForm } from '../declare-form.js';
import { EXCHANGE_ARGUMENTS } from '../kv-editor.js';
import { link, exchangeHref, featureBadges } from '../widgets.js';

const state = tableState();
const TYPES = ['direct', 'fanout', 'topic', 'headers'];

const columns = [
  { label: 'Virtual host', sort: 'vhost', render: (x) => x.vhost },
  { label: 'Name', sort: 'name', render: (x) => link(exchangeHref(x.vhost, x.name), exchangeLabel(x.name)) },
  { label: 'Type', sort: 'type', render: (x) => x.type },
  { label: 'Features', render: featureBadges },
  { label: 'Rate in', sort: 'message_stats.publish_in_details.rate', num: true, render: (x) => fmtRate(statRate(x, 'publish_in')) },
  { label: 'Rate out', sort: 'message_stats.publish_out_details.rate', num: true, render: (x) => fmtRate(statRate(x, 'publish_out')) },
];

/** Exchange types the server offers (overview `exchange_types`), with a standard fallback. */
function typeSelect() {
  const sel = select(TYPES);
  api.get('/overview').then((o) => {
    const types = (o.exchange_types || []).filter((t) => t.enabled !== false).map((t) => t.name);
    if (types.length) sel.replaceChildren(...select(types).children);
  }).catch(() => {});
  return sel;
}

export default function render(root, _params, { signal }) {
  let table = null;
  const type = typeSelect();
  const internal = boolSelect(false);
  const add = declareForm({
    noun: 'exchange',
    fields: [['Type', type], ['Internal', internal]],
    suggestions: EXCHANGE_ARGUMENTS,
    submit: ({ vhost, name, body }) => api.put(path`/exchanges/${vhost}/${name}`, { type: type.value, ...body, internal: internal.value === 'true' }),
    onDone: () => table.reload(),
  });
  table = listPage(root, { title: 'Exchanges', resource: 'exchanges', columns, state, signal, perVhost: true, before: [add] });
}
