-- The order a sealed day's spans are written in becomes a parameter of the copy, so that
-- `srql bench-sealing --sort-order` measures a layout through the code that seals rather
-- than by hand. Named orders only: each name maps to a fixed ORDER BY below, so no
-- caller's text reaches the statement. The default stays (trace_id, timestamp): a trace's
-- spans then share one or two chunk groups, whose trace_id min/max let a lookup skip the
-- day's other groups (BENCHMARKS.md, "Columnar sealing", Layout).

CREATE FUNCTION srql_seal_copy(part text, sort_order text) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    stage text := part || '_seal';
    order_by text := CASE sort_order
        WHEN 'trace_id' THEN 'trace_id, timestamp'
        WHEN 'timestamp' THEN 'timestamp, trace_id'
        WHEN 'service_name' THEN 'service_name, trace_id, timestamp'
    END;
    n bigint;
BEGIN
    IF order_by IS NULL THEN
        RAISE EXCEPTION 'unknown sort order for sealing: % (trace_id, timestamp or service_name)',
            sort_order;
    END IF;
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'srql_seal_copy needs a REPEATABLE READ transaction';
    END IF;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I ORDER BY %s', stage, part, order_by);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM srql_span_indexes_build(stage, true);
    UPDATE srql_seal_progress s
    SET snapshot = pg_current_snapshot(), copied_rows = n
    WHERE s.part = srql_seal_copy.part;
    RETURN n;
END $$;

-- The one-argument form, as earlier callers use it: the default order.
CREATE OR REPLACE FUNCTION srql_seal_copy(part text) RETURNS bigint
LANGUAGE sql AS $$
    SELECT srql_seal_copy(part, 'trace_id')
$$;

SELECT srql_adopt_objects();
