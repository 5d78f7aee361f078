//! PostgreSQL: reachable and its version, migrations, clock skew, and what is
//! stored that would fail later — WeChat Pay accounts whose key files are
//! unreadable, activities no account can send for, merchant keys that do not
//! parse, default callback URLs the SSRF guard refuses.

use std::time::Instant;

use lijian_core::config::{format_duration, server_address, Settings};
use lijian_core::signing::RsaPublicKey;
use lijian_core::ssrf::Guard;
use lijian_core::store::Store;
use time::OffsetDateTime;

use super::Finding;

/// Above this the database and this host disagree enough to notice.
const SKEW_WARN_MS: i64 = 1_000;
/// Above this, request timestamps (judged by this host) and activity windows
/// and scheduled releases (judged by the database) visibly disagree.
const SKEW_FAIL_MS: i64 = 30_000;

use tokio_postgres::Client;

pub async fn check(settings: &Settings) -> Vec<Finding> {
    let address = server_address(&settings.database.url);
    let store = match Store::for_settings(settings, 2) {
        Ok(store) => store,
        Err(e) => return vec![Finding::fail("postgresql", e.to_string(), "fix LIJIAN_DATABASE_URL")],
    };
    let client = match store.client().await {
        Ok(client) => client,
        Err(e) => {
            let text = e.to_string();
            let fix = if text.contains("does not exist") {
                "run lijian migrate (it creates the database)".to_string()
            } else {
                format!(
                    "start PostgreSQL or point LIJIAN_DATABASE_URL at it (waited up to {}, LIJIAN_DB_CONNECT_TIMEOUT)",
                    format_duration(settings.database.connect_timeout)
                )
            };
            let mut out = vec![Finding::fail("postgresql", text, fix)];
            out.extend(["migrations", "clock", "stored data"].map(|c| Finding::skipped(c, "PostgreSQL")));
            return out;
        }
    };
    let mut out = vec![version(&client, &address).await, clock(&client).await];
    let migrated = match store.migration_status().await {
        Ok(status) if status.pending.is_empty() && status.unknown.is_empty() && !status.stale_functions.is_empty() => {
            out.push(Finding::fail(
                "migrations",
                format!(
                    "all {} applied; SQL functions not current: {}",
                    status.applied,
                    status.stale_functions.join(", ")
                ),
                "run lijian migrate (safe while roles run)",
            ));
            false
        }
        Ok(status) if status.pending.is_empty() && status.unknown.is_empty() => {
            out.push(Finding::ok("migrations", format!("all {} applied", status.applied)));
            true
        }
        Ok(status) if status.pending.is_empty() => {
            out.push(Finding::warn(
                "migrations",
                format!(
                    "the database has migrations this binary does not know ({:?}): a newer release migrated it",
                    status.unknown
                ),
                "run the newer lijian release",
            ));
            true
        }
        Ok(status) => {
            let names: Vec<String> = status.pending.iter().map(|(v, name)| format!("{v:04}_{name}")).collect();
            out.push(Finding::fail(
                "migrations",
                format!("{} pending: {}", names.len(), names.join(", ")),
                "run lijian migrate; docs/operations.md (Upgrading) says which want no load running",
            ));
            false
        }
        Err(e) => {
            out.push(Finding::fail("migrations", format!("cannot read them: {e}"), "run lijian migrate"));
            false
        }
    };
    if !migrated {
        out.push(Finding::warn("stored data", "not checked: migrations pending", "run lijian migrate"));
        return out;
    }
    match stored(&client, settings).await {
        Ok(found) => out.extend(found),
        Err(e) => out.push(Finding::fail("stored data", format!("cannot read: {e}"), "check the database's logs")),
    }
    out
}

async fn version(client: &Client, address: &str) -> Finding {
    let row = match client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_database()",
            &[],
        )
        .await
    {
        Ok(row) => row,
        Err(e) => return Finding::fail("postgresql", format!("at {address}: {e}"), "check the database's logs"),
    };
    let (version, number, database): (String, i32, String) = (row.get(0), row.get(1), row.get(2));
    let text = format!("PostgreSQL {version} at {address}, database {database}");
    if number < 130_000 {
        return Finding::fail("postgresql", format!("{text}: lijian needs 13 or newer"), "upgrade PostgreSQL");
    }
    Finding::ok("postgresql", text)
}

/// The database clock against this host's, read at the midpoint of one round trip.
async fn clock(client: &Client) -> Finding {
    let (sent, started) = (OffsetDateTime::now_utc(), Instant::now());
    let row = match client.query_one("SELECT clock_timestamp()", &[]).await {
        Ok(row) => row,
        Err(e) => return Finding::fail("clock", format!("cannot read the database clock: {e}"), "check the database"),
    };
    let round_trip = started.elapsed();
    let database: OffsetDateTime = row.get(0);
    let skew_ms = ((database - (sent + round_trip / 2)).whole_milliseconds()) as i64;
    let text = format!(
        "the database clock is {:.3} s {} this host's (round trip {} ms)",
        skew_ms.unsigned_abs() as f64 / 1000.0,
        if skew_ms >= 0 { "ahead of" } else { "behind" },
        round_trip.as_millis()
    );
    let fix = "synchronise both hosts with NTP (chrony, systemd-timesyncd): the gateway judges request timestamps \
               by this host's clock, activity windows and scheduled releases use the database's";
    match skew_ms.abs() {
        s if s > SKEW_FAIL_MS => Finding::fail("clock", text, fix),
        s if s > SKEW_WARN_MS => Finding::warn("clock", text, fix),
        _ => Finding::ok("clock", text),
    }
}

async fn stored(client: &Client, settings: &Settings) -> Result<Vec<Finding>, tokio_postgres::Error> {
    let mut out = accounts(client, settings).await?;
    out.push(merchant_keys(client).await?);
    if let Ok(guard) = Guard::from_settings(settings) {
        out.push(callback_urls(client, &guard).await?);
    }
    Ok(out)
}

/// Stored accounts' key files (read and parsed as the consumer does), and the
/// running activities no account can send for.
async fn accounts(client: &Client, settings: &Settings) -> Result<Vec<Finding>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let rows = client
        .query("SELECT mchid, private_key_path, public_key_path, enabled FROM wxpay_accounts ORDER BY mchid", &[])
        .await?;
    let mut usable = 0;
    for row in rows.iter().filter(|r| r.get::<_, bool>(3)) {
        let (mchid, private, public): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        match lijian_consumer::accounts::load_keys(private.as_ref(), public.as_ref()) {
            Ok(_) => usable += 1,
            Err(e) => out.push(Finding::fail(
                "wxpay account",
                format!("{mchid}: {:#}", anyhow::Error::from(e)),
                format!("fix the file (readable by the consumer's user), then lijian wxpay-account disable --mchid {mchid} and enable it"),
            )),
        }
    }
    let default = settings.wxpay.mchid.is_some();
    let summary = format!(
        "{} stored ({usable} enabled with readable keys, {} disabled){}",
        rows.len(),
        rows.iter().filter(|r| !r.get::<_, bool>(3)).count(),
        if default { " plus the LIJIAN_WXPAY_* default" } else { ", no LIJIAN_WXPAY_* default" }
    );
    let senders = client
        .query(
            "SELECT coalesce(a.issuer_mchid, a.stock_creator_mchid), w.enabled, string_agg(a.activity_id, ', ' ORDER BY a.activity_id)
               FROM activities a LEFT JOIN wxpay_accounts w ON w.mchid = coalesce(a.issuer_mchid, a.stock_creator_mchid)
              WHERE a.enabled AND a.ends_at > now() AND (w.mchid IS NULL OR NOT w.enabled)
              GROUP BY 1, 2 ORDER BY 1",
            &[],
        )
        .await?;
    for row in senders {
        let (mchid, enabled, activities): (String, Option<bool>, String) = (row.get(0), row.get(1), row.get(2));
        match enabled {
            Some(_) => out.push(Finding::warn(
                "wxpay account",
                format!("{mchid} is disabled: orders of activities {activities} park until it is enabled"),
                format!("lijian wxpay-account enable --mchid {mchid}, then lijian dlq replay --reason {mchid}"),
            )),
            None if !default => out.push(Finding::fail(
                "wxpay account",
                format!("no account sends for mchid {mchid}: orders of activities {activities} will park"),
                format!("lijian wxpay-account add --mchid {mchid} …, or set the LIJIAN_WXPAY_* default account"),
            )),
            None => {}
        }
    }
    if out.is_empty() {
        out.push(Finding::ok("wxpay accounts", summary));
    }
    Ok(out)
}

/// Live SHA256-RSA keys that do not parse: every request signed for them gets status 2.
async fn merchant_keys(client: &Client) -> Result<Finding, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT merchant_id, key_id, key_text FROM merchant_keys
              WHERE retired_at IS NULL AND sign_type = 'SHA256-RSA' ORDER BY merchant_id, key_id",
            &[],
        )
        .await?;
    let broken: Vec<String> = rows
        .iter()
        .filter(|r| RsaPublicKey::parse(r.get(2)).is_err())
        .map(|r| format!("{} key {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    if broken.is_empty() {
        return Ok(Finding::ok("merchant keys", format!("all {} live RSA public keys parse", rows.len())));
    }
    Ok(Finding::fail(
        "merchant keys",
        format!("not usable RSA public keys (their requests get status 2): {}", broken.join(", ")),
        "lijian merchant key add --merchant-id M --public-key FILE with a good key, then lijian merchant key retire the broken one",
    ))
}

/// Merchants' default callback URLs the current SSRF guard refuses: their
/// reports (for orders without a callbackUrl of their own) would park.
async fn callback_urls(client: &Client, guard: &Guard) -> Result<Finding, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT merchant_id, callback_url FROM merchants WHERE callback_url IS NOT NULL ORDER BY merchant_id",
            &[],
        )
        .await?;
    let refused: Vec<String> = rows
        .iter()
        .filter(|r| lijian_producer::check_callback_url(r.get(1), guard).is_err())
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    if refused.is_empty() {
        return Ok(Finding::ok(
            "callback urls",
            format!("the SSRF guard allows all {} merchants' default callback URLs", rows.len()),
        ));
    }
    Ok(Finding::warn(
        "callback urls",
        format!("the SSRF guard refuses these merchants' default callback URLs: {}", refused.join(", ")),
        "lijian merchant set --merchant-id M --callback-url URL, or open the range in LIJIAN_NOTIFY_ALLOW_CIDRS",
    ))
}
