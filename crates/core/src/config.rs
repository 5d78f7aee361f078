//! Settings for every role, in three layers: built-in defaults, an optional TOML
//! file (`--config lijian.toml`, same keys in snake_case), then `LIJIAN_*`
//! environment variables. Each field says why it exists; README has the table.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path} is not valid")]
    Parse { path: String, source: toml::de::Error },
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// PostgreSQL holding orders, balances and the outbox. `LIJIAN_DATABASE_URL`.
    pub database_url: String,
    /// RabbitMQ carrying issue jobs. `LIJIAN_AMQP_URL`.
    pub amqp_url: String,
    /// Where the gateway listens. `LIJIAN_HTTP_ADDR`.
    pub http_addr: String,
    /// Where a role other than the gateway serves `/metrics`, `/healthz` and
    /// `/readyz`. Empty: a fixed port per role (consumer 9101, notifier 9102,
    /// scheduler 9103, serve 9100) on 127.0.0.1, so several roles on one host do
    /// not collide. `LIJIAN_OPS_ADDR`.
    pub ops_addr: String,
    /// Prefix of every exchange and queue, so installations and tests can share a
    /// broker without seeing each other's jobs. `LIJIAN_QUEUE_PREFIX`.
    pub queue_prefix: String,
    /// PostgreSQL connections per process. `LIJIAN_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// Concurrent accepting transactions. Each batches whatever orders are waiting,
    /// so one commit (one fsync) covers many orders on a hot merchant row.
    /// `LIJIAN_INTAKE_WRITERS`.
    pub intake_writers: usize,
    /// Most orders one accepting transaction may carry. `LIJIAN_INTAKE_MAX_BATCH`.
    pub intake_max_batch: usize,
    /// How often the relay looks for committed orders whose job never reached the
    /// broker (broker down, process killed after commit). `LIJIAN_RELAY_INTERVAL`.
    #[serde(with = "duration_text")]
    pub relay_interval: Duration,
    /// How old an un-enqueued order must be before the relay publishes it, so it
    /// does not race the request that is publishing it right now. `LIJIAN_RELAY_GRACE`.
    #[serde(with = "duration_text")]
    pub relay_grace: Duration,
    /// Requests whose `timestamp` is further than this from our clock are refused
    /// (status 5); nonces are remembered twice as long. `LIJIAN_TIMESTAMP_WINDOW`.
    #[serde(with = "duration_text")]
    pub timestamp_window: Duration,
    /// How long a gateway reuses a merchant's credentials before reading them again;
    /// admin changes (disable, new key, allowlist) apply within it.
    /// `LIJIAN_MERCHANT_CACHE_TTL`.
    #[serde(with = "duration_text")]
    pub merchant_cache_ttl: Duration,

    /// WeChat Pay API v3 base URL; the simulator's address in development.
    /// `LIJIAN_WXPAY_BASE_URL`.
    pub wxpay_base_url: String,
    /// The platform's WeChat Pay merchant number (sends every coupon).
    /// `LIJIAN_WXPAY_MCHID`.
    pub wxpay_mchid: String,
    /// Serial number of the merchant API certificate whose key signs our requests.
    /// `LIJIAN_WXPAY_SERIAL_NO`.
    pub wxpay_serial_no: String,
    /// PEM file of that merchant API private key. `LIJIAN_WXPAY_PRIVATE_KEY`.
    pub wxpay_private_key: String,
    /// PEM file of the WeChat Pay public key that signs WeChat's answers.
    /// `LIJIAN_WXPAY_PUBLIC_KEY`.
    pub wxpay_public_key: String,
    /// The `Wechatpay-Serial` that key answers with (e.g. `PUB_KEY_ID_…`); answers
    /// naming another serial are not trusted. `LIJIAN_WXPAY_PUBLIC_KEY_ID`.
    pub wxpay_public_key_id: String,
    /// appid used when neither the order nor its activity names one. `LIJIAN_WXPAY_APPID`.
    pub wxpay_appid: String,
    /// Requests per second this consumer process sends to WeChat Pay (WeChat
    /// documents 500/s per merchant; with several consumers give each a share).
    /// `LIJIAN_WXPAY_RATE`.
    pub wxpay_rate: u32,
    /// Optional cap per activity, requests per second; 0 = none. `LIJIAN_ACTIVITY_RATE`.
    pub activity_rate: u32,
    /// How long one WeChat Pay call may take before it counts as a timeout (retried).
    /// `LIJIAN_WXPAY_TIMEOUT`.
    #[serde(with = "duration_text")]
    pub wxpay_timeout: Duration,
    /// Waits between issue attempts; its length is the number of retries before a
    /// job is parked in the dead-letter queue. `LIJIAN_ISSUE_RETRY_SCHEDULE`.
    #[serde(with = "schedule_text")]
    pub issue_retry_schedule: Vec<Duration>,
    /// Unacknowledged jobs RabbitMQ may hand one consumer. `LIJIAN_CONSUMER_PREFETCH`.
    pub consumer_prefetch: usize,
    /// Jobs one consumer works on at once. `LIJIAN_CONSUMER_CONCURRENCY`.
    pub consumer_concurrency: usize,
    /// On SIGTERM, how long in-flight jobs may take before they are left to be
    /// redelivered. `LIJIAN_SHUTDOWN_GRACE`.
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,

    /// PEM file of the platform's private key that signs status reports
    /// (merchants verify with `lijian platform public-key`). `LIJIAN_PLATFORM_PRIVATE_KEY`.
    pub platform_private_key: String,
    /// Waits between report attempts; after the last, the report is parked.
    /// `LIJIAN_NOTIFY_SCHEDULE`.
    #[serde(with = "schedule_text")]
    pub notify_schedule: Vec<Duration>,
    /// One report POST, connect to answer. `LIJIAN_NOTIFY_TIMEOUT`.
    #[serde(with = "duration_text")]
    pub notify_timeout: Duration,
    /// CIDRs exempt from the SSRF guard (comma-separated). `LIJIAN_NOTIFY_ALLOW_CIDRS`.
    pub notify_allow_cidrs: String,
    /// Reports one notifier delivers at once. `LIJIAN_NOTIFY_CONCURRENCY`.
    pub notify_concurrency: usize,
    /// Reports in flight to one endpoint (host:port) at once, so a slow merchant
    /// cannot take every slot. `LIJIAN_NOTIFY_PER_ENDPOINT`.
    pub notify_per_endpoint: usize,
    /// How often the notifier looks for reports not yet queued. `LIJIAN_REPORT_RELAY_INTERVAL`.
    #[serde(with = "duration_text")]
    pub report_relay_interval: Duration,
}

/// When an endpoint already has its quota of reports in flight, a report waits
/// this long in the broker (without counting an attempt) instead of blocking a slot.
pub const NOTIFY_BUSY_DELAY: Duration = Duration::from_secs(2);

/// The original platform's report schedule: 15s, 30s, 3m, 10m, 20m, 30m, 60m, 3h, 6h.
const DEFAULT_NOTIFY_SCHEDULE: [u64; 9] = [15, 30, 180, 600, 1200, 1800, 3600, 10800, 21600];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/lijian".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            http_addr: "127.0.0.1:8080".into(),
            ops_addr: String::new(),
            queue_prefix: "lijian".into(),
            db_pool_size: 16,
            intake_writers: 2,
            intake_max_batch: 200,
            relay_interval: Duration::from_secs(1),
            relay_grace: Duration::from_secs(5),
            timestamp_window: Duration::from_secs(300),
            merchant_cache_ttl: Duration::from_secs(1),
            wxpay_base_url: "https://api.mch.weixin.qq.com".into(),
            wxpay_mchid: String::new(),
            wxpay_serial_no: String::new(),
            wxpay_private_key: String::new(),
            wxpay_public_key: String::new(),
            wxpay_public_key_id: String::new(),
            wxpay_appid: String::new(),
            wxpay_rate: 500,
            activity_rate: 0,
            wxpay_timeout: Duration::from_secs(10),
            issue_retry_schedule: DEFAULT_RETRY_SCHEDULE.iter().map(|s| Duration::from_secs(*s)).collect(),
            consumer_prefetch: 128,
            consumer_concurrency: 64,
            shutdown_grace: Duration::from_secs(30),
            platform_private_key: String::new(),
            notify_schedule: DEFAULT_NOTIFY_SCHEDULE.iter().map(|s| Duration::from_secs(*s)).collect(),
            notify_timeout: Duration::from_secs(10),
            notify_allow_cidrs: String::new(),
            notify_concurrency: 256,
            notify_per_endpoint: 16,
            report_relay_interval: Duration::from_millis(200),
        }
    }
}

impl Settings {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut settings = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path: shown, source })?
            }
            None => Settings::default(),
        };
        settings.apply_env(|key| std::env::var(key).ok())?;
        Ok(settings)
    }

    /// Overrides fields from `LIJIAN_*` variables found by `lookup` (a function so
    /// tests need not mutate the process environment).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let text = |key: &str, field: &mut String| {
            if let Some(v) = lookup(key) {
                *field = v;
            }
        };
        text("LIJIAN_DATABASE_URL", &mut self.database_url);
        text("LIJIAN_AMQP_URL", &mut self.amqp_url);
        text("LIJIAN_HTTP_ADDR", &mut self.http_addr);
        text("LIJIAN_OPS_ADDR", &mut self.ops_addr);
        text("LIJIAN_QUEUE_PREFIX", &mut self.queue_prefix);
        let number = |key: &str, field: &mut usize| -> Result<(), ConfigError> {
            if let Some(v) = lookup(key) {
                *field = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(key, &v, "expected a positive integer"))?;
            }
            Ok(())
        };
        number("LIJIAN_DB_POOL_SIZE", &mut self.db_pool_size)?;
        number("LIJIAN_INTAKE_WRITERS", &mut self.intake_writers)?;
        number("LIJIAN_INTAKE_MAX_BATCH", &mut self.intake_max_batch)?;
        let duration = |key: &str, field: &mut Duration| -> Result<(), ConfigError> {
            if let Some(v) = lookup(key) {
                *field = parse_duration(&v).map_err(|reason| invalid(key, &v, &reason))?;
            }
            Ok(())
        };
        duration("LIJIAN_RELAY_INTERVAL", &mut self.relay_interval)?;
        duration("LIJIAN_RELAY_GRACE", &mut self.relay_grace)?;
        duration("LIJIAN_TIMESTAMP_WINDOW", &mut self.timestamp_window)?;
        duration("LIJIAN_MERCHANT_CACHE_TTL", &mut self.merchant_cache_ttl)?;
        duration("LIJIAN_WXPAY_TIMEOUT", &mut self.wxpay_timeout)?;
        duration("LIJIAN_SHUTDOWN_GRACE", &mut self.shutdown_grace)?;
        text("LIJIAN_WXPAY_BASE_URL", &mut self.wxpay_base_url);
        text("LIJIAN_WXPAY_MCHID", &mut self.wxpay_mchid);
        text("LIJIAN_WXPAY_SERIAL_NO", &mut self.wxpay_serial_no);
        text("LIJIAN_WXPAY_PRIVATE_KEY", &mut self.wxpay_private_key);
        text("LIJIAN_WXPAY_PUBLIC_KEY", &mut self.wxpay_public_key);
        text("LIJIAN_WXPAY_PUBLIC_KEY_ID", &mut self.wxpay_public_key_id);
        text("LIJIAN_WXPAY_APPID", &mut self.wxpay_appid);
        number("LIJIAN_CONSUMER_PREFETCH", &mut self.consumer_prefetch)?;
        number("LIJIAN_CONSUMER_CONCURRENCY", &mut self.consumer_concurrency)?;
        let mut rate = self.wxpay_rate as usize;
        number("LIJIAN_WXPAY_RATE", &mut rate)?;
        self.wxpay_rate =
            u32::try_from(rate).map_err(|_| invalid("LIJIAN_WXPAY_RATE", &rate.to_string(), "too large"))?;
        if let Some(v) = lookup("LIJIAN_ACTIVITY_RATE") {
            self.activity_rate = v
                .trim()
                .parse()
                .map_err(|_| invalid("LIJIAN_ACTIVITY_RATE", &v, "expected a whole number (0 = off)"))?;
        }
        text("LIJIAN_PLATFORM_PRIVATE_KEY", &mut self.platform_private_key);
        text("LIJIAN_NOTIFY_ALLOW_CIDRS", &mut self.notify_allow_cidrs);
        duration("LIJIAN_NOTIFY_TIMEOUT", &mut self.notify_timeout)?;
        duration("LIJIAN_REPORT_RELAY_INTERVAL", &mut self.report_relay_interval)?;
        number("LIJIAN_NOTIFY_CONCURRENCY", &mut self.notify_concurrency)?;
        number("LIJIAN_NOTIFY_PER_ENDPOINT", &mut self.notify_per_endpoint)?;
        if let Some(v) = lookup("LIJIAN_NOTIFY_SCHEDULE") {
            self.notify_schedule =
                parse_schedule(&v).map_err(|reason| invalid("LIJIAN_NOTIFY_SCHEDULE", &v, &reason))?;
        }
        if let Some(v) = lookup("LIJIAN_ISSUE_RETRY_SCHEDULE") {
            self.issue_retry_schedule =
                parse_schedule(&v).map_err(|reason| invalid("LIJIAN_ISSUE_RETRY_SCHEDULE", &v, &reason))?;
        }
        if self.queue_prefix.is_empty()
            || !self.queue_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid("LIJIAN_QUEUE_PREFIX", &self.queue_prefix, "use letters, digits, '-', '_' or '.'"));
        }
        Ok(())
    }
}

/// 1s, 5s, 30s, 2m, 5m, 10m, 20m, 30m: eight retries over about 68 minutes.
const DEFAULT_RETRY_SCHEDULE: [u64; 8] = [1, 5, 30, 120, 300, 600, 1200, 1800];

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.into() }
}

/// Removes the password from a connection URL before it is logged or printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// Parses a comma-separated list of durations ("1s,5s,30s").
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let delays: Vec<Duration> =
        text.split(',').filter(|p| !p.trim().is_empty()).map(parse_duration).collect::<Result<_, _>>()?;
    if delays.is_empty() {
        return Err("expected at least one delay, e.g. 1s,5s,30s".into());
    }
    Ok(delays)
}

/// Parses "250ms", "15s", "3m", "2h" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{t:?} is not a duration such as 500ms, 15s, 3m or 2h"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!("unknown unit {other:?} in {t:?}; use ms, s, m or h")),
    }
}

mod duration_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod schedule_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_schedule(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults() -> Result<(), ConfigError> {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "LIJIAN_QUEUE_PREFIX" => Some("t1".into()),
            "LIJIAN_RELAY_GRACE" => Some("250ms".into()),
            _ => None,
        })?;
        assert_eq!(s.queue_prefix, "t1");
        assert_eq!(s.relay_grace, Duration::from_millis(250));
        assert!(s.apply_env(|k| (k == "LIJIAN_DB_POOL_SIZE").then(|| "zero".into())).is_err());
        Ok(())
    }

    #[test]
    fn file_uses_the_same_keys() {
        let s: Settings = toml::from_str("queue_prefix = \"x\"\nrelay_interval = \"2s\"").unwrap_or_default();
        assert_eq!(s.queue_prefix, "x");
        assert_eq!(s.relay_interval, Duration::from_secs(2));
        assert!(toml::from_str::<Settings>("no_such_key = 1").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("amqp://guest:secret@h:5672/%2f"), "amqp://guest:***@h:5672/%2f");
        assert_eq!(redact_url("postgres://postgres@h/db"), "postgres://postgres@h/db");
    }

    #[test]
    fn schedules_round_trip() {
        let s = parse_schedule("1s,500ms,3m").unwrap_or_default();
        assert_eq!(s.iter().map(|d| format_duration(*d)).collect::<Vec<_>>(), ["1s", "500ms", "3m"]);
        assert!(parse_schedule("").is_err());
        assert_eq!(Settings::default().issue_retry_schedule.len(), 8);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("3 weeks").is_err());
    }
}
