-- One name per concept: a session's id is `session_id` everywhere (a memory job and a promise
-- belong to the session that produced them).
ALTER TABLE memory_jobs RENAME COLUMN conversation_id TO session_id;
ALTER TABLE promises RENAME COLUMN conversation_id TO session_id;

-- What an issue or a promise is about, whatever the line of business: `subject_kind` names the
-- vertical's target kind (order, card, transaction, ...), `subject_id` its id. Retail issues
-- and promises recorded before this migration were about orders.
ALTER TABLE issues ADD COLUMN subject_kind text;
UPDATE issues SET subject_kind = 'order', subject_id = order_id, subject_label = 'order ' || order_id
    WHERE subject_id IS NULL AND order_id IS NOT NULL;
UPDATE issues i SET subject_kind = CASE WHEN EXISTS (SELECT 1 FROM holdings h
        WHERE h.tenant_id = i.tenant_id AND h.id = i.subject_id) THEN 'card' ELSE 'transaction' END
    WHERE subject_kind IS NULL AND subject_id IS NOT NULL;
ALTER TABLE promises ADD COLUMN subject_id text;
UPDATE promises SET subject_id = order_id WHERE subject_id IS NULL AND order_id IS NOT NULL;
CREATE INDEX promises_subject ON promises (tenant_id, customer_id, subject_id) WHERE status = 'pending';
