//! The HTTP server under the router, on hyper directly because `axum::serve`
//! has no header-read timeout and no connection cap, and its graceful shutdown
//! waits for every connection however slowly its client sends: a few hundred
//! sockets trickling a request line held the port's resources for ever.
//!
//! - the request head must arrive within `header_timeout` (also between two
//!   requests on a kept-alive connection), else the connection is closed;
//! - the body's limit is the handlers' (`api::read_body`, `body_timeout`);
//! - at most `max_connections` at once: one more is accepted and closed at
//!   once, so it fails fast instead of waiting in the listen backlog;
//! - on shutdown, connections finish their request in flight for at most
//!   `drain`, then are dropped.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::GatewayMetrics;

/// How the server treats slow and numerous clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How long open connections may finish after shutdown begins.
    pub drain: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then drains for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<GatewayMetrics>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, mostly: accepting again at once would spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().layer(Extension(ConnectInfo::<SocketAddr>(peer))));
        let shutdown = shutdown.clone();
        let metrics = metrics.clone();
        connections.spawn(async move {
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.drain, connection).await;
                }
            }
            metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
