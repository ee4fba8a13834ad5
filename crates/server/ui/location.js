// Every view is a URL: the list's controls, query, sort and page, or one trace. Back,
// forward and shared links restore it.

const KEYS = ['view', 'id', 'q', 'range', 'from', 'to', 'service', 'op', 'status', 'min', 'max',
  'attr', 'sort', 'cursor', 'page', 'live'];

export function read() {
  const p = new URLSearchParams(window.location.search);
  const s = {};
  for (const k of KEYS) s[k] = p.get(k) ?? '';
  s.range ||= '1h';
  s.page = Math.max(1, parseInt(s.page, 10) || 1);
  return s;
}

export function href(state) {
  const p = new URLSearchParams();
  for (const k of KEYS) {
    const v = state[k];
    if (v === '' || v == null || (k === 'page' && v === 1) || (k === 'range' && v === '1h')) continue;
    p.set(k, String(v));
  }
  const qs = p.toString();
  return qs ? `/?${qs}` : '/';
}

export function go(state, { replace = false } = {}) {
  const url = href(state);
  if (url === `${window.location.pathname}${window.location.search}`) return;
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
}

export function traceHref(id, from) {
  return href({ view: 'trace', id, live: from?.live ?? '' });
}
