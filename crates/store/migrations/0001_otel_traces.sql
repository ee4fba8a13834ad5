-- Spans, one row per OpenTelemetry span, partitioned by day on the span time so that
-- retention drops whole partitions instead of deleting rows.
CREATE TABLE otel_traces (
    timestamp            timestamptz NOT NULL,
    trace_id             text NOT NULL,
    span_id              text NOT NULL,
    parent_span_id       text,
    name                 text,
    kind                 integer,
    start_time_unix_nano bigint,
    end_time_unix_nano   bigint,
    service_name         text,
    service_version      text,
    service_instance     text,
    scope_name           text,
    scope_version        text,
    status_code          integer,
    status_message       text,
    attributes           jsonb,
    resource_attributes  jsonb,
    events               jsonb,
    links                jsonb,
    created_at           timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (timestamp);

-- A span whose day has no partition yet lands here instead of failing the insert; upkeep
-- moves such rows into their day's partition once it exists.
CREATE TABLE otel_traces_default PARTITION OF otel_traces DEFAULT;

CREATE INDEX otel_traces_timestamp_idx ON otel_traces (timestamp DESC);
CREATE INDEX otel_traces_trace_id_idx ON otel_traces (trace_id);
CREATE INDEX otel_traces_service_timestamp_idx ON otel_traces (service_name, timestamp DESC);

-- Creates the partition for the UTC day containing `day_start`, moving any rows that
-- already landed in the default partition for that day. Idempotent.
CREATE FUNCTION srql_ensure_partition(day_start timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('day', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 day';
    part text := 'otel_traces_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise creators: two sessions racing to create the same day must not both try.
    PERFORM pg_advisory_xact_lock(hashtext('srql_ensure_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM otel_traces_default WHERE timestamp >= lo AND timestamp < hi) THEN
        EXECUTE format('CREATE TABLE %I (LIKE otel_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM otel_traces_default WHERE timestamp >= %L AND timestamp < %L RETURNING *)
             INSERT INTO %I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE otel_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF otel_traces FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    END IF;
    RETURN true;
END $$;

-- Partitions for every day in [from_ts, to_ts]; returns how many were created.
CREATE FUNCTION srql_ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d timestamptz := date_trunc('day', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
BEGIN
    WHILE d <= to_ts LOOP
        IF srql_ensure_partition(d) THEN
            created := created + 1;
        END IF;
        d := d + interval '1 day';
    END LOOP;
    RETURN created;
END $$;

-- Drops whole day partitions that lie entirely before now() - retention.
CREATE FUNCTION srql_drop_expired_partitions(retention interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    dropped integer := 0;
    cutoff timestamptz := now() - retention;
BEGIN
    FOR p IN
        SELECT c.relname,
               to_date(substring(c.relname from 'otel_traces_p(\d{8})$'), 'YYYYMMDD')::timestamp
                   AT TIME ZONE 'UTC' AS lo
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'otel_traces'::regclass
          AND c.relname ~ '^otel_traces_p\d{8}$'
    LOOP
        IF p.lo + interval '1 day' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', p.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM otel_traces_default WHERE timestamp < cutoff;
    RETURN dropped;
END $$;
