// pages/exchange.js — one exchange: details and rates, bindings, publish, delete.

import { h, section, dl, replace } from '../dom.js';
import { path } from '../api.js';
import { fmtBool, fmtJson, fmtRate, statRate, exchangeLabel } from '../format.js';
import { pageHeader } from '../widgets.js';
import { loadOrNotFound, keepFresh, deleteButton } from '../detail.js';
import { exchangeBindings } from '../bindings.js';
import { publishSection } from '../publish-form.js';

function details(x) {
  return dl([
    ['Type', x.type],
    ['Durable', fmtBool(x.durable)],
    ['Auto delete', fmtBool(x.auto_delete)],
    ['Internal', fmtBool(x.internal)],
    ['Arguments', h('code', {}, fmtJson(x.arguments))],
    ['Rate in', fmtRate(statRate(x, 'publish_in'))],
    ['Rate out', fmtRate(statRate(x, 'publish_out'))],
  ], { grid: true });
}

export default async function render(root, { vhost, name: urlName }, { signal }) {
  const name = urlName === 'amq.default' ? '' : urlName;
  const self = path`/exchanges/${vhost}/${name || 'amq.default'}`;
  const first = await loadOrNotFound(root, self, signal, { what: 'Exchange', backHref: '#/exchanges', backText: 'Back to exchanges' });
  if (!first) return;
  const info = h('div');
  const actions = name === '' ? [] : [deleteButton({
    label: 'Delete exchange', url: self, then: '/exchanges', done: `Exchange "${name}" deleted.`,
    message: `Delete exchange "${name}" in vhost ${vhost} and its bindings?`,
  })];

  root.append(
    pageHeader(exchangeLabel(name), { kicker: `Exchange · virtual host ${vhost}`, actions }),
    section('Details', info),
    exchangeBindings(vhost, name),
    publishSection({ vhost, exchange: name }),
  );
  const show = (x) => replace(info, details(x));
  show(first);
  keepFresh(self, signal, show, 'Refreshing the exchange');
}
