-- Routing in landing, reading back, replay and lifecycle events (issue 5).

-- Rows carry a landing order (id) and the writing transaction id, so that
-- readers resuming from a position (writer_xid, id) miss no row that
-- commits out of id order: a reader only sees rows whose writer_xid is below
-- the oldest transaction still running (docs/event-store.md).
CREATE SEQUENCE d2c_events_id_seq AS bigint CACHE 1000;
ALTER TABLE d2c_events
    ADD COLUMN id bigint NOT NULL DEFAULT nextval('d2c_events_id_seq'),
    ADD COLUMN writer_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX d2c_events_position ON d2c_events (writer_xid, id);

-- Per partition accounting of what did not go to the store or the dead
-- letters, counted once per offset (the first time it is routed), the
-- highest offset ever checkpointed (records below it are a replay) and the
-- route-set version of the last batch.
ALTER TABLE d2c_checkpoints
    ADD COLUMN high_offset bigint,
    ADD COLUMN dropped bigint NOT NULL DEFAULT 0,
    ADD COLUMN routed_elsewhere bigint NOT NULL DEFAULT 0,
    ADD COLUMN replay_skipped bigint NOT NULL DEFAULT 0,
    ADD COLUMN route_version bigint;
UPDATE d2c_checkpoints SET high_offset = next_offset;

-- Message enrichments (docs/iothub-model.md §3.5): added as application
-- properties to messages sent to the listed endpoints.
CREATE TABLE routing_enrichments (
    key        text COLLATE "C" PRIMARY KEY,
    value      text NOT NULL,
    endpoints  text[] NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TRIGGER routing_enrichments_changed AFTER INSERT OR UPDATE OR DELETE ON routing_enrichments
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_routing_changed();

-- Device lifecycle notifications, written in the registry change's own
-- transaction and published to the D2C topic by the api role (at least
-- once), then deleted.
CREATE TABLE device_lifecycle_outbox (
    id             bigserial PRIMARY KEY,
    device_id      text COLLATE "C" NOT NULL,
    op_type        text NOT NULL CHECK (op_type IN ('createDeviceIdentity', 'deleteDeviceIdentity')),
    operation_time timestamptz NOT NULL,
    body           jsonb NOT NULL
);

CREATE FUNCTION ferry_device_lifecycle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d devices;
    op text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        d := NEW;
        op := 'createDeviceIdentity';
    ELSE
        d := OLD;
        op := 'deleteDeviceIdentity';
    END IF;
    INSERT INTO device_lifecycle_outbox (device_id, op_type, operation_time, body)
    VALUES (d.device_id, op, clock_timestamp(), jsonb_build_object(
        'deviceId', d.device_id,
        'etag', d.etag,
        'version', 1,
        'status', d.status,
        'statusReason', d.status_reason,
        'statusUpdateTime', d.status_updated_at,
        'connectionState', initcap(d.connection_state),
        'lastActivityTime', d.last_activity_at,
        'properties', jsonb_build_object(
            'desired', jsonb_build_object('$metadata', '{}'::jsonb, '$version', 1),
            'reported', jsonb_build_object('$metadata', '{}'::jsonb, '$version', 1))));
    PERFORM pg_notify('ferry_lifecycle', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER devices_lifecycle AFTER INSERT OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION ferry_device_lifecycle();
-- ferry:amends text-sha256=ce5f8e22b40a0d628a446c909c6f3429f11444e0fa59840e64de050e10175b4f sql-sha256:e9389da880e3d6f534a92f4a7987dcb450eac8e4884959b037221787242bb576
