-- A contact's timeline reads each source newest first by creation time, then id
-- (dialtone_domain::timeline), a page after a (created_at, id) position: these
-- indexes give that order, so a page reads its rows and no more, however many calls
-- or messages the contact has.
CREATE INDEX calls_contact_created ON calls (workspace_id, livemode, contact_id, created_at, id);
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at, id);
CREATE INDEX notes_contact_created ON notes (contact_id, created_at, id);
CREATE INDEX notes_conversation_created ON notes (conversation_id, created_at, id);
