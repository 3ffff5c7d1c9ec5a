-- Synthetic checks (issue 12): what each step of a scripted flow measured, and
-- the screenshot of a failing browser step (PNG, or JPEG when the PNG is over
-- 512 KiB; one still larger is not stored and the step says so). Both NULL for
-- every other check.
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS steps      jsonb;
ALTER TABLE monitor_results ADD COLUMN IF NOT EXISTS screenshot bytea;
