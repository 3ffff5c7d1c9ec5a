-- `monitor_results` and `regional_performance_metrics` partitioned by UTC day
-- on `checked_at` (issue 24): retention drops whole days, and a query naming a
-- time range reads only the days in it.
--
-- No row is copied. Each table is renamed `<table>_past`, a partitioned table
-- takes its name and the old heap is attached as the partition of everything
-- before the start of the day after tomorrow (UTC; a day of margin so a write
-- made while this runs never falls past the bound). Rows the heap holds stay
-- where they are; days from that bound on get their own partitions
-- (`<table>_pYYYYMMDD`, made ahead by `geoctl db maintain` and the agents),
-- and `<table>_default` catches a write for a day without one until
-- maintenance moves it out.
--
-- Locks: attaching scans the heap to prove every row fits the bound unless a
-- valid CHECK already proves it. `geoctl db migrate` adds that CHECK (NOT
-- VALID, then VALIDATE under a lock writers pass) in short transactions of its
-- own before this file runs, so this transaction only changes the catalog:
-- milliseconds under ACCESS EXCLUSIVE, and it waits at most `lock_timeout` for
-- that lock (writers queue behind a waiting lock); `db migrate` retries.
--
-- The run key. PostgreSQL refuses a unique index on a partitioned table that
-- leaves out the partition key, and `UNIQUE (run_key, checked_at)` would not
-- stop a retried run (measured again, so at another time) from being stored
-- twice. So each partition carries its own `UNIQUE (run_key) WHERE run_key IS
-- NOT NULL` (the heap keeps `*_run_key_key`, maintenance builds one with each
-- day), and `results::record` inserts with `ON CONFLICT DO NOTHING`, whose
-- arbiters are the unique indexes of the partition each row lands in: within a
-- day a second copy of a run is refused exactly as before, racing writers
-- included. A copy measured on another day than the first (a run retried
-- across midnight) lands in another partition; `record` skips a row whose run
-- key is already stored on the day before or after its own, so one result per
-- run key holds across days too. The one case this does not cover is two
-- copies measured on either side of midnight and committed at the same
-- instant, neither seeing the other.
--
-- What the existing app sees: the same table name, columns, defaults and
-- sequence (now owned by the partitioned table, so dropping the heap one day
-- keeps it); its inserts route by `checked_at`, its reads by `id` or anything
-- else keep working. Its own indexes and foreign keys stay on the heap; its
-- primary key on `id` stays the heap's (a partitioned table cannot have one
-- without `checked_at`), and new ids come from the same sequence.
SET LOCAL lock_timeout = '1s';

CREATE FUNCTION pg_temp.partition_by_day(tbl text, indexes text[][]) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    past text := tbl || '_past';
    -- Matches `db migrate`'s CHECK, or any later bound: a later one still implies the partition's.
    bound timestamptz := ((now() AT TIME ZONE 'UTC')::date + 2)::timestamp AT TIME ZONE 'UTC';
    idx text[];
    owned record;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(tbl)) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, past);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS) PARTITION BY RANGE (checked_at)', tbl, past);
    -- The sequence behind `id` follows the table that writes through it.
    FOR owned IN
        SELECT s.oid::regclass AS seq, a.attname AS col
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.refobjid = past::regclass AND d.deptype = 'a'
    LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', owned.seq, tbl, owned.col);
    END LOOP;
    -- geoctl's indexes move to the partitioned table under their names; the
    -- heap's copies are renamed and attached, never built again.
    FOREACH idx SLICE 1 IN ARRAY indexes LOOP
        IF to_regclass(idx[1]) IS NOT NULL THEN
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx[1], replace(idx[1], tbl, past));
        END IF;
        EXECUTE format('CREATE INDEX %I ON %I %s', idx[1], tbl, idx[2]);
    END LOOP;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)', tbl, past, bound);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', past, past || '_bound');
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (run_key) WHERE run_key IS NOT NULL',
                   tbl || '_default_run_key_key', tbl || '_default');
END
$fn$;

SELECT pg_temp.partition_by_day('monitor_results', ARRAY[
    ['monitor_results_monitor_region_checked_idx', '(monitor_id, execution_region, checked_at DESC)'],
    ['monitor_results_monitor_checked_idx', '(monitor_id, checked_at)'],
    ['monitor_results_checked_brin', 'USING brin (checked_at)']]);
SELECT pg_temp.partition_by_day('regional_performance_metrics', ARRAY[
    ['regional_performance_metrics_monitor_region_checked_idx', '(monitor_id, region_code, checked_at DESC)'],
    ['regional_performance_metrics_checked_brin', 'USING brin (checked_at)']]);
