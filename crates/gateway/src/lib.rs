//! lijian-gateway: the signed open API over HTTP.
//!
//! # Owns
//! - routes and the JSON envelope of the original platform (HTTP 200, status table);
//! - authentication: auth headers, timestamp window, IP allowlist, signature over
//!   the raw body, nonce replay guard ([`auth`]);
//! - its counters ([`metrics`]); the operator endpoints (`/metrics`, `/healthz`,
//!   `/readyz`) are core's (`lijian_core::telemetry::ops`), merged into the API
//!   port (`/metrics` only while `LIJIAN_OPS_ADDR` is unset).
//!
//! # Must not touch
//! How an order is accepted or enqueued (that is `lijian-producer`), the schema
//! (migrations run from `lijian migrate`, never at gateway start).
//!
//! # Layout
//! - `auth.rs`     request authentication and the parsed-key cache
//! - `api.rs`      the two methods and the order JSON
//! - `response.rs` the envelope and `ApiError`
//! - `metrics.rs`  the gateway's counters
//! - `serve.rs`    the HTTP server: header timeout, connection cap, bounded drain

pub mod api;
pub mod auth;
pub mod metrics;
pub mod response;
pub mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use lijian_core::deps::Deps;
use lijian_core::store::Store;
use lijian_core::telemetry::{health_routes, ops_routes, Ops};
use lijian_producer::{Producer, ProducerSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything a request handler needs; one per process.
pub struct AppState {
    pub store: Store,
    pub producer: Arc<Producer>,
    pub merchants: auth::MerchantCache,
    /// Allowed clock difference for `timestamp` (status 5 beyond it).
    pub window: Duration,
    /// Longest wait for a request body once its head arrived.
    pub body_timeout: Duration,
    pub metrics: Arc<metrics::GatewayMetrics>,
    /// Refuses a callbackUrl that could never be delivered (status 3).
    pub callback_guard: lijian_core::ssrf::Guard,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}")]
    Bind { addr: String, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Settings(String),
}

/// Every (method, path) [`router`] serves, so docs and tests can be checked
/// against one list: `tests/it/openapi.rs` fails when this, the live router and
/// `docs/openapi.yaml` disagree. Add a route here when adding it below.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/openapi/order/wechat/coupons"),
    ("POST", "/v1/openapi/order/info"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// The API, with `/healthz` and `/readyz`; with `/metrics` too unless
/// `metrics_elsewhere` (`LIJIAN_OPS_ADDR` set: metrics are for operators, not
/// for whoever reaches the public port).
pub fn router(state: Arc<AppState>, ops: Arc<Ops>, metrics_elsewhere: bool) -> Router {
    let api = Router::new()
        .route("/v1/openapi/order/wechat/coupons", post(api::create_coupon_order).fallback(api::no_such_method))
        .route("/v1/openapi/order/info", post(api::order_info).fallback(api::no_such_method))
        .fallback(api::no_such_method)
        .with_state(state);
    if metrics_elsewhere {
        api.merge(health_routes(ops))
    } else {
        api.merge(ops_routes(ops))
    }
}

/// A running gateway's address and the handle that stops it.
pub struct RunningGateway {
    pub addr: SocketAddr,
    /// Its counters, for a process that serves them on another [`Ops`].
    pub metrics: Arc<metrics::GatewayMetrics>,
    pub task: tokio::task::JoinHandle<Result<(), GatewayError>>,
}

/// Binds `gateway.http_addr` (port 0 picks a free one) and serves until
/// `shutdown` is cancelled; then in-flight requests finish, the producer drains.
/// Its metrics join `deps.ops`, which it also serves on the API port.
pub async fn start(deps: &Deps, shutdown: CancellationToken) -> Result<RunningGateway, GatewayError> {
    let settings = &deps.settings.gateway;
    if let Err(e) = deps.publisher.channel().await {
        tracing::warn!(error = %e, "RabbitMQ not reachable at start; orders are stored and the relay enqueues them once it is back");
    }
    let listener = TcpListener::bind(&settings.http_addr)
        .await
        .map_err(|source| GatewayError::Bind { addr: settings.http_addr.clone(), source })?;
    let addr = listener.local_addr().map_err(GatewayError::Serve)?;
    let metrics = Arc::new(metrics::GatewayMetrics::default());
    deps.ops.add_role("gateway", metrics.clone());
    let producer = Producer::start(
        deps.store.clone(),
        deps.publisher.clone(),
        ProducerSettings::from(&deps.settings),
        shutdown.clone(),
    );
    let window = settings.timestamp_window;
    let state = Arc::new(AppState {
        store: deps.store.clone(),
        producer: producer.clone(),
        merchants: auth::MerchantCache::new(settings.merchant_cache_ttl),
        window,
        body_timeout: settings.body_timeout,
        metrics: metrics.clone(),
        callback_guard: lijian_core::ssrf::Guard::from_settings(&deps.settings).map_err(GatewayError::Settings)?,
    });
    let app = router(state, deps.ops.clone(), deps.settings.process.ops_addr.is_some());
    let limits = serve::Limits {
        header_timeout: settings.header_timeout,
        max_connections: settings.max_connections,
        drain: deps.settings.process.shutdown_grace,
    };
    let pruner = tokio::spawn(prune_nonces(deps.store.clone(), window * 2, shutdown.clone()));
    let served_metrics = metrics.clone();
    let task = tokio::spawn(async move {
        serve::serve(listener, app, limits, served_metrics, shutdown).await;
        pruner.abort();
        producer.finish().await;
        Ok(())
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway { addr, metrics, task })
}

async fn prune_nonces(store: Store, keep: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        if let Err(e) = store.prune_nonces(keep).await {
            tracing::warn!(error = %e, "nonce pruning failed");
        }
    }
}
