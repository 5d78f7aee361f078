//! Campaigns a page at a time, newest first, with their order counts: what
//! `lijian campaign list` and the console's lists show. A campaign's orders are
//! stored on its row (`total_orders`, kept by the load in the batch's
//! transaction); only the final ones are counted, by an index-only scan of the
//! page's campaigns, never from every order.

use std::collections::{HashMap, HashSet};

use lijian_core::status::OrderStatus;
use lijian_core::store::Store;
use lijian_core::vocab::{CampaignState, ReportOutcome};

use super::{campaign_from_row, Campaign, CampaignError, CAMPAIGN_COLUMNS};

/// Which campaigns: a window of the newest-first list.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery {
    pub offset: i64,
    pub limit: i64,
    /// Only those not cancelled, not empty and not finished (the overview's "running").
    pub running_only: bool,
}

/// The campaigns of `q` with their orders and final orders, and whether more follow.
pub async fn list_page(store: &Store, q: &ListQuery) -> Result<(Vec<(Campaign, i64, i64)>, bool), CampaignError> {
    let client = store.client().await?;
    let unreported = unreported(&client, None).await?;
    let unreported: Vec<String> = unreported.into_iter().collect();
    // A campaign is running unless cancelled, empty, or active with every
    // order final and every report closed (probes, not counts).
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS}, c.total_orders FROM campaigns c
          WHERE NOT $1 OR (c.state <> $2 AND c.total_orders > 0
                AND (c.state <> $3 OR c.name = ANY($4)
                     OR EXISTS (SELECT 1 FROM orders o WHERE o.campaign = c.name AND o.status = ANY($5))))
          ORDER BY c.created_at DESC, c.name LIMIT $6 OFFSET $7"
    );
    let limit = q.limit.saturating_add(1).max(1);
    let rows = client
        .query(
            &sql,
            &[
                &q.running_only,
                &CampaignState::Cancelled,
                &CampaignState::Active,
                &unreported,
                &&OrderStatus::OPEN[..],
                &limit,
                &q.offset.max(0),
            ],
        )
        .await?;
    let more = rows.len() as i64 > q.limit;
    let mut campaigns: Vec<Campaign> = rows.iter().take(q.limit.max(0) as usize).map(campaign_from_row).collect();
    let totals: Vec<i64> = rows.iter().take(campaigns.len()).map(|r| r.get("total_orders")).collect();
    let names: Vec<&str> = campaigns.iter().map(|c| c.name.as_str()).collect();
    // Final statuses named, not "not open": `status = ANY` bounds the index
    // scan, so a campaign still releasing costs its final orders only (c-big in
    // `bench console`: 90,000 entries of 200,000).
    let finals: Vec<OrderStatus> = OrderStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
    let done: HashMap<String, i64> = client
        .query(
            "SELECT campaign, count(*) FROM orders WHERE campaign = ANY($1) AND status = ANY($2) GROUP BY campaign",
            &[&names, &finals],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok((
        campaigns
            .drain(..)
            .zip(totals)
            .map(|(mut campaign, total)| {
                let done = done.get(&campaign.name).copied().unwrap_or(0);
                campaign.finished = campaign.state == CampaignState::Active
                    && total > 0
                    && done == total
                    && !unreported.contains(&campaign.name);
                campaign.empty = total == 0;
                (campaign, total, done)
            })
            .collect(),
        more,
    ))
}

/// Campaigns (or only `name`) with a final order whose report is still owed or
/// parked. Read from the reports not closed yet (`reports_unclosed`, a few
/// hundred normally), each order looked up by its code, so the cost follows
/// them and not the campaign's size.
pub(super) async fn unreported(
    client: &impl deadpool_postgres::GenericClient,
    name: Option<&str>,
) -> Result<HashSet<String>, CampaignError> {
    let rows = client
        .query(
            "SELECT DISTINCT c FROM (
                SELECT (SELECT o.campaign FROM orders o WHERE o.order_code = r.order_code) AS c
                  FROM reports r WHERE r.outcome IS NULL OR r.outcome = $1) u
              WHERE c IS NOT NULL AND ($2::text IS NULL OR c = $2)",
            &[&ReportOutcome::Parked, &name],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
