-- Where each region landed (issue 11): the reached address's city, ASN and
-- coordinates next to the existing `country_code` and `isp`, and the route to
-- it. NULL when not measured (no database configured, an address no database
-- holds, no trace in this run).
ALTER TABLE regional_performance_metrics
    ADD COLUMN IF NOT EXISTS city          text,
    ADD COLUMN IF NOT EXISTS asn           bigint,
    ADD COLUMN IF NOT EXISTS latitude      double precision,
    ADD COLUMN IF NOT EXISTS longitude     double precision,
    ADD COLUMN IF NOT EXISTS hop_count     integer,
    ADD COLUMN IF NOT EXISTS route_latency jsonb;

-- The distinct countries and ISPs a (monitor, region, day) reached, kept as
-- sets beside their counts so running totals can add a batch to them.
ALTER TABLE regional_monitor_summaries
    ADD COLUMN IF NOT EXISTS countries text[],
    ADD COLUMN IF NOT EXISTS isps      text[];
