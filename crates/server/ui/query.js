// The SRQL text the controls stand for. Pure: no DOM, no fetch.

export const RANGES = {
  '15m': 'last_15m', '1h': 'last_1h', '6h': 'last_6h', '24h': 'last_24h', '7d': 'last_7d',
};
export const DEFAULT_SORT = 'timestamp:desc';

/** A quoted SRQL value: inside quotes only `"` and `\` need escaping. */
export function quote(v) {
  return `"${String(v).replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}

function instant(local) {
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export function timeToken(s) {
  if (s.range === 'custom') return `time:[${instant(s.from)},${instant(s.to)}]`;
  return `time:${RANGES[s.range] ?? RANGES['1h']}`;
}

const ATTRIBUTE_KEY = /^[A-Za-z0-9_.\-]+$/;

/** The filter tokens, or throws an Error naming the control that is wrong. */
export function filterTokens(s) {
  const t = [];
  if (s.service) t.push(`root_service_name:${quote(s.service)}`);
  if (s.op) t.push(`root_span_name:${quote(s.op)}`);
  if (s.status === 'errors') t.push('error_count:>0');
  for (const [name, op] of [['min', '>='], ['max', '<=']]) {
    if (s[name] === '' || s[name] == null) continue;
    const n = Number(s[name]);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} duration must be a number of milliseconds`);
    t.push(`duration_ms:${op}${n}`);
  }
  if (s.attr) {
    const i = s.attr.indexOf('=');
    const key = i > 0 ? s.attr.slice(0, i).trim() : '';
    if (!ATTRIBUTE_KEY.test(key)) throw new Error('span attribute condition must look like key=value');
    t.push(`span.attributes.${key}:${quote(s.attr.slice(i + 1).trim())}`);
  }
  return t;
}

export function listQuery(s) {
  return ['in:otel_trace_summaries', timeToken(s), ...filterTokens(s), `sort:${s.sort || DEFAULT_SORT}`].join(' ');
}

const SORT = /(^|\s)(?:sort|order):\S+/gi;
const TIME = /(?:^|\s)(?:time|timeframe):("[^"]*"|'[^']*'|\[[^\]]*\]|\S+)/i;

export function withoutSort(q) {
  return q.replace(SORT, ' ').trim();
}

export function withSort(q, sort) {
  return `${withoutSort(q)} sort:${sort}`;
}

/** The sort a query asks for (its first key), as `field:dir`. */
export function sortOf(q) {
  const m = /(?:^|\s)(?:sort|order):([A-Za-z0-9_.]+)(?::(asc|desc))?/i.exec(q);
  return m ? `${m[1]}:${(m[2] || 'desc').toLowerCase()}` : DEFAULT_SORT;
}

/** The `time:` token of a query, for the cards that cover its range. */
export function timeOf(q) {
  const m = TIME.exec(q);
  return m ? `time:${m[1]}` : '';
}

/** `at position N:` in an error message, as a UTF-16 range of the query's token. */
export function errorToken(q, message) {
  const m = /at position (\d+)/.exec(message ?? '');
  if (!m) return null;
  const bytes = new TextEncoder().encode(q);
  const at = Number(m[1]);
  if (at > bytes.length) return null;
  const start = new TextDecoder().decode(bytes.slice(0, at)).length;
  const rest = q.slice(start);
  const end = start + (rest.search(/\s/) < 0 ? rest.length : rest.search(/\s/));
  return { start, end: Math.max(end, start + 1) };
}

/** The query for the cards' counts: the list's own query (sort dropped), so the counts
 * are of exactly the traces the list pages through, and "error" means what the status
 * control means: any span with an error. */
export function countsQuery(q) {
  return `${withoutSort(q)} stats:"count() as traces, sum(if(error_count > 0, 1, 0)) as errors"`;
}
