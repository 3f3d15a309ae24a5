-- A failed sign-in from a browser with a device cookie of the account is counted
-- under that device (its random id), apart from the per-email limit.
ALTER TABLE login_failures ADD COLUMN device TEXT;
CREATE INDEX login_failures_by_device ON login_failures (device, at);
