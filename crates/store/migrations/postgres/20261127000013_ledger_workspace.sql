-- Each ledger entry names the workspace it was charged for (issue 13: a workspace
-- key's invoices showed every workspace's usage). Credits are organization-wide and
-- keep NULL. Existing charges find their workspace through what they paid for.

ALTER TABLE wallet_transactions ADD COLUMN workspace_id TEXT COLLATE "C";

UPDATE wallet_transactions SET workspace_id =
    (SELECT c.workspace_id FROM calls c WHERE c.id = wallet_transactions.reference_id)
    WHERE kind = 'call';
UPDATE wallet_transactions SET workspace_id =
    (SELECT m.workspace_id FROM messages m WHERE m.id = wallet_transactions.reference_id)
    WHERE kind = 'message';
UPDATE wallet_transactions SET workspace_id =
    (SELECT p.workspace_id FROM phone_numbers p WHERE p.id = wallet_transactions.reference_id)
    WHERE kind = 'phone_number';

CREATE INDEX wallet_transactions_workspace
    ON wallet_transactions (org_id, livemode, workspace_id, id);
