-- lijian schema v13: an order's story keeps what operators did and what comes next.

-- One row per parked job an operator replayed (`lijian dlq replay`). The replay
-- clears the parking on the order or report, so when and why it had been parked
-- is kept here too; `lijian order show` tells both.
CREATE TABLE replays (
    id           bigserial PRIMARY KEY,
    order_code   text NOT NULL,
    lane         text NOT NULL CHECK (lane IN ('issue', 'notify')),
    parked_at    timestamptz,
    reason       text,
    replayed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replays_order ON replays (order_code, id);

-- After a failed report attempt, when the next one is due (NULL: delivered, or
-- no attempt follows because the report is parked).
ALTER TABLE report_attempts ADD COLUMN retry_at timestamptz;
