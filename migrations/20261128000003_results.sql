-- Results. Like `monitors`, `monitor_results` may already exist with the
-- legacy app's rows (id, monitor_id, checked_at, status, response_time_ms,
-- details, is_up): only missing columns are added.
CREATE TABLE IF NOT EXISTS monitor_results (
    id bigserial PRIMARY KEY
);

ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS monitor_id       uuid;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS checked_at       timestamptz DEFAULT now();
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS status           text;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS response_time_ms integer;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS details          jsonb;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS is_up            boolean;

-- Where it was measured from, and what. Phase times are milliseconds with
-- sub-millisecond precision; a phase that was not measured stays NULL.
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS execution_region        text;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS target_region           text;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS network_latency         double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS dns_resolution_time     double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS tcp_connect_time        double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS tls_handshake_time      double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS first_byte_time         double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS total_time              double precision;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS region_specific_metrics jsonb;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS error_kind              text;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS error_message           text;

-- The three regional indexes: a region's recent results, a monitor's results
-- per region over time, and lookups by the region a target sits in.
CREATE INDEX IF NOT EXISTS monitor_results_execution_region_checked_idx
    ON monitor_results (execution_region, checked_at DESC);
CREATE INDEX IF NOT EXISTS monitor_results_monitor_region_checked_idx
    ON monitor_results (monitor_id, execution_region, checked_at DESC);
CREATE INDEX IF NOT EXISTS monitor_results_target_region_idx
    ON monitor_results (target_region) WHERE target_region IS NOT NULL;
-- Results arrive in time order: a BRIN index makes range scans and retention
-- deletes by time cheap at a few kilobytes for months of rows.
CREATE INDEX IF NOT EXISTS monitor_results_checked_brin
    ON monitor_results USING brin (checked_at);

-- Per-result network facts that do not belong in the hot results row.
CREATE TABLE IF NOT EXISTS regional_performance_metrics (
    id                  bigserial PRIMARY KEY,
    monitor_id          uuid NOT NULL,
    region_code         text NOT NULL,
    checked_at          timestamptz NOT NULL,
    resolved_ip         inet,
    http_version        text,
    status_code         integer,
    response_size       bigint,
    tls_cert_expires_at timestamptz,
    cdn_provider        text,
    cdn_cache_status    text,
    cdn_edge_location   text,
    country_code        char(2),
    isp                 text,
    dns_resolution_time double precision,
    tcp_connect_time    double precision,
    tls_handshake_time  double precision,
    first_byte_time     double precision,
    total_time          double precision,
    extra               jsonb
);

CREATE INDEX IF NOT EXISTS regional_performance_metrics_monitor_region_checked_idx
    ON regional_performance_metrics (monitor_id, region_code, checked_at DESC);
CREATE INDEX IF NOT EXISTS regional_performance_metrics_checked_brin
    ON regional_performance_metrics USING brin (checked_at);

-- One row per monitor, region and UTC day.
CREATE TABLE IF NOT EXISTS regional_monitor_summaries (
    monitor_id            uuid NOT NULL,
    region_code           text NOT NULL,
    day                   date NOT NULL,
    total_checks          integer NOT NULL DEFAULT 0 CHECK (total_checks >= 0),
    successful_checks     integer NOT NULL DEFAULT 0,
    failed_checks         integer NOT NULL DEFAULT 0,
    uptime_percentage     double precision,
    avg_response_time     double precision,
    min_response_time     double precision,
    max_response_time     double precision,
    p50_response_time     double precision,
    p95_response_time     double precision,
    p99_response_time     double precision,
    avg_network_latency   double precision,
    avg_dns_time          double precision,
    avg_tcp_time          double precision,
    unique_countries      integer,
    unique_isps           integer,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (monitor_id, region_code, day)
);

CREATE INDEX IF NOT EXISTS regional_monitor_summaries_region_day_idx
    ON regional_monitor_summaries (region_code, day DESC);
