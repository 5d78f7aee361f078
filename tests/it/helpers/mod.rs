//! `spawn_app` and friends: a gateway on a free port, backed by a fresh database
//! and queue prefix, seeded with one merchant, one product and one activity.
//! Requests are signed by hand (`signed`), not with lijian's signing code.

pub mod browser;
mod child;
pub mod console;
mod docs;
pub mod proxy;
pub mod receiver;
pub mod roles;
pub mod signed;
pub mod silent;
pub mod wxpay;

pub use child::collect_stderr;
pub use docs::{doc_block, repo_file};
pub use signed::*;

use std::net::SocketAddr;
use std::time::Duration;

use aws_lc_rs::rsa::KeyPair;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::money::Fen;
use lijian_core::queue::{IssueLane, Topology};
use lijian_core::store::{NewActivity, NewMerchant, NewProduct, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const MERCHANT: &str = "m-test";
pub const BUSINESS: &str = "b-test";
pub const PRODUCT: &str = "p-test";
/// A product of another face value than the seeded activity's ([`TestApp::add_cheap_product`]).
pub const CHEAP: &str = "p-cheap";
pub const ACTIVITY: &str = "a-test";
pub const MD5_KEY: &str = "test-md5-key-0123456789";
/// Settlement price of the seeded product, 9.50 yuan.
pub const PRICE_FEN: i64 = 950;

pub fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn fixture_path(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub use lijian_core::store::with_database as with_dbname;

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The settings the gateway runs with (test database, prefix, short relay times).
    pub settings: Settings,
    /// Direct to the test database (never through a test proxy).
    pub store: Store,
    pub database_url: String,
    pub amqp_url: String,
    pub topology: Topology,
    pub signer: KeyPair,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), lijian_gateway::GatewayError>>>,
    machine: Option<Machine>,
}

/// The real `lijian` binary pointed at these settings: database, broker prefix,
/// WeChat Pay, and the test's schedules (so a child declares exactly the queues
/// the test removes). Quiet unless a test asks otherwise.
pub fn lijian_command(settings: &Settings) -> std::process::Command {
    const CARRIED: &[&str] = &[
        "LIJIAN_DATABASE_URL",
        "LIJIAN_AMQP_URL",
        "LIJIAN_QUEUE_PREFIX",
        "LIJIAN_WXPAY_BASE_URL",
        "LIJIAN_WXPAY_MCHID",
        "LIJIAN_WXPAY_SERIAL_NO",
        "LIJIAN_WXPAY_PRIVATE_KEY",
        "LIJIAN_WXPAY_PUBLIC_KEY",
        "LIJIAN_WXPAY_PUBLIC_KEY_ID",
        "LIJIAN_ISSUE_RETRY_SCHEDULE",
        "LIJIAN_NOTIFY_SCHEDULE",
        "LIJIAN_PLATFORM_PRIVATE_KEY",
        "LIJIAN_NOTIFY_ALLOW_CIDRS",
    ];
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lijian"));
    command
        .envs(settings.to_env().into_iter().filter(|(key, _)| CARRIED.contains(key)))
        .env("LIJIAN_SHUTDOWN_GRACE", "5s")
        // Any free port: tests run many roles side by side.
        .env("LIJIAN_OPS_ADDR", "127.0.0.1:0")
        .env("LIJIAN_CONSOLE_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    command
}

/// Runs `lijian ARGS` against the app's settings; it must succeed. Its stdout.
pub fn lijian_ok(app: &TestApp, args: &[&str]) -> String {
    let out = lijian_command(&app.settings).args(args).output().expect("run lijian");
    assert!(out.status.success(), "lijian {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `lijian ARGS` against the app's settings; it must fail. Its stderr.
pub fn lijian_fails(app: &TestApp, args: &[&str]) -> String {
    let out = lijian_command(&app.settings).args(args).output().expect("run lijian");
    assert!(!out.status.success(), "lijian {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stops an app the test shared through an `Arc` (every clone must be gone).
pub async fn stop_shared(app: std::sync::Arc<TestApp>) {
    let Ok(app) = std::sync::Arc::try_unwrap(app) else { panic!("the test app is still shared") };
    app.stop().await;
}

/// Tests share the machine; a timing-sensitive test (the rate limit) takes this
/// for writing and runs alone, every other app holds it for reading.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], but waits until no other test app runs and keeps the
/// machine to itself: for measurements that CPU contention would distort.
pub async fn spawn_app_alone() -> TestApp {
    let guard = MACHINE.write().await;
    let mut app = spawn_app_inner(|_| {}).await;
    app.machine = Some(Machine::Alone(guard));
    app
}

/// Like [`spawn_app`], letting the test adjust settings (e.g. route through a proxy)
/// after the database exists and before the gateway starts.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let guard = MACHINE.read().await;
    let mut app = spawn_app_inner(customise).await;
    app.machine = Some(Machine::Shared(guard));
    app
}

/// For heavy work without a test app (the demo as a child process): holds the
/// machine shared, so a test that measures alone never runs beside it.
pub async fn share_machine() -> Machine {
    Machine::Shared(MACHINE.read().await)
}

/// How a test app holds the machine (see [`MACHINE`]); released when dropped.
pub enum Machine {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

async fn spawn_app_inner(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let mut settings = Settings::default();
    settings.apply_env(|k| std::env::var(k).ok()).expect("LIJIAN_* settings");
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let db_name = format!("lijian_t_{stamp}_{}", random_hex(4));
    let base_db_url = settings.database.url.clone();
    settings.database.url = with_dbname(&base_db_url, &db_name);
    settings.broker.queue_prefix = format!("t{}", random_hex(6));
    settings.gateway.http_addr = "127.0.0.1:0".into();
    settings.producer.relay_interval = Duration::from_millis(200);
    settings.producer.relay_grace = Duration::from_millis(500);
    settings.database.pool_size = 8;
    settings.consumer.retry_schedule = vec![
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_millis(400),
    ];
    settings.wxpay.mchid = Some(wxpay::MCHID.into());
    settings.wxpay.serial_no = Some(wxpay::SERIAL_NO.into());
    settings.wxpay.private_key = Some(fixture_path("wxpay-merchant-private.pem").into());
    settings.wxpay.public_key = Some(fixture_path("wxpay-platform-public.pem").into());
    settings.wxpay.public_key_id = Some(wxpay::PUBLIC_KEY_ID.into());
    settings.wxpay.timeout = Duration::from_secs(2);
    settings.process.shutdown_grace = Duration::from_secs(5);
    settings.notifier.platform_private_key = Some(fixture_path("platform-private.pem").into());
    settings.notifier.schedule = vec![Duration::from_millis(100); 3];
    settings.notifier.timeout = Duration::from_secs(2);
    settings.notifier.allow_cidrs = Some("127.0.0.0/8".into());
    settings.notifier.relay_interval = Duration::from_millis(50);
    prune_stale_databases(&base_db_url).await;
    lijian_core::store::migrate(&settings.database.url).await.expect("migrate test database");
    let database_url = settings.database.url.clone();
    let amqp_url = settings.broker.url.clone();
    let store = Store::connect(&database_url, 4).expect("store");
    seed(&store).await;
    customise(&mut settings);
    let shutdown = CancellationToken::new();
    let deps = Deps::connect(&settings, "lijian-test-gateway").expect("deps");
    let running = lijian_gateway::start(&deps, shutdown.clone()).await.expect("start gateway");
    TestApp {
        addr: running.addr,
        topology: Topology::from_settings(&settings),
        settings,
        store,
        database_url,
        amqp_url,
        signer: test_signer(),
        http: reqwest::Client::new(),
        shutdown,
        task: Some(running.task),
        machine: None,
    }
}

async fn seed(store: &Store) {
    let now = time::OffsetDateTime::now_utc();
    store
        .add_merchant(&NewMerchant {
            merchant_id: MERCHANT.into(),
            business_id: BUSINESS.into(),
            name: "Test Shop".into(),
            rsa_public_key: Some(fixture("merchant-test-public.pem")),
            md5_key: Some(MD5_KEY.into()),
            opening_balance: Fen(1_000_000),
            ..Default::default()
        })
        .await
        .expect("seed merchant");
    store
        .add_product(&NewProduct { product_code: PRODUCT.into(), face_value: Fen(1000), price: Fen(PRICE_FEN) })
        .await
        .expect("seed product");
    store
        .add_activity(&activity(
            ACTIVITY,
            MERCHANT,
            100_000,
            now - time::Duration::hours(1),
            now + time::Duration::days(30),
        ))
        .await
        .expect("seed activity");
}

pub fn activity(
    id: &str,
    merchant: &str,
    budget: i64,
    starts: time::OffsetDateTime,
    ends: time::OffsetDateTime,
) -> NewActivity {
    NewActivity {
        activity_id: id.into(),
        merchant_id: merchant.into(),
        stock_id: "9856000".into(),
        stock_creator_mchid: "1900000001".into(),
        appid: "wxtestappid0000001".into(),
        face_value: Fen(1000),
        budget,
        starts,
        ends,
        issuer_mchid: None,
    }
}

/// Drops test databases left by crashed runs more than two hours ago.
async fn prune_stale_databases(base_url: &str) {
    let Ok(admin) = Store::connect(&with_dbname(base_url, "postgres"), 1) else { return };
    let Ok(client) = admin.client().await else { return };
    let cutoff = time::OffsetDateTime::now_utc().unix_timestamp() - 7200;
    let Ok(rows) = client.query("SELECT datname FROM pg_database WHERE datname LIKE 'lijian\\_t\\_%'", &[]).await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let stamp: i64 = name.split('_').nth(2).and_then(|s| s.parse().ok()).unwrap_or(i64::MAX);
        if stamp < cutoff {
            let _ = lijian_core::store::drop_database(&with_dbname(base_url, &name)).await;
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request exactly as built; returns the JSON answer (HTTP must be 200).
    pub async fn send(&self, path: &str, req: &Req) -> Value {
        self.send_to(&self.url(path), req).await
    }

    /// [`TestApp::send`] to any gateway (e.g. one in a child process).
    pub async fn send_to(&self, url: &str, req: &Req) -> Value {
        let mut builder = self
            .http
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("businessId", &req.business_id)
            .header("nonce", &req.nonce)
            .header("timestamp", &req.timestamp)
            .header("sign", &req.sign)
            .body(req.body.clone());
        if let Some(st) = &req.sign_type {
            builder = builder.header("signType", st);
        }
        let resp = builder.send().await.expect("HTTP request");
        assert_eq!(resp.status(), 200, "every answer is HTTP 200");
        resp.json().await.expect("JSON answer")
    }

    /// A correctly RSA-signed order request for the seeded merchant.
    pub async fn order(&self, biz_code: &str) -> Value {
        self.send("/v1/openapi/order/wechat/coupons", &Req::new(&order_body(biz_code)).signed_rsa(&self.signer)).await
    }

    pub async fn post_signed(&self, path: &str, body: &str) -> Value {
        self.send(path, &Req::new(body).signed_rsa(&self.signer)).await
    }

    /// Takes every job currently in the issue queues, interactive and campaign
    /// (acking them); the order codes of single (v1) and bulk (v2) jobs.
    pub async fn take_issue_jobs(&self) -> Vec<String> {
        let mut codes = self.take_lane_jobs(IssueLane::Interactive).await;
        codes.extend(self.take_lane_jobs(IssueLane::Campaign).await);
        codes
    }

    /// Takes every job currently in one issue lane's queue, checking each says
    /// its lane; their order codes.
    pub async fn take_lane_jobs(&self, lane: IssueLane) -> Vec<String> {
        let connection = lijian_core::queue::connect(&self.amqp_url, "lijian-test").await.expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        let mut codes = Vec::new();
        while let Some(message) = channel
            .basic_get(self.topology.issue_lane_queue(lane).as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic_get")
        {
            let (_, said) = lijian_core::queue::IssueJob::from_bytes_in(&message.delivery.data).expect("an issue job");
            assert_eq!(said, lane, "a job in the {lane} queue says so");
            let job: Value = serde_json::from_slice(&message.delivery.data).expect("job JSON");
            match job["v"].as_u64() {
                Some(1) => codes.push(job["orderCode"].as_str().expect("orderCode").to_string()),
                Some(2) => codes.extend(
                    job["orderCodes"]
                        .as_array()
                        .expect("orderCodes")
                        .iter()
                        .map(|c| c.as_str().expect("code").to_string()),
                ),
                _ => panic!("job is versioned: {job}"),
            }
            message.delivery.ack(BasicAckOptions::default()).await.expect("ack");
        }
        let _ = connection.close(200, "done".into()).await;
        codes
    }

    /// Polls the issue queue until `n` jobs were taken or `timeout` passed.
    pub async fn wait_for_issue_jobs(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut codes = Vec::new();
        while codes.len() < n && tokio::time::Instant::now() < deadline {
            codes.extend(self.take_issue_jobs().await);
            if codes.len() < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        codes
    }

    /// Registers another merchant (business `b-{id}`, the test RSA key) with an
    /// activity `a-{id}` of `budget` coupons.
    pub async fn add_merchant(&self, id: &str, balance_fen: i64, allow_ips: &[&str], budget: i64) {
        let now = time::OffsetDateTime::now_utc();
        self.store
            .add_merchant(&NewMerchant {
                merchant_id: id.into(),
                business_id: format!("b-{id}"),
                name: id.into(),
                rsa_public_key: Some(fixture("merchant-test-public.pem")),
                allow_ips: allow_ips.iter().map(|c| c.parse().expect("cidr")).collect(),
                opening_balance: Fen(balance_fen),
                ..Default::default()
            })
            .await
            .expect("add merchant");
        let a =
            activity(&format!("a-{id}"), id, budget, now - time::Duration::hours(1), now + time::Duration::days(30));
        self.store.add_activity(&a).await.expect("add activity");
    }

    /// A signed order for a merchant made by [`TestApp::add_merchant`].
    pub async fn order_for(&self, merchant: &str, biz_code: &str) -> Value {
        let business = format!("b-{merchant}");
        let body = order_body_full(merchant, &business, &format!("a-{merchant}"), biz_code);
        let mut req = Req::new(&body);
        req.business_id = business;
        self.send("/v1/openapi/order/wechat/coupons", &req.signed_rsa(&self.signer)).await
    }

    pub async fn balance(&self, merchant: &str) -> i64 {
        self.store.show_merchant(merchant).await.expect("merchant").balance.0
    }

    /// Adds [`CHEAP`]: a 1-yuan product sold at 0.01, whose face value is not
    /// the seeded activity's 10-yuan coupon (the price rule must refuse it).
    pub async fn add_cheap_product(&self) {
        let cheap = lijian_core::store::NewProduct {
            product_code: CHEAP.into(),
            face_value: lijian_core::money::Fen(100),
            price: lijian_core::money::Fen(1),
        };
        self.store.add_product(&cheap).await.expect("product");
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.store.client().await.expect("client");
        client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
    }

    /// Every campaign's stored order total (`campaigns.total_orders`, which the
    /// lists show instead of counting) checked against its orders counted;
    /// answers the orders of all campaigns, for the caller to check too.
    pub async fn campaign_totals_match(&self) -> i64 {
        let client = self.store.client().await.expect("client");
        let rows = client
            .query(
                "SELECT c.name, c.total_orders, (SELECT count(*) FROM orders o WHERE o.campaign = c.name)
                   FROM campaigns c ORDER BY c.name",
                &[],
            )
            .await
            .expect("campaign totals");
        let mut all = 0;
        for r in rows {
            let (name, stored, counted): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
            assert_eq!(stored, counted, "campaign {name}: stored total_orders {stored}, {counted} orders");
            all += counted;
        }
        all
    }

    /// Stops the gateway, deletes the queues and drops the database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.remove_queues_and_database().await;
    }

    async fn remove_queues_and_database(&self) {
        self.topology.remove(&self.amqp_url).await;
        let _ = lijian_core::store::drop_database(&self.database_url).await;
    }
}

impl Drop for TestApp {
    /// A test that panicked before `stop()` still removes its queues and database,
    /// on a thread of its own (the test's runtime may be gone).
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        task.abort();
        self.shutdown.cancel();
        let leftover = TestApp {
            addr: self.addr,
            settings: self.settings.clone(),
            store: self.store.clone(),
            database_url: self.database_url.clone(),
            amqp_url: self.amqp_url.clone(),
            topology: self.topology.clone(),
            signer: test_signer(),
            http: self.http.clone(),
            shutdown: self.shutdown.clone(),
            task: None,
            machine: None,
        };
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(leftover.remove_queues_and_database());
        })
        .join();
    }
}
