-- lijian_take_slots: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0007, changed by 0008; see those migrations for why each change was made.
--
-- Takes up to p_want slots of p_key at p_rate per second, none further than
-- p_horizon ahead of the database clock. Returns the first slot, how many were
-- granted (0: none free yet — ask again at first_slot - p_horizon), the spacing
-- in microseconds, and the database clock when the slots were cut (the caller
-- converts slot times to its own clock relative to this, so hosts need not
-- agree on the time).
CREATE OR REPLACE FUNCTION lijian_take_slots(p_key text, p_rate double precision, p_want integer, p_horizon interval,
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
