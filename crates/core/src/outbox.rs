//! The transactional outbox, drained one way by every role.
//!
//! Rows that owe a broker job (orders the fast path missed, bulk outbox rows, a
//! campaign's due orders, replayed orders, unsent reports) are taken in a
//! transaction that locks them (`FOR UPDATE SKIP LOCKED`, so several relays share
//! the work without taking a row twice), their jobs are published under confirms,
//! the confirmed rows are stamped or deleted in the same transaction, and it
//! commits. A crash between confirm and commit publishes a job twice, which every
//! worker shrugs off; a job never confirmed stays owed for the next pass.
//!
//! Each site says only what differs ([`Outbox`]: which rows, which job, which
//! stamp); [`drain`] is the one pass, [`run_periodically`] the one relay loop.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::queue::{IssueJob, IssueLane, NotifyJob, Publisher, QueueError};
use crate::store::{Store, StoreError};
use crate::telemetry::LogTarget;
use tracing::Level;

/// The transaction [`Outbox::take`] and [`Outbox::settle`] run in.
pub use tokio_postgres::Transaction;

/// A job the drain can publish.
pub trait Job: Send + Sync {
    fn publish<'a>(&'a self, publisher: &'a Publisher) -> impl Future<Output = Result<(), QueueError>> + Send + 'a;
}

impl Job for IssueJob {
    fn publish<'a>(&'a self, publisher: &'a Publisher) -> impl Future<Output = Result<(), QueueError>> + Send + 'a {
        publisher.publish_issue(self)
    }
}

/// An issue job bound for one lane's work queue (campaign releases).
impl Job for (IssueLane, IssueJob) {
    fn publish<'a>(&'a self, publisher: &'a Publisher) -> impl Future<Output = Result<(), QueueError>> + Send + 'a {
        publisher.publish_issue_in(self.0, &self.1)
    }
}

impl Job for NotifyJob {
    fn publish<'a>(&'a self, publisher: &'a Publisher) -> impl Future<Output = Result<(), QueueError>> + Send + 'a {
        publisher.publish_notify(self)
    }
}

/// What one outbox owes and how it records a confirmed job.
pub trait Outbox: Sync {
    /// What [`Outbox::settle`] needs of a confirmed job (an order code, an outbox
    /// row id, the orders of a chunk…).
    type Key: Send;
    type Job: Job;
    /// Names the outbox in log lines.
    const NAME: &'static str;
    /// The role whose target its log lines carry.
    const LOG: LogTarget;

    /// Takes, inside `tx`, the rows this pass publishes (locked, so no other
    /// drainer takes them before commit).
    fn take(
        &self,
        tx: &Transaction<'_>,
    ) -> impl Future<Output = Result<Taken<Self::Key, Self::Job>, StoreError>> + Send;

    /// Records, in the same transaction, that the broker has the jobs of
    /// `confirmed` (stamps `enqueued_at`, deletes outbox rows…).
    fn settle(
        &self,
        tx: &Transaction<'_>,
        confirmed: &[Self::Key],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`Outbox::take`] found.
pub enum Taken<K, J> {
    /// Jobs to publish, each with the key settled once it is confirmed. An
    /// empty list means nothing is owed now: the transaction is rolled back.
    Jobs(Vec<(K, J)>),
    /// Nothing to publish, but what `take` wrote must be committed (a campaign
    /// found fully released is marked drained).
    CommitOnly,
}

/// Which confirms a pass needs before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirms {
    /// Settle what the broker confirmed; the rest stays owed for a later pass.
    Partial,
    /// Commit only if the broker confirmed every job, else change nothing (a
    /// replay must never revive an order without its job).
    All,
}

/// The outcome of one [`drain`] pass.
#[derive(Debug)]
pub struct Drained<K> {
    /// Keys of the jobs the broker confirmed and this pass settled and committed.
    pub settled: Vec<K>,
    /// The first publish the broker did not confirm, if any. Under
    /// [`Confirms::All`] it means nothing was settled.
    pub unconfirmed: Option<QueueError>,
}

impl<K> Drained<K> {
    fn nothing() -> Drained<K> {
        Drained { settled: Vec::new(), unconfirmed: None }
    }
}

/// One pass over `outbox`: take, publish with confirms, settle, commit.
pub async fn drain<O: Outbox>(
    store: &Store,
    publisher: &Publisher,
    outbox: &O,
    confirms: Confirms,
) -> Result<Drained<O::Key>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let jobs = match outbox.take(&tx).await? {
        Taken::Jobs(jobs) if jobs.is_empty() => return Ok(Drained::nothing()),
        Taken::Jobs(jobs) => jobs,
        Taken::CommitOnly => {
            tx.commit().await?;
            return Ok(Drained::nothing());
        }
    };
    let outcomes = join_all(jobs.iter().map(|(_, job)| job.publish(publisher))).await;
    let mut settled = Vec::with_capacity(jobs.len());
    let mut unconfirmed = None;
    let mut failures = 0;
    for ((key, _), outcome) in jobs.into_iter().zip(outcomes) {
        match outcome {
            Ok(()) => settled.push(key),
            Err(e) => {
                failures += 1;
                unconfirmed.get_or_insert(e);
            }
        }
    }
    if let Some(error) = &unconfirmed {
        if confirms == Confirms::All {
            return Ok(Drained { settled: Vec::new(), unconfirmed });
        }
        // One line per pass, not per job: with the broker down every job fails.
        crate::role_event!(
            O::LOG,
            Level::WARN,
            outbox = O::NAME,
            jobs = failures,
            %error,
            "jobs not confirmed by the broker; they stay owed"
        );
    }
    outbox.settle(&tx, &settled).await?;
    tx.commit().await?;
    Ok(Drained { settled, unconfirmed })
}

/// After a failed pass the next waits longer, up to this: a relay whose database
/// is down must not write a warning every interval.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Runs `pass` every `interval` until `shutdown`, first at once. A failed pass is
/// logged with `name` under `log`'s target and backs off (×4 up to 5 s) until one
/// succeeds. `pass` returns how many jobs it published.
pub async fn run_periodically<F, Fut, E>(
    log: LogTarget,
    name: &str,
    interval: Duration,
    shutdown: CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: Display,
{
    let mut pause = interval;
    while !shutdown.is_cancelled() {
        match pass().await {
            Ok(published) => {
                if published > 0 {
                    crate::role_event!(log, Level::DEBUG, task = name, published, "pass published jobs");
                }
                pause = interval;
            }
            Err(error) => {
                pause = (pause * 4).min(MAX_PAUSE).max(interval);
                let retry_in_ms = pause.as_millis() as u64;
                crate::role_event!(log, Level::WARN, task = name, %error, retry_in_ms, "pass failed; will retry");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
