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
-- (lijian_late_notify_id: its current definition is functions/lijian_late_notify_id.sql)

-- lijian_end_orders of 0005, its report insert aimed at the first-report index
-- (the unique constraint it named is gone).
-- (lijian_end_orders: its current definition is functions/lijian_end_orders.sql)

-- Records coupons that arrived for orders already ended unissued (status 3 or
-- 4, no coupon) among p_codes (p_coupons: each one's coupon): status 2 with the
-- coupon, the settlement price charged again (`late_charge` ledger row with the
-- running balance, which may go below zero), the budget slot taken again (at
-- most up to the budget: the coupon exists whatever our counter says), and the
-- corrected report. Any other order is left alone, so a second call changes
-- nothing. Locks as lijian_end_orders does: order rows, then the merchant, then
-- the activity. Returns the orders recorded.
-- (lijian_issue_late: its current definition is functions/lijian_issue_late.sql)
