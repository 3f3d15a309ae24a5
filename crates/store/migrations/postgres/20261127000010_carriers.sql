-- Carriers: which carrier carries a call, a message or a number, and its id there
-- (Twilio's CallSid, MessageSid, IncomingPhoneNumber sid); the seconds a live call
-- may be charged for (reserved when placed); the carrier's error on a failure;
-- recordings kept at the carrier; transcript segments as they arrive.

ALTER TABLE calls ADD COLUMN carrier TEXT NOT NULL DEFAULT 'simulator';
ALTER TABLE calls ADD COLUMN carrier_sid TEXT;
ALTER TABLE calls ADD COLUMN reserved_seconds BIGINT;
ALTER TABLE calls ADD COLUMN error_code TEXT;
ALTER TABLE calls ADD COLUMN error_message TEXT;
CREATE UNIQUE INDEX calls_carrier_sid ON calls (carrier, carrier_sid) WHERE carrier_sid IS NOT NULL;

ALTER TABLE messages ADD COLUMN carrier TEXT NOT NULL DEFAULT 'simulator';
ALTER TABLE messages ADD COLUMN carrier_sid TEXT;
ALTER TABLE messages ADD COLUMN error_code TEXT;
ALTER TABLE messages ADD COLUMN error_message TEXT;
CREATE UNIQUE INDEX messages_carrier_sid ON messages (carrier, carrier_sid) WHERE carrier_sid IS NOT NULL;

ALTER TABLE phone_numbers ADD COLUMN carrier TEXT NOT NULL DEFAULT 'simulator';
ALTER TABLE phone_numbers ADD COLUMN carrier_sid TEXT;

ALTER TABLE recordings ADD COLUMN carrier_sid TEXT;
ALTER TABLE recordings ADD COLUMN media_url TEXT;
CREATE UNIQUE INDEX recordings_carrier_sid ON recordings (carrier_sid) WHERE carrier_sid IS NOT NULL;

-- Live transcripts arrive a segment at a time; a replayed segment is the same row.
CREATE TABLE transcript_segments (
    call_id TEXT COLLATE "C" NOT NULL REFERENCES calls (id),
    segment_key TEXT NOT NULL,
    speaker TEXT NOT NULL,
    start_seconds BIGINT NOT NULL,
    text TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (call_id, segment_key)
);
