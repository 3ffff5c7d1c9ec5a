-- no-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS regional_performance_metrics_run_key_key
    ON regional_performance_metrics (run_key) WHERE run_key IS NOT NULL;
