-- Secret rotation (the previous secret signs too until it expires) and failure tracking.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_sealed TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
ALTER TABLE webhook_endpoints ADD COLUMN failing_since TIMESTAMPTZ;
