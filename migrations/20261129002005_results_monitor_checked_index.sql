-- no-transaction
-- A monitor's results over a time range (`report`, `monitor delete` in
-- batches): the (monitor, region, checked_at) index cannot serve a range
-- across regions. Built concurrently so writers are not blocked.
CREATE INDEX CONCURRENTLY IF NOT EXISTS monitor_results_monitor_checked_idx
    ON monitor_results (monitor_id, checked_at);
