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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/lijian".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            http_addr: "127.0.0.1:8080".into(),
            queue_prefix: "lijian".into(),
            db_pool_size: 16,
            intake_writers: 2,
            intake_max_batch: 200,
            relay_interval: Duration::from_secs(1),
            relay_grace: Duration::from_secs(5),
            timestamp_window: Duration::from_secs(300),
            merchant_cache_ttl: Duration::from_secs(1),
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
        if self.queue_prefix.is_empty()
            || !self.queue_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid("LIJIAN_QUEUE_PREFIX", &self.queue_prefix, "use letters, digits, '-', '_' or '.'"));
        }
        Ok(())
    }
}

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
    fn durations() {
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("3 weeks").is_err());
    }
}
