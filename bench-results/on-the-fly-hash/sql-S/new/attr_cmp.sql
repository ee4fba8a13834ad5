-- in:otel_trace_summaries time:last_24h span.attributes.http.status_code:>=500 limit:20
WITH srql_long_traces AS MATERIALIZED (
  SELECT trace_id, min(first_ts) AS first_ts, max(last_ts) AS last_ts FROM (
    SELECT trace_id, first_ts, last_ts FROM srql_summary_extent
    WHERE last_ts - first_ts > interval '300 seconds'
      AND last_ts >= '2026-12-01T22:35:58+00:00'::timestamptz
      AND first_ts <= '2026-12-02T22:35:58+00:00'::timestamptz
    UNION ALL
    SELECT l.trace_id, least(min(l.first_ts), min(e.first_ts)), greatest(max(l.last_ts), max(e.last_ts))
    FROM srql_summary_log l LEFT JOIN srql_summary_extent e ON e.trace_id = l.trace_id
    WHERE l.first_ts IS NOT NULL
    GROUP BY l.trace_id
    HAVING greatest(max(l.last_ts), max(e.last_ts)) - least(min(l.first_ts), min(e.first_ts)) > interval '300 seconds'
      AND greatest(max(l.last_ts), max(e.last_ts)) >= '2026-12-01T22:35:58+00:00'::timestamptz
      AND least(min(l.first_ts), min(e.first_ts)) <= '2026-12-02T22:35:58+00:00'::timestamptz
  ) long
  GROUP BY trace_id
),
trace_summaries AS (
  SELECT * FROM (
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
    NULL::text[] AS service_set,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 2) AS error_count,
    min(timestamp) AS srql_first_span
  FROM (SELECT trace_id, timestamp, span_id, parent_span_id, name, service_name, kind, start_time_unix_nano, end_time_unix_nano, status_code, status_message, (CASE WHEN jsonb_typeof(attributes -> 'http.status_code'::text) = 'number' THEN (attributes -> 'http.status_code'::text)::numeric END >= '500'::text::numeric) IS TRUE AS srql_span_match FROM otel_traces WHERE timestamp >= '2026-12-01T22:30:58+00:00'::timestamptz AND timestamp <= '2026-12-02T22:40:58+00:00'::timestamptz) flagged
  GROUP BY trace_id
  HAVING bool_or(srql_span_match)
  ) near
  WHERE near.trace_id NOT IN (SELECT trace_id FROM srql_long_traces)
  UNION ALL
  SELECT t.* FROM srql_long_traces long
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
    NULL::text[] AS service_set,
    count(*) AS span_count,
    count(*) FILTER (WHERE status_code = 2) AS error_count,
    min(timestamp) AS srql_first_span
  FROM (SELECT trace_id, timestamp, span_id, parent_span_id, name, service_name, kind, start_time_unix_nano, end_time_unix_nano, status_code, status_message, (CASE WHEN jsonb_typeof(attributes -> 'http.status_code'::text) = 'number' THEN (attributes -> 'http.status_code'::text)::numeric END >= '500'::text::numeric) IS TRUE AS srql_span_match FROM otel_traces WHERE trace_id = long.trace_id AND timestamp >= long.first_ts AND timestamp <= long.last_ts) flagged
  GROUP BY trace_id
  HAVING bool_or(srql_span_match)) t
)
SELECT timestamp, trace_id, root_span_id, root_span_name, root_service_name, root_span_kind, start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, status_message, (SELECT coalesce(array_agg(DISTINCT service_name COLLATE "C") FILTER (WHERE service_name IS NOT NULL), '{}') FROM otel_traces WHERE trace_id = srql_page.trace_id AND timestamp >= srql_page.srql_first_span AND timestamp <= srql_page.timestamp) AS service_set, span_count, error_count, timestamp AS page_key_0, trace_id AS page_key_1
FROM (
  SELECT * FROM trace_summaries
WHERE timestamp >= '2026-12-01T22:35:58+00:00'::timestamptz
  AND timestamp <= '2026-12-02T22:35:58+00:00'::timestamptz
  ORDER BY timestamp DESC, trace_id DESC
  LIMIT 21
) srql_page
ORDER BY timestamp DESC, trace_id DESC;
