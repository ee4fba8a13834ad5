-- Server-side binary COPY of the day into an empty table with the heap day's 7 indexes,
-- as stored now and with resources and scopes once and ids as bytes (the writer's id
-- resolution not included). Needs layouts.sql's tables; :dir writable by the server.
\set ON_ERROR_STOP 1
DROP TABLE IF EXISTS i_base, i_all;
COPY v_base TO :'base_file' (FORMAT binary);
COPY v_all TO :'all_file' (FORMAT binary);
CREATE TABLE i_base (LIKE v_base);
SELECT format('CREATE INDEX %I ON i_base %s', 'i_base_' || suffix, definition)
FROM srql_span_indexes \gexec
CREATE TABLE i_all (LIKE v_all);
CREATE INDEX ON i_all ("timestamp" DESC);
CREATE INDEX ON i_all (trace_id);
CREATE INDEX ON i_all (service_name, "timestamp" DESC);
CREATE INDEX ON i_all ("timestamp" DESC) INCLUDE (status_code, start_time_unix_nano,
    end_time_unix_nano, service_name) WHERE coalesce(parent_span_id, ''::bytea) = ''::bytea;
CREATE INDEX ON i_all (service_name, (greatest(coalesce(end_time_unix_nano - start_time_unix_nano, 0), 0)::float8 / 1e6));
CREATE INDEX ON i_all (name, service_name);
CREATE INDEX ON i_all USING gin (attributes jsonb_path_ops);
CHECKPOINT;
\timing on
COPY i_base FROM :'base_file' (FORMAT binary);
COPY i_all FROM :'all_file' (FORMAT binary);
TRUNCATE i_base, i_all;
CHECKPOINT;
COPY i_all FROM :'all_file' (FORMAT binary);
COPY i_base FROM :'base_file' (FORMAT binary);
\timing off
SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname IN ('i_base', 'i_all');
