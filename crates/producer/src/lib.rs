//! lijian-producer: turns a request from any door (open API, CSV, schedule) into a
//! durable order and an issue job on the broker.
//!
//! # Owns
//! - the validation rules of an order request ([`OrderRequest::validate`]), shared
//!   by every door so a CSV row and an API call are judged alike;
//! - the accepting transaction ([`intake`]): micro-batched calls of the SQL function
//!   `lijian_accept_order`, so one commit covers many orders on a hot merchant row;
//! - publishing the job after commit with confirms, and the relay that re-publishes
//!   anything a crash or a broker outage left behind ([`relay`]);
//! - the CSV door ([`bulk`]): set-based accepting of whole batches
//!   (`lijian_accept_batch`) and the batch outbox ([`outbox`]) whose jobs carry
//!   up to 100 orders each;
//! - campaigns ([`campaign`]) and the scheduler role that releases every
//!   campaign into the campaign queue, at its time and pace, in fair shares of
//!   each account's window ([`scheduler`], [`release`], the arithmetic in [`fair`]).
//!
//! # Must not touch
//! HTTP or signatures (the gateway), issuing coupons (the consumer). It never
//! answers "accepted" before the order is committed.
//!
//! # Layout
//! - `request.rs` the order request and its validation
//! - `intake.rs`  batching writers around `lijian_accept_order`
//! - `relay.rs`   publish-after-commit, the enqueued marker, the relay loop
//! - `producer.rs` the handle doors use: place an order, start and stop the tasks
//! - `bulk/`      the CSV loader: reader thread (`reader`, `rows`, `lines`), COPY +
//!   `lijian_accept_batch` (`copy`), the rejects file (`rejects`), flusher (`mod.rs`)
//! - `outbox.rs`  bulk issue jobs owed, published by whoever flushes first
//! - `campaign.rs` campaign rows: create/check, list, status, pause, resume, cancel
//! - `scheduler.rs` the scheduler role's release loop and its metrics
//! - `release.rs` one release step: windows, shares, taking and stamping orders
//! - `fair.rs`    max-min fair shares, the window's size, finishing rates
//! - `role.rs`    starting the scheduler role from a process's `Deps`

pub mod bulk;
pub mod campaign;
pub mod fair;
mod intake;
pub mod outbox;
mod producer;
mod relay;
pub mod release;
mod request;
mod role;
pub mod scheduler;

pub use intake::{IntakeError, IntakeOutcome};
pub use producer::{Placed, Producer, ProducerSettings};
pub use relay::{relay_once, replay_orders, ReplayError};
pub use request::{check_callback_url, OrderRequest, ReplayGuard, Source, MAX_BIZ_CODE_LEN};
pub use role::{start_scheduler, RunningScheduler};
