-- lijian_end_orders: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0005, changed by 0011; see those migrations for why each change was made.
--
-- Ends the still-open orders (status 0 or 1) among p_codes with p_status (3
-- failed, 4 cancelled) and p_reason, and in the same statement gives each its
-- settlement back (one refund ledger row per order with the running balance, the
-- merchant's balance, the activity's budget slot) and queues its status report.
-- With p_parked_only, only parked orders change (an operator's `dlq fail`).
-- Orders already final are left alone, so a second call changes nothing; the
-- ledger's unique (order_code, kind) index makes a second refund impossible
-- anyway. Returns the orders ended.
CREATE OR REPLACE FUNCTION lijian_end_orders(p_codes text[], p_status smallint, p_reason text, p_parked_only boolean)
RETURNS TABLE (order_code text, settlement_fen bigint)
LANGUAGE sql AS $$
    WITH ended AS (
        UPDATE orders o SET status = p_status, last_error = p_reason, finished_at = now(), updated_at = now(),
               dead_at = NULL, dead_reason = NULL
         WHERE o.order_code = ANY(p_codes) AND o.status IN (0, 1) AND p_status IN (3, 4)
           AND (NOT p_parked_only OR o.dead_at IS NOT NULL)
         RETURNING o.id, o.order_code, o.merchant_id, o.settlement_fen, o.activity_id),
    owed AS (
        SELECT e.merchant_id, sum(e.settlement_fen)::bigint AS total FROM ended e GROUP BY e.merchant_id),
    balances AS (
        UPDATE merchants m SET balance_fen = m.balance_fen + w.total, updated_at = now()
          FROM owed w WHERE m.merchant_id = w.merchant_id
         RETURNING m.merchant_id, m.balance_fen - w.total AS before_fen),
    ledger AS (
        INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen)
        SELECT e.merchant_id, e.order_code, 'refund', e.settlement_fen,
               b.before_fen + sum(e.settlement_fen) OVER (PARTITION BY e.merchant_id ORDER BY e.id)
          FROM ended e JOIN balances b ON b.merchant_id = e.merchant_id),
    budget AS (
        UPDATE activities a SET issued = greatest(a.issued - n.cnt, 0)
          FROM (SELECT e.activity_id, count(*) AS cnt FROM ended e GROUP BY e.activity_id) n
         WHERE a.activity_id = n.activity_id),
    report AS (
        INSERT INTO reports (notify_id, order_code, status)
        SELECT lijian_notify_id(e.order_code), e.order_code, p_status FROM ended e
        ON CONFLICT (order_code) WHERE corrects IS NULL DO NOTHING)
    SELECT e.order_code, e.settlement_fen FROM ended e
$$;
