-- A trace's spans with every in:traces column, as stored now and with resources and
-- scopes stored once (ids as bytes, hex again in the output). Third run of each shown.
\set ON_ERROR_STOP 1
SELECT trace_id AS t FROM v_base ORDER BY md5(trace_id) LIMIT 1 \gset
ANALYZE v_base; ANALYZE v_all; ANALYZE v_resources; ANALYZE v_scopes;
PREPARE base AS SELECT timestamp, trace_id, span_id, parent_span_id, name, kind,
    start_time_unix_nano, end_time_unix_nano, service_name, service_version, service_instance,
    scope_name, scope_version, status_code, status_message, attributes, resource_attributes,
    events, links, created_at FROM v_base WHERE trace_id = $1 ORDER BY timestamp;
PREPARE joined AS SELECT p.timestamp, encode(p.trace_id, 'hex'), encode(p.span_id, 'hex'),
    encode(p.parent_span_id, 'hex'), p.name, p.kind, p.start_time_unix_nano,
    p.end_time_unix_nano, p.service_name, r.service_version, r.service_instance,
    s.scope_name, s.scope_version, p.status_code, p.status_message, p.attributes,
    r.resource_attributes, p.events, p.links, p.created_at
    FROM v_all p JOIN v_resources r ON r.id = p.resource_id JOIN v_scopes s ON s.id = p.scope_id
    WHERE p.trace_id = decode($1, 'hex') ORDER BY p.timestamp;
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE base(:'t');
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE base(:'t');
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE base(:'t');
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE joined(:'t');
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE joined(:'t');
EXPLAIN (ANALYZE, SUMMARY ON, COSTS OFF) EXECUTE joined(:'t');
-- The whole day's spans with their resource attributes (the on-the-fly read of a span
-- condition on resource.*), both ways.
\timing on
SELECT count(*) FROM v_base WHERE resource_attributes @> '{"telemetry.sdk.language": "rust"}';
SELECT count(*) FROM v_base WHERE resource_attributes @> '{"telemetry.sdk.language": "rust"}';
SELECT count(*) FROM v_all p WHERE p.resource_id IN (SELECT id FROM v_resources WHERE resource_attributes @> '{"telemetry.sdk.language": "rust"}');
SELECT count(*) FROM v_all p WHERE p.resource_id IN (SELECT id FROM v_resources WHERE resource_attributes @> '{"telemetry.sdk.language": "rust"}');
