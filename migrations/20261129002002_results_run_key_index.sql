-- no-transaction
-- Built concurrently, so an existing app keeps writing meanwhile. An index
-- left INVALID by an interrupted build is dropped and rebuilt by `db migrate`.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS monitor_results_run_key_key
    ON monitor_results (run_key) WHERE run_key IS NOT NULL;
