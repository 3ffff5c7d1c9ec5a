-- Hourly summaries (issue 24): one row per monitor, region and UTC hour, kept as running totals
-- by the same statement that records results (as the daily summaries are), so a report of a day
-- reads 24 rows per monitor and region instead of 1,440 results, and only the partial hours at
-- its edges from results. Counts and sums only: an average is sum / count of the values that
-- were measured; percentiles cannot be added up, so the hours have none.
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
