-- What the same layouts weigh once sealed (columnar, trace_id order, chunk groups of
-- 1,000, zstd 9, as migration 0012 seals), and the heap day's indexes rebuilt at
-- fillfactor 100 (a closed day takes few inserts).
\set ON_ERROR_STOP 1
\timing on
DROP TABLE IF EXISTS c_base, c_all, v_ff;
CREATE TABLE c_base (LIKE v_base) USING columnar;
ALTER TABLE c_base SET (columnar.chunk_group_row_limit = 1000, columnar.compression_level = 9);
INSERT INTO c_base SELECT * FROM v_base ORDER BY trace_id, timestamp;
CREATE TABLE c_all (LIKE v_all) USING columnar;
ALTER TABLE c_all SET (columnar.chunk_group_row_limit = 1000, columnar.compression_level = 9);
INSERT INTO c_all SELECT * FROM v_all ORDER BY trace_id, timestamp;
CREATE TABLE v_ff (LIKE otel_traces);
INSERT INTO v_ff SELECT * FROM :part;
SELECT format('CREATE INDEX %I ON v_ff %s', 'v_ff_' || s.suffix,
              CASE WHEN s.definition LIKE 'USING btree%'
                   THEN regexp_replace(s.definition, '( WHERE .*)?$', ' WITH (fillfactor = 100)\1')
                   ELSE s.definition END)
FROM srql_span_indexes s \gexec
\timing off
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes,
       round(pg_total_relation_size(c.oid)::numeric / (SELECT count(*) FROM :part), 1) AS per_span
FROM pg_class c WHERE c.relname IN ('c_base', 'c_all') ORDER BY 1;
SELECT ic.relname AS index, pg_relation_size(ic.oid) AS bytes,
       round(pg_relation_size(ic.oid)::numeric / (SELECT count(*) FROM :part), 1) AS per_span
FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
WHERE x.indrelid = 'v_ff'::regclass ORDER BY 2 DESC;
