-- Two indexes for the dashboard's monitor page (issue 25), on the partitioned
-- tables: built on each day's partition and made with every new one.
--
-- Where a monitor's checks landed (`report`'s landings) reads its metrics over
-- a time range in every region: the (monitor, region, checked_at) index cannot
-- bound that range without a region, so it read every row of the monitor in
-- each day the range touches.
--
-- A monitor's recent failures read its results newest first until twenty are
-- down: for one that rarely fails, every result of the range. Failed checks are
-- about one in a hundred, so their own index is small.
--
-- A partitioned table's index cannot be built CONCURRENTLY: this builds it in
-- the migration's transaction, and writes to the tables wait until it is done
-- (16 s and 4 s over 15 million rows each, on the 2-core test machine under load).
-- `lock_timeout` bounds the wait for the lock behind a long transaction;
-- `db migrate` tries again.
SET LOCAL lock_timeout = '1s';

CREATE INDEX IF NOT EXISTS regional_performance_metrics_monitor_checked_idx
    ON regional_performance_metrics (monitor_id, checked_at);
CREATE INDEX IF NOT EXISTS monitor_results_failed_idx
    ON monitor_results (monitor_id, checked_at) WHERE is_up = false;
