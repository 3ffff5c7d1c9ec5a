-- Alerting: where notifications go (channels), what went wrong (incidents and
-- their events), what is owed to whom (the notification outbox), when not to
-- page (maintenance windows), and the evaluator's own state so a standby
-- alerter carries on where the leader stopped. Additive: new tables and new
-- nullable columns only; the existing app's tables keep their shape.

-- A notification channel. `settings` holds what is not secret (an SMTP host,
-- a recipient, a severity map); `secret_ref` says where the secret comes from
-- ({"env": "NAME"} or {"file": "/path"}), never the secret itself.
CREATE TABLE IF NOT EXISTS alert_channels (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    kind       text NOT NULL CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'alertmanager')),
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb,
    secret_ref jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-monitor alerting settings; NULL means the configured default.
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS alert_confirm integer CHECK (alert_confirm IS NULL OR alert_confirm > 0);
ALTER TABLE monitors ADD COLUMN IF NOT EXISTS alert_recover integer CHECK (alert_recover IS NULL OR alert_recover > 0);

-- The channels a monitor names (`--notify a,b`). A monitor that names none
-- goes to the configured default list.
CREATE TABLE IF NOT EXISTS monitor_channels (
    monitor_id uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES alert_channels (id) ON DELETE RESTRICT,
    PRIMARY KEY (monitor_id, channel_id)
);
CREATE INDEX IF NOT EXISTS monitor_channels_channel_idx ON monitor_channels (channel_id);

-- An incident: a monitor down (or slow) across regions, or one region's own
-- outage. At most one open incident per subject and cause.
CREATE TABLE IF NOT EXISTS incidents (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('monitor', 'region')),
    cause           text NOT NULL CHECK (cause IN ('down', 'latency', 'region_impaired', 'no_agent')),
    severity        text NOT NULL CHECK (severity IN ('critical', 'warning')),
    monitor_id      uuid REFERENCES monitors (id) ON DELETE CASCADE,
    region_code     text,
    summary         text NOT NULL,
    regions         text[] NOT NULL DEFAULT '{}',
    first_error     text,
    in_maintenance  boolean NOT NULL DEFAULT false,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    CONSTRAINT incidents_subject CHECK (
        (kind = 'monitor' AND monitor_id IS NOT NULL)
        OR (kind = 'region' AND monitor_id IS NULL AND region_code IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open
    ON incidents (kind, cause, coalesce(monitor_id::text, ''), coalesce(region_code, ''))
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS incidents_monitor_opened_idx ON incidents (monitor_id, opened_at DESC);
CREATE INDEX IF NOT EXISTS incidents_open_idx ON incidents (opened_at DESC) WHERE resolved_at IS NULL;

-- What happened to an incident, in order: opened, resolved, acknowledged,
-- flapping, a note. Notifications are owed per event.
CREATE TABLE IF NOT EXISTS incident_events (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('opened', 'resolved', 'acknowledged', 'flapping', 'firing', 'note')),
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS incident_events_incident_idx ON incident_events (incident_id, at);

-- The outbox: one row per (event, channel), written in the transaction that
-- writes the event, attempted until delivered. Every attempt of a row carries
-- its idempotency key.
CREATE TABLE IF NOT EXISTS notifications (
    id              bigserial PRIMARY KEY,
    event_id        bigint NOT NULL REFERENCES incident_events (id) ON DELETE CASCADE,
    channel_id      uuid NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'suppressed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_once UNIQUE (event_id, channel_id)
);
CREATE INDEX IF NOT EXISTS notifications_due_idx ON notifications (next_attempt_at) WHERE state = 'pending';

-- A maintenance window for a monitor or a whole region: incidents inside it
-- are recorded and marked, and not sent.
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id          bigserial PRIMARY KEY,
    monitor_id  uuid REFERENCES monitors (id) ON DELETE CASCADE,
    region_code text REFERENCES regions (code) ON UPDATE CASCADE ON DELETE CASCADE,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT '',
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_windows_ordered CHECK (ends_at > starts_at),
    CONSTRAINT maintenance_windows_subject CHECK (monitor_id IS NOT NULL OR region_code IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS maintenance_windows_ends_idx ON maintenance_windows (ends_at);
