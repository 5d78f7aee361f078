//! RabbitMQ: the names under `LIJIAN_QUEUE_PREFIX`, their idempotent declaration,
//! the versioned issue job, and a publisher that waits for broker confirms and
//! reconnects by itself.
//!
//! Topology (prefix `p`):
//! - `p.issue` direct exchange → `p.issue` quorum queue (routing key `issue`);
//! - `p.issue.dlx` exchange → `p.issue.dlq` quorum queue, where jobs are parked.
//!
//! The work queue dead-letters with `at-least-once` (which needs
//! `overflow = reject-publish`): RabbitMQ only confirm-protects dead-lettering with
//! that strategy, so a parked job cannot vanish between the two queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Why a publish or declaration failed. Every variant means "not durably queued".
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("RabbitMQ unavailable: {0}")]
    Unavailable(String),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("RabbitMQ could not route the message to any queue (is the topology declared?)")]
    Unroutable,
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
}

/// Exchange and queue names of one installation.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    /// One delay queue per distinct retry delay: queue-level TTL, so a long wait
    /// never blocks a short one behind it (per-message TTL only expires at the head).
    retry_delays: Vec<Duration>,
}

impl Topology {
    pub fn new(prefix: &str) -> Topology {
        Topology { prefix: prefix.to_string(), retry_delays: Vec::new() }
    }

    /// The topology for these settings, retry tiers included.
    pub fn from_settings(settings: &crate::config::Settings) -> Topology {
        Topology::new(&settings.queue_prefix).with_retry_delays(&settings.issue_retry_schedule)
    }

    /// Declares, for each delay, queues at 85%, 100% and 115% of it: a retry picks
    /// one at random, so jobs that failed together do not all come back together
    /// (jitter without sleeping on a delivery).
    pub fn with_retry_delays(mut self, delays: &[Duration]) -> Topology {
        let mut all: Vec<Duration> = delays.iter().flat_map(|d| RETRY_JITTER.map(|f| jittered(*d, f))).collect();
        all.sort();
        all.dedup();
        self.retry_delays = all;
        self
    }

    /// A delay queue for a retry after about `delay` (one of its jittered variants).
    pub fn jittered_retry_queue(&self, delay: Duration) -> String {
        let factor = RETRY_JITTER[rand::random_range(0..RETRY_JITTER.len())];
        self.issue_retry_queue(jittered(delay, factor))
    }

    /// The delay queue that holds a job for `delay`, then dead-letters it back to
    /// the issue exchange. Only delays given to [`Topology::with_retry_delays`] exist.
    pub fn issue_retry_queue(&self, delay: Duration) -> String {
        format!("{}.issue.retry.{}", self.prefix, crate::config::format_duration(delay))
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn issue_exchange(&self) -> String {
        format!("{}.issue", self.prefix)
    }
    pub fn issue_queue(&self) -> String {
        format!("{}.issue", self.prefix)
    }
    pub fn issue_dead_letter_exchange(&self) -> String {
        format!("{}.issue.dlx", self.prefix)
    }
    pub fn issue_dead_letter_queue(&self) -> String {
        format!("{}.issue.dlq", self.prefix)
    }
    /// Every queue this topology declares, for operators and test cleanup.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.issue_queue(), self.issue_dead_letter_queue()];
        queues.extend(self.retry_delays.iter().map(|d| self.issue_retry_queue(*d)));
        queues
    }
    pub fn exchanges(&self) -> Vec<String> {
        vec![self.issue_exchange(), self.issue_dead_letter_exchange()]
    }

    /// Declares everything; safe to run on every start and from several processes.
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        for exchange in self.exchanges() {
            channel
                .exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, durable, FieldTable::default())
                .await?;
        }
        let mut dlq_args = quorum_args();
        dlq_args.insert("x-overflow".into(), text("reject-publish"));
        declare_queue(channel, &self.issue_dead_letter_queue(), dlq_args).await?;
        bind(channel, &self.issue_dead_letter_queue(), &self.issue_dead_letter_exchange(), ISSUE_ROUTING_KEY).await?;

        let mut work_args = quorum_args();
        work_args.insert("x-dead-letter-exchange".into(), text(&self.issue_dead_letter_exchange()));
        work_args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        work_args.insert("x-overflow".into(), text("reject-publish"));
        declare_queue(channel, &self.issue_queue(), work_args).await?;
        bind(channel, &self.issue_queue(), &self.issue_exchange(), ISSUE_ROUTING_KEY).await?;

        for delay in &self.retry_delays {
            let mut args = quorum_args();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis() as i64));
            args.insert("x-dead-letter-exchange".into(), text(&self.issue_exchange()));
            args.insert("x-dead-letter-routing-key".into(), text(ISSUE_ROUTING_KEY));
            args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
            args.insert("x-overflow".into(), text("reject-publish"));
            declare_queue(channel, &self.issue_retry_queue(*delay), args).await?;
        }
        Ok(())
    }
}

/// Spread of retry delays (see [`Topology::with_retry_delays`]).
const RETRY_JITTER: [f64; 3] = [0.85, 1.0, 1.15];

fn jittered(delay: Duration, factor: f64) -> Duration {
    Duration::from_millis((delay.as_millis() as f64 * factor).round() as u64)
}

/// Routing key of issue jobs on the issue exchanges.
pub const ISSUE_ROUTING_KEY: &str = "issue";

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    channel.queue_declare(name.into(), QueueDeclareOptions::durable(), args).await?;
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    channel
        .queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
}

/// An issue job as it travels on the broker. Versioned so a consumer can refuse
/// (park) a shape it does not know instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueJob {
    /// `{"v":1,"orderCode":"…"}`: issue the coupon of one order.
    V1 { order_code: String },
}

#[derive(Serialize, Deserialize)]
struct IssueJobWire {
    v: u32,
    #[serde(rename = "orderCode")]
    order_code: String,
}

impl IssueJob {
    pub fn to_bytes(&self) -> Vec<u8> {
        let IssueJob::V1 { order_code } = self;
        let wire = IssueJobWire { v: 1, order_code: order_code.clone() };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<IssueJob, String> {
        let wire: IssueJobWire = serde_json::from_slice(bytes).map_err(|e| format!("not an issue job: {e}"))?;
        match wire.v {
            1 => Ok(IssueJob::V1 { order_code: wire.order_code }),
            other => Err(format!("unknown issue job version {other}")),
        }
    }

    pub fn order_code(&self) -> &str {
        let IssueJob::V1 { order_code } = self;
        order_code
    }
}

/// Opens an AMQP connection named after the role, for the broker's management UI.
pub async fn connect(url: &str, name: &str) -> Result<Connection, QueueError> {
    let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
    Connection::connect(url, props).await.map_err(|e| QueueError::Unavailable(e.to_string()))
}

/// A publisher with confirms on one channel that reconnects on demand. Shared by
/// all request tasks of a process; lapin pipelines concurrent publishes.
pub struct Publisher {
    url: String,
    name: String,
    topology: Topology,
    /// Longest wait for a broker confirm before the publish counts as failed (the
    /// relay then takes over), so a hung broker cannot hang merchants' requests.
    confirm_timeout: Duration,
    link: Mutex<Link>,
}

#[derive(Default)]
struct Link {
    connection: Option<Connection>,
    channel: Option<Channel>,
    /// When the last reconnect failed: while the broker is down, callers fail fast
    /// instead of each waiting on a TCP connect.
    last_failure: Option<Instant>,
}

/// How long after a failed connect we fail fast before trying again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

impl Publisher {
    pub fn new(url: &str, name: &str, topology: Topology) -> Arc<Publisher> {
        Arc::new(Publisher {
            url: url.to_string(),
            name: name.to_string(),
            topology,
            confirm_timeout: Duration::from_secs(5),
            link: Mutex::new(Link::default()),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A live confirm-mode channel, connecting (and declaring the topology) when needed.
    pub async fn channel(&self) -> Result<Channel, QueueError> {
        let mut link = self.link.lock().await;
        if let Some(ch) = &link.channel {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        if let Some(at) = link.last_failure {
            if at.elapsed() < RECONNECT_PAUSE {
                return Err(QueueError::Unavailable("reconnect pending".into()));
            }
        }
        link.channel = None;
        if let Some(old) = link.connection.take() {
            let _ =
                tokio::time::timeout(Duration::from_millis(200), old.close(200, ShortString::from("reconnect"))).await;
        }
        let opened = async {
            let connection = connect(&self.url, &self.name).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            self.topology.declare(&channel).await?;
            Ok::<_, QueueError>((connection, channel))
        };
        match tokio::time::timeout(Duration::from_secs(5), opened).await {
            Ok(Ok((connection, channel))) => {
                link.connection = Some(connection);
                link.channel = Some(channel.clone());
                link.last_failure = None;
                Ok(channel)
            }
            Ok(Err(e)) => {
                link.last_failure = Some(Instant::now());
                Err(e)
            }
            Err(_) => {
                link.last_failure = Some(Instant::now());
                Err(QueueError::Timeout(Duration::from_secs(5)))
            }
        }
    }

    /// Drops the current channel so the next call reconnects.
    async fn invalidate(&self) {
        let mut link = self.link.lock().await;
        link.channel = None;
    }

    /// Publishes one persistent, mandatory message and waits for the broker's
    /// confirm. Ok means the broker has it on disk in a queue.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        headers: Option<FieldTable>,
    ) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        let mut props =
            BasicProperties::default().with_delivery_mode(2).with_content_type(ShortString::from("application/json"));
        if let Some(h) = headers {
            props = props.with_headers(h);
        }
        let attempt = async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    payload,
                    props,
                )
                .await?;
            Ok::<_, QueueError>(confirm.await?)
        };
        let outcome = match tokio::time::timeout(self.confirm_timeout, attempt).await {
            Ok(Ok(Confirmation::Ack(None))) => return Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => return Err(QueueError::Unroutable),
            Ok(Ok(Confirmation::Nack(_))) => Err(QueueError::Nacked),
            Ok(Ok(Confirmation::NotRequested)) => Err(QueueError::Unavailable("channel not in confirm mode".into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(QueueError::Timeout(self.confirm_timeout)),
        };
        self.invalidate().await;
        outcome
    }

    /// Publishes an issue job to the work exchange.
    pub async fn publish_issue(&self, job: &IssueJob) -> Result<(), QueueError> {
        let exchange = self.topology.issue_exchange();
        self.publish(&exchange, ISSUE_ROUTING_KEY, &job.to_bytes(), None).await
    }

    /// Whether a broker channel is usable right now (for readiness).
    pub async fn ping(&self) -> bool {
        self.channel().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_tiers_are_jittered_and_named_by_delay() {
        let t = Topology::new("p").with_retry_delays(&[Duration::from_secs(1), Duration::from_secs(1)]);
        assert_eq!(t.queues().len(), 2 + 3);
        assert!(t.queues().contains(&"p.issue.retry.850ms".to_string()));
        assert!(t.queues().contains(&t.jittered_retry_queue(Duration::from_secs(1))));
    }

    #[test]
    fn job_wire_format_is_versioned() {
        let job = IssueJob::V1 { order_code: "LJ1".into() };
        assert_eq!(job.to_bytes(), br#"{"v":1,"orderCode":"LJ1"}"#.to_vec());
        assert_eq!(IssueJob::from_bytes(br#"{"v":1,"orderCode":"LJ1"}"#), Ok(job));
        assert!(IssueJob::from_bytes(br#"{"v":2,"orderCode":"LJ1"}"#).is_err());
        assert!(IssueJob::from_bytes(b"nope").is_err());
    }
}
