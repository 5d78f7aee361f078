-- lijian schema v15: the operator console: operators, their API tokens and
-- browser sessions, and the audit log of everything operators do.

-- People who use the console (and its JSON API). A viewer sees everything and
-- changes nothing; an admin may act. Passwords are stored as argon2 PHC strings.
CREATE TABLE operators (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash  text NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);

-- API tokens, `ljt_<selector>_<secret>`: found by the selector, the secret
-- checked against its SHA-256 in constant time. Only the hash is stored.
CREATE TABLE operator_tokens (
    selector     text PRIMARY KEY,
    operator_id  bigint NOT NULL REFERENCES operators ON DELETE CASCADE,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX operator_tokens_operator ON operator_tokens (operator_id);

-- Browser sessions, same shape as tokens; they end at expires_at or at logout.
CREATE TABLE operator_sessions (
    selector     text PRIMARY KEY,
    operator_id  bigint NOT NULL REFERENCES operators ON DELETE CASCADE,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);

-- Everything operators did, through the console or the CLI: who (an operator's
-- name, or `cli:<unix user>`), what, to what, and how many things it touched.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL DEFAULT '',
    count   bigint NOT NULL DEFAULT 0,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);

-- The console's overview counts the last hour per minute. BRIN indexes follow
-- the tables' insertion order at a few pages' cost and next to nothing per
-- insert, where a B-tree on these hot tables would slow every accepted order.
CREATE INDEX orders_created_brin ON orders USING brin (created_at);
CREATE INDEX orders_finished_brin ON orders USING brin (finished_at);
CREATE INDEX report_attempts_at_brin ON report_attempts USING brin (at);
