-- Hourly summaries (issue 24): one row per monitor, region and UTC hour, kept as running totals
-- by the same statement that records results (as the daily summaries are), so a report of a day
-- reads 24 rows per monitor and region instead of 1,440 results, and only the partial hours at
-- its edges from results. Counts and sums: an average is sum / count of the values that were
-- measured. Percentiles cannot be added up, so each hour keeps a histogram of its successful
-- checks' response times instead (`response_histogram`, counts per log-spaced bucket, see
-- `results::histogram`), and histograms add up element by element.
--
-- The key leads with the monitor, as every results query does: a report's
-- `monitor_id = ANY(…) AND hour in range` and retention's per-monitor range both walk only the
-- hours they name.
CREATE TABLE IF NOT EXISTS regional_monitor_hourly_summaries (
    monitor_id          uuid NOT NULL,
    hour                timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour, 'UTC')),
    region_code         text NOT NULL,
    total_checks        bigint NOT NULL CHECK (total_checks > 0),
    successful_checks   bigint NOT NULL,
    response_time_sum   double precision,
    response_time_count bigint NOT NULL,
    dns_time_sum        double precision,
    dns_time_count      bigint NOT NULL,
    tcp_time_sum        double precision,
    tcp_time_count      bigint NOT NULL,
    tls_time_sum        double precision,
    tls_time_count      bigint NOT NULL,
    first_byte_time_sum double precision,
    first_byte_time_count bigint NOT NULL,
    -- Element i counts the checks in bucket i; trailing empty buckets are left out; NULL: none.
    response_histogram  integer[],
    PRIMARY KEY (monitor_id, hour, region_code)
);

-- From when the hourly summaries hold every result. Results recorded before this migration have
-- no hourly rows (building them would read every result inside this transaction), so on a
-- database that already has results they start with the next whole hour; reports read the
-- hours before it from results, until `geoctl summaries rebuild` (of every day) builds them and
-- clears this. NULL: complete.
CREATE TABLE IF NOT EXISTS hourly_summaries_coverage (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    complete_from timestamptz
);
INSERT INTO hourly_summaries_coverage (complete_from)
SELECT CASE WHEN EXISTS (SELECT 1 FROM monitor_results) THEN date_trunc('hour', now(), 'UTC') + interval '1 hour' END
ON CONFLICT DO NOTHING;

-- A day's hours, found by time alone: a recompute of the day and `db prune` delete them. Rows
-- arrive in time order, so a BRIN index answers that for a few pages and costs writers little.
CREATE INDEX IF NOT EXISTS regional_monitor_hourly_summaries_hour_brin
    ON regional_monitor_hourly_summaries USING brin (hour);

-- The histogram of a list of bucket numbers (array_agg of `results::histogram::bucket_sql`):
-- element i (from 1, for bucket i - 1) counts the list's i - 1s, up to its largest; NULL for an
-- empty list. PL/pgSQL, whose array element assignment works in place: about 5 µs for a batch's
-- one-result hour, where the same in SQL (unnest, generate_series, a join) took 200 µs a call.
CREATE OR REPLACE FUNCTION geoctl_histogram(buckets integer[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    h integer[];
    b integer;
BEGIN
    IF buckets IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH b IN ARRAY buckets LOOP
        IF h IS NULL THEN
            h := array_fill(0, ARRAY[b + 1]);
        ELSIF cardinality(h) <= b THEN
            h := h || array_fill(0, ARRAY[b + 1 - cardinality(h)]);
        END IF;
        h[b + 1] := h[b + 1] + 1;
    END LOOP;
    RETURN h;
END
$$;

-- Two histograms added element by element (the shorter one padded with zeros); NULL is empty.
CREATE OR REPLACE FUNCTION geoctl_histogram_add(a integer[], b integer[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF a IS NULL THEN
        RETURN b;
    ELSIF b IS NULL THEN
        RETURN a;
    END IF;
    IF cardinality(a) < cardinality(b) THEN
        a := a || array_fill(0, ARRAY[cardinality(b) - cardinality(a)]);
    END IF;
    FOR i IN 1 .. cardinality(b) LOOP
        IF b[i] <> 0 THEN
            a[i] := a[i] + b[i];
        END IF;
    END LOOP;
    RETURN a;
END
$$;

-- Where each hour's checks landed: checks per monitor, region, UTC hour and place (country, city,
-- network; NULL where the GeoIP databases did not say, a place of its own so the shares add up), and
-- the histogram of their traced routes' hop counts (element i counts routes of i - 1 hops), kept by
-- the same statement and recomputed with the hourly summaries, so a report of a day reads where its
-- checks landed from these rows instead of every metrics row.
CREATE TABLE IF NOT EXISTS regional_monitor_hourly_landings (
    monitor_id   uuid NOT NULL,
    hour         timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour, 'UTC')),
    region_code  text NOT NULL,
    country_code text,
    city         text,
    asn          bigint,
    isp          text,
    checks       bigint NOT NULL CHECK (checks > 0),
    hop_counts   integer[],
    UNIQUE NULLS NOT DISTINCT (monitor_id, hour, region_code, country_code, city, asn, isp)
);
CREATE INDEX IF NOT EXISTS regional_monitor_hourly_landings_hour_brin
    ON regional_monitor_hourly_landings USING brin (hour);

-- Hours that hold results no geoctl writer added to their summaries: the existing app inserts
-- into monitor_results directly, and nothing of it reaches the running totals. A trigger marks such a row's hour here; reports read a marked hour from results
-- (exact), and `geoctl db maintain` / `summaries refresh` rebuild its summaries and unmark it.
CREATE TABLE IF NOT EXISTS hourly_summaries_stale (
    hour timestamptz PRIMARY KEY CHECK (hour = date_trunc('hour', hour, 'UTC'))
);

-- SECURITY DEFINER: the existing app's role needs no grant on geoctl's table. The day's
-- advisory lock is taken shared, as geoctl's writers take it (`results::summary::DAY_LOCK`, the
-- same key): a rebuild of the hour, which holds it exclusively, waits for this row's commit and
-- counts it, or this row waits for the rebuild and marks the hour again. WHEN keeps geoctl's own
-- writes from calling it at all: `results::record`'s statement, which adds its rows to the
-- summaries itself, sets `geoctl.summarised` for its transaction.
CREATE OR REPLACE FUNCTION geoctl_mark_hour_stale() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(
        hashtextextended('geoctl:summary-day:' || ((NEW.checked_at AT TIME ZONE 'UTC')::date)::text, 0));
    INSERT INTO hourly_summaries_stale (hour) VALUES (date_trunc('hour', NEW.checked_at, 'UTC'))
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS monitor_results_mark_hour_stale ON monitor_results;
CREATE TRIGGER monitor_results_mark_hour_stale AFTER INSERT ON monitor_results
    FOR EACH ROW WHEN (NEW.checked_at IS NOT NULL AND current_setting('geoctl.summarised', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION geoctl_mark_hour_stale();
