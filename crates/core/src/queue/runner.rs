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
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{connect_within, Lane, Publisher, QueueError, Topology};
use crate::config::{format_duration, server_address};

/// What the runner must do with a delivery once the handler is done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Finished (done, failed for good, or nothing left to do): acknowledge.
    Ack,
    /// Publish to the lane's retry tier for about this delay, then acknowledge.
    RetryAfter(Duration),
    /// Publish to the lane's dead-letter queue with this reason, then acknowledge.
    Park { reason: String },
    /// Could not decide (database unreachable): hand the job back to the broker.
    Requeue,
    /// Not worked on here: publish it to the lane's work queue again, now, then
    /// acknowledge — the rest of a batch job handed back so that every running
    /// worker, also one started after the batch was queued, can take a share.
    Again,
    /// A batch job was taken apart: each part (a job of its own, with its payload)
    /// gets its disposition, then the batch is acknowledged. If any part says
    /// `Requeue`, or a part cannot be published, the whole batch goes back instead;
    /// its finished parts are skipped when it returns.
    Split(Vec<(Vec<u8>, Disposition)>),
}

/// A role's work on one job; everything but the broker side effects.
pub trait JobHandler: Send + Sync + 'static {
    fn process(&self, payload: &[u8]) -> impl std::future::Future<Output = Disposition> + Send;
}

/// Broker settings of a worker process.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub lane: Lane,
    /// Shown in RabbitMQ's connection list.
    pub connection_name: String,
    pub amqp_url: String,
    /// Longest wait for connect, handshake and declarations of one session.
    pub connect_timeout: Duration,
    pub prefetch: u16,
    pub concurrency: usize,
    pub shutdown_grace: Duration,
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
            connection_name: name.to_string(),
            amqp_url: settings.broker.url.clone(),
            connect_timeout: settings.broker.connect_timeout,
            prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
            concurrency,
            shutdown_grace: settings.process.shutdown_grace,
        }
    }
}

/// A delivery whose fate is decided exactly once: each method consumes it.
struct Job {
    delivery: Delivery,
}

impl Job {
    async fn ack(self) {
        // Ok(false) means the channel died first: the broker will redeliver, which
        // is harmless because processing is idempotent.
        if let Err(e) = self.delivery.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %e, "ack failed; the job will be redelivered");
        }
    }

    async fn requeue(self) {
        let _ = self.delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
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
                tracing::warn!(
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
                topology.queue(settings.lane).as_str().into(),
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
    tracing::info!(queue = topology.queue(settings.lane), prefetch = settings.prefetch, "consuming jobs");
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
        let (worker, publisher, topology, lane) = (worker.clone(), publisher.clone(), topology.clone(), settings.lane);
        tasks.spawn(async move {
            handle(Job { delivery }, &*worker, &publisher, &topology, lane).await;
            drop(permit);
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
        tracing::warn!("grace period over; unfinished jobs return to the queue");
    }
    let _ = tokio::time::timeout(brief, connection.close(200, "bye".into())).await;
    outcome
}

async fn handle<W: JobHandler>(job: Job, worker: &W, publisher: &Publisher, topology: &Topology, lane: Lane) {
    match worker.process(&job.delivery.data).await {
        Disposition::Ack => job.ack().await,
        Disposition::Requeue => requeue_later(job).await,
        Disposition::Split(parts) => {
            if parts.iter().any(|(_, d)| matches!(d, Disposition::Requeue | Disposition::Split(_))) {
                return requeue_later(job).await;
            }
            let sends = parts.iter().map(|(payload, d)| hand_on(publisher, topology, lane, payload, d));
            match futures::future::try_join_all(sends).await {
                Ok(_) => job.ack().await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand on part of a batch job; the batch goes back");
                    job.requeue().await;
                }
            }
        }
        other => match hand_on(publisher, topology, lane, &job.delivery.data, &other).await {
            Ok(()) => job.ack().await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot schedule the retry or park the job; handed back");
                job.requeue().await;
            }
        },
    }
}

/// Not straight back: the database is likely down, and an instant redelivery
/// would spin.
async fn requeue_later(job: Job) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    job.requeue().await;
}

/// Publishes what a retry or a parking needs; nothing for an acknowledgement.
async fn hand_on(
    publisher: &Publisher,
    topology: &Topology,
    lane: Lane,
    payload: &[u8],
    disposition: &Disposition,
) -> Result<(), QueueError> {
    match disposition {
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
        Disposition::Again => publisher.publish(&topology.exchange(lane), lane.routing_key(), payload, None).await,
        Disposition::Ack | Disposition::Requeue | Disposition::Split(_) => Ok(()),
    }
}
