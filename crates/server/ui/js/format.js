// format.js — number, rate, byte and time formatting, and safe access to `*_details.rate`.

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const rateFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** 1234567 → "1,234,567"; absent → "–". */
export function fmtInt(n) {
  return typeof n === 'number' && Number.isFinite(n) ? intFmt.format(n) : '–';
}

/** 1.234 → "1.2/s". */
export function fmtRate(n) {
  return `${rateFmt.format(Number(n) || 0)}/s`;
}

/** Bytes with binary units: 1536 → "1.5 KiB". */
export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? intFmt.format(v) : rateFmt.format(v)} ${units[i]}`;
}

/** A bytes-per-second rate: "1.5 KiB/s". */
export function fmtByteRate(n) {
  return `${fmtBytes(Number(n) || 0)}/s`;
}

/** true/false → "yes"/"no"; absent → "–". */
export function fmtBool(b) {
  if (b === undefined || b === null) return '–';
  return b ? 'yes' : 'no';
}

/** Milliseconds since the epoch → local date and time. */
export function fmtTime(ms) {
  return typeof ms === 'number' ? new Date(ms).toLocaleString() : '–';
}

/** obj.message_stats.<stat>_details.rate, 0 when any part is absent. */
export function statRate(obj, stat) {
  return obj?.message_stats?.[`${stat}_details`]?.rate ?? 0;
}

/** obj.<key>_details.rate (e.g. recv_oct), 0 when absent. */
export function detailRate(obj, key) {
  return obj?.[`${key}_details`]?.rate ?? 0;
}

/** Tags come as an array (3.10+) or a comma-separated string (older servers). */
export function normalizeTags(tags) {
  if (Array.isArray(tags)) return tags.filter(Boolean);
  return String(tags || '').split(/[\s,]+/).filter(Boolean);
}

/** The default exchange is named "" in the API and "amq.default" in URLs. */
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

/** JSON for display: arguments, headers, properties. */
export function fmtJson(value) {
  if (value === undefined || value === null) return '–';
  if (typeof value === 'object' && Object.keys(value).length === 0) return '–';
  return JSON.stringify(value);
}
