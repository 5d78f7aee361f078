//! Writing one batch: its rows staged with `COPY`, then judged, charged and
//! stored by one call of `lijian_accept_batch`, in one transaction.

use futures::SinkExt;
use lijian_core::status::ApiStatus;

use super::rows::{self, ValidRow};
use super::LoadError;
use crate::campaign::{CampaignError, CampaignSpec};
use crate::outbox::JOB_SIZE;

/// The session's staging table; emptied by every commit.
pub(super) const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS load_rows (
         line bigint, biz_code text, open_id text, app_id text, product_code text,
         activity_id text, callback_url text) ON COMMIT DELETE ROWS";

/// What the database said about one batch.
pub(super) struct Judged {
    pub(super) accepted: u64,
    pub(super) charged: i64,
    pub(super) duplicates: u64,
    /// (line, reason) of each row the database refused.
    pub(super) refused: Vec<(u64, String)>,
}

/// Stores one batch on `client` (whose session has [`CREATE_STAGING`]); `buf`
/// is reused from batch to batch for the COPY text.
pub(super) async fn store_batch(
    client: &mut deadpool_postgres::Object,
    campaign: &CampaignSpec,
    scheduled: bool,
    rows: &[ValidRow],
    buf: &mut Vec<u8>,
) -> Result<Judged, LoadError> {
    buf.clear();
    for row in rows {
        rows::copy_line(buf, row);
    }
    let tx = client.transaction().await?;
    let sink = tx.copy_in("COPY load_rows FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::copy_from_slice(buf)).await?;
    sink.finish().await?;
    let judged = tx
        .query(
            "SELECT line, status, detail, accepted, charged FROM lijian_accept_batch($1, $2, $3, $4)",
            &[&campaign.merchant_id, &campaign.name, &scheduled, &JOB_SIZE],
        )
        .await
        // The function refuses a cancelled (or foreign) campaign with a check
        // violation whose message is meant for the operator.
        .map_err(|e| match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::CHECK_VIOLATION => {
                LoadError::Campaign(CampaignError::Refused(db.message().to_string()))
            }
            _ => LoadError::from(e),
        })?;
    tx.commit().await?;
    let mut out = Judged { accepted: 0, charged: 0, duplicates: 0, refused: Vec::new() };
    for r in judged {
        let line: Option<i64> = r.get(0);
        match line {
            None => {
                out.accepted = r.get::<_, Option<i64>>(3).unwrap_or(0) as u64;
                out.charged = r.get::<_, Option<i64>>(4).unwrap_or(0);
            }
            Some(line) => {
                let status: i32 = r.get(1);
                if status == ApiStatus::DuplicateBizCode.code() {
                    out.duplicates += 1;
                } else {
                    out.refused.push((line as u64, r.get::<_, Option<String>>(2).unwrap_or_default()));
                }
            }
        }
    }
    Ok(out)
}
