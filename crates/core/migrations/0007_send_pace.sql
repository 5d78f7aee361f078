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
-- (lijian_take_slots: its current definition is functions/lijian_take_slots.sql)

-- WeChat answered 429 for p_key's account: no slot is granted, to any
-- consumer, before now + p_pause.
-- (lijian_pause_sends: its current definition is functions/lijian_pause_sends.sql)

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
