-- lijian_pause_sends: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0007; see those migrations for why each change was made.
--
-- WeChat answered 429 for p_key's account: no slot is granted, to any
-- consumer, before now + p_pause.
CREATE OR REPLACE FUNCTION lijian_pause_sends(p_key text, p_pause interval) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO send_pace AS s (key, paused_until) VALUES (p_key, clock_timestamp() + p_pause)
    ON CONFLICT (key) DO UPDATE
       SET paused_until = greatest(coalesce(s.paused_until, '-infinity'), clock_timestamp() + p_pause)
$$;
