-- lijian schema v8: send slots are cut no earlier than p_lead after the
-- database clock. A slot cut at "now" is already behind by the time its answer
-- reaches the consumer (half a round trip, more on a busy host), and a consumer
-- throws away a slot it reaches late rather than bunch sends: measured at
-- 500/s, half of all slots were thrown away once the cluster fell behind (every
-- grant started at "now"), and the rate fell to 0.6× the limit. With a lead, a
-- fresh grant always leaves time to reach it; only the first `p_lead` after an
-- idle spell is given up.
DROP FUNCTION lijian_take_slots(text, double precision, integer, interval);

CREATE FUNCTION lijian_take_slots(p_key text, p_rate double precision, p_want integer, p_horizon interval,
                                  p_lead interval,
                                  OUT first_slot timestamptz, OUT granted integer, OUT spacing_us bigint,
                                  OUT db_now timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_tat timestamptz;
    v_paused timestamptz;
    v_spacing interval;
BEGIN
    INSERT INTO send_pace (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
    SELECT s.tat, s.paused_until INTO v_tat, v_paused FROM send_pace s WHERE s.key = p_key FOR UPDATE;
    db_now := clock_timestamp();
    spacing_us := greatest(1, round(1e6 / p_rate))::bigint;
    v_spacing := make_interval(secs => spacing_us / 1e6);
    first_slot := greatest(v_tat, db_now + p_lead, coalesce(v_paused, db_now));
    granted := least(p_want, floor(extract(epoch FROM (db_now + p_horizon - first_slot)) * 1e6 / spacing_us))::integer;
    IF granted <= 0 THEN
        granted := 0;
        RETURN;
    END IF;
    UPDATE send_pace SET tat = first_slot + v_spacing * granted WHERE key = p_key;
END;
$$;
