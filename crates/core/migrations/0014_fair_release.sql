-- lijian schema v14 (issue 15): who gets an account's next send.
--
-- API orders travel in their own queue and take their send slot first; every
-- campaign, scheduled or not, is released by the scheduler into the campaign
-- queue, a window at a time, in fair shares per account (merchants alike, then
-- campaigns by priority). A load only stores: its orders are held
-- (enqueued_at NULL) and no outbox rows are written, so a million-row file puts
-- nothing on the broker, and pause and cancel act on what is not yet released.

-- The weight of a campaign among its merchant's campaigns (lijian load
-- --priority, lijian campaign priority).
ALTER TABLE campaigns ADD COLUMN priority integer NOT NULL DEFAULT 1 CHECK (priority BETWEEN 1 AND 100);
-- Written by the scheduler (twice a second while the campaign releases), read
-- by `campaign status`: the fraction of its account's campaign window it was
-- last given, what that is worth in orders per second, and when.
ALTER TABLE campaigns ADD COLUMN share double precision;
ALTER TABLE campaigns ADD COLUMN share_rate double precision;
ALTER TABLE campaigns ADD COLUMN share_at timestamptz;

-- Released campaign orders not final yet (in the broker, in a consumer,
-- sending): what the release window counts, a few hundred rows at any time.
-- Parked orders and orders waiting in a retry tier (last_error set) are left
-- out: minutes in a retry tier must not hold a campaign's window.
CREATE INDEX orders_in_flight ON orders (campaign)
 WHERE campaign IS NOT NULL AND enqueued_at IS NOT NULL AND status IN (0, 1) AND dead_at IS NULL AND last_error IS NULL;

-- The batch accepting function of 0010, with its end changed: every accepted
-- order is held for the scheduler (p_max_job is kept for the signature only).
-- Keeps 0012's disabled-activity check (status 11); only the release changes.
-- (lijian_accept_batch: its current definition is functions/lijian_accept_batch.sql)
