//! `lijian client orders`: a merchant-side client for the open API that signs
//! exactly as docs/signing.md says. For integration checks and for placing many
//! orders at once (bizCode `{prefix}-{i}`, openId `{open-id-prefix}{i}`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::stream::{self, StreamExt};
use lijian_core::signing::{string_to_sign, RsaPrivateKey};
use serde_json::json;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Place signed coupon orders through a gateway.
    Orders(OrdersArgs),
}

#[derive(Args)]
pub struct OrdersArgs {
    /// The gateway's base URL [default: http:// and LIJIAN_HTTP_ADDR, the address `lijian gateway` listens on].
    #[arg(long)]
    gateway: Option<String>,
    #[arg(long)]
    merchant_id: String,
    #[arg(long)]
    business_id: String,
    /// The merchant's private key (PEM) to sign with (SHA256-RSA).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[arg(long)]
    product_code: String,
    #[arg(long)]
    activity_id: String,
    /// bizCode of the first order; with --count N the orders are {prefix}-0 … {prefix}-(N-1).
    #[arg(long)]
    biz_code: String,
    /// openId prefix; each order gets {prefix}{i}.
    #[arg(long, default_value = "oUser")]
    open_id: String,
    #[arg(long)]
    callback_url: Option<String>,
    /// How many orders to place.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

pub async fn run(settings: &lijian_core::config::Settings, cmd: ClientCommand) -> anyhow::Result<()> {
    let ClientCommand::Orders(a) = cmd;
    let gateway = a.gateway.clone().unwrap_or_else(|| gateway_url(&settings.gateway.http_addr));
    let pem = std::fs::read_to_string(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let key = RsaPrivateKey::from_pem(&pem)?;
    let batch = OrderBatch {
        gateway: gateway.clone(),
        merchant_id: a.merchant_id.clone(),
        business_id: a.business_id.clone(),
        product_code: a.product_code.clone(),
        activity_id: a.activity_id.clone(),
        biz_code: a.biz_code.clone(),
        open_id: a.open_id.clone(),
        callback_url: a.callback_url.clone(),
    };
    let started = Instant::now();
    let answers = place_orders(&reqwest::Client::new(), &key, &batch, a.count, a.concurrency).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut failed = 0;
    for answer in &answers {
        let key = match answer {
            Ok(v) => format!("{} {}", v["status"], v["message"].as_str().unwrap_or_default()),
            Err(e) => format!("error: {e:#}"),
        };
        if !placed(answer) {
            failed += 1;
        }
        *by_status.entry(key).or_default() += 1;
    }
    if a.count == 1 {
        match &answers[0] {
            Ok(v) => println!("{v}"),
            Err(e) => anyhow::bail!("{gateway}: {e:#}"),
        }
    } else {
        println!("{} requests in {elapsed:.2}s ({:.0}/s)", a.count, a.count as f64 / elapsed);
        for (status, n) in &by_status {
            println!("  {n:>8}  status {status}");
        }
    }
    if failed > 0 {
        let causes: Vec<String> = by_status
            .iter()
            .filter(|(key, _)| !key.starts_with("0 ") && !key.starts_with("8 "))
            .map(|(k, n)| format!("{n} × {k}"))
            .collect();
        anyhow::bail!("{failed} of {} orders were not placed through {gateway}: {}", a.count, causes.join("; "));
    }
    Ok(())
}

/// Placed: accepted now (status 0) or before (8, duplicate bizCode: the same order).
fn placed(answer: &anyhow::Result<serde_json::Value>) -> bool {
    answer.as_ref().is_ok_and(|v| v["status"] == 0 || v["status"] == 8)
}

/// `http://HOST:PORT` for the address a gateway listens on; one listening on
/// every interface is reached on this host.
fn gateway_url(listen: &str) -> String {
    let local = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_string(),
    };
    format!("http://{local}")
}

/// Orders {biz_code}-0 … placed by one merchant (openId {open_id}{i}).
pub struct OrderBatch {
    pub gateway: String,
    pub merchant_id: String,
    pub business_id: String,
    pub product_code: String,
    pub activity_id: String,
    /// bizCode of a single order, or the prefix of many.
    pub biz_code: String,
    pub open_id: String,
    pub callback_url: Option<String>,
}

/// Places `count` signed orders, `concurrency` at a time; the JSON answers.
pub async fn place_orders(
    http: &reqwest::Client,
    key: &RsaPrivateKey,
    a: &OrderBatch,
    count: usize,
    concurrency: usize,
) -> Vec<anyhow::Result<serde_json::Value>> {
    let url = format!("{}/v1/openapi/order/wechat/coupons", a.gateway.trim_end_matches('/'));
    stream::iter(0..count)
        .map(|i| {
            let biz = if count == 1 { a.biz_code.clone() } else { format!("{}-{i}", a.biz_code) };
            let mut body = json!({
                "merchantId": a.merchant_id, "businessId": a.business_id, "openId": format!("{}{i}", a.open_id),
                "productCode": a.product_code, "activityId": a.activity_id, "bizCode": biz,
            });
            if let Some(cb) = &a.callback_url {
                body["callbackUrl"] = json!(cb);
            }
            let (url, business_id) = (&url, &a.business_id);
            async move {
                let body = body.to_string();
                let nonce = uuid::Uuid::new_v4().to_string();
                let timestamp = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
                let headers = [
                    ("businessId", business_id.as_str()),
                    ("nonce", &nonce),
                    ("signType", "SHA256-RSA"),
                    ("timestamp", &timestamp),
                ];
                let sign = key.sign_base64(&string_to_sign(&headers, body.as_bytes()))?;
                let mut req =
                    http.post(url).header("Content-Type", "application/json; charset=utf-8").header("sign", sign);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                Ok(req.body(body).send().await?.json::<serde_json::Value>().await?)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}
