-- Regions: one row per monitoring region (each its own Swarm and Redis).
-- Seeded with the three regions of the original design; `us-east` is the default.
CREATE TABLE IF NOT EXISTS regions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code                text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9-]{1,49}$'),
    name                text NOT NULL,
    city                text,
    country_code        char(2) CHECK (country_code IS NULL OR country_code ~ '^[A-Z]{2}$'),
    latitude            double precision CHECK (latitude IS NULL OR latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude IS NULL OR longitude BETWEEN -180 AND 180),
    latency_warning_ms  integer NOT NULL DEFAULT 200 CHECK (latency_warning_ms > 0),
    latency_critical_ms integer NOT NULL DEFAULT 500 CHECK (latency_critical_ms > 0),
    is_active           boolean NOT NULL DEFAULT true,
    is_default          boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT regions_thresholds_ordered CHECK (latency_warning_ms < latency_critical_ms),
    CONSTRAINT regions_default_is_active CHECK (NOT is_default OR is_active)
);

-- At most one default region; "at least one" is kept by the application
-- (set-default swaps inside one transaction, the default cannot be disabled).
CREATE UNIQUE INDEX IF NOT EXISTS regions_one_default ON regions (is_default) WHERE is_default;

-- created_at is staggered so listings keep the seed's order.
INSERT INTO regions (code, name, city, country_code, latitude, longitude,
                     latency_warning_ms, latency_critical_ms, is_active, is_default, created_at, updated_at)
VALUES
    ('us-east',  'US East (Virginia)', 'Ashburn', 'US', 39.0438, -77.4874, 200, 500, true, true,  now(), now()),
    ('eu-west',  'EU West (Ireland)',  'Dublin',  'IE', 53.3498,  -6.2603, 150, 300, true, false, now() + interval '1 millisecond', now()),
    ('ap-south', 'AP South (Mumbai)',  'Mumbai',  'IN', 19.0760,  72.8777, 100, 250, true, false, now() + interval '2 milliseconds', now())
ON CONFLICT (code) DO NOTHING;
