//! `/metrics`, `/healthz`, `/readyz`: the operator endpoints every role serves.
//! The gateway answers them on its API port; other roles (and `lijian serve`)
//! run [`bind_ops`] and [`serve_ops`] on `LIJIAN_OPS_ADDR`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use lijian_core::telemetry::{render_reasons, Exposition, Histogram, MetricsSource, Ops, ReasonCounts};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::GatewayError;

/// The gateway's own counters.
pub struct GatewayMetrics {
    pub accepted: AtomicU64,
    /// Refused requests per open API status code.
    pub refused: ReasonCounts,
    /// Time from request to answer for order placements.
    pub latency: Histogram,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            accepted: AtomicU64::new(0),
            refused: ReasonCounts::default(),
            latency: Histogram::new(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        }
    }
}

impl MetricsSource for GatewayMetrics {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "lijian_orders_accepted_total",
            "Orders accepted through the open API",
            self.accepted.load(Ordering::Relaxed),
        );
        render_reasons(
            out,
            "lijian_orders_refused_total",
            "Open API orders refused, per status code",
            "status",
            &self.refused,
        );
        out.histogram("lijian_order_request_seconds", "Open API order placement, request to answer", &self.latency);
    }
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
pub async fn bind_ops(addr: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr: addr.to_string(), source })
}

/// Serves the endpoints on `listener` until `shutdown`; returns the address and
/// the server task.
pub fn serve_ops(
    listener: TcpListener,
    ops: Arc<Ops>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), GatewayError> {
    let bound = listener.local_addr().map_err(GatewayError::Serve)?;
    let app: Router = ops_routes(ops);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::error!(error = %e, "ops endpoint failed");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    Ok((bound, task))
}
