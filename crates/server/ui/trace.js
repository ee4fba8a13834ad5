// One trace: every span from `in:traces trace_id:…`, paged with cursors, as a header, a
// waterfall and the selected span's details.

import { allRows } from './api.js';
import { $, el, markPainted, show } from './dom.js';
import { clockSet, count, duration, kind, status, time, value } from './format.js';
import { quote } from './query.js';
import { Waterfall } from './waterfall.js';

// The most spans one view loads; a larger trace says it was cut.
const MAX_SPANS = 20000;
// The page a service allows for one trace's spans by default (`--max-trace-limit`): a
// trace of up to this many spans is one request, where pages of 500 were one lookup
// after another.
const TRACE_PAGE = 5000;

let waterfall = null;
let generation = 0;

export async function showTrace(id, onFreshness) {
  const mine = ++generation;
  waterfall ??= new Waterfall($('waterfall-scroll'), $('waterfall-rows'), $('axis'), detail);
  $('trace-header').replaceChildren(el('p', { class: 'muted' }, `Loading trace ${id}…`));
  $('detail').replaceChildren(el('p', { class: 'muted' }, 'Select a span.'));
  show($('trace-error'), false);
  try {
    const q = `in:traces trace_id:${quote(id)} sort:start_time_unix_nano:asc`;
    const { rows, truncated, source } = await allRows(q, MAX_SPANS, TRACE_PAGE);
    if (mine !== generation) return;
    // Where the rows are in and parsed: `srql bench-ui` splits the load here.
    performance.mark('srql:trace-fetched');
    onFreshness({ source, ageSeconds: null });
    header(id, rows, truncated);
    waterfall.show(rows);
    markPainted('srql:trace-painted');
    document.body.dataset.traceLoaded = id;
  } catch (e) {
    if (mine !== generation) return;
    $('trace-error').textContent = e.message;
    show($('trace-error'), true);
  }
}

function header(id, spans, truncated) {
  if (spans.length === 0) {
    $('trace-header').replaceChildren(el('h1', {}, 'Trace not found'), el('p', { class: 'mono' }, id));
    return;
  }
  const roots = spans.filter((s) => !s.parent_span_id);
  const root = roots[0];
  const starts = spans.map((s) => s.start_time_unix_nano).filter(clockSet).map(Number);
  const ends = spans.map((s) => s.end_time_unix_nano).filter(clockSet).map(Number);
  const t0 = starts.reduce((a, b) => Math.min(a, b), Infinity);
  const t1 = ends.reduce((a, b) => Math.max(a, b), t0);
  const services = [...new Set(spans.map((s) => s.service_name).filter(Boolean))].sort();
  const errors = spans.filter((s) => s.status_code === 2).length;
  const fact = (label, v) => el('div', { class: 'fact' }, el('span', { class: 'fact-label' }, label), el('span', { class: 'fact-value' }, v));
  $('trace-header').replaceChildren(
    el('h1', {},
      root ? el('span', { class: 'root-service' }, root.service_name ?? '(no service)') : null,
      root ? ` ${root.name ?? ''}` : el('span', { class: 'muted' }, 'root span not arrived yet')),
    el('div', { class: 'facts' },
      fact('trace', id),
      fact('start', Number.isFinite(t0) ? time(t0) : '–'),
      fact('duration', Number.isFinite(t0) ? duration((t1 - t0) / 1e6) : '–'),
      fact('spans', count(spans.length)),
      fact('errors', count(errors)),
      fact('services', services.join(', '))),
    ...(truncated ? [el('p', { class: 'warning' }, `Showing the first ${count(spans.length)} spans of a larger trace.`)] : []),
  );
}

function table(obj) {
  const entries = obj && typeof obj === 'object' ? Object.entries(obj) : [];
  if (entries.length === 0) return el('p', { class: 'muted' }, 'none');
  return el('table', { class: 'kv' }, el('tbody', {}, entries.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, value(v))))));
}

function detail(s, t0) {
  const offset = (nanos) => (nanos == null ? '–' : `+${duration((Number(nanos) - t0) / 1e6)}`);
  const events = Array.isArray(s.events) ? s.events : [];
  const links = Array.isArray(s.links) ? s.links : [];
  $('detail').replaceChildren(
    el('h2', { class: 'detail-name' }, s.name ?? ''),
    el('table', { class: 'kv' }, el('tbody', {},
      [['service', s.service_name], ['span id', s.span_id], ['parent', s.parent_span_id || '(root)'],
        ['kind', kind(s.kind)], ['status', status(s.status_code)], ['status message', s.status_message || ''],
        ['start', clockSet(s.start_time_unix_nano)
          ? `${time(s.start_time_unix_nano)} (${offset(s.start_time_unix_nano)})`
          : `clock not set (${s.start_time_unix_nano ?? '–'} ns after the epoch)`],
        ['duration', clockSet(s.start_time_unix_nano) ? duration(s.duration_ms) : '–'], ['scope', `${s.scope_name ?? ''} ${s.scope_version ?? ''}`]]
        .map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v ?? '')))),
    ),
    el('h3', {}, 'Attributes'), el('div', { class: 'attributes' }, table(s.attributes)),
    el('h3', {}, 'Resource attributes'), table(s.resource_attributes),
    el('h3', {}, `Events (${events.length})`),
    events.length ? el('ul', { class: 'events' }, events.map((e) => el('li', {},
      el('div', {}, el('strong', {}, e?.name ?? ''), ' ', el('span', { class: 'muted' }, offset(e?.time_unix_nano))),
      table(e?.attributes)))) : el('p', { class: 'muted' }, 'none'),
    el('h3', {}, `Links (${links.length})`),
    links.length ? el('ul', { class: 'links' }, links.map((l) => el('li', {},
      l?.trace_id ? el('a', { href: `/?view=trace&id=${encodeURIComponent(l.trace_id)}`, 'data-nav': true, class: 'mono' }, `${l.trace_id} / ${l.span_id ?? ''}`) : value(l),
      table(l?.attributes)))) : el('p', { class: 'muted' }, 'none'),
  );
}
