-- lijian schema v7: WeChat Pay's limits held across every consumer process.
--
-- An issuing account may send `rate` requests a second in all, however many
-- consumers run. Its next free send time (`tat`, the "theoretical arrival time"
-- of GCRA) lives here; a consumer takes a few consecutive send slots at a time
-- with lijian_take_slots and sends each at its slot. Slots are spaced 1/rate
-- apart for the whole cluster, so no one-second window can hold more than the
-- rate, and a new consumer simply takes the next free slots (no burst). Slots
-- are handed out at most `horizon` ahead, so a consumer that dies or stalls
-- wastes little; a stalled one throws away slots it wakes up too late for.
CREATE TABLE send_pace (
    -- 'account:<mchid>' or 'activity:<activity_id>'.
    key           text PRIMARY KEY,
    tat           timestamptz NOT NULL DEFAULT '-infinity',
    -- After a 429 from WeChat: nothing is granted before this, cluster-wide.
    paused_until  timestamptz
);

-- Takes up to p_want slots of p_key at p_rate per second, none further than
-- p_horizon ahead of the database clock. Returns the first slot, how many were
-- granted (0: none free yet — ask again at first_slot - p_horizon), the spacing
-- in microseconds, and the database clock when the slots were cut (the caller
-- converts slot times to its own clock relative to this, so hosts need not
-- agree on the time).
CREATE FUNCTION lijian_take_slots(p_key text, p_rate double precision, p_want integer, p_horizon interval,
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
    first_slot := greatest(v_tat, db_now, coalesce(v_paused, db_now));
    granted := least(p_want, floor(extract(epoch FROM (db_now + p_horizon - first_slot)) * 1e6 / spacing_us))::integer;
    IF granted <= 0 THEN
        granted := 0;
        RETURN;
    END IF;
    UPDATE send_pace SET tat = first_slot + v_spacing * granted WHERE key = p_key;
END;
$$;

-- WeChat answered 429 for p_key's account: no slot is granted, to any
-- consumer, before now + p_pause.
CREATE FUNCTION lijian_pause_sends(p_key text, p_pause interval) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO send_pace AS s (key, paused_until) VALUES (p_key, clock_timestamp() + p_pause)
    ON CONFLICT (key) DO UPDATE
       SET paused_until = greatest(coalesce(s.paused_until, '-infinity'), clock_timestamp() + p_pause)
$$;

-- One send per (account, openid) in flight across all consumers: WeChat answers
-- concurrent sends to one user with a spurious RULE_LIMIT. A consumer holds the
-- lease for the whole call; an expired lease (its holder died) may be taken over.
CREATE TABLE send_leases (
    mchid       text NOT NULL,
    openid      text NOT NULL,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (mchid, openid)
);
