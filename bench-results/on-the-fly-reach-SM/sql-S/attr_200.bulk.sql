-- in:otel_trace_summaries time:last_24h span.attributes.http.status_code:200 limit:20
WITH trace_summaries AS (
  SELECT trace_id,
    max(timestamp) AS timestamp,
    max(span_id) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_id,
    max(name) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_name,
    max(service_name) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_service_name,
    max(kind) FILTER (WHERE coalesce(parent_span_id, '') = '') AS root_span_kind,
    min(start_time_unix_nano) AS start_time_unix_nano,
    max(end_time_unix_nano) AS end_time_unix_nano,
    greatest(coalesce(max(end_time_unix_nano) - min(start_time_unix_nano), 0), 0)::float8 / 1e6 AS duration_ms,
    max(status_code) FILTER (WHERE coalesce(parent_span_id, '') = '') AS status_code,
    max(status_message) FILTER (WHERE coalesce(parent_span_id, '') = '') AS status_message,
    coalesce(array_agg(DISTINCT service_name COLLATE "C") FILTER (WHERE service_name IS NOT NULL), '{}') AS service_set,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 2) AS error_count
  FROM otel_traces
  WHERE trace_id IN (SELECT trace_id FROM otel_traces WHERE timestamp >= '2026-12-01T10:34:00+00:00'::timestamptz AND timestamp <= '2026-12-02T10:34:00+00:00'::timestamptz)
  GROUP BY trace_id
)
SELECT timestamp, trace_id, root_span_id, root_span_name, root_service_name, root_span_kind, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, status_message, service_set, span_count, error_count, timestamp AS page_key_0, trace_id AS page_key_1
FROM trace_summaries
WHERE timestamp >= '2026-12-01T10:34:00+00:00'::timestamptz
  AND timestamp <= '2026-12-02T10:34:00+00:00'::timestamptz
  AND EXISTS (SELECT 1 FROM otel_traces WHERE otel_traces.trace_id = trace_summaries.trace_id AND (attributes @> '{"http.status_code":"200"}'::text::jsonb OR attributes @> '{"http.status_code":200}'::text::jsonb))
ORDER BY timestamp DESC, trace_id DESC
LIMIT 21;
