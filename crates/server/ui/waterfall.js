// The trace's spans as a tree on one time axis. Only the rows in view are in the DOM, so
// a trace of 10,000 spans scrolls as lightly as one of ten.

import { el } from './dom.js';
import { clockSet, duration, serviceColor } from './format.js';

export const ROW_HEIGHT = 24;
// Rows rendered above and below the visible ones, so fast scrolling shows no gaps.
const OVERSCAN = 20;

/** Spans in tree order (parents before children, siblings by start). Spans whose parent
 * is missing, and any caught in a parent cycle, become roots: nothing is dropped. */
export function tree(spans) {
  const index = new Map();
  spans.forEach((s, i) => { if (!index.has(s.span_id)) index.set(s.span_id, i); });
  const children = spans.map(() => []);
  const roots = [];
  spans.forEach((s, i) => {
    const p = s.parent_span_id ? index.get(s.parent_span_id) : undefined;
    if (p === undefined || p === i) roots.push(i);
    else children[p].push(i);
  });
  const start = (i) => Number(spans[i].start_time_unix_nano ?? 0);
  const byStart = (a, b) => start(a) - start(b);
  children.forEach((c) => c.sort(byStart));
  roots.sort(byStart);

  const nodes = spans.map((s, i) => ({
    span: s,
    index: i,
    depth: 0,
    children: children[i],
    missingParent: Boolean(s.parent_span_id) && !index.has(s.parent_span_id),
  }));
  const order = [];
  const seen = new Uint8Array(spans.length);
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [i, depth] = stack.pop();
      if (seen[i]) continue;
      seen[i] = 1;
      nodes[i].depth = depth;
      order.push(nodes[i]);
      for (let c = children[i].length - 1; c >= 0; c -= 1) stack.push([children[i][c], depth + 1]);
    }
  };
  roots.forEach(walk);
  spans.forEach((_, i) => {
    if (!seen[i]) {
      nodes[i].missingParent = true;
      walk(i);
    }
  });
  return order;
}

/** The nodes shown when the ids in `collapsed` hide their descendants. */
export function visible(order, collapsed) {
  if (collapsed.size === 0) return order;
  const out = [];
  let hideBelow = -1;
  for (const n of order) {
    if (hideBelow >= 0 && n.depth > hideBelow) continue;
    hideBelow = -1;
    out.push(n);
    if (collapsed.has(n.index)) hideBelow = n.depth;
  }
  return out;
}

export class Waterfall {
  constructor(scroller, rows, axis, onSelect) {
    this.scroller = scroller;
    this.rowsEl = rows;
    this.axis = axis;
    this.onSelect = onSelect;
    this.collapsed = new Set();
    this.selected = -1;
    this.frame = 0;
    scroller.onscroll = () => this.schedule();
    window.addEventListener('resize', () => this.schedule());
  }

  show(spans) {
    this.order = tree(spans);
    this.collapsed.clear();
    this.selected = -1;
    // A span whose clock was not set would stretch the axis over decades.
    const starts = spans.map((s) => s.start_time_unix_nano).filter(clockSet).map(Number);
    const ends = spans.map((s) => s.end_time_unix_nano).filter(clockSet).map(Number);
    // A loop, not Math.min(...xs): spreading 10,000+ arguments can overflow the stack.
    this.t0 = starts.reduce((a, b) => Math.min(a, b), starts.length ? Infinity : 0);
    this.t1 = [...ends, ...starts].reduce((a, b) => Math.max(a, b), this.t0 + 1);
    this.rowsEl.dataset.spanCount = String(spans.length);
    this.drawAxis();
    // Before rendering: set after, a scroll from another trace's position would render
    // the rows a second time in the next frame.
    this.scroller.scrollTop = 0;
    this.relayout();
  }

  relayout() {
    this.rows = visible(this.order, this.collapsed);
    this.rowsEl.style.height = `${this.rows.length * ROW_HEIGHT}px`;
    this.rowsEl.dataset.rowCount = String(this.rows.length);
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  drawAxis() {
    const total = (this.t1 - this.t0) / 1e6;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const t = el('span', { class: 'tick' }, duration(total * f));
      t.style.left = `${f * 100}%`;
      return t;
    });
    this.axis.replaceChildren(el('span', { class: 'axis-label' }, 'span'), el('span', { class: 'axis-scale' }, ticks));
  }

  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const out = [];
    for (let r = first; r < last; r += 1) out.push(this.row(this.rows[r], r));
    this.rowsEl.replaceChildren(...out);
  }

  row(n, position) {
    const s = n.span;
    const span = this.t1 - this.t0;
    const start = Number(s.start_time_unix_nano ?? this.t0);
    const end = Number(s.end_time_unix_nano ?? start);
    const error = s.status_code === 2;
    const timed = clockSet(s.start_time_unix_nano);
    const hasChildren = n.children.length > 0;
    const toggle = hasChildren
      ? el('button', {
        class: 'toggle',
        type: 'button',
        'aria-label': this.collapsed.has(n.index) ? 'expand' : 'collapse',
        onclick: (ev) => {
          ev.stopPropagation();
          if (this.collapsed.has(n.index)) this.collapsed.delete(n.index);
          else this.collapsed.add(n.index);
          this.relayout();
        },
      }, this.collapsed.has(n.index) ? '▸' : '▾')
      : el('span', { class: 'toggle' });
    const label = el('div', { class: 'wf-label' },
      toggle,
      el('span', { class: 'wf-service' }, s.service_name ?? '(no service)'),
      el('span', { class: 'wf-name' }, s.name ?? ''),
      error ? el('span', { class: 'wf-flag error-flag', title: 'error' }, 'error') : null,
      n.missingParent ? el('span', { class: 'wf-flag', title: `parent ${s.parent_span_id} has not arrived` }, 'parent missing') : null,
      timed ? null : el('span', { class: 'wf-flag', title: 'this span reports a start time before 2000: its clock was not set' }, 'clock not set'));
    label.style.paddingLeft = `${4 + n.depth * 14}px`;
    const bar = el('div', { class: 'wf-bar' });
    bar.style.left = `${((start - this.t0) / span) * 100}%`;
    bar.style.width = `${Math.max(((end - start) / span) * 100, 0.15)}%`;
    bar.style.backgroundColor = serviceColor(s.service_name);
    bar.hidden = !timed;
    const row = el('div', {
      class: `wf-row${error ? ' error' : ''}${n.index === this.selected ? ' selected' : ''}`,
      dataset: { spanId: s.span_id ?? '', index: String(n.index) },
      onclick: () => {
        this.selected = n.index;
        this.render();
        this.onSelect(s, this.t0);
      },
    }, label, el('div', { class: 'wf-track' }, bar, el('span', { class: 'wf-duration' }, timed ? duration(s.duration_ms) : '–')));
    row.style.top = `${position * ROW_HEIGHT}px`;
    return row;
  }
}
