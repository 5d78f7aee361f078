//! Settings for every role, in three layers: built-in defaults, an optional TOML
//! file (`--config lijian.toml`, one table per section: `[database] url = …`),
//! then `LIJIAN_*` environment variables.
//!
//! Every key is declared once, in the `settings!` table below: its section,
//! field, type, default, environment variable and meaning. The environment, the
//! file, [`KEYS`] (what `README.md`'s configuration table is generated from, see
//! [`reference_table`]) and [`Settings::to_env`] all read that one table.

mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use values::{format_duration, parse_duration, parse_schedule, redact_url, server_address};
use values::{headroom_percent, optional_rate, port_list, queue_prefix, time_zone, Value};

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path} is not valid")]
    Parse { path: String, source: toml::de::Error },
    #[error("config file {path}: unknown key {key} (see deploy/lijian.example.toml)")]
    Unknown { path: String, key: String },
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

/// One setting as documented: where it lives in the file and the environment.
pub struct Key {
    /// The file's table (`[database]`) and the field in [`Settings`].
    pub section: &'static str,
    /// The key inside that table.
    pub name: &'static str,
    /// The environment variable that overrides it.
    pub env: &'static str,
    /// What it is for (the field's doc comment).
    pub doc: &'static str,
    set: fn(&mut Settings, &str) -> Result<(), String>,
    show: fn(&Settings) -> String,
}

impl Key {
    /// The value in `settings`, written the way the environment takes it.
    pub fn value(&self, settings: &Settings) -> String {
        (self.show)(settings)
    }
}

/// The parser of a key: its own when the table names one, else its type's.
macro_rules! parser {
    ($ty:ty) => {
        <$ty as Value>::parse
    };
    ($ty:ty, $parse:path) => {
        $parse
    };
}

/// Declares the sections, their fields and [`KEYS`] from one table.
macro_rules! settings {
    ($(
        $(#[doc = $section_doc:literal])*
        $section:ident: $Section:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty = $default:expr, $env:literal $(, $parse:path)?;
            )*
        }
    )*) => {
        /// Every setting, one field per section (one table per section in the file).
        #[derive(Debug, Clone, Default)]
        pub struct Settings {
            $( $(#[doc = $section_doc])* pub $section: $Section, )*
        }

        $(
            $(#[doc = $section_doc])*
            #[derive(Clone)]
            pub struct $Section {
                $( $(#[doc = $doc])* pub $field: $ty, )*
            }

            /// Each value as the environment takes it, connection URLs without
            /// their password: settings end up in logs and panic messages.
            impl std::fmt::Debug for $Section {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_struct(stringify!($Section))
                        $( .field(stringify!($field), &redact_url(&Value::show(&self.$field))) )*
                        .finish()
                }
            }

            impl Default for $Section {
                fn default() -> Self {
                    $Section { $( $field: $default, )* }
                }
            }
        )*

        /// Every key, in the order of the table above.
        pub const KEYS: &[Key] = &[ $( $( Key {
            section: stringify!($section),
            name: stringify!($field),
            env: $env,
            doc: concat!($($doc),*),
            set: |s, text| {
                s.$section.$field = parser!($ty $(, $parse)?)(text)?;
                Ok(())
            },
            show: |s| Value::show(&s.$section.$field),
        }, )* )* ];
    };
}

settings! {
    /// PostgreSQL: orders, balances, the outbox.
    database: DatabaseSettings {
        /// PostgreSQL database (created by `lijian migrate` if missing).
        url: String = "postgres://postgres@127.0.0.1:5432/lijian".into(), "LIJIAN_DATABASE_URL";
        /// PostgreSQL connections per process, shared by the roles it runs (the
        /// gateway of `lijian serve` has a pool of its own on its own threads).
        pool_size: usize = 16, "LIJIAN_DB_POOL_SIZE";
        /// Longest wait for a new PostgreSQL connection, TCP connect and startup
        /// together; past it the attempt fails with a warning naming the address.
        connect_timeout: Duration = Duration::from_secs(5), "LIJIAN_DB_CONNECT_TIMEOUT";
    }
    /// RabbitMQ: issue and notify jobs.
    broker: BrokerSettings {
        /// RabbitMQ.
        url: String = "amqp://guest:guest@127.0.0.1:5672/%2f".into(), "LIJIAN_AMQP_URL";
        /// Prefix of every exchange and queue, so installations and tests can share a broker.
        queue_prefix: String = "lijian".into(), "LIJIAN_QUEUE_PREFIX", queue_prefix;
        /// Longest wait for a RabbitMQ connection, TCP connect, AMQP handshake and
        /// declarations together (a broker out of file handles accepts TCP and
        /// never answers); past it the role warns naming the address and retries.
        connect_timeout: Duration = Duration::from_secs(10), "LIJIAN_AMQP_CONNECT_TIMEOUT";
    }
    /// The open API.
    gateway: GatewaySettings {
        /// Where the gateway listens (it also serves `/metrics`, `/healthz`, `/readyz` there).
        http_addr: String = "127.0.0.1:8080".into(), "LIJIAN_HTTP_ADDR";
        /// Allowed clock difference of a request's `timestamp` (status 5 beyond);
        /// nonces are remembered twice as long.
        timestamp_window: Duration = Duration::from_secs(300), "LIJIAN_TIMESTAMP_WINDOW";
        /// How long a gateway reuses a merchant's credentials; admin changes
        /// (disable, new key, allowlist) apply within it.
        merchant_cache_ttl: Duration = Duration::from_secs(1), "LIJIAN_MERCHANT_CACHE_TTL";
        /// How long a client may take to send a request's line and headers (also
        /// the idle limit between two requests on one connection); the
        /// connection is closed after it.
        header_timeout: Duration = Duration::from_secs(10), "LIJIAN_HTTP_HEADER_TIMEOUT";
        /// How long a client may take to send a request's body once its headers
        /// arrived; past it the answer is status 3 and the connection is closed.
        body_timeout: Duration = Duration::from_secs(10), "LIJIAN_HTTP_BODY_TIMEOUT";
        /// Connections the API port keeps open at once; one more is closed at once
        /// (`lijian_http_connections_refused_total`). Mind the process's open-file limit.
        max_connections: usize = 4096, "LIJIAN_HTTP_MAX_CONNECTIONS";
    }
    /// Accepting orders and putting their jobs on the broker.
    producer: ProducerSection {
        /// Concurrent accepting transactions; each batches whatever orders are
        /// waiting, so one commit covers many orders on a hot merchant row.
        intake_writers: usize = 2, "LIJIAN_INTAKE_WRITERS";
        /// Most orders one accepting transaction may carry.
        intake_max_batch: usize = 200, "LIJIAN_INTAKE_MAX_BATCH";
        /// How often the relay looks for committed orders whose job is not on the
        /// broker (broker down, process killed after commit).
        relay_interval: Duration = Duration::from_secs(1), "LIJIAN_RELAY_INTERVAL";
        /// How old such an order must be before the relay publishes it, so it does
        /// not race the request publishing it right now.
        relay_grace: Duration = Duration::from_secs(5), "LIJIAN_RELAY_GRACE";
        /// Campaign orders the scheduler keeps released and not yet final, per
        /// WeChat Pay account: 32 plus this long of the account's limit (the
        /// default account's is `LIJIAN_WXPAY_RATE`: give the scheduler the
        /// consumers' value). About how long a released order waits while
        /// campaigns saturate the account: pause takes effect and a campaign
        /// loaded later starts within about it. The scheduler enlarges it (up to
        /// 4×) while it holds campaigns back and the account's slots go unused.
        release_window: Duration = Duration::from_millis(500), "LIJIAN_RELEASE_WINDOW";
    }
    /// WeChat Pay, as the consumer calls it.
    wxpay: WxPaySettings {
        /// WeChat Pay API v3 (the simulator's address in development); also for
        /// stored accounts added without `--base-url`.
        base_url: String = "https://api.mch.weixin.qq.com".into(), "LIJIAN_WXPAY_BASE_URL";
        /// The default WeChat Pay account: it sends for any issuer that has no
        /// stored `lijian wxpay-account`. Optional; when set, the four below are required.
        mchid: Option<String> = None, "LIJIAN_WXPAY_MCHID";
        /// Serial of the merchant API certificate whose key signs requests.
        serial_no: Option<String> = None, "LIJIAN_WXPAY_SERIAL_NO";
        /// PEM file of that private key (never logged).
        private_key: Option<PathBuf> = None, "LIJIAN_WXPAY_PRIVATE_KEY";
        /// PEM file of the WeChat Pay public key that signs answers.
        public_key: Option<PathBuf> = None, "LIJIAN_WXPAY_PUBLIC_KEY";
        /// The `Wechatpay-Serial` of that key (e.g. `PUB_KEY_ID_…`); answers naming
        /// another are not trusted.
        public_key_id: Option<String> = None, "LIJIAN_WXPAY_PUBLIC_KEY_ID";
        /// appid used when neither the order nor its activity has one.
        appid: Option<String> = None, "LIJIAN_WXPAY_APPID";
        /// Requests/s WeChat allows the default account (500/s per merchant): the
        /// total for every consumer process together, not each one's share.
        rate: u32 = 500, "LIJIAN_WXPAY_RATE";
        /// Percent of every account's limit left unused (tenths allowed), for
        /// requests that reach WeChat later than their send slot and arrive
        /// together with the next ones (transit; docs/decisions.md, "Cluster-wide
        /// limits"). 3 leaves room for a network's jitter; on a quiet host 1.5
        /// held the limit (`lijian bench rate`). Raise it if
        /// `lijian_wxpay_throttled_total` grows.
        headroom: f64 = 3.0, "LIJIAN_WXPAY_HEADROOM", headroom_percent;
        /// Optional requests/s cap per activity; 0 = none.
        activity_rate: u32 = 0, "LIJIAN_ACTIVITY_RATE", optional_rate;
        /// One WeChat Pay call; past it the attempt is retried.
        timeout: Duration = Duration::from_secs(10), "LIJIAN_WXPAY_TIMEOUT";
    }
    /// Issuing coupons from the issue queue.
    consumer: ConsumerSettings {
        /// Unacknowledged jobs RabbitMQ hands one consumer.
        prefetch: usize = 128, "LIJIAN_CONSUMER_PREFETCH";
        /// Jobs one consumer works on at once.
        concurrency: usize = 64, "LIJIAN_CONSUMER_CONCURRENCY";
        /// Waits between issue attempts (one delay queue each); its length is the number of
        /// retries before a job is parked (1s … 30m: eight retries over about 68 minutes).
        retry_schedule: Vec<Duration> = secs(&[1, 5, 30, 120, 300, 600, 1200, 1800]), "LIJIAN_ISSUE_RETRY_SCHEDULE";
    }
    /// Delivering signed status reports to merchants.
    notifier: NotifierSettings {
        /// PEM file of the platform key that signs status reports (never logged;
        /// merchants verify with `lijian platform public-key`). Required by the notifier.
        platform_private_key: Option<PathBuf> = None, "LIJIAN_PLATFORM_PRIVATE_KEY";
        /// Waits between report attempts (one delay queue each; the original platform's
        /// schedule); after the last, the report is parked.
        schedule: Vec<Duration> = secs(&[15, 30, 180, 600, 1200, 1800, 3600, 10800, 21600]), "LIJIAN_NOTIFY_SCHEDULE";
        /// One report POST, connect to answer.
        timeout: Duration = Duration::from_secs(10), "LIJIAN_NOTIFY_TIMEOUT";
        /// CIDRs exempt from the SSRF guard, comma-separated (e.g. `127.0.0.0/8`
        /// for local receivers).
        allow_cidrs: Option<String> = None, "LIJIAN_NOTIFY_ALLOW_CIDRS";
        /// Ports a callbackUrl may use: ports and ranges, comma-separated. Others
        /// park the report as a refused target.
        ports: String = "80,443,1024-65535".into(), "LIJIAN_NOTIFY_PORTS", port_list;
        /// Reports one notifier delivers at once.
        concurrency: usize = 256, "LIJIAN_NOTIFY_CONCURRENCY";
        /// Reports in flight to one host:port at once, so a slow merchant cannot
        /// take every slot.
        per_endpoint: usize = 16, "LIJIAN_NOTIFY_PER_ENDPOINT";
        /// How often the notifier queues report rows other roles wrote.
        relay_interval: Duration = Duration::from_millis(200), "LIJIAN_REPORT_RELAY_INTERVAL";
    }
    /// The operator console (`lijian console`, also in `serve` and `demo`).
    console: ConsoleSettings {
        /// Where the console serves its pages and JSON API.
        addr: String = "127.0.0.1:8081".into(), "LIJIAN_CONSOLE_ADDR";
        /// Mark the session cookie `Secure` (browsers then send it over HTTPS only):
        /// set it when operators reach the console through a TLS proxy.
        secure_cookies: bool = false, "LIJIAN_CONSOLE_SECURE_COOKIES";
        /// How long a console login lasts; the operator then signs in again.
        session_ttl: Duration = Duration::from_secs(8 * 3600), "LIJIAN_CONSOLE_SESSION_TTL";
        /// The operators' time zone, an IANA name: pages show times in it (UTC on
        /// hover); stored times stay UTC.
        time_zone: String = "Asia/Shanghai".into(), "LIJIAN_CONSOLE_TIME_ZONE", time_zone;
    }
    /// How each process serves operators and stops.
    process: ProcessSettings {
        /// Where a role other than the gateway serves `/metrics`, `/healthz` and
        /// `/readyz`. Unset: 127.0.0.1 with a port per role (consumer 9101, notifier
        /// 9102, scheduler 9103, `serve` 9100), so roles on one host do not collide.
        ops_addr: Option<String> = None, "LIJIAN_OPS_ADDR";
        /// On SIGTERM, how long in-flight jobs may finish before they return to the
        /// queue; the process exits within it, whatever it is waiting for.
        shutdown_grace: Duration = Duration::from_secs(30), "LIJIAN_SHUTDOWN_GRACE";
        /// Times in a row the database may refuse a job's write (a value it cannot
        /// store, a constraint; not an outage, which is waited out) before the job
        /// is parked with the reason. Each hand-back waits in a retry tier, 1 s
        /// doubling to 10 s.
        requeue_limit: usize = 10, "LIJIAN_REQUEUE_LIMIT";
    }
}

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

/// When an endpoint already has its quota of reports in flight, a report waits
/// this long in the broker (without counting an attempt) instead of blocking a slot.
pub const NOTIFY_BUSY_DELAY: Duration = Duration::from_secs(2);

impl Settings {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut settings = match file {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
                Settings::from_toml(&text, &shown)?
            }
            None => Settings::default(),
        };
        settings.apply_env(|key| std::env::var(key).ok())?;
        Ok(settings)
    }

    /// Defaults overridden by a TOML text (`path` names it in errors). Each
    /// section is a table; a key or table not in [`KEYS`] is refused, so a typo
    /// is not silently ignored.
    pub fn from_toml(text: &str, path: &str) -> Result<Settings, ConfigError> {
        let file: toml::Table =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        let mut settings = Settings::default();
        let unknown = |key: String| ConfigError::Unknown { path: path.into(), key };
        for (section, table) in &file {
            let table = table.as_table().ok_or_else(|| unknown(section.clone()))?;
            for (name, value) in table {
                let key = KEYS
                    .iter()
                    .find(|k| k.section == section && k.name == name)
                    .ok_or_else(|| unknown(format!("{section}.{name}")))?;
                let text = toml_text(value);
                (key.set)(&mut settings, &text)
                    .map_err(|reason| invalid(&format!("{section}.{name}"), &text, &reason))?;
            }
        }
        Ok(settings)
    }

    /// Overrides fields from `LIJIAN_*` variables found by `lookup` (a function so
    /// tests need not mutate the process environment).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for key in KEYS {
            if let Some(text) = lookup(key.env) {
                (key.set)(self, &text).map_err(|reason| invalid(key.env, &text, &reason))?;
            }
        }
        Ok(())
    }

    /// Every setting as the `LIJIAN_*` variable that reproduces it, for starting
    /// another `lijian` process with these settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        KEYS.iter().map(|k| (k.env, k.value(self))).collect()
    }
}

/// A TOML value as the text its environment variable would hold; an array is
/// joined with commas (schedules, CIDR lists).
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(toml_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The configuration table of `README.md`: variable, file key, default, meaning.
pub fn reference_table() -> String {
    let defaults = Settings::default();
    let mut out = String::from("| variable | file | default | meaning |\n|---|---|---|---|\n");
    for key in KEYS {
        let default = key.value(&defaults);
        let default = if default.is_empty() { "—".to_string() } else { format!("`{default}`") };
        out.push_str(&format!(
            "| `{}` | `[{}] {}` | {default} | {} |\n",
            key.env,
            key.section,
            key.name,
            key.doc.trim()
        ));
    }
    out
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.into() }
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
        assert_eq!(s.broker.queue_prefix, "t1");
        assert_eq!(s.producer.relay_grace, Duration::from_millis(250));
        assert!(s.apply_env(|k| (k == "LIJIAN_DB_POOL_SIZE").then(|| "zero".into())).is_err());
        Ok(())
    }

    #[test]
    fn console_time_zones_are_iana_names_from_the_compiled_in_database() -> Result<(), ConfigError> {
        let mut s = Settings::default();
        assert_eq!(s.console.time_zone, "Asia/Shanghai");
        s.apply_env(|k| (k == "LIJIAN_CONSOLE_TIME_ZONE").then(|| "Europe/Berlin".into()))?;
        assert_eq!(s.console.time_zone, "Europe/Berlin");
        for wrong in ["+08:00", "Asia/Shangai", ""] {
            assert!(s.apply_env(|k| (k == "LIJIAN_CONSOLE_TIME_ZONE").then(|| wrong.into())).is_err(), "{wrong}");
        }
        Ok(())
    }

    #[test]
    fn headroom_is_a_percent_in_tenths_below_half() -> Result<(), ConfigError> {
        let mut s = Settings::default();
        assert_eq!(s.wxpay.headroom, 3.0);
        for (text, percent) in [("1.5", 1.5), ("0", 0.0), ("0.3", 0.3), ("49.9", 49.9), (" 2 ", 2.0)] {
            s.apply_env(|k| (k == "LIJIAN_WXPAY_HEADROOM").then(|| text.into()))?;
            assert_eq!(s.wxpay.headroom, percent, "{text:?}");
        }
        for wrong in ["50", "-1", "1.55", "NaN", "inf", "3%"] {
            let refused = s.apply_env(|k| (k == "LIJIAN_WXPAY_HEADROOM").then(|| wrong.into()));
            assert!(refused.is_err(), "{wrong:?} refused");
        }
        let file = Settings::from_toml("[wxpay]\nheadroom = 1.5", "t.toml").unwrap_or_default();
        assert_eq!(file.wxpay.headroom, 1.5);
        Ok(())
    }

    #[test]
    fn file_uses_the_same_keys() {
        let text = "[broker]\nqueue_prefix = \"x\"\n[producer]\nrelay_interval = \"2s\"";
        let s = Settings::from_toml(text, "t.toml").unwrap_or_default();
        assert_eq!(s.broker.queue_prefix, "x");
        assert_eq!(s.producer.relay_interval, Duration::from_secs(2));
        assert!(Settings::from_toml("no_such_key = 1", "t.toml").is_err());
        assert!(Settings::from_toml("[database]\nno_such_key = 1", "t.toml").is_err());
        assert!(Settings::from_toml("[broker]\nqueue_prefix = \"a b\"", "t.toml").is_err());
    }

    #[test]
    fn unset_is_none_and_every_key_round_trips() -> Result<(), ConfigError> {
        let mut s = Settings::default();
        assert_eq!(s.process.ops_addr, None);
        s.apply_env(|k| (k == "LIJIAN_OPS_ADDR").then(String::new))?;
        assert_eq!(s.process.ops_addr, None);
        s.apply_env(|k| (k == "LIJIAN_WXPAY_PRIVATE_KEY").then(|| "k.pem".into()))?;
        assert_eq!(s.wxpay.private_key, Some(PathBuf::from("k.pem")));
        let env = s.to_env();
        let mut again = Settings::default();
        again.apply_env(|k| env.iter().find(|(e, _)| *e == k).map(|(_, v)| v.clone()))?;
        assert_eq!(again.to_env(), env);
        let mut names: Vec<_> = KEYS.iter().map(|k| k.env).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "an environment variable declared twice");
        Ok(())
    }

    #[test]
    fn debug_hides_passwords_in_urls() {
        let mut s = Settings::default();
        s.database.url = "postgres://app:hunter2@db/lijian".into();
        s.broker.url = "amqp://app:hunter3@mq:5672/%2f".into();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/lijian"), "{shown}");
    }

    #[test]
    fn readme_lists_every_key_as_declared() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap_or_default();
        assert!(
            readme.contains(&reference_table()),
            "README's configuration table differs from config.rs; paste this:\n{}",
            reference_table()
        );
    }
}
