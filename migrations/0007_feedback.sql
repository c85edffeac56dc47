-- Delivery feedback (docs/iothub-model.md §2): one row per outcome a sender
-- asked for, written in the same transaction as the outcome. Receivers take
-- locked batches; Watch streams read every record until its TTL. A deleted
-- device's feedback goes with its queue.
CREATE TABLE c2d_feedback (
    id                   bigserial PRIMARY KEY,
    writer_xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    device_id            text COLLATE "C" NOT NULL REFERENCES c2d_queues (device_id) ON DELETE CASCADE,
    device_generation_id text NOT NULL,
    original_message_id  text NOT NULL,
    sequence_number      bigint NOT NULL,
    status               text NOT NULL
                         CHECK (status IN ('Success', 'Expired', 'DeliveryCountExceeded', 'Rejected', 'Purged')),
    description          text NOT NULL,
    enqueued_at          timestamptz NOT NULL,  -- when the outcome happened
    expires_at           timestamptz NOT NULL,  -- the feedback TTL
    state                text NOT NULL DEFAULT 'Enqueued'
                         CHECK (state IN ('Enqueued', 'Invisible', 'Completed', 'Dropped')),
    delivery_count       integer NOT NULL DEFAULT 0,
    lock_token           text,
    lock_until           timestamptz
);

CREATE INDEX c2d_feedback_position ON c2d_feedback (writer_xid, id);
CREATE INDEX c2d_feedback_pending ON c2d_feedback (id) WHERE state IN ('Enqueued', 'Invisible');
CREATE INDEX c2d_feedback_lock ON c2d_feedback (lock_token) WHERE lock_token IS NOT NULL;
CREATE INDEX c2d_feedback_expiry ON c2d_feedback (expires_at);

-- What the sweeper trims: terminal messages by outcome time.
CREATE INDEX c2d_messages_finished ON c2d_messages (outcome_at) WHERE outcome_at IS NOT NULL;
-- What the sweeper expires and releases.
CREATE INDEX c2d_messages_expiry ON c2d_messages (expires_at) WHERE state IN ('Enqueued', 'Invisible');
CREATE INDEX c2d_messages_locked ON c2d_messages (lock_until) WHERE state = 'Invisible';

COMMENT ON TABLE c2d_feedback IS
    'Ferry C2D delivery feedback: one row per outcome the sender''s ack asked for.';
-- ferry:amends text-sha256=5570ec30d4043f467319e29764379084806735b60dd4d6c2e86f0f0bdb25d577 sql-sha256:9f1479605f7f9a03d82f93dd2e237da660db57246b505856badf8cfc0807f706
