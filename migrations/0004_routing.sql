-- Message routing (docs/iothub-model.md §3.5): endpoints, routes and the
-- fallback switch. Every change bumps routing_settings.version and is
-- announced on channel ferry_routes, so every replica routes each batch
-- against one known route-set version.
CREATE TABLE routing_endpoints (
    name        text COLLATE "C" PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('event_store', 'kafka')),
    kafka_topic text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CHECK ((kind = 'kafka') = (kafka_topic IS NOT NULL))
);

-- IoT Hub's built-in endpoint: the event store.
INSERT INTO routing_endpoints (name, kind, created_at, updated_at)
VALUES ('events', 'event_store', now(), now());

CREATE TABLE routing_routes (
    name       text COLLATE "C" PRIMARY KEY,
    source     text NOT NULL CHECK (source IN ('DeviceMessages', 'DeviceLifecycleEvents')),
    condition  text NOT NULL,
    endpoint   text NOT NULL REFERENCES routing_endpoints (name),
    enabled    boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE routing_settings (
    id               integer PRIMARY KEY CHECK (id = 1),
    fallback_enabled boolean NOT NULL,
    version          bigint NOT NULL
);
INSERT INTO routing_settings VALUES (1, true, 1);

CREATE FUNCTION ferry_routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME <> 'routing_settings' THEN
        UPDATE routing_settings SET version = version + 1 WHERE id = 1;
    END IF;
    PERFORM pg_notify('ferry_routes', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER routing_endpoints_changed AFTER INSERT OR UPDATE OR DELETE ON routing_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_routing_changed();
CREATE TRIGGER routing_routes_changed AFTER INSERT OR UPDATE OR DELETE ON routing_routes
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_routing_changed();
CREATE TRIGGER routing_settings_changed AFTER UPDATE ON routing_settings
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_routing_changed();
-- ferry:amends text-sha256=01f8dc89de885b7f1ba74af10f6a2eeef77a05caf1b41f51b1e3113bf2e003d8 sql-sha256:239652d237de3ea88d2be46bc7de044f71d27878e116ef26d47ab93c1a5de843
