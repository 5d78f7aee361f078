-- lijian schema v2: what the consumer needs to issue exactly once and to tell
-- the notifier (transactional outbox).

-- Parked in the dead-letter queue: the order stays status 1 for the merchant
-- until an operator replays or fails it.
ALTER TABLE orders ADD COLUMN dead_at timestamptz;
ALTER TABLE orders ADD COLUMN dead_reason text;
-- Attempts before the last replay: a replay gives the order a fresh retry budget
-- while `attempts` keeps counting every call for the timeline.
ALTER TABLE orders ADD COLUMN attempts_before_replay integer NOT NULL DEFAULT 0;
CREATE INDEX orders_dead ON orders (dead_at) WHERE dead_at IS NOT NULL;

-- One row per call to WeChat Pay, for the order's timeline and for operators.
CREATE TABLE upstream_attempts (
    id           bigserial PRIMARY KEY,
    order_code   text NOT NULL,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    latency_ms   integer NOT NULL,
    http_status  integer,
    code         text,
    outcome      text NOT NULL CHECK (outcome IN ('issued', 'retry', 'failed', 'parked')),
    message      text
);
CREATE INDEX upstream_attempts_order ON upstream_attempts (order_code, id);

-- The status report owed to the merchant, written in the transaction that makes
-- the order final, so a crash can never lose it. One per order: an order becomes
-- final once. The notifier (next issue) delivers it.
CREATE TABLE reports (
    id            bigserial PRIMARY KEY,
    notify_id     text NOT NULL UNIQUE,
    order_code    text NOT NULL UNIQUE REFERENCES orders (order_code),
    status        smallint NOT NULL CHECK (status IN (2, 3, 4)),
    created_at    timestamptz NOT NULL DEFAULT now(),
    enqueued_at   timestamptz,
    delivered_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    dead_at       timestamptz,
    last_error    text
);
CREATE INDEX reports_not_enqueued ON reports (id) WHERE enqueued_at IS NULL;
