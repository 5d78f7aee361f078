-- `lijian bench console`: a console-sized database written straight in SQL.
-- Placeholders (numbers only): __ORDERS__, __CAMPAIGNS__, __MERCHANTS__.
--
-- Shape: a fifth of the orders in one big campaign loaded two hours ago and
-- still releasing; a tenth from the open API over 30 days (some in the last
-- hour); the rest in the other campaigns, one load every ~40 minutes over 30
-- days. Orders are written in creation order, as the system writes them, so
-- the BRIN indexes on created_at and finished_at work as they do in production.

CREATE TEMP TABLE seed_params AS
SELECT __ORDERS__::bigint AS n, __CAMPAIGNS__::int AS c, __MERCHANTS__::int AS m,
       (__ORDERS__::bigint / 5) AS big, (__ORDERS__::bigint / 10) AS api,
       __ORDERS__::bigint - __ORDERS__::bigint / 5 - __ORDERS__::bigint / 10 AS regular;

INSERT INTO products (product_code, face_value_fen, price_fen) VALUES ('p-5', 500, 450);

INSERT INTO merchants (merchant_id, business_id, name, callback_url, balance_fen)
SELECT 'm-' || lpad(i::text, 4, '0'), 'b-' || lpad(i::text, 4, '0'), 'Merchant ' || i,
       'http://127.0.0.1:9/callback', 0
  FROM seed_params, generate_series(1, m) i;

-- Two stocks per merchant: one its campaigns use, one its API orders.
INSERT INTO activities (activity_id, merchant_id, stock_id, stock_creator_mchid, appid, face_value_fen,
                        budget, starts_at, ends_at, enabled)
SELECT 'a-' || lpad(i::text, 4, '0') || '-' || k, 'm-' || lpad(i::text, 4, '0'), (9856000 + i * 10 + k)::text,
       '1900000001', 'wx0000000000000000', 500, 10000000, now() - interval '31 days', now() + interval '29 days',
       i % 17 <> 0
  FROM seed_params, generate_series(1, m) i, generate_series(1, 2) k;

-- Campaign j (1 … c-1) loaded at an even step over 30 days; every 50th
-- cancelled, every 37th paused, every 5th scheduled at 100/s; `c-big` is the
-- newest, scheduled at 500/s and still releasing.
CREATE TEMP TABLE seed_campaigns AS
SELECT j, 'c-' || lpad(j::text, 4, '0') AS name, 'm-' || lpad(((j - 1) % m + 1)::text, 4, '0') AS merchant_id,
       now() - interval '30 days' + (interval '29 days' * j / greatest(c - 1, 1)) AS created_at,
       CASE WHEN j % 50 = 0 THEN 'cancelled' WHEN j % 37 = 0 THEN 'paused' ELSE 'active' END AS state,
       j % 5 = 0 AS scheduled
  FROM seed_params, generate_series(1, c - 1) j
UNION ALL
SELECT c, 'c-big', 'm-0001', now() - interval '2 hours', 'active', true FROM seed_params;

INSERT INTO campaigns (name, merchant_id, state, release_at, rate, pace_from, created_at, updated_at)
SELECT name, merchant_id, state,
       CASE WHEN scheduled THEN created_at + interval '10 minutes' END,
       CASE WHEN name = 'c-big' THEN 500 WHEN scheduled THEN 100 END,
       CASE WHEN scheduled THEN created_at + interval '10 minutes' END,
       created_at, created_at
  FROM seed_campaigns;

-- Every order as a few numbers first: which door, which campaign, its line,
-- when, and its fate (h, a number 0-999 that picks the status).
CREATE TEMP TABLE seed_orders AS
SELECT 'regular' AS door, g, sc.name AS campaign, sc.merchant_id, sc.state AS campaign_state,
       sc.created_at + (g % 1000) * interval '1 millisecond' AS created_at, (g * 7919) % 1000 AS h
  FROM seed_params p CROSS JOIN generate_series(1, p.regular) g
  JOIN seed_campaigns sc ON sc.j = ((g - 1) * (p.c - 1)) / p.regular + 1
UNION ALL
SELECT 'big', g, 'c-big', 'm-0001', 'active',
       now() - interval '2 hours' + (g % 1000) * interval '1 millisecond', (g * 1000 / p.big)::int
  FROM seed_params p, generate_series(1, p.big) g
UNION ALL
SELECT 'api', g, NULL, 'm-' || lpad(((g - 1) % p.m + 1)::text, 4, '0'), NULL,
       now() - interval '30 days' * (1 - g::double precision / p.api), (g * 7919) % 1000
  FROM seed_params p, generate_series(1, p.api) g;

-- status: regular and API orders mostly issued, 8.5% failed, 0.5% parked;
-- cancelled campaigns 40% cancelled; paused ones half unreleased. The big
-- campaign: 45% final, 1% in flight, 0.5% parked, the rest unreleased.
CREATE TEMP TABLE seed_fate AS
SELECT s.*,
       CASE
         WHEN door = 'big' THEN CASE WHEN h < 450 THEN CASE WHEN g % 20 = 0 THEN 3 ELSE 2 END
                                     WHEN h < 460 THEN 1 WHEN h < 465 THEN 1 ELSE 0 END
         WHEN campaign_state = 'cancelled' THEN CASE WHEN h < 570 THEN 2 WHEN h < 600 THEN 3 ELSE 4 END
         WHEN campaign_state = 'paused' AND h >= 500 THEN 0
         ELSE CASE WHEN h < 900 THEN 2 WHEN h < 985 THEN 3 WHEN h < 990 THEN 1 ELSE 2 END
       END::smallint AS status,
       (door = 'big' AND h >= 460 AND h < 465) OR (door <> 'big' AND coalesce(campaign_state, '') <> 'cancelled'
         AND NOT (coalesce(campaign_state, '') = 'paused' AND h >= 500) AND h >= 985 AND h < 990) AS parked,
       CASE WHEN door = 'big' THEN now() - interval '115 minutes' + (g % 6000) * interval '1 second'
            ELSE created_at + interval '10 minutes' + (g % 600) * interval '1 second' END AS finished
  FROM seed_orders s;

INSERT INTO orders (order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id, status,
                    settlement_fen, coupon_id, attempts, last_error, source, enqueued_at, created_at, updated_at,
                    finished_at, dead_at, dead_reason, campaign, source_line)
SELECT 'LJ' || CASE door WHEN 'regular' THEN 'R' WHEN 'big' THEN 'B' ELSE 'A' END || lpad(g::text, 9, '0'),
       merchant_id,
       coalesce(campaign || '-' || g, 'api-' || g),
       'o' || lpad((g % 100000)::text, 28, 'x'), 'wx0000000000000000', 'p-5',
       merchant_id_activity.activity_id,
       status, 450,
       CASE WHEN status = 2 THEN 'CPN' || g END,
       CASE WHEN status = 3 THEN 3 WHEN parked THEN 5 WHEN status = 0 THEN 0 ELSE 1 END,
       CASE WHEN status = 3 THEN (ARRAY['NOT_ENOUGH: the stock budget is used up',
                                        'USER_ACCOUNT_ABNORMAL: the user cannot receive coupons',
                                        'RULE_LIMIT: the user reached the stock''s per-user limit',
                                        'SYSTEM_ERROR: retries exhausted',
                                        'INVALID_REQUEST: appid does not match the mchid'])[1 + g % 5]
            WHEN parked THEN 'parked' END,
       CASE WHEN door = 'api' THEN 'api' ELSE 'csv' END,
       CASE WHEN status <> 0 OR door = 'api' THEN created_at + interval '5 seconds' END,
       created_at,
       CASE WHEN status IN (2, 3, 4) THEN finished ELSE created_at END,
       CASE WHEN status IN (2, 3, 4) THEN finished END,
       CASE WHEN parked THEN finished END,
       CASE WHEN parked THEN (ARRAY['HTTP 401 SIGN_ERROR: the signature does not verify',
                                    'HTTP 403 NO_AUTH: the merchant may not send this stock',
                                    'retries exhausted: HTTP 500 SYSTEM_ERROR'])[1 + g % 3] END,
       campaign,
       CASE WHEN campaign IS NOT NULL THEN g END
  FROM seed_fate
  CROSS JOIN LATERAL (SELECT 'a-' || substr(merchant_id, 3) || CASE WHEN door = 'api' THEN '-2' ELSE '-1' END
                      AS activity_id) merchant_id_activity
 ORDER BY seed_fate.created_at;

-- One report per final order: delivered, but 0.2% parked and the big
-- campaign's last minute still on its way (the notifier keeps up).
INSERT INTO reports (notify_id, order_code, status, created_at, enqueued_at, delivered_at, attempts, dead_at,
                     last_error, outcome)
SELECT 'N' || id, order_code, status, finished_at, finished_at,
       CASE WHEN fate = 'delivered' THEN finished_at + interval '50 milliseconds' END,
       CASE fate WHEN 'pending' THEN 0 WHEN 'parked' THEN 8 ELSE 1 END,
       CASE WHEN fate = 'parked' THEN finished_at + interval '2 hours' END,
       CASE WHEN fate = 'parked' THEN (ARRAY['HTTP 500 from the merchant', 'connection refused'])[1 + id % 2] END,
       CASE WHEN fate = 'pending' THEN NULL ELSE fate END
  FROM (SELECT o.*, CASE WHEN o.id % 500 = 0 THEN 'parked'
                         WHEN o.finished_at > now() - interval '16 minutes' AND o.campaign = 'c-big' THEN 'pending'
                         ELSE 'delivered' END AS fate
          FROM orders o WHERE status IN (2, 3, 4)) f
 ORDER BY id;

INSERT INTO report_attempts (notify_id, attempt, at, url, http_status, latency_ms, answer, error, delivered)
SELECT notify_id, 1, coalesce(delivered_at, dead_at), 'http://127.0.0.1:9/callback',
       CASE WHEN outcome = 'delivered' THEN 200 ELSE 500 END, 15,
       CASE WHEN outcome = 'delivered' THEN 'SUCCESS' END,
       CASE WHEN outcome = 'parked' THEN last_error END, outcome = 'delivered'
  FROM reports WHERE outcome IN ('delivered', 'parked') ORDER BY id;

INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, http_status, code, outcome, message,
                               mchid)
SELECT order_code, 1, created_at + interval '6 seconds', 80,
       CASE WHEN status = 2 THEN 200 WHEN dead_at IS NOT NULL THEN 401 ELSE 400 END,
       CASE WHEN status = 2 THEN NULL ELSE split_part(coalesce(dead_reason, last_error), ':', 1) END,
       CASE WHEN status = 2 THEN 'issued' WHEN status = 3 THEN 'failed' WHEN dead_at IS NOT NULL THEN 'parked'
            ELSE 'retry' END,
       coalesce(dead_reason, last_error), '1900000001'
  FROM orders WHERE status IN (1, 2, 3) AND enqueued_at IS NOT NULL ORDER BY id;

-- The ledger: an opening balance, one debit per load, one per API order, a
-- refund per failed or cancelled order; balances running per merchant.
INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen, created_at, note)
SELECT merchant_id, order_code, kind, amount,
       sum(amount) OVER (PARTITION BY merchant_id ORDER BY at, seq ROWS UNBOUNDED PRECEDING), at, note
  FROM (SELECT merchant_id, NULL::text AS order_code, 'opening' AS kind, 100000000000::bigint AS amount,
               now() - interval '31 days' AS at, 0::bigint AS seq, NULL::text AS note
          FROM merchants
        UNION ALL
        SELECT c.merchant_id, NULL, 'debit', -450 * count(*), c.created_at, 1, 'load ' || c.name
          FROM campaigns c JOIN orders o ON o.campaign = c.name GROUP BY c.name, c.merchant_id, c.created_at
        UNION ALL
        SELECT merchant_id, order_code, 'debit', -450, created_at, id, NULL FROM orders WHERE campaign IS NULL
        UNION ALL
        SELECT merchant_id, order_code, 'refund', 450, finished_at, id, NULL FROM orders WHERE status IN (3, 4)) l
 ORDER BY at, seq;

UPDATE merchants m SET balance_fen = l.balance_after_fen
  FROM (SELECT DISTINCT ON (merchant_id) merchant_id, balance_after_fen FROM balance_ledger
         ORDER BY merchant_id, id DESC) l
 WHERE l.merchant_id = m.merchant_id;

UPDATE activities a SET issued = o.used
  FROM (SELECT activity_id, count(*) AS used FROM orders WHERE status IN (0, 1, 2) GROUP BY 1) o
 WHERE o.activity_id = a.activity_id;

UPDATE campaigns c SET released = o.released, drained = o.released = o.total, total_orders = o.total
  FROM (SELECT campaign, count(*) FILTER (WHERE enqueued_at IS NOT NULL) AS released, count(*) AS total
          FROM orders WHERE campaign IS NOT NULL GROUP BY 1) o
 WHERE o.campaign = c.name;

INSERT INTO audit_log (at, actor, action, target, count, detail)
SELECT now() - interval '30 days' + interval '30 days' * g / 20000,
       (ARRAY['ana', 'bo', 'cli:ops', 'vic'])[1 + g % 4],
       (ARRAY['replay', 'fail', 'topup', 'load', 'campaign_pause', 'campaign_resume', 'login'])[1 + g % 7],
       'c-' || lpad((1 + g % 999)::text, 4, '0'), g % 500, 'seeded by lijian bench console'
  FROM generate_series(1, 20000) g;

DROP TABLE seed_fate, seed_orders, seed_campaigns, seed_params;
