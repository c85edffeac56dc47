-- The operator audit log (issue 10): policy changes, device deletions, C2D
-- queue purges, checkpoint resets and dead-letter re-drives, each written in
-- the transaction of the operation it records, with who did it (the token's
-- policy or device) and when. Read with `ferryctl audit` (AuditLog service).
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('policy', 'device', 'anonymous')),
    action     text NOT NULL,
    target     text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

COMMENT ON TABLE audit_log IS
    'Ferry operator audit log: who changed policies, deleted devices, purged queues, reset checkpoints, re-drove dead letters.';
