-- lijian schema v19 (issue 13): each campaign's number of orders, stored.
--
-- The console's overview and campaign lists showed each campaign's orders by
-- counting its index entries on every refresh: 200,000 for a big campaign,
-- most of the overview's time. Orders only join a campaign through
-- lijian_accept_batch and never leave it, so the count is kept on the
-- campaign row that function already updates (locked FOR UPDATE at its
-- start), in the batch's own transaction: no extra row, lock or statement.
--
-- The ALTER waits for batches holding their campaign row and keeps later ones
-- out until this commits, so the count below sees every committed batch. A
-- batch already inside the old function when this commits would still run
-- its old text: migrate with no load running (docs/operations.md).
ALTER TABLE campaigns ADD COLUMN total_orders bigint NOT NULL DEFAULT 0;

UPDATE campaigns c SET total_orders = o.n
  FROM (SELECT campaign, count(*) AS n FROM orders WHERE campaign IS NOT NULL GROUP BY campaign) o
 WHERE o.campaign = c.name;

-- 0014's batch function, counting what it accepts into total_orders.
-- (lijian_accept_batch: its current definition is functions/lijian_accept_batch.sql)
