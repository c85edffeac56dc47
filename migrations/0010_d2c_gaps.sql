-- Data loss, recorded (issue 17): records Kafka deleted (retention or
-- DeleteRecords) before Ferry landed them. The consumer never lets Kafka's
-- auto.offset.reset move a partition; when the checkpoint falls below the
-- log start it writes one row here for the range [from_offset, to_offset)
-- that was never landed, adds its size to d2c_checkpoints.lost, and moves
-- the checkpoint to the log start, all in one fenced transaction
-- (docs/reliability.md, "Gaps").
CREATE TABLE d2c_gaps (
    id               bigserial PRIMARY KEY,
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    from_offset      bigint NOT NULL,
    to_offset        bigint NOT NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    owner            text NOT NULL,
    CONSTRAINT d2c_gaps_range CHECK (0 <= from_offset AND from_offset < to_offset)
);
CREATE INDEX d2c_gaps_partition ON d2c_gaps (consumer_group, topic, kafka_partition, from_offset);

COMMENT ON TABLE d2c_gaps IS
    'Ferry D2C data loss: offset ranges Kafka deleted before they were landed, one row per gap found.';

-- Records lost so far per partition (the sum of its gaps).
ALTER TABLE d2c_checkpoints ADD COLUMN lost bigint NOT NULL DEFAULT 0;
