//! One process's operator view ([`Ops`]) and the three endpoints that serve it:
//! `/metrics`, `/healthz`, `/readyz`. The gateway merges [`ops_routes`] into its
//! API router; other roles (and `lijian serve`) run [`bind_ops`] and
//! [`serve_ops`] on `LIJIAN_OPS_ADDR`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Exposition, MetricsSource};
use crate::config::server_address;
use crate::queue::{IssueLane, Lane, Publisher, Topology};
use crate::store::Store;

/// Why the operator endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot listen on {addr}")]
    Bind { addr: String, source: std::io::Error },
    #[error("ops endpoint: {0}")]
    Serve(std::io::Error),
}

/// A role's name (for `lijian_role_info`) and its metrics.
type Role = (&'static str, Arc<dyn MetricsSource>);

/// One process's operator view: its roles' metrics, and whether it can work.
pub struct Ops {
    store: Store,
    publisher: Arc<Publisher>,
    topology: Topology,
    /// Filled by each role's `start`, so starting a role is all it takes to be seen.
    roles: Mutex<Vec<Role>>,
    /// A connection of its own for queue depths: a passive declare of a missing
    /// queue closes its channel, which must never be the one orders are
    /// published on.
    inspector: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

impl Ops {
    pub fn new(store: Store, publisher: Arc<Publisher>, topology: Topology) -> Ops {
        Ops { store, publisher, topology, roles: Mutex::new(Vec::new()), inspector: tokio::sync::Mutex::new(None) }
    }

    /// Adds a running role's metrics to this process's exposition.
    pub fn add_role(&self, role: &'static str, source: Arc<dyn MetricsSource>) {
        self.roles.lock().unwrap_or_else(|p| p.into_inner()).push((role, source));
    }

    /// Ready when PostgreSQL and RabbitMQ both answer; otherwise which does not,
    /// at which address and why (one line each).
    pub async fn ready(&self) -> Result<(), String> {
        let patience = Duration::from_secs(2);
        let (db, broker) = tokio::join!(
            tokio::time::timeout(patience, self.store.check()),
            tokio::time::timeout(patience, self.publisher.check())
        );
        let db = db.unwrap_or_else(|_| Err(format!("PostgreSQL at {}: no answer within 2s", self.store.address())));
        let broker = match broker {
            Ok(checked) => checked,
            // Still connecting: the last failure says more than our own wait.
            Err(_) => Err(self.publisher.last_error().unwrap_or_else(|| {
                format!("RabbitMQ at {}: no answer within 2s", server_address(self.publisher.url()))
            })),
        };
        let why: Vec<String> = [db.err().map(|e| e.trim_start_matches("cannot reach ").to_string()), broker.err()]
            .into_iter()
            .flatten()
            .collect();
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    /// The full exposition: every source, then dead-letter depths (omitted while
    /// the broker is unreachable) and the role list.
    pub async fn render(&self) -> String {
        let roles = self.roles.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Exposition::default();
        for (_, source) in &roles {
            source.render(&mut out);
        }
        let mut depths = Vec::new();
        for lane in [Lane::Issue, Lane::Notify] {
            if let Some(n) = self.queue_depth(&self.topology.dead_letter_queue(lane)).await {
                depths.push((lane.as_str(), n));
            }
        }
        out.header("lijian_dlq_depth", "gauge", "Jobs parked in the dead-letter queue (lijian dlq list)");
        for (kind, n) in depths {
            let _ = writeln!(out.text, "lijian_dlq_depth{{kind=\"{kind}\"}} {n}");
        }
        let mut lanes = Vec::new();
        for lane in IssueLane::ALL {
            if let Some(n) = self.queue_depth(&self.topology.issue_lane_queue(*lane)).await {
                lanes.push((lane.as_str(), n));
            }
        }
        out.header(
            "lijian_queue_depth",
            "gauge",
            "Issue jobs waiting in each lane's work queue, not yet delivered to a consumer (a campaign job carries up to 100 orders)",
        );
        for (lane, n) in lanes {
            let _ = writeln!(out.text, "lijian_queue_depth{{lane=\"{lane}\"}} {n}");
        }
        out.header("lijian_role_info", "gauge", "Roles this process runs");
        for (role, _) in &roles {
            let _ = writeln!(out.text, "lijian_role_info{{role=\"{role}\"}} 1");
        }
        out.into_text()
    }

    /// Messages in `queue` now; None when the broker or the queue cannot be reached.
    pub async fn queue_depth(&self, queue: &str) -> Option<u32> {
        let mut inspector = self.inspector.lock().await;
        if !inspector.as_ref().is_some_and(|(_, channel)| channel.status().connected()) {
            if let Some((old, _)) = inspector.take() {
                let _ = tokio::time::timeout(Duration::from_millis(200), old.close(200, "reopen".into())).await;
            }
            let opened = async {
                let connection = crate::queue::connect(self.publisher.url(), "lijian-metrics").await.ok()?;
                let channel = connection.create_channel().await.ok()?;
                Some((connection, channel))
            };
            *inspector = tokio::time::timeout(Duration::from_secs(1), opened).await.ok()?;
        }
        let (_, channel) = inspector.as_ref()?;
        let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.into(), options, Default::default()).await.ok()?;
        Some(declared.message_count())
    }

    /// Closes the metrics connection (a clean exit; see `Deps`).
    pub async fn close(&self) {
        if let Some((connection, channel)) = self.inspector.lock().await.take() {
            let _ = channel.close(200, "bye".into()).await;
            let _ = connection.close(200, "bye".into()).await;
        }
    }
}

/// `/healthz` and `/readyz` only: for a gateway whose `/metrics` is on
/// `LIJIAN_OPS_ADDR`, away from the public port.
pub fn health_routes<S: Clone + Send + Sync + 'static>(ops: Arc<Ops>) -> Router<S> {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz)).with_state(ops)
}

/// The three endpoints over `ops`.
pub fn ops_routes<S: Clone + Send + Sync + 'static>(ops: Arc<Ops>) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ops)
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], ops.render().await)
}

/// Ready only while both PostgreSQL and RabbitMQ answer: nothing should send
/// work to a process that can neither store nor enqueue it.
async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    match ops.ready().await {
        Ok(()) => (StatusCode::OK, "ready: postgres ok, rabbitmq ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

/// Binds the ops address. Separate from serving so a role can claim its port
/// before it starts taking work: a taken port then stops the process before any
/// job is in flight.
pub async fn bind_ops(addr: &str) -> Result<TcpListener, OpsError> {
    TcpListener::bind(addr).await.map_err(|source| OpsError::Bind { addr: addr.to_string(), source })
}

/// Serves the endpoints on `listener` until `shutdown`; returns the address and
/// the server task.
pub fn serve_ops(
    listener: TcpListener,
    ops: Arc<Ops>,
    log: super::LogTarget,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), OpsError> {
    let bound = listener.local_addr().map_err(OpsError::Serve)?;
    let app: Router = ops_routes(ops);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            crate::role_event!(log, tracing::Level::ERROR, error = %e, "ops endpoint failed");
        }
    });
    crate::role_event!(log, tracing::Level::INFO, addr = %bound, "serving /metrics, /healthz, /readyz");
    Ok((bound, task))
}
