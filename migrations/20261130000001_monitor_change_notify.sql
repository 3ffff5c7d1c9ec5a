-- Agents keep the monitor definitions they read and forget one when this
-- says it changed, whichever program changed it (geoctl, the existing app, a
-- hand-written UPDATE): a NOTIFY on `geoctl_monitor_changed` with the
-- monitor's id, sent at commit. TRUNCATE says `*` (forget everything).
-- Additive: a function and triggers of geoctl's own names.
CREATE OR REPLACE FUNCTION geoctl_monitor_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('geoctl_monitor_changed', '*');
        RETURN NULL;
    END IF;
    -- TG_ARGV[0] names the column holding the monitor's id.
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('geoctl_monitor_changed', to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('geoctl_monitor_changed', to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS geoctl_monitor_changed ON monitors;
CREATE TRIGGER geoctl_monitor_changed AFTER INSERT OR UPDATE OR DELETE ON monitors
    FOR EACH ROW EXECUTE FUNCTION geoctl_monitor_changed('id');
DROP TRIGGER IF EXISTS geoctl_monitors_truncated ON monitors;
CREATE TRIGGER geoctl_monitors_truncated AFTER TRUNCATE ON monitors
    FOR EACH STATEMENT EXECUTE FUNCTION geoctl_monitor_changed();

DROP TRIGGER IF EXISTS geoctl_monitor_changed ON monitor_regions;
CREATE TRIGGER geoctl_monitor_changed AFTER INSERT OR UPDATE OR DELETE ON monitor_regions
    FOR EACH ROW EXECUTE FUNCTION geoctl_monitor_changed('monitor_id');
DROP TRIGGER IF EXISTS geoctl_monitor_regions_truncated ON monitor_regions;
CREATE TRIGGER geoctl_monitor_regions_truncated AFTER TRUNCATE ON monitor_regions
    FOR EACH STATEMENT EXECUTE FUNCTION geoctl_monitor_changed();
