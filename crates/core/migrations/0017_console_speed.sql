-- lijian schema v17 (issue 13, "fast on real data"): what the console's pages
-- read, answered from indexes alone at a million orders.

-- A campaign's figures (orders and money per status, what is unreleased) in
-- one index-only scan: orders_campaign with the two columns those sums read.
-- Same key, so every query that used orders_campaign uses this one; status
-- and enqueued_at changes were already non-HOT updates (both are indexed), so
-- writers pay no new kind of work, only wider entries.
CREATE INDEX orders_campaign_figures ON orders (campaign, status) INCLUDE (settlement_fen, enqueued_at)
 WHERE campaign IS NOT NULL;
DROP INDEX orders_campaign;

-- A merchant's open-API orders by status (its campaign orders are counted
-- through its campaigns, above). Campaign loads do not touch this index.
CREATE INDEX orders_api_merchant ON orders (merchant_id, status) WHERE campaign IS NULL;

-- Parked issue jobs grouped by reason (/dlq), a group's page in parking order,
-- and how many a campaign has, without reading the table. Only parked rows.
CREATE INDEX orders_parked ON orders (dead_reason, dead_at, id) INCLUDE (status, campaign)
 WHERE dead_at IS NOT NULL;

-- Reports not closed yet (pending or parked): /dlq's report groups, and a
-- campaign is finished only once it has none. A few hundred rows normally,
-- where `reports` has one per order.
CREATE INDEX reports_unclosed ON reports (last_error, dead_at, id) INCLUDE (order_code, outcome)
 WHERE outcome IS NULL OR outcome = 'parked';
