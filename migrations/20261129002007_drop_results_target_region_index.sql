-- no-transaction
-- geoctl's own index that no query uses (nothing reads results by target region).
DROP INDEX CONCURRENTLY IF EXISTS monitor_results_target_region_idx;
