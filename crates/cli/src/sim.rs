//! `lijian sim wxpay`: runs the WeChat Pay simulator (crate wxpay-sim).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use wxpay_sim::{SimAccount, SimConfig};

#[derive(Subcommand)]
pub enum SimCommand {
    /// WeChat Pay API v3 send-coupon simulator, for development, tests and benchmarks.
    Wxpay(WxpayArgs),
}

#[derive(Args)]
pub struct WxpayArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: String,
    /// Public key of the merchant API key the consumer signs with (LIJIAN_WXPAY_PRIVATE_KEY's pair).
    /// Optional when --account names every merchant.
    #[arg(long, value_name = "FILE", required_unless_present = "account")]
    merchant_public_key: Option<PathBuf>,
    /// The simulator's own private key; its public half is LIJIAN_WXPAY_PUBLIC_KEY.
    #[arg(long, value_name = "FILE")]
    private_key: PathBuf,
    /// Sent as Wechatpay-Serial; must equal LIJIAN_WXPAY_PUBLIC_KEY_ID.
    #[arg(long, value_name = "ID")]
    public_key_id: String,
    /// Only this mchid exists (others: 400 MCH_NOT_EXISTS).
    #[arg(long)]
    mchid: Option<String>,
    /// Only these appids match the mchid (others: 400 APPID_MCHID_NOT_MATCH). Repeatable.
    #[arg(long)]
    appid: Vec<String>,
    /// Requests per second before 429 FREQUENCY_LIMITED (default unlimited), for the
    /// merchant of --merchant-public-key.
    #[arg(long)]
    rate: Option<u32>,
    /// A further merchant account: requests from MCHID are verified with the public key
    /// in FILE and limited to RATE per second of their own (default unlimited), e.g.
    /// `--account 1900000002=keys/b-public.pem:200`. Repeatable.
    #[arg(long, value_name = "MCHID=FILE[:RATE]")]
    account: Vec<String>,
    /// Answer 403 RULE_LIMIT to a request arriving while another for the same
    /// (mchid, openid) is being processed, as WeChat does. GET /__sim/stats counts such
    /// overlaps (and requests per second per mchid) in any mode.
    #[arg(long)]
    strict_openid: bool,
    /// Mean processing latency in ms (each request waits 0.5×–1.5× of it).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered 500 SYSTEM_ERROR (0..1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests never answered (held, then dropped) (0..1).
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Share of requests answered 429 (0..1).
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Share of issued coupons whose answer is never sent: the connection drops (0..1).
    #[arg(long, default_value_t = 0.0)]
    drop_after_issue: f64,
    /// Budget of a stock, STOCK_ID=COUPONS (repeatable); others are unlimited.
    #[arg(long, value_name = "ID=BUDGET")]
    stock: Vec<String>,
    /// Coupons one user may hold of one stock (then 403 RULE_LIMIT).
    #[arg(long, default_value_t = 60)]
    max_per_user: u32,
    /// How long a simulated timeout holds the request before dropping it, in ms.
    #[arg(long, default_value_t = 30_000)]
    timeout_hold_ms: u64,
}

pub async fn run(cmd: SimCommand, shutdown: CancellationToken) -> anyhow::Result<()> {
    let SimCommand::Wxpay(a) = cmd;
    for (flag, p) in [
        ("error-rate", a.error_rate),
        ("timeout-rate", a.timeout_rate),
        ("throttle-rate", a.throttle_rate),
        ("drop-after-issue", a.drop_after_issue),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("--{flag} must be between 0 and 1, got {p}");
        }
    }
    let mut stocks = HashMap::new();
    for s in &a.stock {
        let (id, budget) = s.split_once('=').with_context(|| format!("--stock {s:?}: expected STOCK_ID=BUDGET"))?;
        let budget: u64 = budget.parse().with_context(|| format!("--stock {s:?}: budget must be a whole number"))?;
        stocks.insert(id.to_string(), budget);
    }
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let merchant_public_key = a.merchant_public_key.as_ref().map(read).transpose()?.unwrap_or_default();
    let mut config = SimConfig::new(&a.addr, &merchant_public_key, &read(&a.private_key)?, &a.public_key_id);
    for spec in &a.account {
        let (mchid, file, rate) = parse_account(spec)?;
        let public_key = read(&PathBuf::from(file)).with_context(|| format!("--account {spec:?}"))?;
        config.accounts.push(SimAccount { mchid: mchid.to_string(), public_key, rate });
    }
    config.strict_openid = a.strict_openid;
    config.mchid = a.mchid;
    config.appids = a.appid;
    config.rate = a.rate;
    config.latency_ms = a.latency_ms;
    config.error_rate = a.error_rate;
    config.timeout_rate = a.timeout_rate;
    config.throttle_rate = a.throttle_rate;
    config.drop_after_issue = a.drop_after_issue;
    config.stocks = stocks;
    config.max_per_user = a.max_per_user;
    config.timeout_hold = Duration::from_millis(a.timeout_hold_ms);
    let running = wxpay_sim::start(config, shutdown).await?;
    println!("wxpay simulator listening on http://{}", running.addr);
    running.task.await?;
    Ok(())
}

/// `MCHID=FILE[:RATE]`; a `:` followed by something other than digits is part of FILE.
fn parse_account(spec: &str) -> anyhow::Result<(&str, &str, Option<u32>)> {
    let (mchid, rest) = spec
        .split_once('=')
        .filter(|(m, f)| !m.is_empty() && !f.is_empty())
        .with_context(|| format!("--account {spec:?}: expected MCHID=PUBLIC_KEY_FILE[:RATE]"))?;
    match rest.rsplit_once(':') {
        Some((file, rate)) if !rate.is_empty() && rate.bytes().all(|b| b.is_ascii_digit()) => {
            let rate = rate.parse().with_context(|| format!("--account {spec:?}: rate too large"))?;
            Ok((mchid, file, Some(rate)))
        }
        _ => Ok((mchid, rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_account;

    #[test]
    fn account_specs() {
        assert_eq!(parse_account("19=k.pem:200").ok(), Some(("19", "k.pem", Some(200))));
        assert_eq!(parse_account("19=k.pem").ok(), Some(("19", "k.pem", None)));
        assert_eq!(parse_account("19=C:/keys/k.pem").ok(), Some(("19", "C:/keys/k.pem", None)));
        assert!(parse_account("k.pem").is_err());
        assert!(parse_account("=k.pem").is_err());
    }
}
