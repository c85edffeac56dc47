-- Cloud-to-device queues (docs/iothub-model.md §1): one row per message, its
-- state moved only in transactions (services/c2d). A device's messages go
-- with the device.

-- Per device: the next sequence number (never reused, even after history is
-- trimmed). Locked by every send, which serialises a device's sends.
CREATE TABLE c2d_queues (
    device_id     text COLLATE "C" PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    next_sequence bigint NOT NULL
);

CREATE TABLE c2d_messages (
    device_id            text COLLATE "C" NOT NULL REFERENCES c2d_queues (device_id) ON DELETE CASCADE,
    sequence_number      bigint NOT NULL,
    message_id           text COLLATE "C" NOT NULL,
    correlation_id       text,
    user_id              text,
    ack                  text NOT NULL CHECK (ack IN ('none', 'positive', 'negative', 'full')),
    content_type         text,
    content_encoding     text,
    properties           jsonb NOT NULL,
    body                 bytea NOT NULL,
    device_generation_id text NOT NULL,
    enqueued_at          timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    state                text NOT NULL
                         CHECK (state IN ('Enqueued', 'Invisible', 'Completed', 'DeadLettered', 'Purged')),
    delivery_count       integer NOT NULL DEFAULT 0,
    lock_token           text,
    lock_until           timestamptz,
    first_delivered_at   timestamptz,
    outcome              text CHECK (outcome IN ('Success', 'Expired', 'DeliveryCountExceeded', 'Rejected', 'Purged')),
    outcome_at           timestamptz,
    PRIMARY KEY (device_id, sequence_number),
    -- Idempotent sends: a message id the queue still knows.
    CONSTRAINT c2d_messages_message_id UNIQUE (device_id, message_id)
);

-- What receives look through: the pending messages of a device.
CREATE INDEX c2d_messages_pending ON c2d_messages (device_id, sequence_number)
    WHERE state IN ('Enqueued', 'Invisible');
CREATE INDEX c2d_messages_lock ON c2d_messages (device_id, lock_token) WHERE lock_token IS NOT NULL;

COMMENT ON TABLE c2d_messages IS
    'Ferry C2D messages: one row per message in a device queue, with its lifecycle state.';
-- ferry:amends text-sha256=25bb6be478e7399076ba21ab6a559db75c050595354d8d984af9c9a768258de5 sql-sha256:51b3354429472c246b659c63a6f9f511dd6be601b1a49001ea38e14d1e06552d
