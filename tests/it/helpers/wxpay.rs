//! The WeChat Pay side of tests: the simulator (our own real HTTP server), an
//! in-process consumer, and helpers to place many orders and wait for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use lijian_core::config::Settings;
use lijian_core::signing::RsaPrivateKey;
use tokio_util::sync::CancellationToken;
use wxpay_sim::{IssuedCoupon, RequestRecord, SimAccount, SimConfig, SimStats};

use super::{fixture, order_body, Req, TestApp};

pub const MCHID: &str = "1900000001";
pub const SERIAL_NO: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000000";

pub struct Sim {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A simulator that knows our WeChat merchant key, adjusted by `tweak`.
pub async fn spawn_sim(tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut config = SimConfig::new(
        "127.0.0.1:0",
        &fixture("wxpay-merchant-public.pem"),
        &fixture("wxpay-platform-private.pem"),
        PUBLIC_KEY_ID,
    );
    tweak(&mut config);
    let stop = CancellationToken::new();
    // On threads of its own (see `start_on_own_thread`).
    let addr = wxpay_sim::start_on_own_thread(config, stop.clone()).await.expect("start simulator");
    Sim { addr, stop }
}

/// `LIJIAN_WXPAY_HEADROOM` for consumers whose sends the tests count against a
/// hard limit at the simulator: they aim at the limit less 5%. The default 3%
/// covers a release build's transit on a quiet host (`bench rate`); here the
/// simulator shares two cores with debug-build consumers, a scheduler and
/// PostgreSQL, and its arrival instants bunch by up to 3.5% of the limit over
/// our own send instants (measured 2026-11-26 at the default: ours at most
/// 196 of 200 in a sliding second, the simulator's 195–198, once 201).
pub const TEST_HEADROOM_PERCENT: u32 = 5;

/// A strict simulator (403 RULE_LIMIT for a second concurrent send to one user),
/// adjusted by `tweak`.
pub async fn spawn_strict_sim(tweak: impl FnOnce(&mut SimConfig)) -> Sim {
    spawn_sim(|c| {
        c.strict_openid = true;
        tweak(c);
    })
    .await
}

/// A further WeChat Pay merchant account with a key generated for the test.
pub struct TestAccount {
    pub mchid: String,
    pub key: RsaPrivateKey,
}

impl TestAccount {
    pub fn generate(mchid: &str) -> TestAccount {
        TestAccount { mchid: mchid.into(), key: RsaPrivateKey::generate().expect("generate key") }
    }

    /// The account as the simulator knows it, limited to `rate` per second.
    pub fn sim_account(&self, rate: Option<u32>) -> SimAccount {
        SimAccount { mchid: self.mchid.clone(), public_key: self.key.public_key_pem().expect("public key"), rate }
    }
}

impl Sim {
    pub async fn stats(&self) -> SimStats {
        reqwest::get(format!("{}/__sim/stats", self.url())).await.expect("stats").json().await.expect("stats JSON")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn ledger(&self) -> Vec<IssuedCoupon> {
        reqwest::get(format!("{}/__sim/ledger", self.url())).await.expect("ledger").json().await.expect("ledger JSON")
    }

    /// From now on requests that would be answered wait (a call in flight, on
    /// cue) until [`Sim::release`].
    pub async fn hold(&self) {
        self.control("hold").await;
    }

    pub async fn release(&self) {
        self.control("release").await;
    }

    async fn control(&self, what: &str) {
        let answer = reqwest::Client::new().post(format!("{}/__sim/{what}", self.url())).send().await;
        assert!(answer.expect("simulator control").status().is_success(), "POST /__sim/{what}");
    }

    pub async fn requests(&self) -> Vec<RequestRecord> {
        reqwest::get(format!("{}/__sim/requests", self.url()))
            .await
            .expect("requests")
            .json()
            .await
            .expect("requests JSON")
    }
}

pub struct Consumer {
    pub running: lijian_consumer::RunningConsumer,
    stop: CancellationToken,
}

impl Consumer {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.running.task).await;
    }
}

impl TestApp {
    /// The app's settings pointed at `sim`.
    pub fn consumer_settings(&self, sim: &Sim) -> Settings {
        let mut settings = self.settings.clone();
        settings.wxpay.base_url = sim.url();
        settings
    }

    pub fn start_consumer(&self, settings: &Settings) -> Consumer {
        let stop = CancellationToken::new();
        let deps = lijian_core::deps::Deps::connect(settings, "lijian-test-consumer").expect("deps");
        let running = lijian_consumer::start(&deps, stop.clone()).expect("start consumer");
        Consumer { running, stop }
    }

    /// Places `n` signed orders (bizCode `{prefix}-{i}`), `concurrency` at a time;
    /// returns the order codes of the accepted ones.
    pub async fn place_orders(self: &Arc<Self>, prefix: &str, n: usize, concurrency: usize) -> Vec<String> {
        self.place_orders_to(prefix, n, concurrency, None).await
    }

    /// Like [`TestApp::place_orders`], each order naming `callback` as its callbackUrl.
    pub async fn place_orders_to(
        self: &Arc<Self>,
        prefix: &str,
        n: usize,
        concurrency: usize,
        callback: Option<&str>,
    ) -> Vec<String> {
        stream::iter(0..n)
            .map(|i| {
                let app = self.clone();
                let biz = format!("{prefix}-{i}");
                let mut body = order_body(&biz);
                if let Some(url) = callback {
                    body = body.replace(r#""bizCode""#, &format!(r#""callbackUrl":"{url}","bizCode""#));
                }
                async move {
                    let req = Req::new(&body).signed_rsa(&app.signer);
                    app.send("/v1/openapi/order/wechat/coupons", &req).await
                }
            })
            .buffer_unordered(concurrency)
            .filter_map(|a| async move {
                (a["status"] == 0).then(|| a["data"]["orderCode"].as_str().unwrap_or_default().to_string())
            })
            .collect()
            .await
    }

    /// Polls `sql` (a count) until it reaches `n`; returns the last value.
    pub async fn wait_for_count(&self, sql: &str, n: i64, timeout: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = self.count(sql).await;
            if count >= n || tokio::time::Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An in-process scheduler: it releases campaigns (every campaign's orders
/// wait for one).
pub struct SchedulerHandle {
    pub running: lijian_producer::RunningScheduler,
    stop: CancellationToken,
}

impl SchedulerHandle {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.running.task).await;
    }
}

impl TestApp {
    pub fn start_scheduler(&self) -> SchedulerHandle {
        let stop = CancellationToken::new();
        let deps = lijian_core::deps::Deps::connect(&self.settings, "lijian-test-scheduler").expect("deps");
        let running = lijian_producer::start_scheduler(&deps, stop.clone());
        SchedulerHandle { running, stop }
    }
}

pub struct NotifierHandle {
    pub running: lijian_notifier::RunningNotifier,
    stop: CancellationToken,
}

impl NotifierHandle {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.running.task).await;
    }
}

impl TestApp {
    pub fn start_notifier(&self, settings: &Settings) -> NotifierHandle {
        let stop = CancellationToken::new();
        let deps = lijian_core::deps::Deps::connect(settings, "lijian-test-notifier").expect("deps");
        let running = lijian_notifier::start(&deps, stop.clone()).expect("start notifier");
        NotifierHandle { running, stop }
    }

    /// Sets a merchant's default callbackUrl.
    pub async fn set_callback(&self, merchant: &str, url: &str) {
        let client = self.store.client().await.expect("client");
        client
            .execute("UPDATE merchants SET callback_url = $2 WHERE merchant_id = $1", &[&merchant, &url])
            .await
            .expect("update");
    }
}

impl TestApp {
    /// When our consumers started each call to WeChat Pay (`upstream_attempts`),
    /// as records `wxpay_sim::busiest_second` reads: the rate by our own send
    /// instants, beside the simulator's count of their arrivals.
    pub async fn our_send_instants(&self) -> Vec<wxpay_sim::RequestRecord> {
        let client = self.store.client().await.expect("client");
        client
            .query("SELECT (extract(epoch FROM started_at) * 1000)::bigint FROM upstream_attempts", &[])
            .await
            .expect("attempts")
            .iter()
            .map(|r| wxpay_sim::RequestRecord {
                time_ms: r.get(0),
                out_request_no: String::new(),
                status: 200,
                mchid: String::new(),
                openid: String::new(),
            })
            .collect()
    }
}
