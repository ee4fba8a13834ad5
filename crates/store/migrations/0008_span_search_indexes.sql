-- Search inside traces (issue 13). Equality on a span attribute is written as jsonb
-- containment (`attributes @> '{"http.status_code": 503}'`), which this GIN index
-- answers. jsonb_path_ops rather than the default jsonb_ops: it indexes one hash per
-- key/value path instead of separate key and value entries, so it is smaller and cheaper
-- to maintain on the ingest path; it cannot answer key existence (`?`), which stays a
-- filter on the rows the other conditions select. A rare value is then found from the
-- span side; a common one is found faster from the summaries in sort order, probing
-- each trace's spans by trace_id (the planner chooses from the statistics).
CREATE INDEX otel_traces_attributes_idx ON otel_traces USING gin (attributes jsonb_path_ops);

-- `span.service_name:X span.duration_ms:>N` (a slow span of one service) is rare: without
-- this index the planner walks the summaries in time order probing every trace (2.3 s at
-- 1M spans); with it, the matching spans are one range scan (7 ms). The expression is
-- srql_plan::schema::SPAN_DURATION_MS, character for character, or the planner will not
-- match it.
CREATE INDEX otel_traces_service_duration_idx ON otel_traces
    (service_name, (greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6));

-- A bulk-loaded day builds its partition's indexes itself (migration 0005); it builds
-- this one too, named as PostgreSQL names a partition's, so ATTACH adopts it.
CREATE OR REPLACE FUNCTION srql_load_stage_index(stage text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE INDEX %I ON %I (timestamp DESC)', stage || '_timestamp_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I (trace_id)', stage || '_trace_id_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I (service_name, timestamp DESC)',
                   stage || '_service_name_timestamp_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I USING gin (attributes jsonb_path_ops)',
                   stage || '_attributes_idx', stage);
    EXECUTE format('CREATE INDEX %I ON %I (service_name, (greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6))',
                   stage || '_service_name_expr_idx', stage);
END $$;
