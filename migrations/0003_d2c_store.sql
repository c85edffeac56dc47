-- The D2C event store, its dead letters and the fenced checkpoints
-- (docs/event-store.md). Rows are keyed by consumer group: a group is one
-- landing pipeline, like an Event Hubs consumer group.

-- Landed events, partitioned by UTC day of enqueued time. Day partitions are
-- created ahead and attached by ferryd (never inside a landing transaction)
-- and dropped whole by retention; there is no default partition.
CREATE TABLE d2c_events (
    consumer_group          text NOT NULL,
    topic                   text NOT NULL,
    kafka_partition         integer NOT NULL,
    kafka_offset            bigint NOT NULL,
    enqueued_time           timestamptz NOT NULL,
    device_id               text COLLATE "C" NOT NULL,
    message_id              text,
    correlation_id          text,
    content_type            text,
    content_encoding        text,
    creation_time           timestamptz,
    system_properties       jsonb NOT NULL,
    application_properties  jsonb NOT NULL,
    body                    bytea NOT NULL,
    landed_at               timestamptz NOT NULL DEFAULT now(),
    -- A record's identity: it can land once.
    CONSTRAINT d2c_events_record UNIQUE (consumer_group, topic, kafka_partition, kafka_offset, enqueued_time)
) PARTITION BY RANGE (enqueued_time);

CREATE INDEX d2c_events_device_time ON d2c_events (device_id, enqueued_time);
CREATE INDEX d2c_events_time ON d2c_events (enqueued_time);

COMMENT ON TABLE d2c_events IS
    'Ferry D2C event store: one row per landed Kafka record, partitioned by UTC day of enqueued_time.';

-- Records that could not land, with the reason; the record kept as sent.
CREATE TABLE d2c_dead_letters (
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL,
    reason           text NOT NULL,
    detail           text NOT NULL,
    record_key       bytea,
    record_value     bytea,
    -- [{"name": <base64>, "value": <base64 or null>}, ...]: headers as bytes
    record_headers   jsonb NOT NULL,
    record_timestamp timestamptz,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition, kafka_offset)
);

CREATE INDEX d2c_dead_letters_time ON d2c_dead_letters (dead_lettered_at);

COMMENT ON TABLE d2c_dead_letters IS
    'Ferry D2C dead letters: Kafka records that did not land, with the reason.';

-- One row per (group, topic, partition): the next offset to read (Kafka's
-- convention) and the fencing epoch of its current owner.
CREATE TABLE d2c_checkpoints (
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    next_offset      bigint,
    epoch            bigint NOT NULL,
    owner            text NOT NULL,
    claimed_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

COMMENT ON TABLE d2c_checkpoints IS
    'Ferry D2C checkpoints: next offset per partition, fenced by the owner''s epoch.';
