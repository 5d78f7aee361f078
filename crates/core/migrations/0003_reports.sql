-- lijian schema v3: delivering status reports.

-- How a report ended: delivered (merchant answered SUCCESS), no_callback (neither
-- the order nor the merchant has a callbackUrl: nothing to send), parked (retries
-- exhausted or target refused; an operator decides). NULL while pending.
ALTER TABLE reports ADD COLUMN outcome text CHECK (outcome IN ('delivered', 'no_callback', 'parked'));
ALTER TABLE reports ADD COLUMN attempts_before_replay integer NOT NULL DEFAULT 0;

-- One row per POST to a merchant, for the order's timeline.
CREATE TABLE report_attempts (
    id           bigserial PRIMARY KEY,
    notify_id    text NOT NULL,
    attempt      integer NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    url          text NOT NULL,
    http_status  integer,
    latency_ms   integer NOT NULL,
    -- First 1 KiB of the answer.
    answer       text,
    error        text,
    delivered    boolean NOT NULL
);
CREATE INDEX report_attempts_notify ON report_attempts (notify_id, id);
