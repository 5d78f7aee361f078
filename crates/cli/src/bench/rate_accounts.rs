//! `lijian bench rate`, last part: two WeChat Pay accounts at once, each with
//! its own limit (60% and 40% of `--limit`, 300/s and 200/s by default), two
//! consumer processes sending for both. Each account must be held to its own
//! limit and use it: per account, the steady seconds as a ratio to that limit.

use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::queue::Publisher;
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::NewAccount;
use tokio_util::sync::CancellationToken;
use wxpay_sim::{RequestRecord, SimAccount, SimConfig};

use super::common::{bench_activity, BenchEnv};
use super::rate::{spawn_role, stop_children, store_and_queue, wait_issued, RoleChild, Steady};

/// The two accounts: mchid and share of `--limit`.
const ACCOUNTS: [(&str, f64); 2] = [("1900000301", 0.6), ("1900000302", 0.4)];

/// What the run needs from the rest of the bench.
pub(super) struct TwoAccounts<'a> {
    pub env: &'a BenchEnv,
    pub publisher: &'a Publisher,
    pub settings: &'a Settings,
    pub merchant_key: &'a RsaPrivateKey,
    /// PEM files of the merchant key and of the simulator's public key.
    pub private_key: std::path::PathBuf,
    pub public_key: std::path::PathBuf,
    pub platform_key: &'a RsaPrivateKey,
}

/// Runs the case on orders numbered from `next`; returns the next free number.
pub(super) async fn run(
    t: TwoAccounts<'_>,
    next: usize,
    limit: u32,
    latency_ms: u64,
    seconds: u64,
) -> anyhow::Result<usize> {
    let stop = CancellationToken::new();
    let outcome = async {
        let limits: Vec<(&str, u32)> =
            ACCOUNTS.iter().map(|(mchid, share)| (*mchid, (f64::from(limit) * share).round() as u32)).collect();
        let mut sim = SimConfig::new(
            "127.0.0.1:0",
            &t.merchant_key.public_key_pem()?,
            &t.platform_key.to_pkcs8_pem()?,
            "PUB_KEY_ID_BENCH",
        );
        sim.max_per_user = u32::MAX;
        sim.latency_ms = latency_ms;
        sim.accounts = limits
            .iter()
            .map(|(mchid, rate)| {
                Ok(SimAccount {
                    mchid: mchid.to_string(),
                    public_key: t.merchant_key.public_key_pem()?,
                    rate: Some(*rate),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let sim_url = format!("http://{}", wxpay_sim::start_on_own_thread(sim, stop.clone()).await?);

        let mut next = next;
        let mut codes = std::collections::HashSet::new();
        for (mchid, rate) in &limits {
            t.env
                .store
                .add_account(&NewAccount {
                    mchid: mchid.to_string(),
                    serial_no: format!("BENCH{mchid}"),
                    private_key_path: t.private_key.clone(),
                    public_key_path: t.public_key.clone(),
                    public_key_id: "PUB_KEY_ID_BENCH".into(),
                    appids: Vec::new(),
                    rate: *rate,
                    base_url: Some(sim_url.clone()),
                })
                .await?;
            let activity = format!("bench-a{mchid}");
            let mut a = bench_activity(&activity, "bench-m", &format!("98{mchid}"));
            a.stock_creator_mchid = mchid.to_string();
            t.env.store.add_activity(&a).await?;
            let backlog = *rate as usize * seconds as usize;
            codes.extend(store_and_queue(t.env, t.publisher, &activity, next, backlog).await?);
            next += backlog;
        }
        let started_ms = super::rate::now_ms();
        let mut children: Vec<RoleChild> =
            (0..2).map(|_| spawn_role(t.settings, "consumer")).collect::<Result<_, _>>()?;
        wait_issued(t.env, next as i64, Duration::from_secs(seconds * 4 + 30)).await?;
        stop_children(&mut children);
        let all: Vec<RequestRecord> = reqwest::get(format!("{sim_url}/__sim/requests")).await?.json().await?;
        println!("two accounts at once, two consumers (each account's limit is its own baseline):");
        for (mchid, rate) in &limits {
            let own: Vec<RequestRecord> = all
                .iter()
                .filter(|r| r.time_ms >= started_ms && r.mchid == *mchid && codes.contains(&r.out_request_no))
                .cloned()
                .collect();
            let s = Steady::of(&own);
            println!(
                "  account {mchid} at {rate}/s: steady seconds min {} median {} max {} ({:.3} / {:.3} / {:.3} × its limit); worst sliding 1 s {}; 429s {}",
                s.min,
                s.median,
                s.max,
                s.min as f64 / f64::from(*rate),
                s.median as f64 / f64::from(*rate),
                s.max as f64 / f64::from(*rate),
                s.worst_window,
                s.throttled
            );
        }
        Ok::<usize, anyhow::Error>(next)
    }
    .await;
    stop.cancel();
    outcome
}
