-- Agents: where Twilio streams a live call's audio (Media Streams over WebSocket), so
-- the customer's own voice AI talks on the call.
ALTER TABLE agents ADD COLUMN stream_url TEXT;

-- The carrier reconciler asks a real carrier about calls and messages whose reports
-- stopped coming (dialtone was down, a callback was lost): only those still open.
CREATE INDEX calls_carrier_open ON calls (updated_at)
    WHERE carrier <> 'simulator' AND status IN ('queued', 'ringing', 'in_progress');
CREATE INDEX messages_carrier_open ON messages (updated_at)
    WHERE carrier <> 'simulator' AND status IN ('queued', 'sent');
