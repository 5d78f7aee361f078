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
