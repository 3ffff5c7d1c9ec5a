-- Monitors. This database may already belong to the existing monitoring app,
-- which owns `monitors(id, name, type, target, frequency_minutes, enabled,
-- status, config, created_at, updated_at)`. Everything here is additive:
-- create the table when it is missing, add the columns geoctl needs when they
-- are missing, never drop, retype or rewrite an existing column.
CREATE TABLE IF NOT EXISTS monitors (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid()
);

ALTER TABLE monitors ADD COLUMN IF NOT EXISTS name              text;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS type              text;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS target            text;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS frequency_minutes integer DEFAULT 5;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS enabled           boolean DEFAULT true;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS status            text DEFAULT 'active';
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS config            jsonb DEFAULT '{}'::jsonb;
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS created_at        timestamptz DEFAULT now();
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS updated_at        timestamptz DEFAULT now();

-- geoctl's own columns. NULL on legacy rows means "not set by geoctl":
-- readers fall back to frequency_minutes and the defaults.
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS interval_seconds  integer CHECK (interval_seconds IS NULL OR interval_seconds > 0);
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS timeout_ms        integer CHECK (timeout_ms IS NULL OR timeout_ms > 0);
-- When a monitor counts as down across regions: all | majority | any | at-least:N
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS down_rule         text DEFAULT 'majority';

CREATE INDEX IF NOT EXISTS monitors_name_idx ON monitors (name);

-- Per-region assignment and overrides: a monitor runs in each region it has a row for.
CREATE TABLE IF NOT EXISTS monitor_regions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    monitor_id          uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    region_code         text NOT NULL REFERENCES regions (code) ON UPDATE CASCADE,
    enabled             boolean NOT NULL DEFAULT true,
    timeout_ms          integer CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    interval_seconds    integer CHECK (interval_seconds IS NULL OR interval_seconds > 0),
    schedule            text,
    latency_warning_ms  integer CHECK (latency_warning_ms IS NULL OR latency_warning_ms > 0),
    latency_critical_ms integer CHECK (latency_critical_ms IS NULL OR latency_critical_ms > 0),
    headers             jsonb,
    priority            integer NOT NULL DEFAULT 0,
    notes               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT monitor_regions_unique UNIQUE (monitor_id, region_code)
);

CREATE INDEX IF NOT EXISTS monitor_regions_region_idx ON monitor_regions (region_code);
