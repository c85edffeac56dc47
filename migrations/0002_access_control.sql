-- Shared access policies (docs/iothub-model.md §5.2) and change notifications
-- that keep every replica's credential cache fresh.
CREATE TABLE shared_access_policies (
    name          text COLLATE "C" PRIMARY KEY,
    primary_key   text NOT NULL,
    secondary_key text NOT NULL,
    -- Any of RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect.
    permissions   text[] NOT NULL CHECK (permissions <@ ARRAY['RegistryRead', 'RegistryWrite',
                                                               'ServiceConnect', 'DeviceConnect']::text[]
                                         AND cardinality(permissions) > 0),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

COMMENT ON TABLE shared_access_policies IS
    'Ferry shared access policies: named key pairs with IoT Hub permissions.';

-- Every change to a device or a policy is announced on channel ferry_auth as
-- 'device:<id>' or 'policy:<name>'; ferryd drops its cached copy.
CREATE FUNCTION ferry_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    subject text;
BEGIN
    IF TG_TABLE_NAME = 'devices' THEN
        subject := 'device:' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.device_id ELSE NEW.device_id END);
    ELSE
        subject := 'policy:' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
    END IF;
    PERFORM pg_notify('ferry_auth', subject);
    RETURN NULL;
END;
$$;

CREATE TRIGGER devices_notify_auth AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION ferry_notify_auth();
CREATE TRIGGER policies_notify_auth AFTER INSERT OR UPDATE OR DELETE ON shared_access_policies
    FOR EACH ROW EXECUTE FUNCTION ferry_notify_auth();
-- ferry:amends text-sha256=1e6e940b6ddcb8f11aba28b893a24801565bffd4b67c63f663bfe7bca47e265b sql-sha256:4359a93e011202f1814905e6cf3c09b0f44edbe17f7c1e17b4ee51b28de839d6
