-- Public status pages (`geoctl statuspage add`): a slug, a title and the monitors an operator
-- chose to publish, in their order. Additive: nothing existing changes.
CREATE TABLE IF NOT EXISTS status_pages (
    slug       text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS status_page_monitors (
    slug       text NOT NULL REFERENCES status_pages (slug) ON DELETE CASCADE,
    monitor_id uuid NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    position   int NOT NULL,
    PRIMARY KEY (slug, monitor_id)
);
