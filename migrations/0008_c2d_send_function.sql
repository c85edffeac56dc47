-- One round trip per C2D send (issue 9): the device lock, the queue count,
-- the sequence number, the insert and the receivers' wake-up in one function
-- call, run by the caller as a single autocommit statement.
--
-- Each statement of a VOLATILE function takes its own snapshot under READ
-- COMMITTED, so the count below sees every send that committed before this
-- one's device lock was granted (a count in the same statement as the lock
-- would miss them and let a queue pass its depth).
--
-- result: 'sent' (msg is the new row), 'duplicate' (msg is the row the queue
-- already holds under this message id), 'not_found' (no such enabled device;
-- msg is NULL), 'full' (the queue holds p_max_depth pending messages).
CREATE FUNCTION ferry_c2d_send(
    p_device_id text, p_message_id text, p_correlation_id text, p_user_id text, p_ack text,
    p_content_type text, p_content_encoding text, p_properties jsonb, p_body bytea,
    p_now timestamptz, p_expires_at timestamptz, p_max_depth bigint,
    OUT result text, OUT msg c2d_messages)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_generation text;
    v_pending bigint;
    v_deliverable bigint;
BEGIN
    SELECT generation_id INTO v_generation FROM devices
        WHERE device_id = p_device_id AND status = 'enabled' FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        result := 'not_found';
        RETURN;
    END IF;
    SELECT m.* INTO msg FROM c2d_messages m WHERE device_id = p_device_id AND message_id = p_message_id;
    IF FOUND THEN
        result := 'duplicate';
        RETURN;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE state = 'Enqueued' OR lock_until <= p_now)
        INTO v_pending, v_deliverable
        FROM c2d_messages
        WHERE device_id = p_device_id AND state IN ('Enqueued', 'Invisible') AND expires_at > p_now;
    IF v_pending >= p_max_depth THEN
        result := 'full';
        RETURN;
    END IF;
    WITH q AS (
        INSERT INTO c2d_queues (device_id, next_sequence) VALUES (p_device_id, 2)
        ON CONFLICT (device_id) DO UPDATE SET next_sequence = c2d_queues.next_sequence + 1
        RETURNING next_sequence - 1 AS sequence)
    INSERT INTO c2d_messages AS m (device_id, sequence_number, message_id, correlation_id, user_id, ack,
        content_type, content_encoding, properties, body, device_generation_id, enqueued_at, expires_at, state)
    SELECT p_device_id, q.sequence, p_message_id, p_correlation_id, p_user_id, p_ack, p_content_type,
        p_content_encoding, p_properties, p_body, v_generation, p_now, p_expires_at, 'Enqueued'
    FROM q
    RETURNING m.* INTO msg;
    -- Wake receivers only when the queue had nothing they could take
    -- (NOTIFY serialises commits; most sends to a busy queue skip it).
    IF v_deliverable = 0 THEN
        PERFORM pg_notify('ferry_c2d', p_device_id);
    END IF;
    result := 'sent';
END
$$;

COMMENT ON FUNCTION ferry_c2d_send IS
    'Ferry C2D send in one call: lock the device, check idempotency and depth, insert, wake receivers.';
