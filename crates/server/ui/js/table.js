// table.js — data tables. dataTable renders rows from columns; pagedTable adds server-side
// paging, name filtering (debounced) and sorting, fetching exactly one page at a time.

import { h, replace, uid } from './dom.js';
import { every } from './api.js';
import { fmtInt } from './format.js';

/**
 * columns: [{label, render(item) → node|string, num?: bool, sort?: 'api sort key'}].
 * onSort(col) is called when a sortable header is activated.
 */
export function dataTable({ caption, columns, empty = 'Nothing to show.', onSort }) {
  const tbody = h('tbody');
  const headers = columns.map((col) => {
    const th = h('th', { scope: 'col', class: col.num ? 'num' : '' });
    if (col.sort && onSort) {
      th.append(h('button.sort', { type: 'button', onClick: () => onSort(col) }, col.label, h('span.sort-icon', { 'aria-hidden': 'true' })));
    } else {
      th.append(col.label);
    }
    return th;
  });
  const table = h('table', {}, h('caption.sr-only', {}, caption), h('thead', {}, h('tr', {}, headers)), tbody);
  const element = h('div.table-wrap', { role: 'region', 'aria-label': `${caption} table`, tabindex: '0' }, table);
  return {
    element,
    tbody,
    setRows(items) {
      element.dataset.rows = String(items.length);
      if (!items.length) {
        replace(tbody, h('tr', {}, h('td.empty', { colspan: columns.length }, empty)));
        return;
      }
      replace(tbody, items.map((item) => h('tr', {}, columns.map((col) => h('td', { class: col.num ? 'num' : '' }, col.render(item))))));
    },
    /** Mark the sorted column (aria-sort). */
    setSort(key, reverse) {
      columns.forEach((col, i) => {
        const active = col.sort && col.sort === key;
        if (active) headers[i].setAttribute('aria-sort', reverse ? 'descending' : 'ascending');
        else headers[i].removeAttribute('aria-sort');
      });
    },
  };
}

/** Table state kept per list page, so coming back keeps filter, sort and page. */
export function tableState(sort = 'name') {
  return { page: 1, pageSize: 50, name: '', regex: false, sort, reverse: false };
}

function pager(onPage) {
  const info = h('p.pager-info', { 'aria-live': 'polite' });
  const pageInput = h('input', { type: 'number', min: 1, id: uid('page'), class: 'page-input' });
  const of = h('span');
  const btn = (label, text, fn) => h('button.btn.secondary.small', { type: 'button', 'aria-label': label, onClick: fn }, text);
  const first = btn('First page', '«', () => onPage(1));
  const prev = btn('Previous page', '‹', () => onPage('prev'));
  const next = btn('Next page', '›', () => onPage('next'));
  const last = btn('Last page', '»', () => onPage('last'));
  pageInput.addEventListener('change', () => onPage(Number(pageInput.value) || 1));
  const element = h('div.pager', {}, info,
    h('div.pager-controls', {}, first, prev, h('label', { for: pageInput.id }, 'Page'), pageInput, of, next, last));
  return {
    element,
    update(data, state) {
      const count = data.page_count || 0;
      const start = data.item_count ? (data.page - 1) * data.page_size + 1 : 0;
      const end = start ? start + data.item_count - 1 : 0;
      const filtered = data.filtered_count !== data.total_count ? ` (filtered from ${fmtInt(data.total_count)})` : '';
      info.textContent = `${fmtInt(start)}–${fmtInt(end)} of ${fmtInt(data.filtered_count)}${filtered}`;
      pageInput.value = state.page;
      pageInput.max = Math.max(count, 1);
      of.textContent = `of ${fmtInt(Math.max(count, 1))}`;
      first.disabled = prev.disabled = state.page <= 1;
      next.disabled = last.disabled = state.page >= count;
    },
  };
}

/**
 * A server-paged table. `fetchPage(state, signal)` resolves to RabbitMQ's paged answer
 * {items, page, page_size, page_count, filtered_count, item_count, total_count}.
 * `tools`: extra toolbar controls (e.g. a vhost selector). Refreshes every `refreshMs`.
 */
export function pagedTable({ caption, columns, state, fetchPage, tools = [], signal, refreshMs = 5000, filterLabel = 'Filter by name' }) {
  let seq = 0;
  let lastData = null;
  const table = dataTable({
    caption, columns, empty: 'No matching items.',
    onSort(col) {
      if (state.sort === col.sort) state.reverse = !state.reverse;
      else { state.sort = col.sort; state.reverse = Boolean(col.num); }
      load();
    },
  });
  const errorBox = h('p.table-error', { role: 'alert', hidden: true });
  const pages = pager((p) => {
    const count = lastData?.page_count || 1;
    if (p === 'prev') state.page = Math.max(1, state.page - 1);
    else if (p === 'next') state.page = Math.min(count, state.page + 1);
    else if (p === 'last') state.page = count;
    else state.page = Math.min(Math.max(1, p), count);
    load();
  });

  const search = h('input', { type: 'search', id: uid('filter'), value: state.name, placeholder: 'Name contains…', autocomplete: 'off', spellcheck: 'false' });
  const regex = h('input', { type: 'checkbox', id: uid('regex'), checked: state.regex });
  const size = h('select', { id: uid('size') }, [20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === state.pageSize }, n)));
  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.name = search.value; state.page = 1; load(); }, 300);
  });
  regex.addEventListener('change', () => { state.regex = regex.checked; state.page = 1; load(); });
  size.addEventListener('change', () => { state.pageSize = Number(size.value); state.page = 1; load(); });

  const toolbar = h('div.toolbar', {}, tools,
    h('div.field.grow', {}, h('label', { for: search.id }, filterLabel), search),
    h('div.field.check', {}, regex, h('label', { for: regex.id }, 'Regex')),
    h('div.field', {}, h('label', { for: size.id }, 'Per page'), size));
  const element = h('div.paged', { dataset: { state: 'loading' } }, toolbar, errorBox, table.element, pages.element);

  async function load({ background = false } = {}) {
    // Don't rebuild rows under the keyboard focus during a background refresh.
    if (background && table.tbody.contains(document.activeElement)) return;
    const mine = ++seq;
    if (!background) element.dataset.state = 'loading';
    try {
      const data = await fetchPage(state, signal);
      if (mine !== seq || signal?.aborted) return;
      if (data.page_count > 0 && state.page > data.page_count) {
        state.page = data.page_count;
        load();
        return;
      }
      lastData = data;
      table.setRows(data.items || []);
      table.setSort(state.sort, state.reverse);
      pages.update(data, state);
      errorBox.hidden = true;
      element.dataset.state = 'ready';
    } catch (err) {
      if (mine !== seq || err.name === 'AbortError') return;
      if (err.error === 'page_out_of_range' && state.page > 1) {
        state.page = 1;
        load();
        return;
      }
      const text = typeof err.describe === 'function' ? err.describe() : String(err);
      if (errorBox.textContent !== text || errorBox.hidden) { errorBox.textContent = text; errorBox.hidden = false; }
      element.dataset.state = 'error';
    }
  }

  let started = false;
  every(refreshMs, () => {
    const first = !started;
    started = true;
    return load({ background: !first });
  }, signal);
  return { element, reload: () => load() };
}

/** The query parameters RabbitMQ's paged list endpoints take. */
export function pageParams(state) {
  return {
    page: state.page, page_size: state.pageSize, name: state.name, use_regex: state.regex,
    sort: state.sort, sort_reverse: state.reverse, pagination: true,
  };
}
