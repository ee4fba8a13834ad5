-- Least privilege: three roles instead of one superuser doing everything.
--
--   srql_owner   owns every object of ours; migrations run as it.
--   srql_writer  ingest (COPY into otel_traces; capture triggers write the log) and
--                maintenance (refresh, drain, partition upkeep, retention, bulk-load
--                stages). PostgreSQL lets only an owner create, attach or drop
--                partitions, REFRESH a materialized view or swap tables, and that
--                maintenance is spread over SQL procedures that COMMIT (which cannot be
--                SECURITY DEFINER) and Rust; so the writer is a member of srql_owner.
--                It is still no superuser: no COPY TO PROGRAM, no other database.
--   srql_reader  SELECT only, for every SRQL query; no EXECUTE on maintenance routines.
--                Its logins get default_transaction_read_only = on (role settings
--                apply to the login, not to a group role; see the README).
--
-- All three are NOLOGIN groups: logins are made by `srql` for its embedded cluster, or
-- by a DBA (README, "Least privilege").

-- Roles are global to the cluster, and several databases may be migrated at once (the
-- tests do), so a concurrent creator's row shows up either as duplicate_object or,
-- when both inserted at the same time, as a unique_violation.
DO $$
BEGIN
    BEGIN
        -- The scheduler (a writer, acting as the owner) reads cron.database_name to
        -- keep the pg_cron job in step.
        CREATE ROLE srql_owner NOLOGIN IN ROLE pg_read_all_settings;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        -- Membership given at creation, so only the creator ever grants it.
        CREATE ROLE srql_writer NOLOGIN IN ROLE srql_owner;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE srql_reader NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    -- A migrating user that is no superuser must be able to hand its objects over.
    IF NOT pg_has_role(current_user, 'srql_owner', 'MEMBER') THEN
        EXECUTE format('GRANT srql_owner TO %I', current_user);
    END IF;
END $$;

-- Hands every relation and routine of ours in this schema to srql_owner. Run here for
-- what migrations 1-5 (and a summary view built before this one) created, and again by
-- `srql migrate` and loads, for what a superuser or the migrating user made since
-- (partitions, the summary relation, load stages): the writer maintains only what the
-- owner owns. Invoker's rights: it moves only what the caller may alter. Indexes and
-- owned sequences follow their tables. A relation busy elsewhere (a load's stage) is
-- left for the next run rather than waited for.
CREATE FUNCTION srql_adopt_objects() RETURNS integer
LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relowner <> 'srql_owner'::regrole
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND pg_has_role(current_user, c.relowner, 'MEMBER')
    LOOP
        BEGIN
            IF r.relkind = 'v' THEN
                EXECUTE format('ALTER VIEW %s OWNER TO srql_owner', r.rel);
            ELSIF r.relkind = 'm' THEN
                EXECUTE format('ALTER MATERIALIZED VIEW %s OWNER TO srql_owner', r.rel);
            ELSE
                EXECUTE format('ALTER TABLE %s OWNER TO srql_owner', r.rel);
            END IF;
            n := n + 1;
        EXCEPTION WHEN lock_not_available OR undefined_table THEN NULL;
        END;
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS routine
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proowner <> 'srql_owner'::regrole
          AND p.proname LIKE 'srql\_%'
          AND pg_has_role(current_user, p.proowner, 'MEMBER')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO srql_owner', r.routine);
        -- Maintenance is for the owner and the writer only.
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', r.routine);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

SELECT srql_adopt_objects();

DO $$
BEGIN
    -- The owner makes partitions, stages and summary relations here at run time.
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO srql_owner', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO srql_reader, srql_writer', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO srql_reader', current_schema());
    -- Objects made later (partitions, the summary view or table, rebuilt by
    -- maintenance) are readable too, whether made as srql_owner or by the migrating
    -- user directly; routines stay closed to PUBLIC.
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE srql_owner, %I IN SCHEMA %I GRANT SELECT ON TABLES TO srql_reader',
        current_user, current_schema());
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE srql_owner, %I REVOKE EXECUTE ON ROUTINES FROM PUBLIC',
        current_user);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE srql_owner, %I GRANT EXECUTE ON ROUTINES TO srql_writer',
        current_user);
END $$;
