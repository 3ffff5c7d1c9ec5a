-- One row per scheduled run: agents stamp each result with a run key
-- (monitor, region, scheduled time) and a retried or replayed job writes
-- nothing the second time. Manual checks leave it NULL. Adding a nullable
-- column without a default only changes the catalog, so this is instant on a
-- large table; the unique indexes are built concurrently in the next files.
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS run_key text;
ALTER TABLE regional_performance_metrics ADD COLUMN IF NOT EXISTS run_key text;
