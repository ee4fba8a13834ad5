// The public HTTP API, as any client uses it: POST /api/query plus the response headers
// that say which path answered and how old the summaries were.

const KEY = 'srql-api-key';
// Bounds the key prompts one request may trigger.
const MAX_ATTEMPTS = 5;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let askKey = null;
let pendingKey = null;

/** `ask(refused)` shows the key prompt and resolves to the key typed, or null. */
export function onKeyNeeded(ask) {
  askKey = ask;
}

function promptKey(refused) {
  pendingKey ??= askKey(refused).finally(() => { pendingKey = null; });
  return pendingKey;
}

export async function query(body) {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
    const sent = sessionStorage.getItem(KEY);
    const headers = { 'content-type': 'application/json' };
    if (sent !== null) headers['x-api-key'] = sent;
    const r = await fetch('/api/query', { method: 'POST', headers, body: JSON.stringify(body) });
    if (r.status === 401 && askKey) {
      // Another request may have stored a new key while this one was in flight.
      if (pendingKey === null && sessionStorage.getItem(KEY) === sent) {
        sessionStorage.removeItem(KEY);
      }
      if (sessionStorage.getItem(KEY) === null) {
        const key = await promptKey(sent !== null);
        if (key === null) throw new ApiError(401, 'this service needs an API key');
        sessionStorage.setItem(KEY, key);
      }
      continue;
    }
    let json = null;
    try {
      json = await r.json();
    } catch {
      // Not JSON: a proxy's page, say. The status says enough.
    }
    if (!r.ok) throw new ApiError(r.status, json?.error ?? `the service answered ${r.status}`);
    const age = parseFloat(r.headers.get('x-srql-summaries-age-seconds'));
    return {
      body: json,
      source: r.headers.get('x-srql-source'),
      ageSeconds: Number.isFinite(age) ? age : null,
    };
  }
  throw new ApiError(401, 'the API key was refused');
}

/** All pages of a query, following `next_cursor`, up to `max` rows, asking for `pageSize`
 * a page (the service may send fewer: its cursor then says where to go on). */
export async function allRows(q, max, pageSize = 500) {
  const rows = [];
  let cursor = null;
  let last = null;
  do {
    const body = { query: q, limit: Math.min(pageSize, max - rows.length) };
    if (cursor) body.cursor = cursor;
    last = await query(body);
    rows.push(...last.body.results);
    cursor = last.body.pagination?.next_cursor;
  } while (cursor && rows.length < max);
  return { rows, truncated: Boolean(cursor), source: last.source };
}

let interval = null;

/** Seconds between summary refreshes (or drains), from /healthz; null if unknown. */
export async function refreshInterval() {
  if (interval !== null) return interval;
  try {
    const r = await fetch('/healthz');
    const h = await r.json();
    interval = h?.refresh?.interval_seconds ?? null;
  } catch {
    interval = null;
  }
  return interval;
}
