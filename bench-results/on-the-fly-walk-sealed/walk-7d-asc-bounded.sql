WITH trace_summaries AS (
  SELECT latest.timestamp, latest.trace_id, t.root_span_id, t.root_span_name, t.root_service_name, t.root_span_kind, t.start_time_unix_nano, t.end_time_unix_nano, t.duration_ms, t.status_code, t.status_message, t.service_set, t.span_count, t.error_count
  FROM otel_traces latest
  CROSS JOIN LATERAL srql_trace_extent(ARRAY[latest.trace_id]) ext
  CROSS JOIN LATERAL (SELECT trace_id,
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
  WHERE trace_id = latest.trace_id AND timestamp >= ext.lo AND timestamp <= ext.hi
  GROUP BY trace_id) t
  WHERE NOT EXISTS (
    SELECT 1 FROM otel_traces later
    WHERE later.trace_id = latest.trace_id
      AND later.timestamp >= latest.timestamp
      AND (later.timestamp, later.span_id) > (latest.timestamp, latest.span_id)
  )
)
SELECT timestamp, trace_id, root_span_id, root_span_name, root_service_name, root_span_kind, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, status_message, service_set, span_count, error_count, timestamp AS page_key_0, trace_id AS page_key_1
FROM trace_summaries
WHERE timestamp >= now() - interval '7 days'
GROUP BY timestamp, trace_id, root_span_id, root_span_name, root_service_name, root_span_kind, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, status_message, service_set, span_count, error_count
ORDER BY timestamp ASC, trace_id ASC
LIMIT 101
