-- Settings the service and the database-side jobs both read, so a change applies
-- without restarting anything.
CREATE TABLE srql_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every summary maintenance run, whoever started it (pg_cron, the service scheduler,
-- `srql refresh`), so freshness is visible to the API, health check and metrics.
CREATE TABLE srql_refresh_runs (
    id           bigserial PRIMARY KEY,
    method       text NOT NULL,           -- 'concurrently' | 'full'
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    -- The snapshot the refreshed summaries reflect (the refresh transaction's start).
    snapshot_at  timestamptz,
    outcome      text NOT NULL,           -- running | ok | failed | skipped | abandoned
    rows         bigint,
    error        text,
    backend_pid  integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE INDEX srql_refresh_runs_ok_idx ON srql_refresh_runs (finished_at DESC) WHERE outcome = 'ok';
