-- The hourly summaries and landing counts partitioned by UTC day on `hour` (issue 24), as the
-- results are (20261206100001): `db prune` drops a day's hours whole instead of deleting them
-- row by row (at 1,000 monitors, 72,000 summaries and as many landing rows a day, read cold
-- and written to the WAL), and a report's range of hours reads only its days.
--
-- The same move as the results': no row is copied. Each table is renamed `<table>_past`, a
-- partitioned table takes its name, its key (the primary key, or the landings' UNIQUE) and its
-- CHECKs, and the old heap is attached as the partition of every hour before the start of the
-- day after tomorrow (UTC); `geoctl db migrate` proves that bound with a validated CHECK first,
-- so the attach does not scan. Days from the bound on get their own partitions
-- (`<table>_pYYYYMMDD`, made with the results' days by `geoctl db maintain` and the agents),
-- and `<table>_default` catches an hour of a day without one (a rebuilt day before them) until
-- maintenance moves it out. The key includes `hour`, so it stays one key across partitions and
-- the writers' `ON CONFLICT` upserts are unchanged.
SET LOCAL lock_timeout = '1s';

CREATE FUNCTION pg_temp.hours_by_day(tbl text) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    past text := tbl || '_past';
    bound timestamptz := ((now() AT TIME ZONE 'UTC')::date + 2)::timestamp AT TIME ZONE 'UTC';
    key_name text;
    key_def text;
    brin text := tbl || '_hour_brin';
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(tbl)) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    SELECT conname, pg_get_constraintdef(oid) INTO key_name, key_def
    FROM pg_constraint WHERE conrelid = to_regclass(tbl) AND contype IN ('p', 'u');
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, past);
    -- The heap's key and index keep their rows under new names; the partitioned table's take
    -- the old ones, and the attach adopts the heap's as its partitions' (no index is built).
    EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', past, key_name, past || '_key');
    IF to_regclass(brin) IS NOT NULL THEN
        EXECUTE format('ALTER INDEX %I RENAME TO %I', brin, past || '_hour_brin');
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (hour)',
                   tbl, past);
    -- The bound `db migrate` proved is the heap's alone.
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', tbl, past || '_bound');
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', tbl, key_name, key_def);
    EXECUTE format('CREATE INDEX %I ON %I USING brin (hour)', brin, tbl);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)', tbl, past, bound);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', past, past || '_bound');
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
END
$fn$;

SELECT pg_temp.hours_by_day('regional_monitor_hourly_summaries');
SELECT pg_temp.hours_by_day('regional_monitor_hourly_landings');
