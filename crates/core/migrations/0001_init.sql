-- lijian schema v1: merchants, catalogue, orders, the balance ledger, nonces.
-- Money is bigint fen. Times are timestamptz (UTC on the wire).

CREATE TABLE merchants (
    merchant_id     text PRIMARY KEY,
    business_id     text NOT NULL,
    name            text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    rsa_public_key  text,
    md5_key         text,
    callback_url    text,
    -- Empty means "any address".
    allow_ips       cidr[] NOT NULL DEFAULT '{}',
    balance_fen     bigint NOT NULL DEFAULT 0 CHECK (balance_fen >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_business ON merchants (business_id);

CREATE TABLE products (
    product_code    text PRIMARY KEY,
    face_value_fen  bigint NOT NULL CHECK (face_value_fen > 0),
    price_fen       bigint NOT NULL CHECK (price_fen >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE activities (
    activity_id          text PRIMARY KEY,
    merchant_id          text NOT NULL REFERENCES merchants,
    stock_id             text NOT NULL,
    stock_creator_mchid  text NOT NULL,
    appid                text NOT NULL,
    face_value_fen       bigint NOT NULL CHECK (face_value_fen >= 100),
    budget               bigint NOT NULL CHECK (budget > 0),
    issued               bigint NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= budget),
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '90 days')
);

CREATE TABLE orders (
    id              bigserial PRIMARY KEY,
    order_code      text NOT NULL UNIQUE,
    merchant_id     text NOT NULL REFERENCES merchants,
    biz_code        text NOT NULL,
    open_id         text NOT NULL,
    app_id          text NOT NULL,
    product_code    text NOT NULL REFERENCES products,
    activity_id     text NOT NULL REFERENCES activities,
    callback_url    text,
    status          smallint NOT NULL DEFAULT 0 CHECK (status BETWEEN 0 AND 4),
    settlement_fen  bigint NOT NULL CHECK (settlement_fen >= 0),
    coupon_id       text,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    -- Which door it came through: api, csv, schedule.
    source          text NOT NULL DEFAULT 'api',
    -- Set once the broker confirmed the issue job; NULL rows are the relay's work.
    enqueued_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (merchant_id, biz_code)
);
CREATE INDEX orders_not_enqueued ON orders (id) WHERE enqueued_at IS NULL AND status = 0;

-- One row per balance movement; sum(amount_fen) per merchant equals its balance.
CREATE TABLE balance_ledger (
    id                 bigserial PRIMARY KEY,
    merchant_id        text NOT NULL REFERENCES merchants,
    order_code         text,
    kind               text NOT NULL CHECK (kind IN ('opening', 'topup', 'debit', 'refund')),
    amount_fen         bigint NOT NULL,
    balance_after_fen  bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
-- An order is debited at most once and refunded at most once, whatever retries happen.
CREATE UNIQUE INDEX balance_ledger_once ON balance_ledger (order_code, kind) WHERE order_code IS NOT NULL;
CREATE INDEX balance_ledger_merchant ON balance_ledger (merchant_id, id);

-- Replay guard: a nonce is accepted once per businessId; rows older than twice the
-- timestamp window are pruned.
CREATE TABLE used_nonces (
    business_id  text NOT NULL,
    nonce        text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_id, nonce)
);
CREATE INDEX used_nonces_seen ON used_nonces (seen_at);

-- The accepting step shared by every door (open API, CSV, schedules): checks the
-- catalogue, charges the balance, counts the budget and stores the order, in one
-- round trip. Returns the open API status code: 0 accepted, 6 nonce reused, 7 not found,
-- 8 duplicate bizCode (with the existing order), 98 bizCode reused for a
-- different order (with the existing order), 9 insufficient balance,
-- 11 out of stock (budget used up or outside the activity window).
--
-- Lock order is merchant row, then activity row; callers that batch several calls
-- in one transaction sort them by (merchant_id, activity_id) so concurrent batches
-- take locks in one global order and cannot deadlock.
-- (lijian_accept_order: its current definition is functions/lijian_accept_order.sql)
