-- no-transaction
-- geoctl's own index that no query uses: summaries are read by monitor and
-- day, which the primary key serves.
DROP INDEX CONCURRENTLY IF EXISTS regional_monitor_summaries_region_day_idx;
