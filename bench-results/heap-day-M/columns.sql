-- Per-column bytes of one heap day (:part), as stored (pg_column_size: after any
-- compression, before alignment), with the null fraction.
\set ON_ERROR_STOP 1
SELECT count(*) AS rows, pg_relation_size(:'part') AS table_bytes,
       round(pg_relation_size(:'part')::numeric / count(*), 1) AS table_bytes_per_row,
       round(avg(pg_column_size(t.*)), 1) AS avg_row_datum,
       pg_relation_size(:'part') / 8192 AS pages,
       round(count(*)::numeric / (pg_relation_size(:'part') / 8192), 2) AS rows_per_page
FROM ONLY :part t;
SELECT col, round(avg_bytes, 1) AS avg_bytes, round(100 * nulls, 1) AS null_pct
FROM (
  SELECT 'timestamp' col, avg(pg_column_size("timestamp")) avg_bytes, avg(("timestamp" IS NULL)::int) nulls FROM :part
  UNION ALL SELECT 'trace_id', avg(pg_column_size(trace_id)), avg((trace_id IS NULL)::int) FROM :part
  UNION ALL SELECT 'span_id', avg(pg_column_size(span_id)), avg((span_id IS NULL)::int) FROM :part
  UNION ALL SELECT 'parent_span_id', avg(coalesce(pg_column_size(parent_span_id),0)), avg((parent_span_id IS NULL)::int) FROM :part
  UNION ALL SELECT 'name', avg(coalesce(pg_column_size(name),0)), avg((name IS NULL)::int) FROM :part
  UNION ALL SELECT 'kind', avg(coalesce(pg_column_size(kind),0)), avg((kind IS NULL)::int) FROM :part
  UNION ALL SELECT 'start_time_unix_nano', avg(coalesce(pg_column_size(start_time_unix_nano),0)), avg((start_time_unix_nano IS NULL)::int) FROM :part
  UNION ALL SELECT 'end_time_unix_nano', avg(coalesce(pg_column_size(end_time_unix_nano),0)), avg((end_time_unix_nano IS NULL)::int) FROM :part
  UNION ALL SELECT 'service_name', avg(coalesce(pg_column_size(service_name),0)), avg((service_name IS NULL)::int) FROM :part
  UNION ALL SELECT 'service_version', avg(coalesce(pg_column_size(service_version),0)), avg((service_version IS NULL)::int) FROM :part
  UNION ALL SELECT 'service_instance', avg(coalesce(pg_column_size(service_instance),0)), avg((service_instance IS NULL)::int) FROM :part
  UNION ALL SELECT 'scope_name', avg(coalesce(pg_column_size(scope_name),0)), avg((scope_name IS NULL)::int) FROM :part
  UNION ALL SELECT 'scope_version', avg(coalesce(pg_column_size(scope_version),0)), avg((scope_version IS NULL)::int) FROM :part
  UNION ALL SELECT 'status_code', avg(coalesce(pg_column_size(status_code),0)), avg((status_code IS NULL)::int) FROM :part
  UNION ALL SELECT 'status_message', avg(coalesce(pg_column_size(status_message),0)), avg((status_message IS NULL)::int) FROM :part
  UNION ALL SELECT 'attributes', avg(coalesce(pg_column_size(attributes),0)), avg((attributes IS NULL)::int) FROM :part
  UNION ALL SELECT 'resource_attributes', avg(coalesce(pg_column_size(resource_attributes),0)), avg((resource_attributes IS NULL)::int) FROM :part
  UNION ALL SELECT 'events', avg(coalesce(pg_column_size(events),0)), avg((events IS NULL)::int) FROM :part
  UNION ALL SELECT 'links', avg(coalesce(pg_column_size(links),0)), avg((links IS NULL)::int) FROM :part
  UNION ALL SELECT 'created_at', avg(coalesce(pg_column_size(created_at),0)), avg((created_at IS NULL)::int) FROM :part
) c;
-- How many distinct values the per-resource and per-scope columns take in a day.
SELECT count(DISTINCT resource_attributes) AS resources,
       count(DISTINCT (service_name, service_version, service_instance, resource_attributes)) AS resources_with_service_cols,
       count(DISTINCT (scope_name, scope_version)) AS scopes,
       count(DISTINCT name) AS names,
       count(DISTINCT status_message) AS status_messages,
       count(DISTINCT attributes) AS attribute_sets,
       sum((service_name IS DISTINCT FROM resource_attributes->>'service.name')::int) AS service_name_not_from_resource,
       sum((service_version IS DISTINCT FROM resource_attributes->>'service.version')::int) AS service_version_not_from_resource,
       sum((service_instance IS DISTINCT FROM resource_attributes->>'service.instance.id')::int) AS service_instance_not_from_resource,
       sum(("timestamp" IS DISTINCT FROM timestamptz 'epoch' + (start_time_unix_nano / 1000) * interval '1 microsecond')::int) AS timestamp_not_start
FROM :part;
SELECT ic.relname AS index, pg_relation_size(ic.oid) AS bytes,
       round(pg_relation_size(ic.oid)::numeric / (SELECT count(*) FROM :part), 1) AS bytes_per_row
FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
WHERE x.indrelid = :'part'::regclass ORDER BY 2 DESC;
