//! The demo's load: one order in ten through the signed open API (from a
//! merchant client on threads of its own), the rest as a CSV campaign.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lijian_core::signing::RsaPrivateKey;
use lijian_core::store::Store;
use lijian_producer::bulk::{self, LoadSpec, Progress};
use lijian_producer::campaign::CampaignSpec;

use super::setup::{ACTIVITY, BUSINESS, MERCHANT, PRODUCT};
use crate::client::{place_orders, OrderBatch};

/// How the orders were split between the two doors.
pub struct Split {
    pub api: usize,
    pub csv: usize,
}

impl Split {
    pub fn of(orders: usize) -> Split {
        let api = if orders >= 10 { orders / 10 } else { orders };
        Split { api, csv: orders - api }
    }
}

/// Places the API orders and loads the CSV at the same time; fails unless every
/// order was accepted.
pub async fn place(
    gateway: &str,
    merchant_key: &RsaPrivateKey,
    store: &Store,
    split: &Split,
    dir: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let batch = OrderBatch {
        gateway: format!("http://{gateway}"),
        merchant_id: MERCHANT.into(),
        business_id: BUSINESS.into(),
        product_code: PRODUCT.into(),
        activity_id: ACTIVITY.into(),
        biz_code: "api".into(),
        open_id: "oApi".into(),
        callback_url: None,
    };
    // The merchants are outside our walls: their client gets threads of its own
    // rather than queueing behind our issuing tasks.
    let merchant_pem = merchant_key.to_pkcs8_pem()?;
    let api = split.api;
    let merchants = std::thread::spawn(move || -> anyhow::Result<(Vec<_>, Duration)> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let key = RsaPrivateKey::from_pem(&merchant_pem)?;
        let answers = runtime.block_on(place_orders(&reqwest::Client::new(), &key, &batch, api, 32));
        Ok((answers, started.elapsed()))
    });
    let (loaded, csv_took) = (load_csv(store, split.csv, dir).await, started.elapsed());
    let (answers, api_took) = tokio::task::spawn_blocking(move || merchants.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the merchant client panicked"))??;
    let accepted_api = answers.iter().filter(|a| matches!(a, Ok(v) if v["status"] == 0)).count();
    let loaded = loaded?;
    println!(
        "  placed {accepted_api} orders through the signed open API ({:.1} s) and loaded {loaded} from a CSV campaign ({:.1} s)",
        api_took.as_secs_f64(),
        csv_took.as_secs_f64()
    );
    let orders = split.api + split.csv;
    if accepted_api + loaded as usize != orders {
        bail!("only {} of {orders} orders were accepted", accepted_api + loaded as usize);
    }
    Ok(())
}

/// Generates `rows` openIds and loads them as campaign `demo`; the orders accepted.
async fn load_csv(store: &Store, rows: usize, dir: &Path) -> anyhow::Result<u64> {
    if rows == 0 {
        return Ok(0);
    }
    let path = dir.join("demo.csv");
    let mut text = String::from("openId\n");
    for i in 0..rows {
        text.push_str(&format!("oCsv{i}\n"));
    }
    std::fs::write(&path, text)?;
    let spec = LoadSpec {
        campaign: CampaignSpec {
            name: "demo".into(),
            merchant_id: MERCHANT.into(),
            release_at: None,
            rate: None,
            priority: None,
        },
        activity_id: Some(ACTIVITY.into()),
        product_code: Some(PRODUCT.into()),
        callback_url: None,
        callback_guard: Default::default(),
    };
    let file = std::fs::File::open(&path)?;
    let rejects = std::fs::File::create(dir.join("demo.rejects.csv"))?;
    let summary = bulk::load_csv(store, &spec, file, rejects, Arc::new(Progress::default()))
        .await
        .context("loading the demo campaign")?;
    Ok(summary.accepted)
}
