-- The alerter's own state, so a standby that takes over carries on from the
-- database: each (monitor, region)'s streaks and the newest result counted,
-- each monitor's recent changes for flapping, and where the last tick read up
-- to. Down/slow/impaired/no-agent verdicts are not stored here: an open
-- incident is that verdict. Additive: new tables only.

CREATE TABLE IF NOT EXISTS alert_region_state (
    monitor_id      uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    region_code     text NOT NULL,
    failing         boolean NOT NULL DEFAULT false,
    failing_toward  integer NOT NULL DEFAULT 0 CHECK (failing_toward >= 0),
    slow            boolean NOT NULL DEFAULT false,
    slow_toward     integer NOT NULL DEFAULT 0 CHECK (slow_toward >= 0),
    last_checked_at timestamptz,
    last_error      text,
    PRIMARY KEY (monitor_id, region_code)
);

CREATE TABLE IF NOT EXISTS alert_monitor_state (
    monitor_id uuid PRIMARY KEY REFERENCES monitors (id) ON DELETE CASCADE,
    changes    timestamptz[] NOT NULL DEFAULT '{}',
    flapping   boolean NOT NULL DEFAULT false
);

-- One row: the database time the last tick evaluated up to.
CREATE TABLE IF NOT EXISTS alert_cursor (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    evaluated_at timestamptz NOT NULL
);
