//! Watching the demo finish and telling what happened: progress once a second,
//! then a summary checked against the simulator's ledger and the merchant's
//! verified reports.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use lijian_core::status::OrderStatus;
use lijian_core::store::Store;

use super::faults::{self, Interventions};
use super::load::Split;
use super::receiver::Receiver;

fn verified(receiver: &Receiver) -> (usize, usize) {
    receiver.seen.lock().map(|s| (s.verified.len(), s.bad_signatures)).unwrap_or((0, 0))
}

/// POSTs the merchant answered 503 on purpose (`--faults`).
fn refused(receiver: &Receiver) -> usize {
    receiver.seen.lock().map(|s| s.refused).unwrap_or(0)
}

/// Progress once a second until every order is final and reported (verified).
pub async fn wait_for_everything(
    store: &Store,
    receiver: &Receiver,
    orders: i64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut shown = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = store.status_counts().await?;
        let verified = verified(receiver).0 as i64;
        let done = c.finals() == orders && c.reports_delivered == orders && verified == orders;
        if !done && shown.elapsed() < Duration::from_secs(1) {
            continue;
        }
        shown = Instant::now();
        println!(
            "  [{:>5.1}s] final {}/{orders} (issued {}, failed {}) · reports delivered {} · verified by the merchant {verified}",
            started.elapsed().as_secs_f64(),
            c.finals(),
            c.orders(OrderStatus::Success),
            c.orders(OrderStatus::Failed),
            c.reports_delivered
        );
        if done {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "gave up after {}s: {} of {orders} orders final, {} reports delivered, {verified} verified",
                timeout.as_secs(),
                c.finals(),
                c.reports_delivered
            );
        }
    }
}

/// Prints the summary; fails when coupons, the simulator's ledger and the
/// merchant's verified reports do not agree.
pub async fn summarise(
    store: &Store,
    receiver: &Receiver,
    sim_url: &str,
    elapsed: Duration,
    split: &Split,
    faults: Option<&Interventions>,
) -> anyhow::Result<()> {
    let c = store.status_counts().await?;
    let failures = store.failure_reasons().await?;
    let latency = store.delivery_latency().await?;
    let ledger: Vec<serde_json::Value> = reqwest::get(format!("{sim_url}/__sim/ledger")).await?.json().await?;
    let distinct: HashSet<&str> = ledger.iter().filter_map(|c| c["out_request_no"].as_str()).collect();
    let (verified, bad) = verified(receiver);
    let retries = store.retry_counts().await?;
    let (api, csv) = (split.api, split.csv);
    let parked = if faults.is_some() { faults::PARKED_ORDERS } else { 0 };
    let total = api + csv + parked;
    let issued = c.orders(OrderStatus::Success);
    println!("summary:");
    println!("  orders      {total} ({} through the signed open API, {csv} from CSV campaign \"demo\")", api + parked);
    println!(
        "  coupons     {issued} issued; the simulator issued {} to {} distinct orders",
        ledger.len(),
        distinct.len()
    );
    println!("  failed      {}", c.orders(OrderStatus::Failed));
    for (reason, n) in &failures {
        println!("              {n:>6}  {reason}");
    }
    println!(
        "  reports     {} delivered, {verified} signatures verified by the merchant, {bad} bad",
        c.reports_delivered
    );
    println!(
        "  throughput  {:.0} orders/s, acceptance to last report ({:.1} s)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency     acceptance → report delivered: p50 {:.2} s, p99 {:.2} s",
        latency.p50_secs.unwrap_or(f64::NAN),
        latency.p99_secs.unwrap_or(f64::NAN)
    );
    println!(
        "  retries     {} calls to WeChat Pay retried; {} report POSTs not answered SUCCESS, retried",
        retries.issue_retries, retries.report_failures
    );
    let mut adds_up = true;
    if let Some(f) = faults {
        let refused = refused(receiver);
        println!(
            "  faults      merchant refused {refused} POSTs on purpose; consumer restarted at {} final; {} parked orders replayed",
            f.restarted_at.map_or("-".to_string(), |n| n.to_string()),
            f.replayed
        );
        // Every fault was met: the replay took all parked orders, each refused
        // POST was recorded (and, since every report is delivered, retried),
        // WeChat Pay's faults were retried, and the restart happened.
        adds_up = f.replayed == faults::PARKED_ORDERS
            && f.restarted_at.is_some()
            && retries.report_failures >= refused as i64
            && retries.issue_retries > 0;
    }
    if !adds_up
        || ledger.len() != distinct.len()
        || distinct.len() as i64 != issued
        || bad > 0
        || verified as i64 != c.reports_delivered
    {
        bail!("the summary does not add up (see above)");
    }
    Ok(())
}
