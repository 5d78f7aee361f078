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
CREATE FUNCTION lijian_accept_batch(
    p_merchant_id text, p_campaign text, p_scheduled boolean, p_max_job integer
) RETURNS TABLE (line bigint, status integer, detail text, order_code text, accepted bigint, charged bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_accepted bigint;
    v_charged bigint;
    v_state text;
BEGIN
    -- Lock order everywhere: merchant row, campaign row, activity rows (sorted).
    SELECT m.balance_fen INTO v_balance FROM merchants m WHERE m.merchant_id = p_merchant_id FOR UPDATE;
    SELECT c.state INTO v_state FROM campaigns c WHERE c.name = p_campaign AND c.merchant_id = p_merchant_id FOR UPDATE;
    IF v_state IS NULL OR v_state = 'cancelled' THEN
        RAISE EXCEPTION 'campaign % of merchant % is missing or cancelled', p_campaign, p_merchant_id
              USING ERRCODE = 'check_violation';
    END IF;
    PERFORM 1 FROM activities a WHERE a.activity_id IN (SELECT DISTINCT r.activity_id FROM load_rows r)
      ORDER BY a.activity_id FOR UPDATE;

    CREATE TEMP TABLE IF NOT EXISTS load_judged (
        line bigint, status integer, detail text, order_code text,
        biz_code text, open_id text, app_id text, product_code text, activity_id text,
        callback_url text, price bigint, new_code text
    ) ON COMMIT DROP;

    INSERT INTO load_judged
    WITH firsts AS (
        SELECT r.*, min(r.line) OVER (PARTITION BY r.biz_code) AS first_line FROM load_rows r
    ), looked AS (
        SELECT f.*, o.order_code AS existing_code, o.source_line AS existing_line, o.campaign AS existing_campaign,
               (o.open_id = f.open_id AND o.activity_id = f.activity_id AND o.product_code = f.product_code) AS same,
               p.price_fen, a.merchant_id AS activity_merchant, a.starts_at, a.ends_at
          FROM firsts f
          -- LIMIT 1 keeps this a per-row index probe: as a plain join the planner,
          -- blind to the temp table's size, hashed all the merchant's orders
          -- (measured: batch time grew with the table, 290 ms to 800 ms at 1M).
          LEFT JOIN LATERAL (SELECT oo.order_code, oo.source_line, oo.campaign, oo.open_id, oo.activity_id, oo.product_code
                               FROM orders oo WHERE oo.merchant_id = p_merchant_id AND oo.biz_code = f.biz_code
                              LIMIT 1) o ON true
          LEFT JOIN products p ON p.product_code = f.product_code
          LEFT JOIN activities a ON a.activity_id = f.activity_id
    )
    SELECT l.line,
           CASE
             WHEN l.first_line < l.line THEN 98
             WHEN l.existing_code IS NOT NULL AND l.existing_campaign IS NOT DISTINCT FROM p_campaign
                  AND l.existing_line IS NOT NULL AND l.existing_line <> l.line THEN 98
             WHEN l.existing_code IS NOT NULL AND l.same THEN 8
             WHEN l.existing_code IS NOT NULL THEN 98
             WHEN l.price_fen IS NULL THEN 7
             WHEN l.activity_merchant IS NULL OR l.activity_merchant <> p_merchant_id THEN 7
             WHEN now() < l.starts_at THEN 11
             WHEN now() >= l.ends_at THEN 11
             ELSE 0
           END,
           CASE
             WHEN l.first_line < l.line THEN 'bizCode repeats line ' || l.first_line
             WHEN l.existing_code IS NOT NULL AND l.existing_campaign IS NOT DISTINCT FROM p_campaign
                  AND l.existing_line IS NOT NULL AND l.existing_line <> l.line
               THEN 'bizCode repeats line ' || l.existing_line
             WHEN l.existing_code IS NOT NULL AND l.same THEN 'duplicate bizCode'
             WHEN l.existing_code IS NOT NULL
               THEN 'bizCode already used by an order with a different openId, activityId or productCode'
             WHEN l.price_fen IS NULL THEN 'product not found'
             WHEN l.activity_merchant IS NULL OR l.activity_merchant <> p_merchant_id THEN 'activity not found'
             WHEN now() < l.starts_at THEN 'activity has not started'
             WHEN now() >= l.ends_at THEN 'activity has ended'
           END,
           l.existing_code, l.biz_code, l.open_id, l.app_id, l.product_code, l.activity_id, l.callback_url, l.price_fen,
           -- Numbered up front, so rows refused below leave gaps in the sequence
           -- (harmless) instead of costing a second pass.
           'LJ' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || lpad(nextval('orders_id_seq')::text, 12, '0')
      FROM looked l;

    -- Budget, then balance, in line order: a row that does not fit is refused and
    -- charges nothing, so the batch never ends half-charged. The window passes run
    -- only when the batch does not fit whole.
    IF EXISTS (SELECT 1 FROM (SELECT lj.activity_id, count(*) AS cnt FROM load_judged lj WHERE lj.status = 0
                               GROUP BY lj.activity_id) n JOIN activities a USING (activity_id)
                WHERE n.cnt > a.budget - a.issued) THEN
        UPDATE load_judged j SET status = 11, detail = 'activity budget used up'
          FROM (SELECT lj.line, row_number() OVER (PARTITION BY lj.activity_id ORDER BY lj.line) AS nth
                  FROM load_judged lj WHERE lj.status = 0) n, activities a
         WHERE j.line = n.line AND a.activity_id = j.activity_id AND n.nth > a.budget - a.issued;
    END IF;
    IF (SELECT coalesce(sum(lj.price), 0) FROM load_judged lj WHERE lj.status = 0) > v_balance THEN
        UPDATE load_judged j SET status = 9, detail = 'insufficient balance'
          FROM (SELECT lj.line, sum(lj.price) OVER (ORDER BY lj.line) AS running
                  FROM load_judged lj WHERE lj.status = 0) n
         WHERE j.line = n.line AND n.running > v_balance;
    END IF;

    INSERT INTO orders (id, order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id,
                        callback_url, settlement_fen, source, campaign, source_line, enqueued_at)
    SELECT substr(j.new_code, 11)::bigint, j.new_code, p_merchant_id, j.biz_code, j.open_id,
           coalesce(nullif(j.app_id, ''), a.appid), j.product_code, j.activity_id, nullif(j.callback_url, ''),
           j.price, CASE WHEN p_scheduled THEN 'schedule' ELSE 'csv' END, p_campaign, j.line,
           CASE WHEN p_scheduled THEN NULL ELSE now() END
      FROM load_judged j JOIN activities a ON a.activity_id = j.activity_id
     WHERE j.status = 0;

    SELECT count(*), coalesce(sum(j.price), 0) INTO v_accepted, v_charged FROM load_judged j WHERE j.status = 0;
    IF v_accepted > 0 THEN
        UPDATE merchants SET balance_fen = balance_fen - v_charged, updated_at = now()
         WHERE merchant_id = p_merchant_id;
        UPDATE activities a SET issued = a.issued + n.cnt
          FROM (SELECT j.activity_id, count(*) AS cnt FROM load_judged j WHERE j.status = 0 GROUP BY j.activity_id) n
         WHERE a.activity_id = n.activity_id;
        INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen, note)
        SELECT p_merchant_id, NULL, 'debit', -v_charged, v_balance - v_charged,
               format('CSV batch of campaign %s: %s orders, lines %s-%s', p_campaign, v_accepted, min(j.line), max(j.line))
          FROM load_judged j WHERE j.status = 0;
        IF p_scheduled THEN
            UPDATE campaigns SET drained = false, updated_at = now() WHERE name = p_campaign;
        ELSE
            INSERT INTO issue_outbox (order_codes)
            SELECT array_agg(j.new_code ORDER BY j.line)
              FROM (SELECT jj.new_code, jj.line, (row_number() OVER (ORDER BY jj.line) - 1) / p_max_job AS chunk
                      FROM load_judged jj WHERE jj.status = 0) j
             GROUP BY j.chunk;
            UPDATE campaigns SET released = released + v_accepted, updated_at = now() WHERE name = p_campaign;
        END IF;
    END IF;

    RETURN QUERY
        SELECT j.line, j.status, j.detail, j.order_code, NULL::bigint, NULL::bigint
          FROM load_judged j WHERE j.status <> 0
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, v_accepted, v_charged;
    DROP TABLE load_judged;
END;
$$;

-- Cancelling a campaign: every order not yet released becomes status 4 with its
-- refund (ledger row, balance, budget) and its report, in the caller's
-- transaction. Returns how many orders and how much money went back.
CREATE FUNCTION lijian_cancel_unreleased(p_campaign text, OUT cancelled bigint, OUT refunded bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_merchant text;
    v_balance bigint;
BEGIN
    -- Same lock order as a load: merchant, campaign, activities.
    SELECT c.merchant_id INTO v_merchant FROM campaigns c WHERE c.name = p_campaign;
    SELECT m.balance_fen INTO v_balance FROM merchants m WHERE m.merchant_id = v_merchant FOR UPDATE;
    PERFORM 1 FROM campaigns c WHERE c.name = p_campaign FOR UPDATE;
    CREATE TEMP TABLE cancelled_orders ON COMMIT DROP AS
    WITH c AS (
        UPDATE orders o SET status = 4, last_error = 'campaign cancelled', finished_at = now(), updated_at = now()
         WHERE o.campaign = p_campaign AND o.status = 0 AND o.enqueued_at IS NULL
         RETURNING o.id, o.order_code, o.settlement_fen, o.activity_id)
    SELECT * FROM c;
    SELECT count(*), coalesce(sum(settlement_fen), 0) INTO cancelled, refunded FROM cancelled_orders;
    INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen)
    SELECT v_merchant, co.order_code, 'refund', co.settlement_fen, v_balance + sum(co.settlement_fen) OVER (ORDER BY co.id)
      FROM cancelled_orders co;
    UPDATE merchants SET balance_fen = balance_fen + refunded, updated_at = now() WHERE merchant_id = v_merchant;
    UPDATE activities a SET issued = a.issued - n.cnt
      FROM (SELECT co.activity_id, count(*) AS cnt FROM cancelled_orders co GROUP BY co.activity_id) n
     WHERE a.activity_id = n.activity_id;
    INSERT INTO reports (notify_id, order_code, status)
    SELECT 'N' || co.order_code, co.order_code, 4 FROM cancelled_orders co
    ON CONFLICT (order_code) DO NOTHING;
    UPDATE campaigns SET state = 'cancelled', updated_at = now() WHERE name = p_campaign;
    DROP TABLE cancelled_orders;
END;
$$;
