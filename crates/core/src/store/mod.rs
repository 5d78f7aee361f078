//! The PostgreSQL store: pool, embedded migrations, and the queries admin commands
//! and roles share. Hot-path acceptance lives in the SQL functions
//! `lijian_accept_order` / `lijian_accept_batch` (`migrations/functions/`), driven
//! by `lijian-producer`. Status, state and outcome values go to SQL as typed
//! parameters (`status`, `vocab`); literal predicates exist only where a partial
//! index needs them ([`predicates`]).
//!
//! - `merchants.rs` `catalogue.rs` `nonces.rs` accounts, products, activities, replay guard
//! - `accounts.rs` the WeChat Pay merchant accounts coupons are sent from
//! - `orders.rs`   reading orders back; the partial-index predicates
//! - `issuance.rs` begin an attempt, note a retry, park (the consumer's bookkeeping)
//! - `finish.rs`   how an order ends: issued, failed or cancelled with refund and report
//! - `dlq.rs`      parked work as operators list and revive it
//! - `timeline.rs` an order's story as typed events
//! - `pace.rs`     send slots and openid leases shared by every consumer (WeChat's limits)
//! - `stats.rs`    run totals for summaries
//! - `operators.rs` console operators, API tokens, sessions; `audit.rs` what operators did

mod accounts;
mod audit;
mod catalogue;
pub mod dlq;
pub mod finish;
mod functions;
pub mod issuance;
mod merchant_keys;
mod merchants;
mod nonces;
mod operators;
mod orders;
mod pace;
mod stats;
mod timeline;

pub use accounts::{AccountRow, NewAccount};
pub use audit::{AuditEntry, AuditFilter, NewAudit};
pub use catalogue::{validate_activity, ActivityEdit, ActivityView, NewActivity, NewProduct};
pub use dlq::{DeadFilter, DeadJob};
pub use finish::{FailedParked, Finished, Issued, Unissued};
pub use issuance::{AttemptRecord, Begun, IssueOrder};
pub use merchant_keys::{MerchantKey, NewKey, Retired};
pub use merchants::{MerchantAuth, MerchantEdit, MerchantView, NewMerchant};
pub use operators::{check_operator_name, Credential, CredentialKind, OperatorRow};
pub use orders::{predicates, OrderLookup, OrderView};
pub use pace::{Grant, Lease};
pub use stats::{DeliveryLatency, RetryCounts, StatusCounts};
pub use timeline::{Door, Event, Timeline};

use std::str::FromStr;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL is not valid: {0}")]
    BadUrl(String),
    #[error("cannot reach PostgreSQL {0}")]
    Unavailable(String),
    /// Displayed in the server's words (tokio-postgres alone says "db error"),
    /// so it carries no separate source to repeat them.
    #[error("{}", db_words(.0))]
    Db(tokio_postgres::Error),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e)
    }
}

/// What PostgreSQL said, with its code; a missing table, column or function
/// means the schema is older than this binary.
fn db_words(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(cause) => format!("database error: {e}: {cause}"),
            None => format!("database error: {e}"),
        };
    };
    let code = db.code().code();
    let hint = if matches!(code, "42P01" | "42703" | "42883") {
        "; the database is older than this lijian: run `lijian migrate`"
    } else {
        ""
    };
    format!("{} (PostgreSQL {code}){hint}", db.message())
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // tokio-postgres displays a server's refusal as just "db error"; the
        // server's own words ("database \"lijian\" does not exist") are what an
        // operator needs.
        let reason = match &e {
            deadpool_postgres::PoolError::Backend(backend) => match backend.as_db_error() {
                Some(db) => format!("{} (PostgreSQL: {})", db.message(), db.code().code()),
                None => std::error::Error::source(backend)
                    .map(|cause| format!("{backend}: {cause}"))
                    .unwrap_or_else(|| backend.to_string()),
            },
            other => other.to_string(),
        };
        if reason.contains("does not exist") && reason.contains("database") {
            return StoreError::Unavailable(format!("{reason}; create it with `lijian migrate`"));
        }
        StoreError::Unavailable(reason)
    }
}

impl StoreError {
    /// The server refused the statement because of what this job asked it to
    /// store (a bad value, a constraint, a trigger) rather than because it is
    /// down, restarting or busy: trying the same job again will fail again.
    pub fn is_refusal(&self) -> bool {
        let StoreError::Db(e) = self else { return false };
        let Some(code) = e.code() else { return false };
        // Connection (08), transaction rollback (40), resources (53), operator
        // intervention such as a restart (57) and system errors (58) pass.
        !matches!(&code.code()[..2], "08" | "40" | "53" | "57" | "58")
    }

    /// Maps a constraint violation to a message a person can act on.
    pub(crate) fn from_db(e: tokio_postgres::Error, conflict: &str) -> StoreError {
        match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict(conflict.to_string())
            }
            Some(c) if *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::NotFound(missing_reference(e.as_db_error().and_then(|d| d.detail()).unwrap_or_default()))
            }
            Some(c) if *c == tokio_postgres::error::SqlState::CHECK_VIOLATION => {
                StoreError::Invalid(e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
            }
            _ => StoreError::Db(e),
        }
    }
}

/// "merchant nobody does not exist" from PostgreSQL's foreign-key detail
/// (`Key (merchant_id)=(nobody) is not present in table "merchants".`), which
/// names our columns and tables rather than what the operator typed.
fn missing_reference(detail: &str) -> String {
    let value = detail.split_once(")=(").and_then(|(_, rest)| rest.split_once(") is not present"));
    let table = detail.rsplit_once("table \"").and_then(|(_, rest)| rest.split_once('"'));
    let (Some((value, _)), Some((table, _))) = (value, table) else {
        return "it refers to something that does not exist".into();
    };
    let thing = match table {
        "merchants" => "merchant",
        "products" => "product",
        "activities" => "activity",
        "orders" => "order",
        "campaigns" => "campaign",
        "wxpay_accounts" => "WeChat Pay account",
        other => other,
    };
    format!("{thing} {value} does not exist")
}

/// Text as PostgreSQL can store it: `text` refuses the NUL character, so a
/// merchant's or WeChat's answer that carries one would make the write fail on
/// every attempt. It is written as the two characters `\0` instead.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\\0"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Versioned migrations compiled into the binary. Append only: never change
/// what one that has shipped does to a schema. SQL functions are not in them:
/// each has one current definition in `migrations/functions/` ([`functions`]).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (2, "issuance", include_str!("../../migrations/0002_issuance.sql")),
    (3, "reports", include_str!("../../migrations/0003_reports.sql")),
    (4, "campaigns", include_str!("../../migrations/0004_campaigns.sql")),
    (5, "one_finish", include_str!("../../migrations/0005_one_finish.sql")),
    (6, "wxpay_accounts", include_str!("../../migrations/0006_wxpay_accounts.sql")),
    (7, "send_pace", include_str!("../../migrations/0007_send_pace.sql")),
    (8, "slot_lead", include_str!("../../migrations/0008_slot_lead.sql")),
    (9, "report_dismissed", include_str!("../../migrations/0009_report_dismissed.sql")),
    (10, "price_rules", include_str!("../../migrations/0010_price_rules.sql")),
    (11, "late_coupons", include_str!("../../migrations/0011_late_coupons.sql")),
    (12, "edits", include_str!("../../migrations/0012_edits.sql")),
    (13, "replays", include_str!("../../migrations/0013_replays.sql")),
    (14, "fair_release", include_str!("../../migrations/0014_fair_release.sql")),
    (15, "console", include_str!("../../migrations/0015_console.sql")),
    (16, "load_rejects", include_str!("../../migrations/0016_load_rejects.sql")),
    (17, "console_speed", include_str!("../../migrations/0017_console_speed.sql")),
    (18, "console_minutes", include_str!("../../migrations/0018_console_minutes.sql")),
    (19, "campaign_totals", include_str!("../../migrations/0019_campaign_totals.sql")),
];

/// A pooled handle to the store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// `host:port`, so every "cannot reach" names the server.
    address: std::sync::Arc<str>,
}

/// How long a new connection may take when the caller has no setting at hand
/// (`database.connect_timeout`'s default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Builds a pool; connections are opened lazily, so this succeeds while
    /// PostgreSQL is down and the pool recovers by itself when it comes back.
    pub fn connect(database_url: &str, max_size: usize) -> Result<Store, StoreError> {
        Store::open(database_url, max_size, CONNECT_TIMEOUT)
    }

    /// [`Store::connect`] with the URL and connect timeout of `settings`.
    pub fn for_settings(settings: &crate::config::Settings, max_size: usize) -> Result<Store, StoreError> {
        Store::open(&settings.database.url, max_size, settings.database.connect_timeout)
    }

    /// [`Store::connect`] where a new connection (TCP and startup together) gives
    /// up after `connect_timeout`: a server that accepts and never answers would
    /// otherwise hold every caller.
    pub fn open(database_url: &str, max_size: usize, connect_timeout: Duration) -> Result<Store, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(database_url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        config.connect_timeout(connect_timeout);
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        Ok(Store { pool, address: crate::config::server_address(database_url).into() })
    }

    /// A pooled client, for crates that run their own statements (the producer).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match StoreError::from(e) {
            StoreError::Unavailable(why) => StoreError::Unavailable(self.unreachable(&why)),
            other => other,
        })
    }

    fn unreachable(&self, why: &str) -> String {
        let why = why.replace("Timeout occurred while creating a new object", "timed out connecting");
        format!("at {}: {why}", self.address)
    }

    /// Answers whether PostgreSQL is reachable right now (for readiness).
    pub async fn ping(&self) -> bool {
        self.check().await.is_ok()
    }

    /// Like [`Store::ping`], with why not (the server's address included).
    pub async fn check(&self) -> Result<(), String> {
        let client = self.client().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| format!("PostgreSQL {}", self.unreachable(&e.to_string())))
    }

    /// The server's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// What one `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Numbered migrations applied now.
    pub versions: Vec<i32>,
    /// SQL functions (re)defined now: every one after a numbered migration,
    /// else those whose text changed.
    pub functions: Vec<&'static str>,
}

impl Migrated {
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.functions.is_empty()
    }
}

/// Creates the database if it is missing, then, under an advisory lock so two
/// processes migrating at once do not collide, applies pending migrations and
/// the SQL functions that changed.
pub async fn migrate(database_url: &str) -> Result<Migrated, StoreError> {
    migrate_within(database_url, CONNECT_TIMEOUT).await
}

/// [`migrate`] where each connection gives up after `connect_timeout`.
///
/// Pending migrations and the functions commit in one transaction: a role
/// calling a function never sees a schema without the function text written
/// for it (0019's counter and its backfill rely on that), and a failure leaves
/// the database as it was.
pub async fn migrate_within(database_url: &str, connect_timeout: Duration) -> Result<Migrated, StoreError> {
    let mut config = tokio_postgres::Config::from_str(database_url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    config.connect_timeout(connect_timeout);
    let dbname = config.get_dbname().unwrap_or("postgres").to_string();
    let address = crate::config::server_address(database_url);
    create_database_if_missing(&config, &dbname, &address, connect_timeout).await?;

    let (mut client, connection) = connect_once(&config, &address, connect_timeout).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_lock(7220314);
             CREATE TABLE IF NOT EXISTS lijian_migrations (
                 version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             {}",
            functions::BOOKKEEPING
        ))
        .await?;
    let mut done = Migrated::default();
    let tx = client.transaction().await?;
    for (version, name, sql) in MIGRATIONS {
        if tx.query_opt("SELECT 1 FROM lijian_migrations WHERE version = $1", &[version]).await?.is_some() {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO lijian_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        done.versions.push(*version);
    }
    // A newer release migrated this database: its functions are newer too.
    let known: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
    let newer =
        tx.query_one("SELECT EXISTS (SELECT 1 FROM lijian_migrations WHERE version <> ALL($1))", &[&known]).await?;
    if !newer.get::<_, bool>(0) {
        done.functions = functions::apply(&tx, !done.versions.is_empty()).await?;
    }
    tx.commit().await?;
    client.batch_execute("SELECT pg_advisory_unlock(7220314)").await?;
    drop(client);
    let _ = driver.await;
    Ok(done)
}

/// How a database's schema compares with the migrations of this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Known here, not applied there: `lijian migrate` applies them.
    pub pending: Vec<(i32, &'static str)>,
    /// Applied there, unknown here: a newer release migrated the database.
    pub unknown: Vec<i32>,
    pub applied: usize,
    /// SQL functions whose text here differs from the database's (or that it
    /// lacks): `lijian migrate` replaces them.
    pub stale_functions: Vec<&'static str>,
}

impl Store {
    /// Reads which migrations the database has applied (none when it was never migrated).
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let client = self.client().await?;
        let migrated: bool = client.query_one("SELECT to_regclass('lijian_migrations') IS NOT NULL", &[]).await?.get(0);
        let applied: Vec<i32> = if migrated {
            client.query("SELECT version FROM lijian_migrations", &[]).await?.iter().map(|r| r.get(0)).collect()
        } else {
            Vec::new()
        };
        Ok(MigrationStatus {
            pending: MIGRATIONS
                .iter()
                .filter(|(v, _, _)| !applied.contains(v))
                .map(|(v, name, _)| (*v, *name))
                .collect(),
            unknown: applied.iter().copied().filter(|v| !MIGRATIONS.iter().any(|(known, _, _)| known == v)).collect(),
            applied: applied.len(),
            stale_functions: if migrated { functions::stale(&**client).await? } else { Vec::new() },
        })
    }
}

/// The same connection URL naming another database (query string kept).
pub fn with_database(url: &str, dbname: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((url, String::new()));
    let cut = base.rfind('/').filter(|i| *i > base.find("://").map(|s| s + 2).unwrap_or(0)).unwrap_or(base.len());
    format!("{}/{dbname}{query}", &base[..cut])
}

/// Drops the database `database_url` names, closing its connections (for tests
/// and benchmarks that create their own).
pub async fn drop_database(database_url: &str) -> Result<(), StoreError> {
    drop_database_after(database_url, Duration::ZERO).await
}

/// [`drop_database`], first waiting up to `patience` for other connections to
/// leave: pools a caller just dropped close asynchronously, and connections
/// killed by the drop each log "Connection error" at WARN on the way out of a
/// bench (tests pass no patience: they do not read those lines, and time counts).
pub async fn drop_database_after(database_url: &str, patience: Duration) -> Result<(), StoreError> {
    let config = tokio_postgres::Config::from_str(database_url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    let name = config.get_dbname().ok_or_else(|| StoreError::BadUrl("no database name".into()))?;
    let admin = Store::connect(&with_database(database_url, "postgres"), 1)?;
    let client = admin.client().await?;
    let deadline = std::time::Instant::now() + patience;
    while std::time::Instant::now() < deadline {
        let others: i64 = client
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&name])
            .await?
            .get(0);
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let quoted = name.replace('"', "\"\"");
    client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)")).await?;
    Ok(())
}

/// One connection outside the pool, TCP and startup within `limit`.
async fn connect_once(
    config: &tokio_postgres::Config,
    address: &str,
    limit: Duration,
) -> Result<
    (tokio_postgres::Client, tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>),
    StoreError,
> {
    match tokio::time::timeout(limit, config.connect(NoTls)).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("at {address}: {e}"))),
        Err(_) => Err(StoreError::Unavailable(format!(
            "at {address}: timed out connecting after {}",
            crate::config::format_duration(limit)
        ))),
    }
}

async fn create_database_if_missing(
    config: &tokio_postgres::Config,
    dbname: &str,
    address: &str,
    limit: Duration,
) -> Result<(), StoreError> {
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = connect_once(&admin, address, limit).await?;
    let driver = tokio::spawn(connection);
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname]).await?.is_some();
    if !exists {
        let quoted = dbname.replace('"', "\"\"");
        if let Err(e) = client.batch_execute(&format!("CREATE DATABASE \"{quoted}\"")).await {
            // Another process may have created it between our check and now.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e.into());
            }
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}
