-- lijian schema v8: send slots are cut no earlier than p_lead after the
-- database clock. A slot cut at "now" is already behind by the time its answer
-- reaches the consumer (half a round trip, more on a busy host), and a consumer
-- throws away a slot it reaches late rather than bunch sends: measured at
-- 500/s, half of all slots were thrown away once the cluster fell behind (every
-- grant started at "now"), and the rate fell to 0.6× the limit. With a lead, a
-- fresh grant always leaves time to reach it; only the first `p_lead` after an
-- idle spell is given up.
DROP FUNCTION IF EXISTS lijian_take_slots(text, double precision, integer, interval);

-- (lijian_take_slots: its current definition is functions/lijian_take_slots.sql)
