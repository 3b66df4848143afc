// chart.js — a small time-series line chart on <canvas>: y axis with nice ticks, clock-time
// x axis, HTML legend with the latest values, and a text summary for screen readers.
// The figure's data-samples attribute counts the samples drawn (used by the browser test).

import { h, uid } from './dom.js';

const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 2 });
const HEIGHT = 220;
const PAD = { top: 12, right: 14, bottom: 26 };

/** Round `max` up to a readable axis top; returns {top, step}. */
function niceScale(max, integer) {
  if (!(max > 0)) return integer ? { top: 4, step: 1 } : { top: 1, step: 0.25 };
  const rough = max / 4;
  const pow = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= rough);
  if (integer) step = Math.max(1, Math.ceil(step));
  return { top: step * Math.ceil(max / step), step };
}

const TICK_STEPS = [10, 15, 30, 60, 120, 300].map((s) => s * 1000);

/** The x-axis tick interval giving at most 6 ticks over `span` ms. */
function tickStep(span) {
  return TICK_STEPS.find((step) => span / step <= 6) ?? TICK_STEPS[TICK_STEPS.length - 1];
}

function clock(t, withSeconds) {
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: withSeconds ? '2-digit' : undefined });
}

/**
 * series: [{key, label, color: 'CSS var name'}]; format(value) for legend/summary;
 * integer: y ticks are whole numbers; the time axis spans the samples, at least minMs and
 * at most maxMs; gapMs: a longer pause between samples breaks the line.
 */
export function lineChart({ title, series, format, integer = false, minMs = 120_000, maxMs = 600_000, gapMs = 20_000, signal }) {
  const summaryId = uid('chart-summary');
  const canvas = h('canvas', { role: 'img', 'aria-label': title, 'aria-describedby': summaryId });
  const box = h('div.chart-box', {}, canvas);
  const legendValues = {};
  const legend = h('ul.legend', {}, series.map((s) => {
    legendValues[s.key] = h('span.legend-value', {}, '–');
    const swatch = h('span.swatch', { 'aria-hidden': 'true' });
    swatch.style.setProperty('--swatch', `var(${s.color})`);
    return h('li', {}, swatch, h('span', {}, s.label), legendValues[s.key]);
  }));
  const summary = h('p.sr-only', { id: summaryId }, 'No data yet.');
  const element = h('figure.chart', { dataset: { samples: '0' } }, h('figcaption', {}, title), legend, box, summary);
  let samples = [];

  function draw() {
    const width = Math.max(240, Math.floor(box.clientWidth));
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(HEIGHT * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(HEIGHT * dpr);
    }
    const ctx = canvas.getContext('2d');
    const css = getComputedStyle(element);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    ctx.font = `12px ${css.fontFamily}`;

    const max = Math.max(0, ...samples.flatMap((s) => series.map((se) => s.values[se.key] || 0)));
    const { top, step } = niceScale(max, integer);
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    const left = Math.ceil(Math.max(...ticks.map((v) => ctx.measureText(compact.format(v)).width))) + 12;
    const plotW = width - left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const tEnd = samples.length ? samples[samples.length - 1].t : Date.now();
    const windowMs = Math.min(maxMs, Math.max(minMs, samples.length ? tEnd - samples[0].t : 0));
    const tStart = tEnd - windowMs;
    const x = (t) => left + ((t - tStart) / windowMs) * plotW;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;

    // Grid and y labels.
    ctx.strokeStyle = css.getPropertyValue('--chart-grid');
    ctx.fillStyle = css.getPropertyValue('--chart-text');
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of ticks) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + plotW, yy); ctx.stroke();
      ctx.fillText(compact.format(v), left - 8, yy);
    }
    // X labels at round clock times; labels that would spill past the plot are left out.
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const tick = tickStep(windowMs);
    for (let t = Math.ceil(tStart / tick) * tick; t <= tEnd; t += tick) {
      const xx = Math.round(x(t)) + 0.5;
      const label = clock(t, tick < 60_000);
      const half = ctx.measureText(label).width / 2;
      ctx.beginPath(); ctx.moveTo(xx, PAD.top + plotH); ctx.lineTo(xx, PAD.top + plotH + 4); ctx.stroke();
      if (xx - half >= left - 8 && xx + half <= width) ctx.fillText(label, xx, PAD.top + plotH + 8);
    }
    ctx.strokeStyle = css.getPropertyValue('--chart-axis');
    ctx.beginPath(); ctx.moveTo(left, PAD.top + plotH + 0.5); ctx.lineTo(left + plotW, PAD.top + plotH + 0.5); ctx.stroke();

    // Series, later ones on top; a long pause between samples breaks the line.
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    for (const s of series) {
      const color = css.getPropertyValue(s.color);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      let prev = null;
      for (const sample of samples) {
        const px = x(sample.t);
        const py = y(sample.values[s.key] || 0);
        if (prev && sample.t - prev.t <= gapMs) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        prev = sample;
      }
      ctx.stroke();
      if (prev) {
        ctx.beginPath(); ctx.arc(x(prev.t), y(prev.values[s.key] || 0), 3, 0, Math.PI * 2); ctx.fill();
      }
    }
  }

  function describe() {
    const last = samples[samples.length - 1];
    if (!last) return;
    const peak = (key) => Math.max(...samples.map((s) => s.values[key] || 0));
    const seconds = Math.round((last.t - samples[0].t) / 1000);
    const span = seconds < 120 ? `${seconds} seconds` : `${Math.round(seconds / 60)} minutes`;
    const latest = series.map((s) => `${s.label} ${format(last.values[s.key] || 0)} (peak ${format(peak(s.key))})`).join(', ');
    summary.textContent = `${title} over the last ${span}, ${samples.length} samples. Latest: ${latest}.`;
    for (const s of series) legendValues[s.key].textContent = format(last.values[s.key] || 0);
  }

  const resize = new ResizeObserver(() => draw());
  resize.observe(box);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  scheme.addEventListener('change', draw);
  signal?.addEventListener('abort', () => { resize.disconnect(); scheme.removeEventListener('change', draw); });

  return {
    element,
    /** Redraw with `list`: [{t: ms, values: {key: number}}], oldest first. */
    update(list) {
      samples = list;
      element.dataset.samples = String(samples.length);
      draw();
      describe();
    },
  };
}
