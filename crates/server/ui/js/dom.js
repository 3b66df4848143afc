// dom.js — tiny DOM builder: h('tag.class', {attrs, onEvent}, ...children). Text is always
// inserted as text nodes, never as HTML, so data from the broker cannot inject markup.

let idCounter = 0;

/** A unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Create an element. `sel` is 'tag', 'tag.class.other' or 'tag#id.class'. */
export function h(sel, props = {}, ...children) {
  const [tagAndId, ...classes] = sel.split('.');
  const [tag, id] = tagAndId.split('#');
  const el = document.createElement(tag || 'div');
  if (id) el.id = id;
  if (classes.length) el.classList.add(...classes);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.classList.add(...String(value).split(/\s+/).filter(Boolean));
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A <label> + control pair; the control gets an id if it has none. */
export function field(label, control, hint) {
  const target = control.matches('input, select, textarea') ? control : control.querySelector('input, select, textarea');
  if (!target.id) target.id = uid('f');
  const hintEl = hint ? h('small.hint', { id: `${target.id}-hint` }, hint) : null;
  if (hintEl) target.setAttribute('aria-describedby', hintEl.id);
  return h('div.field', {}, h('label', { for: target.id }, label), control, hintEl);
}

/** A <select> from [value, label] pairs (or plain strings). */
export function select(options, props = {}) {
  return h('select', props, options.map((o) => {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value }, label);
  }));
}

/** A titled page section. */
export function section(title, ...children) {
  const headingId = uid('s');
  return h('section.card', { 'aria-labelledby': headingId }, h('h2', { id: headingId }, title), children);
}

/** A description list from [term, value] pairs; `grid` lays the pairs out as tiles. */
export function dl(pairs, { grid = false } = {}) {
  if (grid) return h('dl.facts', {}, pairs.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
  return h('dl.props', {}, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
