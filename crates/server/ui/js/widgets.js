// widgets.js — small shared pieces of page markup: page header, stat tiles, badges, links.

import { h } from './dom.js';
import { path } from './api.js';
import { fmtInt } from './format.js';

/** The page's <h1> (focusable, so navigation can move focus to it) with optional actions. */
export function pageHeader(title, { kicker, actions = [] } = {}) {
  return h('header.page-head', {},
    h('div', {}, kicker ? h('p.kicker', {}, kicker) : null, h('h1', { tabindex: '-1' }, title)),
    actions.length ? h('div.actions', {}, actions) : null);
}

/** A grid of {label, value, href?} tiles; returns {element, set(values)} keyed by `key`. */
export function statTiles(defs, label) {
  const values = {};
  const tiles = defs.map((d) => {
    values[d.key] = h('span.stat-value', {}, '–');
    const inner = [h('span.stat-label', {}, d.label), values[d.key]];
    return h('li', {}, d.href ? h('a.stat', { href: d.href }, inner) : h('div.stat', {}, inner));
  });
  return {
    element: h('ul.stats', { 'aria-label': label }, tiles),
    set(data) {
      for (const d of defs) values[d.key].textContent = (d.format || fmtInt)(data[d.key]);
    },
  };
}

export function badge(text, kind = '') {
  return h(`span.badge${kind ? `.${kind}` : ''}`, {}, text);
}

export function tagBadges(tags) {
  return tags.length ? tags.map((t) => badge(t, t === 'administrator' ? 'accent' : '')) : h('span.muted', {}, 'none');
}

/** State badge: running/idle are fine, anything else stands out. */
export function stateBadge(state) {
  if (!state) return '–';
  return badge(state, ['running', 'idle', 'live'].includes(state) ? 'ok' : 'warn');
}

export function queueHref(vhost, name) {
  return `#${path`/queues/${vhost}/${name}`}`;
}

export function exchangeHref(vhost, name) {
  return `#${path`/exchanges/${vhost}/${name || 'amq.default'}`}`;
}

export function connectionHref(name) {
  return `#${path`/connections/${name}`}`;
}

export function link(href, text) {
  return h('a', { href }, text);
}

/** Link to a binding end: a queue or an exchange. */
export function destinationLink(vhost, type, name) {
  return type === 'exchange' ? link(exchangeHref(vhost, name), name || '(AMQP default)') : link(queueHref(vhost, name), name);
}

/** Feature badges for a queue or exchange: durable, auto-delete, exclusive, internal, args. */
export function featureBadges(o) {
  const args = Object.keys(o.arguments || {});
  return [
    o.durable ? badge('durable') : badge('transient'),
    o.auto_delete ? badge('auto-delete') : null,
    o.exclusive ? badge('exclusive') : null,
    o.internal ? badge('internal') : null,
    args.length ? h('span.badge', { title: args.join(', ') }, `${args.length} arg${args.length > 1 ? 's' : ''}`) : null,
  ];
}

/** Replace a detail page's content when its object does not exist (HTTP 404). */
export function notFound(root, what, backHref, backText) {
  root.replaceChildren(
    pageHeader(`${what} not found`),
    h('p', {}, `It may have been deleted. `, link(backHref, backText)));
}

/** Tabs shared by the admin pages. */
export function adminTabs(current) {
  const tab = (key, href, text) => h('a', { href, 'aria-current': key === current ? 'page' : null }, text);
  return h('nav.subnav', { 'aria-label': 'Admin' }, tab('users', '#/admin/users', 'Users'), tab('vhosts', '#/admin/vhosts', 'Virtual hosts'));
}
