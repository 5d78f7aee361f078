//! The broker side of every worker role: consume one lane's jobs with manual
//! acks, run each through a [`JobHandler`] under a concurrency limit, carry out
//! its [`Disposition`], reconnect when RabbitMQ goes away, and stop gracefully.
//!
//! Every (re)connection opens a fresh channel and sets `basic_qos` on it: lapin's
//! automatic recovery would re-open channels but not restore the prefetch, so we
//! do not use it. A consumer stream that ends or errors makes the session return
//! and a new one start, so a silently dead consumer cannot go unnoticed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{connect_within, Lane, Publisher, QueueError, Topology};
use crate::config::{format_duration, server_address};
use crate::telemetry::LogTarget;
use tracing::Level;

/// What the runner must do with a delivery once the handler is done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Finished (done, failed for good, or nothing left to do): acknowledge.
    Ack,
    /// Publish to the lane's retry tier for about this delay, then acknowledge.
    RetryAfter(Duration),
    /// Publish to the lane's dead-letter queue with this reason, then acknowledge.
    Park { reason: String },
    /// Could not decide (database unreachable): the job waits in a retry tier,
    /// longer each time up to [`BACKOFF_CAP`], without holding a slot, and is
    /// never parked for it: an outage is waited out.
    Requeue,
    /// The database refused what this job needed to write (its own data, not an
    /// outage, see `StoreError::is_refusal`): handed back like `Requeue`, but
    /// counted; past the runner's `requeue_limit` in a row the handler's
    /// [`JobHandler::give_up`] parks it with this reason.
    Refused { reason: String },
    /// Not worked on here: publish it to the lane's work queue again, now, then
    /// acknowledge — the rest of a batch job handed back so that every running
    /// worker, also one started after the batch was queued, can take a share.
    Again,
    /// Belongs in another work queue of the lane: publish it there under this
    /// routing key, then acknowledge (a campaign job that a retry tier brought
    /// back to the interactive queue).
    Forward(&'static str),
    /// A batch job was taken apart: each part (a job of its own, with its payload)
    /// gets its disposition (a part handed back waits in a retry tier as a job of
    /// its own), then the batch is acknowledged. If a part cannot be published,
    /// the whole batch goes back instead; its finished parts are skipped when it
    /// returns.
    Split(Vec<(Vec<u8>, Disposition)>),
}

impl Disposition {
    /// After a failed database write: a refusal is counted towards parking, an
    /// unreachable database is waited out.
    pub fn handed_back(e: &crate::store::StoreError) -> Disposition {
        if e.is_refusal() {
            Disposition::Refused { reason: e.to_string() }
        } else {
            Disposition::Requeue
        }
    }
}

/// A role's work on one job; everything but the broker side effects.
pub trait JobHandler: Send + Sync + 'static {
    fn process(&self, payload: &[u8]) -> impl std::future::Future<Output = Disposition> + Send;

    /// The job keeps failing the same way (refused too often, or redelivered
    /// close to the broker's own limit): record it as parked in the database
    /// with `reason` and answer `Park`, or `Requeue` when that write fails —
    /// a job in the dead-letter queue the database does not know as parked
    /// would be dropped by the next sweep.
    fn give_up(&self, payload: &[u8], reason: String) -> impl std::future::Future<Output = Disposition> + Send;
}

/// Counts consecutive refusals of a job (see [`Disposition::Refused`]).
const REFUSALS_HEADER: &str = "x-lijian-refusals";
/// Counts hand-backs of either kind, for the growing wait.
const HANDBACKS_HEADER: &str = "x-lijian-handbacks";

/// Longest wait of a handed-back job; an outage is noticed as over within it.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// A delivery this many times redelivered (`x-delivery-count`, set by quorum
/// queues) is given up before RabbitMQ 4's default delivery limit of 20 would
/// dead-letter it behind the database's back.
pub const REDELIVERY_LIMIT: i64 = 15;

/// Broker settings of a worker process.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub lane: Lane,
    /// The work queue consumed (the lane's own unless [`RunnerSettings::on_queue`]).
    pub queue: String,
    /// Its routing key on the lane's exchange, for jobs handed back (`Again`).
    pub routing_key: String,
    /// Shown in RabbitMQ's connection list.
    pub connection_name: String,
    pub amqp_url: String,
    /// Longest wait for connect, handshake and declarations of one session.
    pub connect_timeout: Duration,
    pub prefetch: u16,
    pub concurrency: usize,
    pub shutdown_grace: Duration,
    /// Consecutive refusals after which a job is given up (parked).
    pub requeue_limit: usize,
}

impl RunnerSettings {
    /// A role's loop on `lane`, with the broker address and grace from `settings`.
    pub fn for_role(
        settings: &crate::config::Settings,
        lane: Lane,
        name: &str,
        concurrency: usize,
        prefetch: usize,
    ) -> Self {
        RunnerSettings {
            lane,
            queue: crate::queue::Topology::new(&settings.broker.queue_prefix).queue(lane),
            routing_key: lane.routing_key().to_string(),
            connection_name: name.to_string(),
            amqp_url: settings.broker.url.clone(),
            connect_timeout: settings.broker.connect_timeout,
            prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
            concurrency,
            shutdown_grace: settings.process.shutdown_grace,
            requeue_limit: settings.process.requeue_limit,
        }
    }

    /// Consumes `queue` (bound to the lane's exchange under `routing_key`)
    /// instead of the lane's own work queue.
    pub fn on_queue(mut self, queue: String, routing_key: &str) -> Self {
        self.queue = queue;
        self.routing_key = routing_key.to_string();
        self
    }
}

/// A delivery whose fate is decided exactly once: each method consumes it.
struct Job {
    delivery: Delivery,
}

impl Job {
    async fn ack(self, log: LogTarget) {
        // Ok(false) means the channel died first: the broker will redeliver, which
        // is harmless because processing is idempotent.
        if let Err(e) = self.delivery.ack(BasicAckOptions::default()).await {
            crate::role_event!(log, Level::WARN, error = %e, "ack failed; the job will be redelivered");
        }
    }

    async fn requeue(self) {
        let _ = self.delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
    }
}

/// Whose loop this is: issue jobs are the consumer's, reports the notifier's.
fn log_target(lane: Lane) -> LogTarget {
    match lane {
        Lane::Issue => LogTarget::Consumer,
        Lane::Notify => LogTarget::Notifier,
    }
}

/// Runs sessions until `shutdown`, reconnecting with a growing pause.
pub async fn run<W: JobHandler>(
    worker: Arc<W>,
    publisher: Arc<Publisher>,
    topology: Topology,
    settings: RunnerSettings,
    shutdown: CancellationToken,
) {
    let mut pauses = reconnect_pauses();
    let broker = server_address(&settings.amqp_url);
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        // Opening is raced against shutdown: a broker that never answers must not
        // keep a stopping process waiting.
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            opened = open(topology.clone(), &settings) => opened,
        };
        let outcome = match opened {
            Ok(session) => serve(session, &worker, &publisher, &topology, &settings, &shutdown).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => return,
            Err(e) => {
                if started.elapsed() > Duration::from_secs(30) {
                    // It ran for a while: this is a new outage, start small again.
                    pauses = reconnect_pauses();
                }
                let pause = pauses.next().unwrap_or(Duration::from_secs(5));
                crate::role_event!(
                    log_target(settings.lane),
                    Level::WARN,
                    %broker,
                    error = %e,
                    pause_ms = pause.as_millis() as u64,
                    "consumer session ended or could not start; reconnecting"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// 200 ms doubling to 5 s, jittered, forever (backon; see docs/decisions.md).
fn reconnect_pauses() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// A connected channel consuming the lane's queue.
struct Session {
    connection: lapin::Connection,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
    tag: String,
}

/// Connects, declares and starts consuming, all within `connect_timeout` (the
/// handshake has its own limit; this one also covers a broker that stalls later).
async fn open(topology: Topology, settings: &RunnerSettings) -> Result<Session, QueueError> {
    let limit = settings.connect_timeout;
    let steps = async {
        let connection = connect_within(&settings.amqp_url, &settings.connection_name, limit).await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        channel.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
        let tag = format!("{}-{}", settings.connection_name, uuid::Uuid::new_v4().simple());
        let consumer = channel
            .basic_consume(
                settings.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, QueueError>(Session { connection, channel, consumer, tag })
    };
    match tokio::time::timeout(limit + Duration::from_secs(1), steps).await {
        Ok(opened) => opened,
        Err(_) => Err(QueueError::Unavailable(format!(
            "RabbitMQ at {}: no answer to declarations within {}",
            server_address(&settings.amqp_url),
            format_duration(limit)
        ))),
    }
}

async fn serve<W: JobHandler>(
    session: Session,
    worker: &Arc<W>,
    publisher: &Arc<Publisher>,
    topology: &Topology,
    settings: &RunnerSettings,
    shutdown: &CancellationToken,
) -> Result<(), QueueError> {
    let Session { connection, channel, mut consumer, tag } = session;
    let log = log_target(settings.lane);
    crate::role_event!(log, Level::INFO, queue = settings.queue, prefetch = settings.prefetch, "consuming jobs");
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let tasks = TaskTracker::new();
    let outcome = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => break Err(QueueError::from(e)),
            None => break Err(QueueError::Unavailable("RabbitMQ cancelled our consumer".into())),
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => {
                Job { delivery }.requeue().await;
                break Ok(());
            }
            permit = permits.clone().acquire_owned() => permit.map_err(|_| QueueError::Unavailable("RabbitMQ session closed".into()))?,
        };
        let (worker, publisher, topology) = (worker.clone(), publisher.clone(), topology.clone());
        let context = Context {
            lane: settings.lane,
            routing_key: settings.routing_key.clone(),
            requeue_limit: settings.requeue_limit,
        };
        tasks.spawn(async move {
            handle(Job { delivery }, permit, &*worker, &publisher, &topology, context).await;
        });
    };
    // Stop taking jobs, let those in flight finish within the grace period; any
    // still unacknowledged after it go back to the queue when the channel closes.
    // Each broker call is bounded: a broker that stalls mid-session must not hold
    // the process past its grace.
    let brief = Duration::from_secs(2);
    let _ = tokio::time::timeout(brief, channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())).await;
    tasks.close();
    if tokio::time::timeout(settings.shutdown_grace, tasks.wait()).await.is_err() {
        crate::role_event!(log, Level::WARN, "grace period over; unfinished jobs return to the queue");
    }
    // Channel first (see `Topology::remove`).
    let _ = tokio::time::timeout(brief, channel.close(200, "bye".into())).await;
    let _ = tokio::time::timeout(brief, connection.close(200, "bye".into())).await;
    outcome
}

#[derive(Clone)]
struct Context {
    lane: Lane,
    /// Where a job handed back (`Again`) goes: the queue it came from.
    routing_key: String,
    requeue_limit: usize,
}

async fn handle<W: JobHandler>(
    job: Job,
    permit: OwnedSemaphorePermit,
    worker: &W,
    publisher: &Publisher,
    topology: &Topology,
    cx: Context,
) {
    let payload = &job.delivery.data;
    let refusals = header_count(&job.delivery, REFUSALS_HEADER);
    let handbacks = header_count(&job.delivery, HANDBACKS_HEADER);
    let redelivered = header_count(&job.delivery, "x-delivery-count");
    let mut disposition = if redelivered >= REDELIVERY_LIMIT {
        let reason = format!("delivered {} times without an outcome (a worker crashing on it?)", redelivered + 1);
        worker.give_up(payload, reason).await
    } else {
        worker.process(payload).await
    };
    if let Disposition::Refused { reason } = &disposition {
        if refusals + 1 > cx.requeue_limit as i64 {
            let reason = format!("refused {} times by the database; last: {reason}", refusals + 1);
            disposition = worker.give_up(payload, reason).await;
        }
    }
    let sent = match &disposition {
        Disposition::Ack => Ok(()),
        Disposition::Split(parts) => {
            let sends = parts.iter().map(|(part, d)| hand_on(publisher, topology, &cx, part, d, (0, 0)));
            futures::future::try_join_all(sends).await.map(|_| ())
        }
        other => hand_on(publisher, topology, &cx, payload, other, (refusals, handbacks)).await,
    };
    match sent {
        Ok(()) => {
            drop(permit);
            job.ack(log_target(cx.lane)).await;
        }
        Err(e) => {
            crate::role_event!(
                log_target(cx.lane),
                Level::WARN,
                error = %e,
                "cannot hand the job on (retry, park or back off); it goes back to the queue"
            );
            // The broker (or its topology) is what failed: waiting here, without a
            // slot, keeps a redelivery from spinning on the same failure.
            drop(permit);
            let pause = BACKOFF_CAP.min(Duration::from_millis(500) * 2u32.pow(redelivered.clamp(0, 5) as u32));
            tokio::time::sleep(pause).await;
            job.requeue().await;
        }
    }
}

/// A numeric header of the delivery, 0 when absent.
fn header_count(delivery: &Delivery, name: &str) -> i64 {
    let Some(headers) = delivery.properties.headers() else { return 0 };
    match headers.inner().get(name) {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortInt(n)) => i64::from(*n),
        Some(AMQPValue::LongUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortUInt(n)) => i64::from(*n),
        _ => 0,
    }
}

/// Publishes what a retry or a parking needs; nothing for an acknowledgement.
async fn hand_on(
    publisher: &Publisher,
    topology: &Topology,
    cx: &Context,
    payload: &[u8],
    disposition: &Disposition,
    (refusals, handbacks): (i64, i64),
) -> Result<(), QueueError> {
    let lane = cx.lane;
    match disposition {
        Disposition::Requeue | Disposition::Refused { .. } => {
            // Requeue keeps the count (an outage between two refusals does not
            // reset it); a refusal adds one.
            let refusals = refusals + i64::from(matches!(disposition, Disposition::Refused { .. }));
            let handbacks = handbacks + 1;
            let mut headers = FieldTable::default();
            headers.insert(REFUSALS_HEADER.into(), AMQPValue::LongLongInt(refusals));
            headers.insert(HANDBACKS_HEADER.into(), AMQPValue::LongLongInt(handbacks));
            let tier = topology.backoff_queue(lane, handbacks.clamp(1, 16) as u32, BACKOFF_CAP);
            publisher.publish("", &tier, payload, Some(headers)).await
        }
        Disposition::RetryAfter(delay) => {
            let tier = topology.retry_queue_for(lane, *delay);
            publisher.publish("", &tier, payload, None).await
        }
        Disposition::Park { reason } => {
            let mut headers = FieldTable::default();
            headers.insert("x-lijian-reason".into(), AMQPValue::LongString(LongString::from(reason.as_str())));
            let exchange = topology.dead_letter_exchange(lane);
            publisher.publish(&exchange, lane.routing_key(), payload, Some(headers)).await
        }
        Disposition::Again => publisher.publish(&topology.exchange(lane), &cx.routing_key, payload, None).await,
        Disposition::Forward(key) => publisher.publish(&topology.exchange(lane), key, payload, None).await,
        Disposition::Ack => Ok(()),
        Disposition::Split(_) => Err(QueueError::Unavailable("a batch part cannot be a batch".into())),
    }
}
