-- Agents: where Twilio streams a live call's audio (Media Streams over WebSocket), so
-- the customer's own voice AI talks on the call.

ALTER TABLE agents ADD COLUMN stream_url TEXT;
