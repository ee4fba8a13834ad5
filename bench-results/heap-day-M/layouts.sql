-- Copies of one heap day (:part) in candidate layouts, each with the day's indexes that
-- its layout changes; sizes and copy times. Run on an idle-ish machine; \timing on.
\set ON_ERROR_STOP 1
\timing on
DROP TABLE IF EXISTS v_lz4, v_base, v_reorder, v_bytea, v_res, v_all, v_resources, v_scopes;
-- Baseline: the day rewritten as it is (same column order), to separate the layout from
-- how the day was loaded.
CREATE TABLE v_base (LIKE otel_traces);
INSERT INTO v_base SELECT * FROM :part;
-- lz4 on the jsonb columns with the lowest toast_tuple_target: does a 600-byte row get
-- compressed at all?
CREATE TABLE v_lz4 (LIKE otel_traces) WITH (toast_tuple_target = 128);
ALTER TABLE v_lz4 ALTER attributes SET COMPRESSION lz4,
    ALTER resource_attributes SET COMPRESSION lz4, ALTER events SET COMPRESSION lz4,
    ALTER links SET COMPRESSION lz4;
INSERT INTO v_lz4 SELECT * FROM :part;
-- Fixed-width columns first, widest alignment first: no padding between them.
CREATE TABLE v_reorder (
    timestamp timestamptz NOT NULL, start_time_unix_nano bigint, end_time_unix_nano bigint,
    created_at timestamptz NOT NULL, kind integer, status_code integer,
    trace_id text NOT NULL, span_id text NOT NULL, parent_span_id text, name text,
    service_name text, service_version text, service_instance text, scope_name text,
    scope_version text, status_message text, attributes jsonb, resource_attributes jsonb,
    events jsonb, links jsonb);
INSERT INTO v_reorder SELECT timestamp, start_time_unix_nano, end_time_unix_nano, created_at,
    kind, status_code, trace_id, span_id, parent_span_id, name, service_name, service_version,
    service_instance, scope_name, scope_version, status_message, attributes,
    resource_attributes, events, links FROM :part;
-- Ids as bytes (16 and 8) instead of lowercase hex text.
CREATE TABLE v_bytea (LIKE otel_traces);
ALTER TABLE v_bytea ALTER trace_id TYPE bytea USING decode(trace_id, 'hex'),
    ALTER span_id TYPE bytea USING decode(span_id, 'hex'),
    ALTER parent_span_id TYPE bytea USING decode(parent_span_id, 'hex');
INSERT INTO v_bytea SELECT timestamp, decode(trace_id, 'hex'), decode(span_id, 'hex'),
    decode(parent_span_id, 'hex'), name, kind, start_time_unix_nano, end_time_unix_nano,
    service_name, service_version, service_instance, scope_name, scope_version, status_code,
    status_message, attributes, resource_attributes, events, links, created_at FROM :part;
-- A resource stored once: its attributes and the service columns derived from them, an
-- int8 id in the span row.
CREATE TABLE v_resources (id bigserial PRIMARY KEY, service_version text,
    service_instance text, resource_attributes jsonb, UNIQUE (resource_attributes));
INSERT INTO v_resources (service_version, service_instance, resource_attributes)
    SELECT DISTINCT service_version, service_instance, resource_attributes FROM :part;
CREATE TABLE v_scopes (id serial PRIMARY KEY, scope_name text, scope_version text,
    UNIQUE NULLS NOT DISTINCT (scope_name, scope_version));
INSERT INTO v_scopes (scope_name, scope_version)
    SELECT DISTINCT scope_name, scope_version FROM :part;
CREATE TABLE v_res (timestamp timestamptz NOT NULL, trace_id text NOT NULL,
    span_id text NOT NULL, parent_span_id text, name text, kind integer,
    start_time_unix_nano bigint, end_time_unix_nano bigint, service_name text,
    resource_id bigint, status_code integer, status_message text, attributes jsonb,
    events jsonb, links jsonb, created_at timestamptz NOT NULL);
INSERT INTO v_res SELECT p.timestamp, p.trace_id, p.span_id, p.parent_span_id, p.name, p.kind,
    p.start_time_unix_nano, p.end_time_unix_nano, p.service_name, r.id, p.status_code,
    p.status_message, p.attributes, p.events, p.links, p.created_at
    FROM :part p JOIN v_resources r ON r.resource_attributes = p.resource_attributes;
-- Everything together: ids as bytes, resource and scope ids, fixed-width columns first.
CREATE TABLE v_all (timestamp timestamptz NOT NULL, start_time_unix_nano bigint,
    end_time_unix_nano bigint, created_at timestamptz NOT NULL, resource_id bigint,
    kind integer, status_code integer, scope_id integer, trace_id bytea NOT NULL,
    span_id bytea NOT NULL, parent_span_id bytea, name text, service_name text,
    status_message text, attributes jsonb, events jsonb, links jsonb);
INSERT INTO v_all SELECT p.timestamp, p.start_time_unix_nano, p.end_time_unix_nano,
    p.created_at, r.id, p.kind, p.status_code, s.id, decode(p.trace_id, 'hex'),
    decode(p.span_id, 'hex'), decode(p.parent_span_id, 'hex'), p.name, p.service_name,
    p.status_message, p.attributes, p.events, p.links
    FROM :part p JOIN v_resources r ON r.resource_attributes = p.resource_attributes
    JOIN v_scopes s ON s.scope_name IS NOT DISTINCT FROM p.scope_name
                   AND s.scope_version IS NOT DISTINCT FROM p.scope_version;
CREATE INDEX v_base_trace_id ON v_base (trace_id);
CREATE INDEX v_bytea_trace_id ON v_bytea (trace_id);
CREATE INDEX v_all_trace_id ON v_all (trace_id);
\timing off
SELECT c.relname, pg_relation_size(c.oid) AS bytes,
       round(pg_relation_size(c.oid)::numeric / (SELECT count(*) FROM :part), 1) AS per_span,
       round(100.0 * pg_relation_size(c.oid) / pg_relation_size(:'part'), 1) AS pct_of_day
FROM pg_class c WHERE c.relname IN ('v_lz4','v_base','v_reorder','v_bytea','v_res','v_all',
    'v_resources','v_scopes','v_base_trace_id','v_bytea_trace_id','v_all_trace_id')
ORDER BY 1;
SELECT pg_total_relation_size('v_resources') AS resources_total_bytes,
       (SELECT count(*) FROM v_resources) AS resources,
       (SELECT count(*) FROM v_scopes) AS scopes;
