// The traces list: controls, query bar, cards, scatter plot, the page of rows, paging.

import { query, ApiError } from './api.js';
import { $, el, markPainted, show } from './dom.js';
import { clockSet, count, duration, time } from './format.js';
import * as loc from './location.js';
import {
  DEFAULT_SORT, countsQuery, errorToken, filterTokens, listQuery, sortOf, timeOf, timeToken, withSort,
} from './query.js';
import { draw } from './scatter.js';

export const PAGE_SIZE = 50;
// The scatter plot's points: the slowest matching traces, which are the ones worth
// clicking; the caption says so.
const SCATTER_POINTS = 500;

const CONTROLS = ['range', 'from', 'to', 'service', 'op', 'status', 'min', 'max', 'attr'];
const INPUT_OF = { op: 'operation' };
const input = (k) => $(INPUT_OF[k] ?? k);

let state = null;
let generation = 0;
let pickersFor = null;
let reportFreshness = () => {};

export function init(onFreshness) {
  reportFreshness = onFreshness;
  $('controls').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = { ...state, q: '', cursor: '', page: 1 };
    for (const k of CONTROLS) next[k] = input(k).value.trim();
    try {
      filterTokens(next);
    } catch (e) {
      return showError(e.message);
    }
    navigate(next);
  });
  $('range').addEventListener('change', () => {
    show($('custom-range'), $('range').value === 'custom');
    if ($('range').value !== 'custom') $('controls').requestSubmit();
  });
  $('status').addEventListener('change', () => $('controls').requestSubmit());
  $('query-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('query').value.trim();
    navigate({ ...state, q, sort: sortOf(q), cursor: '', page: 1 });
  });
  for (const th of document.querySelectorAll('#traces th[data-sort]')) {
    th.addEventListener('click', () => {
      const field = th.dataset.sort;
      const [cur, dir] = (state.sort || DEFAULT_SORT).split(':');
      const sort = `${field}:${cur === field && dir === 'desc' ? 'asc' : 'desc'}`;
      navigate({ ...state, sort, q: state.q ? withSort(state.q, sort) : '', cursor: '', page: 1 });
    });
  }
  $('next').addEventListener('click', () => page('next'));
  $('prev').addEventListener('click', () => page('prev'));
}

function navigate(next) {
  loc.go(next);
  showList(loc.read());
}

function page(direction) {
  const cursor = direction === 'next' ? state.nextCursor : state.prevCursor;
  if (!cursor) return;
  navigate({ ...state, cursor, page: state.page + (direction === 'next' ? 1 : -1) });
}

function currentQuery(s) {
  return s.q || listQuery(s);
}

function showError(message, q) {
  const box = $('query-error');
  const at = q ? errorToken(q, message) : null;
  box.replaceChildren(el('div', { class: 'error-message' }, message));
  if (at) {
    box.append(el('pre', { class: 'query-echo' },
      q.slice(0, at.start), el('mark', {}, q.slice(at.start, at.end)), q.slice(at.end)));
    const bar = $('query');
    if (bar.value === q) bar.setSelectionRange(at.start, at.end);
  }
  show(box, true);
}

function fillControls(s) {
  const typing = document.activeElement && $('controls').contains(document.activeElement);
  if (typing) return;
  for (const k of CONTROLS) input(k).value = s[k] ?? '';
  show($('custom-range'), s.range === 'custom');
}

/** Renders the list for `s` (from the URL). `live` refreshes in place: no control or query
 * bar the user may be editing is overwritten, and the scroll position stays. */
export async function showList(s, { live = false } = {}) {
  const mine = ++generation;
  state = { ...s, sort: s.sort || sortOf(s.q || '') };
  let q;
  try {
    q = currentQuery(state);
  } catch (e) {
    showError(e.message);
    return;
  }
  if (!live) {
    fillControls(state);
    $('query').value = q;
    show($('query-error'), false);
  }
  markSort(state.sort);
  const body = { query: q, limit: PAGE_SIZE };
  if (state.cursor) body.cursor = state.cursor;
  const range = state.q ? timeOf(state.q) : timeToken(state);

  const rows = query(body).then((r) => {
    if (mine !== generation) return null;
    renderRows(r.body.results, r.body.pagination);
    markPainted('srql:rows-painted');
    reportFreshness(r);
    return r.body.results;
  }, (e) => {
    if (mine !== generation) return null;
    if (e instanceof ApiError) showError(e.message, q);
    else showError(`the service did not answer: ${e.message}`);
    renderRows([], {});
    return null;
  });
  // The rest waits for the first page: on a small machine its five queries (counts,
  // rollup, plot, two group-bys) would otherwise share the CPU with the one the user waits
  // for, and with the browser painting it.
  const current = () => mine === generation;
  const cards = rows.then(() => current() && loadCards(q, range, mine));
  const scatter = rows.then(() => (current() ? loadScatter(q, mine) : null));
  const needPickers = pickersFor !== range;
  if (needPickers) pickersFor = range;
  const pickers = needPickers ? scatter.then(() => loadPickers(range, Promise.all([rows, scatter]))) : null;
  await Promise.allSettled([rows, cards, scatter, pickers]);
  if (mine === generation) document.body.dataset.listLoaded = String(mine);
}

function markSort(sort) {
  const [field, dir] = sort.split(':');
  for (const th of document.querySelectorAll('#traces th[data-sort]')) {
    th.classList.toggle('sorted', th.dataset.sort === field);
    th.dataset.dir = th.dataset.sort === field ? dir : '';
    th.setAttribute('aria-sort', th.dataset.sort === field ? (dir === 'asc' ? 'ascending' : 'descending') : 'none');
  }
}

const UNSET_CLOCK = 'a span of this trace reports a start time before 2000: its clock was not set, so the trace has no meaningful start or duration';

function renderRows(rows, pagination) {
  // A trace whose clock was unset has a duration of decades (or zero): it would shrink
  // every other bar to nothing, so it neither sets the scale nor gets a bar.
  const timed = (r) => clockSet(r.start_time_unix_nano);
  const max = rows.reduce((m, r) => (timed(r) ? Math.max(m, r.duration_ms ?? 0) : m), 0) || 1;
  const tbody = $('traces').tBodies[0];
  tbody.replaceChildren(...rows.map((r) => {
    const href = loc.traceHref(r.trace_id, state);
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${timed(r) ? ((r.duration_ms ?? 0) / max) * 100 : 0}%`;
    const services = r.service_set ?? [];
    return el('tr', { dataset: { traceId: r.trace_id }, class: r.error_count > 0 ? 'has-errors' : '' },
      el('td', { class: 'mono start' }, timed(r) ? time(r.start_time_unix_nano) : el('span', { class: 'muted', title: UNSET_CLOCK }, 'clock not set')),
      el('td', {}, r.root_service_name ?? el('span', { class: 'muted' }, '–')),
      el('td', { class: 'op' }, r.root_span_name ?? el('span', { class: 'muted' }, 'root not arrived yet')),
      el('td', { class: 'duration' },
        timed(r) ? el('span', { class: 'dur-text' }, duration(r.duration_ms)) : el('span', { class: 'dur-text muted', title: UNSET_CLOCK }, 'unknown'),
        el('span', { class: 'bar-track' }, bar)),
      el('td', { class: 'num' }, count(r.span_count)),
      el('td', { class: `num${r.error_count > 0 ? ' errors' : ''}` }, count(r.error_count)),
      el('td', { class: 'services', title: services.join(', ') }, `${services.length}: ${services.join(', ')}`),
      el('td', { class: 'mono' }, el('a', { href, 'data-nav': true }, r.trace_id)));
  }));
  if (rows.length === 0) {
    tbody.append(el('tr', {}, el('td', { colspan: 8, class: 'muted empty' }, 'No traces match.')));
  }
  state.nextCursor = pagination.next_cursor ?? null;
  state.prevCursor = pagination.prev_cursor ?? null;
  $('next').disabled = !state.nextCursor;
  $('prev').disabled = !state.prevCursor;
  $('page-info').textContent = `page ${state.page}${state.live && state.page > 1 ? ' (live refresh pauses past the first page)' : ''}`;
}

async function loadCards(q, range, mine) {
  const card = (label, v, cls = '', title = '') => el('div', { class: `card ${cls}`, title: title || null },
    el('div', { class: 'card-value' }, v), el('div', { class: 'card-label' }, label));
  const unavailable = (e) => el('div', { class: 'card muted' }, `unavailable: ${e.message}`);
  // Durations have no SRQL aggregate over summaries; the rollup over root spans is exact
  // but counts only traces whose root arrived and ignores the list's other filters, so its
  // cards say so.
  const [counts, rollup] = await Promise.allSettled([
    query({ query: countsQuery(q) }),
    query({ query: `in:otel_traces ${range} rollup_stats:summary` }),
  ]);
  if (mine !== generation) return;
  const parts = [];
  if (counts.status === 'fulfilled') {
    const c = counts.value.body.results[0] ?? {};
    parts.push(
      card('matching traces', count(c.traces), 'card-traces', 'Every trace the list below pages through'),
      card('with errors', count(c.errors), `card-errors${c.errors > 0 ? ' bad' : ''}`, 'Matching traces with at least one error span'),
    );
  } else {
    parts.push(unavailable(counts.reason));
  }
  if (rollup.status === 'fulfilled') {
    const r = rollup.value.body.results[0] ?? {};
    const of = `of all ${count(r.total)} root spans in range`;
    parts.push(
      card(`average duration ${of}`, duration(r.avg_duration_ms), 'card-avg', 'Other filters do not apply; traces whose root has not arrived are not counted'),
      card(`p95 duration ${of}`, duration(r.p95_duration_ms), 'card-p95', 'Other filters do not apply; traces whose root has not arrived are not counted'),
    );
  } else {
    parts.push(unavailable(rollup.reason));
  }
  $('cards').replaceChildren(...parts);
}

async function loadScatter(q, mine) {
  try {
    const r = await query({ query: withSort(q, 'duration_ms:desc'), limit: SCATTER_POINTS });
    if (mine !== generation) return null;
    const rows = r.body.results;
    const dots = draw($('scatter'), rows, (id) => {
      loc.go({ view: 'trace', id, live: state.live });
      window.dispatchEvent(new PopStateEvent('popstate'));
    });
    const which = rows.length < SCATTER_POINTS
      ? `All ${rows.length} matching traces`
      : `The ${SCATTER_POINTS} slowest matching traces`;
    const left = rows.length - dots;
    $('scatter-caption').textContent = `${which}, duration (log scale) over time; red: traces with errors. Click a dot to open its trace.${
      left > 0 ? ` ${left} left out: a span's clock was not set, so their duration means nothing.` : ''}`;
    return rows;
  } catch {
    if (mine === generation) $('scatter-caption').textContent = 'No plot: the query failed.';
    return null;
  }
}

/** Service and operation suggestions: SRQL group-by stats where the service has them,
 * else the distinct values of the rows already fetched. */
async function loadPickers(range, fetched) {
  const fill = (id, values) => $(id).replaceChildren(...[...values].sort().map((v) => el('option', { value: v })));
  for (const [field, list] of [['root_service_name', 'services'], ['root_span_name', 'operations']]) {
    try {
      const r = await query({ query: `in:otel_trace_summaries ${range} stats:"count() as traces by ${field}"`, limit: 500 });
      const values = r.body.results.map((row) => row[field]).filter((v) => typeof v === 'string');
      if (values.length || r.body.results.length === 0) {
        fill(list, values);
        continue;
      }
    } catch {
      // No group-by on this service: fall back to the rows at hand.
    }
    const [rows, scatter] = await fetched;
    fill(list, new Set([...(rows ?? []), ...(scatter ?? [])].map((r) => r[field]).filter(Boolean)));
  }
}
