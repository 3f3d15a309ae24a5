-- The event log read by type (`GET /v1/events?type=…`): one range per type, newest first.
CREATE INDEX events_type ON events (workspace_id, livemode, event_type, id);
