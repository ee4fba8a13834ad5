SELECT * FROM (SELECT 
trace_id,
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
  FROM otel_traces WHERE timestamp >= '2026-12-01T22:36:12Z' AND timestamp <= '2026-12-02T22:36:12Z' GROUP BY trace_id) t ORDER BY timestamp DESC, trace_id DESC LIMIT 100;
