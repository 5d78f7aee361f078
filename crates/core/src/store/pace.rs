//! WeChat Pay's limits, shared by every consumer process through PostgreSQL:
//! send slots per issuing account (and per activity), and one lease per
//! (account, openid) in flight. The SQL is migration 0007; the consumer's
//! `limits.rs` decides when to ask.

use std::time::Duration;

use time::OffsetDateTime;

use super::{Store, StoreError};

/// Slots cut by one `lijian_take_slots` call.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// The first slot, by the database clock.
    pub first_slot: OffsetDateTime,
    /// Consecutive slots granted from `first_slot`, `spacing` apart (0: none free
    /// within the horizon yet).
    pub granted: u32,
    pub spacing: Duration,
    /// The database clock when the slots were cut: slot times are read relative
    /// to it, so the consumer's own clock need not agree with the database's.
    pub db_now: OffsetDateTime,
    /// This process's clock just before the statement was sent and just after
    /// its answer came: `db_now` lies between. Measured around the statement
    /// alone — a wait for a pooled connection before it would shift every slot.
    pub sent: std::time::Instant,
    pub received: std::time::Instant,
}

impl Store {
    /// Takes up to `want` send slots of `key` at `rate` per second, none sooner
    /// than `lead` and none further than `horizon` ahead.
    pub async fn take_slots(
        &self,
        key: &str,
        rate: f64,
        want: u32,
        lead: Duration,
        horizon: Duration,
    ) -> Result<Grant, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT first_slot, granted, spacing_us, db_now
                   FROM lijian_take_slots($1, $2, $3, $4::text::interval, $5::text::interval)",
            )
            .await?;
        let want = i32::try_from(want).unwrap_or(i32::MAX);
        let horizon = pg_interval(horizon);
        let sent = std::time::Instant::now();
        let lead = pg_interval(lead);
        let row = client.query_one(&stmt, &[&key, &rate, &want, &horizon, &lead]).await?;
        let received = std::time::Instant::now();
        Ok(Grant {
            sent,
            received,
            first_slot: row.get(0),
            granted: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
            spacing: Duration::from_micros(u64::try_from(row.get::<_, i64>(2)).unwrap_or(1)),
            db_now: row.get(3),
        })
    }

    /// Grants no slot of `key`, to any process, for `pause` from now (a 429).
    pub async fn pause_sends(&self, key: &str, pause: Duration) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("SELECT lijian_pause_sends($1, $2::text::interval)", &[&key, &pg_interval(pause)]).await?;
        Ok(())
    }

    /// Takes send leases, each `(mchid, openid, token)`, until `ttl` from now;
    /// answers, in input order, whether each was taken. A token is
    /// `<process>/<turn>`: a lease is free when it expired (its holder died) or
    /// when the same process holds it (its earlier turn ended and the give-back
    /// is still queued; the process's own lock keeps its turns apart).
    pub async fn take_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<bool>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO send_leases AS l (mchid, openid, holder, expires_at)
                 SELECT DISTINCT ON (m, o) m, o, h, clock_timestamp() + $4::text::interval
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS t(m, o, h)
                 ON CONFLICT (mchid, openid) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                  WHERE l.expires_at < clock_timestamp()
                     OR split_part(l.holder, '/', 1) = split_part(EXCLUDED.holder, '/', 1)
                 RETURNING holder",
            )
            .await?;
        let (mchids, openids, tokens) = columns(leases);
        let rows = client.query(&stmt, &[&mchids, &openids, &tokens, &pg_interval(ttl)]).await?;
        let taken: std::collections::HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        Ok(leases.iter().map(|l| taken.contains(&l.token)).collect())
    }

    /// Extends these leases (where the token still holds them) to `ttl` from now.
    pub async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE send_leases l SET expires_at = clock_timestamp() + $4::text::interval
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS t(m, o, h)
                  WHERE l.mchid = t.m AND l.openid = t.o AND l.holder = t.h",
            )
            .await?;
        let (mchids, openids, tokens) = columns(leases);
        client.execute(&stmt, &[&mchids, &openids, &tokens, &pg_interval(ttl)]).await?;
        Ok(())
    }

    /// Gives these leases back (only where the token still holds them).
    pub async fn release_leases(&self, leases: &[Lease]) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "DELETE FROM send_leases l USING unnest($1::text[], $2::text[], $3::text[]) AS t(m, o, h)
                  WHERE l.mchid = t.m AND l.openid = t.o AND l.holder = t.h",
            )
            .await?;
        let (mchids, openids, tokens) = columns(leases);
        client.execute(&stmt, &[&mchids, &openids, &tokens]).await?;
        Ok(())
    }
}

/// One send turn for one user of one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub mchid: String,
    pub openid: String,
    /// `<process>/<turn>`, unique per turn.
    pub token: String,
}

fn columns(leases: &[Lease]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let mut columns =
        (Vec::with_capacity(leases.len()), Vec::with_capacity(leases.len()), Vec::with_capacity(leases.len()));
    for l in leases {
        columns.0.push(l.mchid.as_str());
        columns.1.push(l.openid.as_str());
        columns.2.push(l.token.as_str());
    }
    columns
}

/// A duration as PostgreSQL interval text (microseconds).
fn pg_interval(d: Duration) -> String {
    format!("{} microseconds", d.as_micros())
}
