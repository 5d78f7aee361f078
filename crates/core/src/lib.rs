//! lijian-core: the vocabulary every lijian role shares.
//!
//! # Owns
//! - money ([`money::Fen`]): integer fen inside, yuan only at the edges;
//! - the original platform's signing rule ([`signing`]) and RSA/MD5 keys;
//! - the status vocabulary: order states and the open API's status table ([`status`]),
//!   and every other stored word as a type ([`vocab`]);
//! - configuration ([`config`]): defaults, an optional TOML file, `LIJIAN_*` environment;
//! - the PostgreSQL store ([`store`]): pool, embedded migrations, admin repositories;
//! - RabbitMQ ([`queue`]): topology, versioned jobs, the confirming publisher, and
//!   the consume loop shared by the consumer and the notifier;
//! - the one outbox drain and relay loop ([`outbox`]) and the one micro-batcher
//!   of hot writes ([`batch`]), used by every role that needs them;
//! - what every role reports to operators ([`telemetry`]): Prometheus text,
//!   readiness of PostgreSQL and RabbitMQ, dead-letter depth, and the
//!   `/metrics`, `/healthz`, `/readyz` endpoints that serve them;
//! - what the roles of one process share ([`deps::Deps`]): settings, one pool,
//!   one publisher, the topology and the operator view, built once.
//!
//! # Must not touch
//! HTTP beyond the operator endpoints, the CLI, or any decision about *whether*
//! an order is accepted: that is `lijian-producer`. Long-running tasks start only when a role calls
//! `queue::runner::run`.
//!
//! # Layout
//! - `money.rs`    parse/format yuan, the `Fen` newtype
//! - `signing.rs`  string-to-sign, SHA256-RSA and MD5, key parsing and generation;
//!   `crypto_pool.rs` the low-priority threads RSA work runs on
//! - `status.rs`   order status 0–4, API status codes 0–99
//! - `config/`     layered settings in sections, each key declared once (`mod.rs`);
//!   how values read and print (`values.rs`)
//! - `deps.rs`     the per-process `Deps` every role starts from
//! - `store/`      pool, migrations, the queries every role shares; `finish.rs` is the
//!   one place an order ends (issued, failed, cancelled), `issuance.rs` the
//!   consumer's bookkeeping around a WeChat call
//! - `queue/`      lanes and names, jobs, the confirming publisher, the consume loop
//! - `outbox.rs`   take owed rows, publish with confirms, settle, commit; the relay loop
//! - `batch.rs`    writer tasks that batch concurrent writes, one-by-one fallback
//! - `telemetry/`  metrics exposition, histograms; `ops.rs`: the `Ops` view and its endpoints
//! - `ssrf.rs`     where a merchant callback may point (intake and delivery share it)
//! - `timeline_text.rs` an order's timeline in words (`order show` and the console)
//! - `times.rs`    times as shown (RFC 3339, fixed width) and as typed (`--starts now+1h`)
//! - `vocab.rs`    the stored words: one enum each, one mapping to SQL, JSON and the CLI

pub mod batch;
pub mod config;
mod crypto_pool;
pub mod deps;
pub mod money;
pub mod outbox;
pub mod queue;
pub mod signing;
pub mod ssrf;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod timeline_text;
pub mod times;
pub mod vocab;
