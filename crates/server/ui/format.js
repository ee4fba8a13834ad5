// Display formats shared by the list and the trace view.

export function duration(ms) {
  if (ms == null || !Number.isFinite(ms)) return '–';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// Before 2000 no span was recorded by a working clock: such a start time (a few
// nanoseconds after the epoch, typically) means the sender never set it.
const EARLIEST_NANOS = Date.UTC(2000, 0, 1) * 1e6;

/** Whether a span or trace start time (unix nanoseconds) came from a set clock. */
export function clockSet(nanos) {
  return nanos != null && Number(nanos) >= EARLIEST_NANOS;
}

/** Local time with milliseconds, from unix nanoseconds (a JSON number: precise to well
 * under a microsecond, plenty for display). */
export function time(nanos) {
  if (nanos == null) return '–';
  const d = new Date(Number(nanos) / 1e6);
  if (Number.isNaN(d.getTime())) return '–';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function count(n) {
  return n == null ? '–' : Number(n).toLocaleString('en-US');
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
export const kind = (k) => KINDS[k] ?? String(k);

const STATUSES = ['unset', 'ok', 'error'];
export const status = (s) => (s == null ? '–' : STATUSES[s] ?? String(s));

/** A stable colour per service, so one service has one colour across traces. */
export function serviceColor(name) {
  let h = 0;
  for (const ch of String(name ?? '')) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 52%)`;
}

/** Attribute values as text: strings as they are, anything else as JSON. */
export function value(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}
