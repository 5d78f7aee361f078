-- lijian schema v11: a late coupon is never silent (issue 12, point 2).
--
-- A coupon can reach us for an order that already ended unissued and was
-- refunded: a job was mid-call when an operator failed the parked order
-- (`lijian dlq fail --force`). The coupon exists at WeChat and the user holds
-- it, so the order records it (status 2, `issued_late_at`), the merchant is
-- charged the settlement price again with a ledger row of its own
-- (`late_charge`), and a corrected status report is queued under a notifyId of
-- its own that names the report it corrects.
--
-- When the balance cannot cover that charge, the balance goes below zero: that
-- is the debt. The ledger still sums to the balance; every accepting function
-- already refuses an order the balance cannot pay for (status 9), so nothing
-- new is accepted until a top-up brings the balance back above the price.

ALTER TABLE orders ADD COLUMN issued_late_at timestamptz;

ALTER TABLE merchants DROP CONSTRAINT merchants_balance_fen_check;
ALTER TABLE balance_ledger DROP CONSTRAINT balance_ledger_kind_check;
ALTER TABLE balance_ledger ADD CONSTRAINT balance_ledger_kind_check
    CHECK (kind IN ('opening', 'topup', 'debit', 'refund', 'late_charge'));

-- WeChat may have issued despite what this attempt saw: no answer (timeout,
-- dropped connection), an answer we could not verify, a 5xx, or an attempt
-- begun whose outcome was never recorded. `lijian dlq fail` will not fail an
-- order whose last attempt is one of these without --force.
ALTER TABLE upstream_attempts ADD COLUMN outcome_unknown boolean NOT NULL DEFAULT false;

-- One first report per order, and at most one correction, which names the
-- report it corrects.
ALTER TABLE reports ADD COLUMN corrects text;
ALTER TABLE reports DROP CONSTRAINT reports_order_code_key;
CREATE UNIQUE INDEX reports_first ON reports (order_code) WHERE corrects IS NULL;
CREATE UNIQUE INDEX reports_correction ON reports (order_code) WHERE corrects IS NOT NULL;

-- The corrected report's id: the merchant de-duplicates on notifyId, so a
-- correction under the first report's id would be thrown away.
CREATE FUNCTION lijian_late_notify_id(p_order_code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT lijian_notify_id(p_order_code) || '-late' $$;

-- lijian_end_orders of 0005, its report insert aimed at the first-report index
-- (the unique constraint it named is gone).
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

-- Records coupons that arrived for orders already ended unissued (status 3 or
-- 4, no coupon) among p_codes (p_coupons: each one's coupon): status 2 with the
-- coupon, the settlement price charged again (`late_charge` ledger row with the
-- running balance, which may go below zero), the budget slot taken again (at
-- most up to the budget: the coupon exists whatever our counter says), and the
-- corrected report. Any other order is left alone, so a second call changes
-- nothing. Locks as lijian_end_orders does: order rows, then the merchant, then
-- the activity. Returns the orders recorded.
CREATE FUNCTION lijian_issue_late(p_codes text[], p_coupons text[])
RETURNS TABLE (late_order text, charged_fen bigint, balance_after bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT o.id, o.order_code AS code, o.merchant_id AS merchant, o.settlement_fen AS price,
               o.activity_id AS activity, k.coupon
          FROM (SELECT DISTINCT ON (t.code) t.code, t.coupon FROM unnest(p_codes, p_coupons) AS t(code, coupon)) k
          JOIN orders o ON o.order_code = k.code
         WHERE o.status IN (3, 4) AND o.coupon_id IS NULL
         ORDER BY o.id
           FOR UPDATE OF o
    LOOP
        UPDATE orders o SET status = 2, coupon_id = v.coupon, issued_late_at = now(), finished_at = now(),
               updated_at = now(), dead_at = NULL, dead_reason = NULL
         WHERE o.id = v.id;
        UPDATE merchants m SET balance_fen = m.balance_fen - v.price, updated_at = now()
         WHERE m.merchant_id = v.merchant
        RETURNING m.balance_fen INTO balance_after;
        INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen, note)
        VALUES (v.merchant, v.code, 'late_charge', -v.price, balance_after,
                'coupon ' || v.coupon || ' arrived after the order had ended unissued and been refunded'
                || CASE WHEN balance_after < 0 THEN '; the balance could not cover it: held as a debt' ELSE '' END);
        UPDATE activities a SET issued = least(a.budget, a.issued + 1) WHERE a.activity_id = v.activity;
        INSERT INTO reports (notify_id, order_code, status, corrects)
        VALUES (lijian_late_notify_id(v.code), v.code, 2, lijian_notify_id(v.code))
        ON CONFLICT (order_code) WHERE corrects IS NOT NULL DO NOTHING;
        late_order := v.code;
        charged_fen := v.price;
        RETURN NEXT;
    END LOOP;
END;
$$;
