//! `lijian demo --faults`: the same run with the machinery at work, and the
//! summary still adding up. WeChat Pay errs, throttles, holds requests past our
//! timeout and drops answers after issuing; the merchant's endpoint refuses the
//! first attempts of some reports; the consumer is stopped mid-run and a fresh
//! one started; orders for an activity whose WeChat Pay account is disabled park
//! until an operator enables the account and replays them.

use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::money::Fen;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::{DeadFilter, NewAccount, NewActivity, Store};
use tokio_util::sync::CancellationToken;

use super::setup::{BUSINESS, MERCHANT, PRODUCT};
use crate::client::{place_orders, OrderBatch};
use crate::roles::{self, Role, Started};

/// The WeChat Pay account the demo disables, and the activity sent from it.
const PARKED_MCHID: &str = "1900000002";
const PARKED_ACTIVITY: &str = "demo-parked";
const PARKED_APPID: &str = "wxd000000000000002";
/// Orders sent to the disabled account: few, so the replay is easy to follow.
pub const PARKED_ORDERS: usize = 10;
/// Every this many reports, the merchant refuses the first [`REFUSED_ATTEMPTS`].
pub const REFUSE_EVERY: u32 = 5;
pub const REFUSED_ATTEMPTS: u32 = 2;

/// Faults WeChat Pay injects, and our timeout short enough that a held request
/// is given up (an unknown outcome, resolved by re-sending the same
/// out_request_no) well within the demo.
pub fn tune(settings: &mut Settings, sim: &mut wxpay_sim::SimConfig) {
    settings.wxpay.timeout = Duration::from_secs(2);
    sim.error_rate = 0.03;
    sim.throttle_rate = 0.01;
    sim.timeout_rate = 0.01;
    sim.drop_after_issue = 0.01;
    sim.timeout_hold = Duration::from_secs(3);
}

/// A second WeChat Pay account (the demo's own keys), disabled, and an activity
/// that sends from it.
pub async fn seed(store: &Store, settings: &Settings, orders: usize) -> anyhow::Result<()> {
    let key =
        |path: &Option<std::path::PathBuf>| path.clone().ok_or_else(|| anyhow::anyhow!("demo keys not installed"));
    store
        .add_account(&NewAccount {
            mchid: PARKED_MCHID.into(),
            serial_no: "DEMO2".into(),
            private_key_path: key(&settings.wxpay.private_key)?,
            public_key_path: key(&settings.wxpay.public_key)?,
            public_key_id: super::setup::KEY_ID.into(),
            appids: vec![PARKED_APPID.into()],
            rate: 100,
            base_url: None,
        })
        .await?;
    store.set_account_enabled(PARKED_MCHID, false).await?;
    let now = time::OffsetDateTime::now_utc();
    store
        .add_activity(&NewActivity {
            activity_id: PARKED_ACTIVITY.into(),
            merchant_id: MERCHANT.into(),
            stock_id: "9856002".into(),
            stock_creator_mchid: PARKED_MCHID.into(),
            appid: PARKED_APPID.into(),
            face_value: Fen(1000),
            budget: orders as i64,
            starts: now - time::Duration::hours(1),
            ends: now + time::Duration::days(30),
            issuer_mchid: None,
        })
        .await?;
    Ok(())
}

/// Places [`PARKED_ORDERS`] signed orders for the disabled account's activity.
pub async fn place_parked(gateway: &str, merchant_key: &RsaPrivateKey) -> anyhow::Result<()> {
    let batch = OrderBatch {
        gateway: format!("http://{gateway}"),
        merchant_id: MERCHANT.into(),
        business_id: BUSINESS.into(),
        product_code: PRODUCT.into(),
        activity_id: PARKED_ACTIVITY.into(),
        biz_code: "parked".into(),
        open_id: "oParked".into(),
        callback_url: None,
    };
    let answers = place_orders(&reqwest::Client::new(), merchant_key, &batch, PARKED_ORDERS, 4).await;
    let accepted = answers.iter().filter(|a| matches!(a, Ok(v) if v["status"] == 0)).count();
    if accepted != PARKED_ORDERS {
        anyhow::bail!("only {accepted} of {PARKED_ORDERS} orders for the disabled account were accepted");
    }
    Ok(())
}

/// What the operator's side of the run did.
#[derive(Debug, Default)]
pub struct Interventions {
    /// Orders final when the consumer was restarted.
    pub restarted_at: Option<i64>,
    /// Orders replayed from the dead-letter list.
    pub replayed: usize,
}

/// The consumer runs under a token of its own so it can be restarted.
pub struct RestartableConsumer {
    stop: CancellationToken,
    running: Started,
}

impl RestartableConsumer {
    pub async fn start(deps: &Deps, parent: &CancellationToken) -> anyhow::Result<RestartableConsumer> {
        let stop = parent.child_token();
        let running = roles::start(deps, &[Role::Consumer], &stop).await?;
        Ok(RestartableConsumer { stop, running })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(super::STOP_GRACE, self.running.wait()).await;
    }
}

/// Plays the operator until `watching` ends: restarts the consumer once a third of the
/// orders are final; then, once every order for the disabled account is parked,
/// enables the account and replays them, as `lijian wxpay-account enable` and
/// `lijian dlq replay` would. Returns what it did and the consumer to stop.
pub async fn operate(
    deps: &Deps,
    mut consumer: RestartableConsumer,
    orders: i64,
    stop: &CancellationToken,
    watching: &CancellationToken,
) -> anyhow::Result<(Interventions, RestartableConsumer)> {
    let mut done = Interventions::default();
    while !watching.is_cancelled() && (done.restarted_at.is_none() || done.replayed == 0) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let finals = deps.store.status_counts().await?.finals();
        if done.restarted_at.is_none() && finals * 3 >= orders {
            consumer.stop().await;
            consumer = RestartableConsumer::start(deps, stop).await?;
            println!("  [faults] consumer stopped and a fresh one started at {finals}/{orders} final");
            done.restarted_at = Some(finals);
        }
        // After the restart: a replay published into a consumer that is being
        // stopped in-process was once not seen again (CI, 10 of 10 orders; see
        // the issue 14 note) — a process that exits returns its unacknowledged
        // jobs, the demo's in-process stop is what differs.
        if done.replayed == 0 && done.restarted_at.is_some() {
            let filter = DeadFilter { reason: Some(PARKED_MCHID.into()), ..Default::default() };
            let parked: Vec<String> = deps.store.dead_jobs(&filter).await?.into_iter().map(|j| j.order_code).collect();
            if parked.len() == PARKED_ORDERS {
                deps.store.set_account_enabled(PARKED_MCHID, true).await?;
                // What `lijian dlq replay` does, recorded in the audit log alike.
                let selection = DeadFilter { order_codes: parked, ..Default::default() };
                let actor = lijian_console::Actor::cli();
                let replayed = lijian_console::actions::dlq::replay(
                    &deps.settings,
                    &deps.store,
                    &deps.publisher,
                    &selection,
                    None,
                    &actor,
                )
                .await?;
                println!(
                    "  [faults] {} orders parked on disabled account {PARKED_MCHID}: enabled it and replayed them",
                    replayed.issue_jobs
                );
                done.replayed = replayed.issue_jobs;
            }
        }
    }
    Ok((done, consumer))
}
