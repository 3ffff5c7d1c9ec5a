-- Summaries kept as running totals: each recorded batch adds to them, so a
-- write costs the same however many results the day already holds. Averages
-- are sum / count of the values that were measured; percentiles are exact only
-- once a closed day is recomputed from its results (`percentiles_exact`).
ALTER TABLE regional_monitor_summaries
    ADD COLUMN IF NOT EXISTS response_time_sum     double precision,
    ADD COLUMN IF NOT EXISTS response_time_count   bigint,
    ADD COLUMN IF NOT EXISTS network_latency_sum   double precision,
    ADD COLUMN IF NOT EXISTS network_latency_count bigint,
    ADD COLUMN IF NOT EXISTS dns_time_sum          double precision,
    ADD COLUMN IF NOT EXISTS dns_time_count        bigint,
    ADD COLUMN IF NOT EXISTS tcp_time_sum          double precision,
    ADD COLUMN IF NOT EXISTS tcp_time_count        bigint,
    ADD COLUMN IF NOT EXISTS percentiles_exact     boolean NOT NULL DEFAULT true;

-- Rows written before this migration were recomputed from their results
-- (exact). Their totals: the response time's from its average and the
-- successful checks; the phases' counts are not known, so they are recomputed
-- from the results of the days still being written (yesterday and today),
-- and estimated from the checks for older days, which nothing adds to.
UPDATE regional_monitor_summaries SET
    response_time_sum = avg_response_time * successful_checks,
    response_time_count = CASE WHEN avg_response_time IS NULL THEN 0 ELSE successful_checks END,
    network_latency_sum = avg_network_latency * total_checks,
    network_latency_count = CASE WHEN avg_network_latency IS NULL THEN 0 ELSE total_checks END,
    dns_time_sum = avg_dns_time * total_checks,
    dns_time_count = CASE WHEN avg_dns_time IS NULL THEN 0 ELSE total_checks END,
    tcp_time_sum = avg_tcp_time * total_checks,
    tcp_time_count = CASE WHEN avg_tcp_time IS NULL THEN 0 ELSE total_checks END
WHERE response_time_count IS NULL;

UPDATE regional_monitor_summaries s SET
    response_time_sum = r.response_time_sum, response_time_count = r.response_time_count,
    network_latency_sum = r.network_latency_sum, network_latency_count = r.network_latency_count,
    dns_time_sum = r.dns_time_sum, dns_time_count = r.dns_time_count,
    tcp_time_sum = r.tcp_time_sum, tcp_time_count = r.tcp_time_count
FROM (
    SELECT monitor_id, execution_region, (checked_at AT TIME ZONE 'UTC')::date AS day,
        sum(total_time) FILTER (WHERE is_up) AS response_time_sum,
        count(total_time) FILTER (WHERE is_up) AS response_time_count,
        sum(network_latency) AS network_latency_sum, count(network_latency) AS network_latency_count,
        sum(dns_resolution_time) AS dns_time_sum, count(dns_resolution_time) AS dns_time_count,
        sum(tcp_connect_time) AS tcp_time_sum, count(tcp_connect_time) AS tcp_time_count
    FROM monitor_results
    WHERE checked_at >= ((((now() AT TIME ZONE 'UTC')::date) - 1)::timestamp AT TIME ZONE 'UTC')
      AND execution_region IS NOT NULL AND is_up IS NOT NULL AND monitor_id IS NOT NULL
    GROUP BY 1, 2, 3
) r
WHERE s.monitor_id = r.monitor_id AND s.region_code = r.execution_region AND s.day = r.day;

-- How far `db prune` has deleted results: days before it keep only their
-- summaries, which reports read and rebuilds leave alone.
CREATE TABLE IF NOT EXISTS results_retention (
    table_name    text PRIMARY KEY,
    pruned_before timestamptz NOT NULL,
    pruned_at     timestamptz NOT NULL DEFAULT now()
);
