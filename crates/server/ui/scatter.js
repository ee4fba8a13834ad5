// Duration over time on a canvas: one dot per trace, errors in red. Clicking a dot
// opens its trace.

import { clockSet, duration } from './format.js';

const PAD = { left: 56, right: 12, top: 10, bottom: 22 };
const HIT_RADIUS = 6;

const drawn = new WeakMap();

/** The dots `draw` placed on `canvas`, as `{ row, px, py }` in CSS pixels from its corner. */
export function plotted(canvas) {
  return drawn.get(canvas) ?? [];
}

/** Draws `rows` and returns how many became dots: a trace whose clock was not set has no
 * meaningful duration, so it is left out rather than stretching the axis over decades. */
export function draw(canvas, rows, onPick) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  const height = canvas.clientHeight || 160;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, width, height);

  // x is the trace's `timestamp` (its latest span), the time the range filters on, so
  // every point lies in the range even when a span reports a nonsense start time.
  const pts = rows.filter((r) => Number.isFinite(Date.parse(r.timestamp)) && r.duration_ms != null
    && clockSet(r.start_time_unix_nano));
  const ts = pts.map((r) => Date.parse(r.timestamp));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts, t0 + 1);
  // Durations spread over orders of magnitude: a log axis keeps the fast ones visible.
  const ys = pts.map((r) => Math.log10(Math.max(r.duration_ms, 0.001)));
  const y0 = Math.min(...ys, 0);
  const y1 = Math.max(...ys, y0 + 1);
  const w = width - PAD.left - PAD.right;
  const h = height - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => PAD.top + h - ((v - y0) / (y1 - y0)) * h;

  g.strokeStyle = '#c8ccd4';
  g.fillStyle = '#5b6270';
  g.font = '11px system-ui, sans-serif';
  g.beginPath();
  g.moveTo(PAD.left, PAD.top);
  g.lineTo(PAD.left, PAD.top + h);
  g.lineTo(PAD.left + w, PAD.top + h);
  g.stroke();
  for (let e = Math.ceil(y0); e <= Math.floor(y1); e += 1) {
    const ms = 10 ** e;
    g.fillText(ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`, 4, y(e) + 4);
  }
  if (pts.length) {
    g.fillText(new Date(t0).toLocaleTimeString(), PAD.left, height - 6);
    const end = new Date(t1).toLocaleTimeString();
    g.fillText(end, PAD.left + w - g.measureText(end).width, height - 6);
  }

  const placed = pts.map((r, i) => ({ row: r, px: x(ts[i]), py: y(ys[i]) }));
  // Errors last, so they are drawn on top.
  placed.sort((a, b) => (a.row.error_count > 0) - (b.row.error_count > 0));
  for (const p of placed) {
    g.fillStyle = p.row.error_count > 0 ? 'rgba(209, 59, 59, 0.85)' : 'rgba(59, 111, 209, 0.6)';
    g.beginPath();
    g.arc(p.px, p.py, 3, 0, 2 * Math.PI);
    g.fill();
  }

  drawn.set(canvas, placed);
  const under = (ev) => {
    const r = canvas.getBoundingClientRect();
    const cx = ev.clientX - r.left;
    const cy = ev.clientY - r.top;
    let best = null;
    let bestD = HIT_RADIUS * HIT_RADIUS;
    for (const p of placed) {
      const d = (p.px - cx) ** 2 + (p.py - cy) ** 2;
      if (d <= bestD) { best = p; bestD = d; }
    }
    return best;
  };
  canvas.onclick = (ev) => {
    const best = under(ev);
    if (best) onPick(best.row.trace_id);
  };
  canvas.onmousemove = (ev) => {
    const best = under(ev);
    canvas.title = best ? `${best.row.root_span_name ?? 'root not arrived yet'} · ${duration(best.row.duration_ms)} · ${best.row.trace_id}` : '';
  };
  canvas.classList.toggle('empty', pts.length === 0);
  return pts.length;
}
