-- no-transaction
-- geoctl's own index that no query uses (nothing reads results by region
-- alone); every write paid for it. The existing app's indexes are never touched.
DROP INDEX CONCURRENTLY IF EXISTS monitor_results_execution_region_checked_idx;
