-- The device identity registry (docs/iothub-model.md §5.3).
-- device_id uses the "C" collation: ids are case-sensitive and list in byte order.
CREATE TABLE devices (
    device_id                   text COLLATE "C" PRIMARY KEY,
    generation_id               text NOT NULL,
    etag                        text NOT NULL,
    status                      text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    status_reason               text NOT NULL DEFAULT '',
    status_updated_at           timestamptz NOT NULL,
    primary_key                 text NOT NULL,
    secondary_key               text NOT NULL,
    connection_state            text NOT NULL DEFAULT 'disconnected'
                                CHECK (connection_state IN ('connected', 'disconnected')),
    connection_state_updated_at timestamptz,
    last_activity_at            timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);

COMMENT ON TABLE devices IS 'Ferry device identity registry: one row per device identity.';
-- ferry:amends text-sha256=5000d05372f6d4d41d19a224bcd666b296a4b740fe9af24375cdd07fd238fb05 sql-sha256:3fd127c88bc96a52690aa64bb1f841fb12130a78a4743d48fb8d7f05bc25c1ba
