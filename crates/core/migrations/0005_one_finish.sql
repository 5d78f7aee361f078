-- lijian schema v5: one way to end an order.
--
-- Before this, "fail with refund and report" was written in Rust (consumer,
-- `dlq fail`) and again in SQL (campaign cancel), and the notify id rule
-- ('N' || order_code) four times. Now both ways of ending an order unissued —
-- failed (3) and cancelled (4) — go through lijian_end_orders, and every report
-- row takes its id from lijian_notify_id. The Rust side (core/src/store/finish.rs)
-- calls these functions; it does not repeat them.

-- The merchant de-duplicates reports by this id; one report per order.
-- (lijian_notify_id: its current definition is functions/lijian_notify_id.sql)

-- Ends the still-open orders (status 0 or 1) among p_codes with p_status (3
-- failed, 4 cancelled) and p_reason, and in the same statement gives each its
-- settlement back (one refund ledger row per order with the running balance, the
-- merchant's balance, the activity's budget slot) and queues its status report.
-- With p_parked_only, only parked orders change (an operator's `dlq fail`).
-- Orders already final are left alone, so a second call changes nothing; the
-- ledger's unique (order_code, kind) index makes a second refund impossible
-- anyway. Returns the orders ended.
-- (lijian_end_orders: its current definition is functions/lijian_end_orders.sql)

-- Cancelling a campaign: its orders not yet released end as cancelled (4), each
-- refunded and reported, through lijian_end_orders. Same lock order as a load:
-- merchant, campaign, then the orders (the campaign lock keeps the scheduler
-- from releasing any of them meanwhile).
-- (lijian_cancel_unreleased: its current definition is functions/lijian_cancel_unreleased.sql)
