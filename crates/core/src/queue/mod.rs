//! RabbitMQ: names and declaration (`topology.rs`), the versioned jobs (`jobs.rs`),
//! a publisher that waits for broker confirms and reconnects by itself, and the
//! consume loop every worker role runs ([`runner`]).

mod dead_letters;
mod jobs;
pub mod runner;
mod topology;

pub use dead_letters::{sweep_dead_letters, Swept};
pub use jobs::{IssueJob, NotifyJob};
pub use runner::{Disposition, JobHandler, RunnerSettings};
pub use topology::{IssueLane, Lane, Topology};

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::config::{format_duration, server_address};

/// Why a publish or declaration failed. Every variant means "not durably queued".
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The text names RabbitMQ (and its address, where a connect failed).
    #[error("{0}")]
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

/// How long [`connect`] waits when the caller has no setting at hand
/// (`broker.connect_timeout`'s default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens an AMQP connection named after the role, for the broker's management UI,
/// giving up after [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, name: &str) -> Result<Connection, QueueError> {
    connect_within(url, name, CONNECT_TIMEOUT).await
}

/// [`connect`] with its own limit on TCP connect and AMQP handshake together: a
/// broker that accepts TCP and never answers (out of file handles) would
/// otherwise hold the caller for ever. Errors name the broker's address.
pub async fn connect_within(url: &str, name: &str, limit: Duration) -> Result<Connection, QueueError> {
    let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let at = server_address(url);
    match tokio::time::timeout(limit, Connection::connect(url, props)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(QueueError::Unavailable(format!("RabbitMQ at {at}: {e}"))),
        Err(_) => Err(QueueError::Unavailable(format!(
            "RabbitMQ at {at}: connect and AMQP handshake timed out after {}",
            format_duration(limit)
        ))),
    }
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
    /// Longest wait for connection, channel and declarations together.
    connect_timeout: Duration,
    link: Mutex<Link>,
    /// Why the last connect failed (None once one succeeds): repeated to callers
    /// while failing fast, and read by `/readyz` without waiting on `link`, which
    /// a connect in progress holds.
    last_error: std::sync::Mutex<Option<String>>,
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
            connect_timeout: CONNECT_TIMEOUT,
            link: Mutex::new(Link::default()),
            last_error: std::sync::Mutex::new(None),
        })
    }

    /// A publisher for these settings: the broker's address, and its connect timeout.
    pub fn for_settings(settings: &crate::config::Settings, name: &str, topology: Topology) -> Arc<Publisher> {
        Arc::new(Publisher {
            url: settings.broker.url.clone(),
            name: name.to_string(),
            topology,
            confirm_timeout: Duration::from_secs(5),
            connect_timeout: settings.broker.connect_timeout,
            link: Mutex::new(Link::default()),
            last_error: std::sync::Mutex::new(None),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The broker address (for tools that need a connection of their own).
    pub fn url(&self) -> &str {
        &self.url
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
                let why = self.last_error().unwrap_or_else(|| "RabbitMQ reconnect pending".into());
                return Err(QueueError::Unavailable(why));
            }
        }
        link.channel = None;
        if let Some(old) = link.connection.take() {
            let _ =
                tokio::time::timeout(Duration::from_millis(200), old.close(200, ShortString::from("reconnect"))).await;
        }
        let opened = async {
            let connection = connect_within(&self.url, &self.name, self.connect_timeout).await?;
            let channel = connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            self.topology.declare(&channel).await?;
            Ok::<_, QueueError>((connection, channel))
        };
        // The connect has its own limit; this one also covers a broker that
        // completes the handshake and then stalls the declarations.
        let outcome = match tokio::time::timeout(self.connect_timeout + Duration::from_secs(1), opened).await {
            Ok(Ok((connection, channel))) => {
                link.connection = Some(connection);
                link.channel = Some(channel.clone());
                link.last_failure = None;
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Ok(channel);
            }
            Ok(Err(QueueError::Unavailable(why))) => why,
            Ok(Err(e)) => format!("RabbitMQ at {}: {e}", server_address(&self.url)),
            Err(_) => format!(
                "RabbitMQ at {}: no answer to declarations within {}",
                server_address(&self.url),
                format_duration(self.connect_timeout)
            ),
        };
        crate::role_event!(
            crate::telemetry::LogTarget::for_process(&self.name),
            tracing::Level::WARN,
            broker = %server_address(&self.url),
            error = %outcome,
            "cannot open a publishing channel; will retry"
        );
        link.last_failure = Some(Instant::now());
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome.clone());
        Err(QueueError::Unavailable(outcome))
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
            Ok(Ok(Confirmation::NotRequested)) => {
                Err(QueueError::Unavailable("RabbitMQ channel not in confirm mode".into()))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(QueueError::Timeout(self.confirm_timeout)),
        };
        self.invalidate().await;
        outcome
    }

    /// Publishes an interactive issue job (an API order's).
    pub async fn publish_issue(&self, job: &IssueJob) -> Result<(), QueueError> {
        self.publish_issue_in(IssueLane::Interactive, job).await
    }

    /// Publishes an issue job to `lane`'s work queue, the lane written in the job.
    pub async fn publish_issue_in(&self, lane: IssueLane, job: &IssueJob) -> Result<(), QueueError> {
        let exchange = self.topology.issue_exchange();
        self.publish(&exchange, lane.routing_key(), &job.to_bytes_in(lane), None).await
    }

    /// Publishes a notify job to the notify exchange.
    pub async fn publish_notify(&self, job: &NotifyJob) -> Result<(), QueueError> {
        let exchange = self.topology.exchange(Lane::Notify);
        self.publish(&exchange, Lane::Notify.routing_key(), &job.to_bytes(), None).await
    }

    /// Whether a broker channel is usable right now (for readiness).
    pub async fn ping(&self) -> bool {
        self.check().await.is_ok()
    }

    /// Like [`Publisher::ping`], with why not (the broker's address included).
    pub async fn check(&self) -> Result<(), String> {
        self.channel().await.map(drop).map_err(|e| match e {
            QueueError::Unavailable(why) => why,
            other => format!("RabbitMQ at {}: {other}", server_address(&self.url)),
        })
    }

    /// The last reason a connect failed, if the link is down now.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
