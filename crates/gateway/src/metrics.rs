//! The gateway's counters, rendered into `/metrics` by `lijian_core::telemetry::Ops`
//! (the endpoints themselves are core's, served on the API port).

use std::sync::atomic::{AtomicU64, Ordering};

use lijian_core::telemetry::{render_reasons, Exposition, Histogram, MetricsSource, ReasonCounts};

/// The gateway's own counters.
pub struct GatewayMetrics {
    pub accepted: AtomicU64,
    /// Refused requests per open API status code.
    pub refused: ReasonCounts,
    /// Time from request to answer for order placements.
    pub latency: Histogram,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections closed at once because `LIJIAN_HTTP_MAX_CONNECTIONS` were open.
    pub connections_refused: AtomicU64,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            accepted: AtomicU64::new(0),
            refused: ReasonCounts::default(),
            latency: Histogram::new(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
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
        out.gauge(
            "lijian_http_connections_open",
            "Connections to the API port open now",
            self.connections_open.load(Ordering::Relaxed) as f64,
        );
        out.counter(
            "lijian_http_connections_refused_total",
            "Connections closed at once because the connection cap was reached",
            self.connections_refused.load(Ordering::Relaxed),
        );
    }
}
