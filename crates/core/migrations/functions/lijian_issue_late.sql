-- lijian_issue_late: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0011; see those migrations for why each change was made.
--
-- Records coupons that arrived for orders already ended unissued (status 3 or
-- 4, no coupon) among p_codes (p_coupons: each one's coupon): status 2 with the
-- coupon, the settlement price charged again (`late_charge` ledger row with the
-- running balance, which may go below zero), the budget slot taken again (at
-- most up to the budget: the coupon exists whatever our counter says), and the
-- corrected report. Any other order is left alone, so a second call changes
-- nothing. Locks as lijian_end_orders does: order rows, then the merchant, then
-- the activity. Returns the orders recorded.
CREATE OR REPLACE FUNCTION lijian_issue_late(p_codes text[], p_coupons text[])
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
