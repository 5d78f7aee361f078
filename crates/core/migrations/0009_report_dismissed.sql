-- lijian schema v9: an operator can dismiss a parked report (`lijian dlq fail`):
-- nothing more is sent, and it no longer counts as parked.
ALTER TABLE reports DROP CONSTRAINT IF EXISTS reports_outcome_check;
ALTER TABLE reports ADD CONSTRAINT reports_outcome_check
    CHECK (outcome IN ('delivered', 'no_callback', 'parked', 'dismissed'));
