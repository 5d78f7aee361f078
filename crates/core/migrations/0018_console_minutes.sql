-- lijian schema v18 (issue 13): the overview's last hour and a campaign's
-- rate chart answered from B-trees instead of BRIN ranges and heap reads.

-- Orders finished per minute and status (overview): an index-only range scan
-- of the last hour. Replaces the BRIN, which had to recheck every row on the
-- heap. One entry per order, written by the update that finishes it, which
-- was already a non-HOT update (status is indexed).
CREATE INDEX orders_finished ON orders (finished_at) INCLUDE (status) WHERE finished_at IS NOT NULL;
DROP INDEX orders_finished_brin;

-- Reports delivered per minute (overview): only delivered attempts, no other
-- query reads report_attempts by time, so the BRIN goes.
CREATE INDEX report_attempts_delivered ON report_attempts (at) WHERE delivered;
DROP INDEX report_attempts_at_brin;

-- A campaign's rate chart (issued per step, its last event) also reads
-- finished_at: carried in the figures index so it stays index-only. Same key
-- and predicate as 0017's, 8 bytes wider.
CREATE INDEX orders_campaign_figures2 ON orders (campaign, status) INCLUDE (settlement_fen, enqueued_at, finished_at)
 WHERE campaign IS NOT NULL;
DROP INDEX orders_campaign_figures;
ALTER INDEX orders_campaign_figures2 RENAME TO orders_campaign_figures;
