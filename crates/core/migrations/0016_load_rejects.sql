-- lijian schema v16: the rejects of a campaign's latest load, kept in the
-- database so that the console can serve them (any console process, after a
-- restart) for loads done in the browser and with `lijian load` alike.

-- The rejects file as the loader writes it (`line,reason,<the file's
-- columns>`), cut into chunks in order. Each load writes under a load_id of its
-- own; once it finished, the campaign's older loads' chunks are deleted, so the
-- latest load's file is the one served.
CREATE SEQUENCE load_rejects_load_id;
CREATE TABLE load_rejects (
    campaign  text NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    load_id   bigint NOT NULL,
    seq       integer NOT NULL,
    chunk     bytea NOT NULL,
    PRIMARY KEY (campaign, load_id, seq)
);
