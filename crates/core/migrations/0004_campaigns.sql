-- lijian schema v4: campaigns (CSV loads, scheduled promotions) and the batch
-- outbox that lets one broker message carry many orders.

-- A named set of orders loaded from CSV. Scheduled campaigns (release_at set)
-- keep their orders unreleased (enqueued_at NULL) until the scheduler role hands
-- them to the issue queue, paced at `rate` orders per second.
CREATE TABLE campaigns (
    name          text PRIMARY KEY,
    merchant_id   text NOT NULL REFERENCES merchants,
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
    -- NULL: orders are queued as they are loaded.
    release_at    timestamptz,
    -- Orders per second; NULL releases as fast as the scheduler can publish.
    rate          integer CHECK (rate > 0),
    -- Pacing restarts from here (release time, then every resume) so a resume
    -- does not release the paused seconds' worth in one burst.
    pace_from     timestamptz,
    pace_base     bigint NOT NULL DEFAULT 0,
    -- Orders handed to the issue queue so far (loads and releases).
    released      bigint NOT NULL DEFAULT 0,
    -- Set when a release pass found nothing left; a later load clears it.
    drained       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Bulk loads insert a million orders at a time, and PostgreSQL checks a foreign
-- key with one query per inserted row: measured, the four keys on `orders` took
-- 40% of a CSV batch. Every writer of `orders` is one of our accepting functions,
-- which look up the merchant, product, activity and campaign under lock in the
-- same transaction, so the keys go (docs/decisions.md).
ALTER TABLE orders DROP CONSTRAINT orders_merchant_id_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_product_code_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_activity_id_fkey;
ALTER TABLE orders ADD COLUMN campaign text;
-- A CSV batch is debited with one ledger row for all its orders (order_code
-- NULL); this says which. Refunds stay one row per order.
ALTER TABLE balance_ledger ADD COLUMN note text;
-- The CSV line the order came from: a later line repeating its bizCode is told
-- which line it repeats, on the first load and on every re-load alike.
ALTER TABLE orders ADD COLUMN source_line bigint;
CREATE INDEX orders_campaign ON orders (campaign, status) WHERE campaign IS NOT NULL;
CREATE INDEX orders_unreleased ON orders (campaign, id) WHERE campaign IS NOT NULL AND enqueued_at IS NULL AND status = 0;
-- The open-API relay must not release scheduled orders early.
DROP INDEX orders_not_enqueued;
CREATE INDEX orders_not_enqueued ON orders (id) WHERE enqueued_at IS NULL AND status = 0 AND campaign IS NULL;

-- Issue jobs owed for orders stored in bulk: written in the transaction that
-- stores the orders (whose enqueued_at is then already set), deleted once the
-- broker confirmed the job. Whatever a crash leaves here, a relay publishes.
CREATE TABLE issue_outbox (
    id           bigserial PRIMARY KEY,
    order_codes  text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The set-based twin of lijian_accept_order for one batch of CSV rows, staged by
-- the caller in the temporary table `load_rows`. Same rules, same status codes,
-- one transaction: rows are judged in line order, the balance and the budgets are
-- charged once for the batch, and each accepted row gets its order and ledger
-- row. Returns one row per line that was not accepted (status, detail, the
-- existing order for duplicates) plus, with line NULL, the batch totals.
-- (lijian_accept_batch: its current definition is functions/lijian_accept_batch.sql)

-- Cancelling a campaign: every order not yet released becomes status 4 with its
-- refund (ledger row, balance, budget) and its report, in the caller's
-- transaction. Returns how many orders and how much money went back.
-- (lijian_cancel_unreleased: its current definition is functions/lijian_cancel_unreleased.sql)
