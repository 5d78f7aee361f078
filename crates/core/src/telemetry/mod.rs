//! What every role tells operators: Prometheus metrics (text format 0.0.4),
//! liveness and readiness. Roles keep their own counters (cheap atomics on the
//! hot path) and render them only when scraped, through [`MetricsSource`];
//! [`Ops`] gathers a process's sources, adds what every role shares (dead-letter
//! depth from the broker, readiness of PostgreSQL and RabbitMQ) and serves them
//! at `/metrics`, `/healthz` and `/readyz` ([`ops`]). [`logs`]: the target each
//! role logs under.

pub mod logs;
pub mod ops;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub use logs::LogTarget;
pub use ops::{bind_ops, health_routes, ops_routes, serve_ops, Ops, OpsError};

/// Something that has metrics to report.
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut Exposition);
}

/// A Prometheus text exposition being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A counter with one label; `values` may be empty (the family is still declared).
    pub fn labelled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, "counter", help);
        for (value, n) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{}\"}} {n}", escape(value));
        }
    }

    /// A gauge with one label.
    pub fn labelled_gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        self.header(name, "gauge", help);
        for (value, n) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{}\"}} {n}", escape(value));
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        self.histogram_series(name, "", h);
    }

    /// One histogram family with a series per value of `label`.
    pub fn labelled_histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, &'a Histogram)>,
    ) {
        self.header(name, "histogram", help);
        for (value, h) in series {
            self.histogram_series(name, &format!("{label}=\"{}\",", escape(value)), h);
        }
    }

    /// The bucket, sum and count lines; `labels` is empty or `k="v",`.
    fn histogram_series(&mut self, name: &str, labels: &str, h: &Histogram) {
        let mut cumulative = 0;
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(self.text, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let total = h.count.load(Ordering::Relaxed);
        let _ = writeln!(self.text, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() { String::new() } else { format!("{{{plain}}}") };
        let _ = writeln!(self.text, "{name}_sum{braces} {}", h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(self.text, "{name}_count{braces} {total}");
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A latency histogram in seconds with fixed buckets (lock-free to observe).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Buckets for calls to other services: 5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }
}

/// Counts per reason (failure codes, refusal statuses): few distinct keys.
#[derive(Default)]
pub struct ReasonCounts {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl ReasonCounts {
    pub fn add(&self, reason: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(reason.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Renders `snapshot` as a labelled counter.
pub fn render_reasons(out: &mut Exposition, name: &str, help: &str, label: &str, counts: &ReasonCounts) {
    let snapshot = counts.snapshot();
    out.labelled_counter(name, help, label, snapshot.iter().map(|(k, v)| (k.as_str(), *v)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_prometheus_text() {
        let mut out = Exposition::default();
        out.counter("x_total", "Things.", 3);
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        out.histogram("lat_seconds", "Latency.", &h);
        out.labelled_counter("f_total", "Failures.", "reason", [("NOT_\"ENOUGH", 2)]);
        let text = out.into_text();
        assert!(text.contains("# TYPE x_total counter\nx_total 3\n"));
        assert!(text.contains(
            "lat_seconds_bucket{le=\"0.1\"} 1\nlat_seconds_bucket{le=\"1\"} 2\nlat_seconds_bucket{le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains("lat_seconds_sum 5.55\nlat_seconds_count 3\n"));
        assert!(text.contains("f_total{reason=\"NOT_\\\"ENOUGH\"} 2\n"));
    }

    #[test]
    fn labelled_histograms_carry_their_label_on_every_line() {
        let mut out = Exposition::default();
        let h = Histogram::new(&[1.0]);
        h.observe(Duration::from_millis(500));
        out.labelled_histograms("w_seconds", "Waits.", "lane", [("campaign", &h)]);
        let text = out.into_text();
        assert!(text.contains("w_seconds_bucket{lane=\"campaign\",le=\"1\"} 1\n"), "{text}");
        assert!(
            text.contains("w_seconds_sum{lane=\"campaign\"} 0.5\nw_seconds_count{lane=\"campaign\"} 1\n"),
            "{text}"
        );
    }
}
