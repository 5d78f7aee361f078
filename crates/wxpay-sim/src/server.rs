//! The simulator's HTTP server. Built on hyper directly (not axum) because one
//! fault — "issue the coupon, then drop the connection without answering" — needs
//! a service that can fail a request, which closes the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::protocol::{parse_authorization, sign_response, verify_request};
use crate::state::{Refusal, RequestRecord, SimState};

/// A merchant account the simulator knows besides the default one: requests
/// whose Authorization names `mchid` are verified with `public_key` and counted
/// against `rate` of their own.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub mchid: String,
    /// PEM: the public key of the account's merchant API key.
    pub public_key: String,
    /// Requests per second before 429 FREQUENCY_LIMITED; None = unlimited.
    pub rate: Option<u32>,
}

/// Everything `lijian sim wxpay` can set.
#[derive(Clone)]
pub struct SimConfig {
    pub addr: String,
    /// PEM: the public key of the merchant private key lijian signs with, for
    /// any mchid not in `accounts`. Empty: only `accounts` exist.
    pub merchant_public_key: String,
    /// PEM: the simulator's own key, signing its answers (WeChat Pay's key).
    pub private_key: String,
    /// Sent as `Wechatpay-Serial`, e.g. `PUB_KEY_ID_0114232134912410000000000000000`.
    pub public_key_id: String,
    /// When set, any other mchid not in `accounts` is answered 400 MCH_NOT_EXISTS.
    pub mchid: Option<String>,
    /// Further merchant accounts, each with its own key and rate.
    pub accounts: Vec<SimAccount>,
    /// When non-empty, any other appid is answered 400 APPID_MCHID_NOT_MATCH.
    pub appids: Vec<String>,
    /// The default merchant's requests per second before 429 FREQUENCY_LIMITED
    /// (aligned one-second windows); None = unlimited.
    pub rate: Option<u32>,
    /// WeChat's behaviour for concurrent sends to one user: a request arriving
    /// while another for the same (mchid, openid) is being processed is answered
    /// 403 RULE_LIMIT. Overlaps are counted in `/__sim/stats` either way.
    pub strict_openid: bool,
    /// Mean processing latency; each request waits uniformly 0.5×–1.5× of it.
    pub latency_ms: u64,
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub throttle_rate: f64,
    pub drop_after_issue: f64,
    /// Budgets of known stocks; unknown stocks are created unlimited on first use.
    pub stocks: HashMap<String, u64>,
    pub max_per_user: u32,
    /// How long a simulated timeout holds the request before dropping it.
    pub timeout_hold: Duration,
}

/// The simulator's private key stays out of `{:?}`.
impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("addr", &self.addr)
            .field("merchant_public_key", &self.merchant_public_key)
            .field("private_key", &"<redacted>")
            .field("public_key_id", &self.public_key_id)
            .field("mchid", &self.mchid)
            .field("accounts", &self.accounts)
            .field("appids", &self.appids)
            .field("rate", &self.rate)
            .field("strict_openid", &self.strict_openid)
            .field("latency_ms", &self.latency_ms)
            .field("error_rate", &self.error_rate)
            .field("timeout_rate", &self.timeout_rate)
            .field("throttle_rate", &self.throttle_rate)
            .field("drop_after_issue", &self.drop_after_issue)
            .field("stocks", &self.stocks)
            .field("max_per_user", &self.max_per_user)
            .field("timeout_hold", &self.timeout_hold)
            .finish()
    }
}

impl SimConfig {
    /// A well-behaved simulator: no faults, no rate limit, no latency.
    pub fn new(addr: &str, merchant_public_key: &str, private_key: &str, public_key_id: &str) -> SimConfig {
        SimConfig {
            addr: addr.into(),
            merchant_public_key: merchant_public_key.into(),
            private_key: private_key.into(),
            public_key_id: public_key_id.into(),
            mchid: None,
            accounts: Vec::new(),
            appids: Vec::new(),
            rate: None,
            strict_openid: false,
            latency_ms: 0,
            error_rate: 0.0,
            timeout_rate: 0.0,
            throttle_rate: 0.0,
            drop_after_issue: 0.0,
            stocks: HashMap::new(),
            max_per_user: 60,
            timeout_hold: Duration::from_secs(30),
        }
    }
}

pub struct RunningSim {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

struct Shared {
    config: SimConfig,
    merchant_key: Option<RsaPublicKey>,
    accounts: HashMap<String, Account>,
    own_key: RsaPrivateKey,
    state: Mutex<SimState>,
    /// True while `POST /__sim/hold` is in force: requests that would be
    /// answered wait until `POST /__sim/release` (a call in flight, on cue).
    held: tokio::sync::watch::Sender<bool>,
}

struct Account {
    key: RsaPublicKey,
    rate: Option<u32>,
}

/// Holds (mchid, openid) in flight until the answer is produced (or the request
/// is dropped).
struct InFlight {
    shared: Arc<Shared>,
    mchid: String,
    openid: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.leave(&self.mchid, &self.openid);
        }
    }
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("merchant public key: {0}")]
    MerchantKey(String),
    #[error("public key of account {0}: {1}")]
    AccountKey(String, String),
    #[error("no merchant known: give a merchant public key or at least one account")]
    NoMerchant,
    #[error("simulator private key: {0}")]
    OwnKey(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

/// Binds and serves until `shutdown`.
pub async fn start(config: SimConfig, shutdown: CancellationToken) -> Result<RunningSim, SimError> {
    let merchant_key = match config.merchant_public_key.trim() {
        "" if config.accounts.is_empty() => return Err(SimError::NoMerchant),
        "" => None,
        pem => Some(RsaPublicKey::parse(pem).map_err(|e| SimError::MerchantKey(e.to_string()))?),
    };
    let mut accounts = HashMap::new();
    for a in &config.accounts {
        let key =
            RsaPublicKey::parse(&a.public_key).map_err(|e| SimError::AccountKey(a.mchid.clone(), e.to_string()))?;
        accounts.insert(a.mchid.clone(), Account { key, rate: a.rate });
    }
    let own_key = RsaPrivateKey::from_pem(&config.private_key).map_err(|e| SimError::OwnKey(e.to_string()))?;
    let listener = TcpListener::bind(&config.addr).await.map_err(|e| SimError::Bind(config.addr.clone(), e))?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind(config.addr.clone(), e))?;
    let state = Mutex::new(SimState::new(config.stocks.clone()));
    let held = tokio::sync::watch::Sender::new(false);
    let shared = Arc::new(Shared { config, merchant_key, accounts, own_key, state, held });
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let shared = shared.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(shared.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    });
    Ok(RunningSim { addr, task })
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/__sim/ledger") => {
            let ledger = shared.state.lock().map(|s| json!(s.ledger)).unwrap_or(Value::Null);
            Ok(json_response(StatusCode::OK, &ledger))
        }
        (&Method::GET, "/__sim/stats") => {
            let stats = shared.state.lock().map(|s| json!(s.stats)).unwrap_or(Value::Null);
            Ok(json_response(StatusCode::OK, &stats))
        }
        (&Method::GET, "/__sim/requests") => {
            let requests = shared.state.lock().map(|s| json!(s.requests)).unwrap_or(Value::Null);
            Ok(json_response(StatusCode::OK, &requests))
        }
        (&Method::POST, "/__sim/hold" | "/__sim/release") => {
            shared.held.send_replace(path == "/__sim/hold");
            Ok(json_response(StatusCode::OK, &json!({"held": path == "/__sim/hold"})))
        }
        (&Method::POST, p) if p.starts_with("/v3/marketing/favor/users/") && p.ends_with("/coupons") => {
            send_coupon(shared, req).await
        }
        _ => Ok(json_response(StatusCode::NOT_FOUND, &json!({"code": "NOT_FOUND", "message": "no such API"}))),
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"code": code, "message": message}))
}

async fn send_coupon(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let received = now_ms();
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let openid =
        req.uri().path().trim_start_matches("/v3/marketing/favor/users/").trim_end_matches("/coupons").to_string();
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let fields: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let out_request_no = fields["out_request_no"].as_str().unwrap_or_default().to_string();
    let mchid = parse_authorization(authorization.as_deref().unwrap_or_default()).map(|a| a.mchid).unwrap_or_default();
    let mut log = RequestRecord {
        time_ms: received,
        out_request_no: out_request_no.clone(),
        status: 0,
        mchid: mchid.clone(),
        openid: openid.clone(),
    };
    let mut record = |status: u16| {
        log.status = status;
        if let Ok(mut s) = shared.state.lock() {
            s.record(log.clone());
        }
    };

    let cfg = &shared.config;
    let (bucket, limit) = match shared.accounts.get(&mchid) {
        Some(account) => (Some(mchid.as_str()), account.rate),
        None => (None, cfg.rate),
    };
    let (admitted, alone) = shared
        .state
        .lock()
        .map(|mut s| (s.admit(received, &mchid, bucket, limit), s.enter(&mchid, &openid)))
        .unwrap_or((true, true));
    let in_flight = InFlight { shared: shared.clone(), mchid, openid: openid.clone() };
    let verdict = if !admitted {
        Err(error(429, "FREQUENCY_LIMITED", "rate limited"))
    } else {
        check_request(&shared, authorization.as_deref(), &path_and_query, &body, &fields).and_then(|()| {
            if cfg.strict_openid && !alone {
                Err(error(
                    403,
                    "RULE_LIMIT",
                    "同一用户的发券请求正在处理中: another request for this user is in progress",
                ))
            } else {
                Ok(())
            }
        })
    };
    let (status, answer) = match verdict {
        Err(refusal) => refusal,
        Ok(()) => {
            let roll: f64 = rand::random();
            if roll < cfg.throttle_rate {
                error(429, "FREQUENCY_LIMITED", "simulated throttling")
            } else if roll < cfg.throttle_rate + cfg.error_rate {
                error(500, "SYSTEM_ERROR", "simulated system error")
            } else if roll < cfg.throttle_rate + cfg.error_rate + cfg.timeout_rate {
                // A network black hole, not processing: the user is free again.
                drop(in_flight);
                tokio::time::sleep(cfg.timeout_hold).await;
                record(0);
                return Err(Dropped);
            } else {
                let _ = shared.held.subscribe().wait_for(|held| !*held).await;
                if cfg.latency_ms > 0 {
                    let jitter: f64 = 0.5 + rand::random::<f64>();
                    tokio::time::sleep(Duration::from_micros((cfg.latency_ms as f64 * 1000.0 * jitter) as u64)).await;
                }
                let stock_id = fields["stock_id"].as_str().unwrap_or_default();
                let issued = shared.state.lock().map_err(|_| Dropped)?.issue(
                    &out_request_no,
                    &openid,
                    stock_id,
                    cfg.max_per_user,
                    now_ms(),
                );
                match issued {
                    Ok(coupon) => {
                        if rand::random::<f64>() < cfg.drop_after_issue {
                            record(0);
                            return Err(Dropped);
                        }
                        (200, json!({"coupon_id": coupon.coupon_id}))
                    }
                    Err(Refusal::NotEnough) => error(403, "NOT_ENOUGH", "批次预算不足"),
                    Err(Refusal::RuleLimit) => error(403, "RULE_LIMIT", "用户已达到该批次领券上限"),
                }
            }
        }
    };
    let bytes = answer.to_string().into_bytes();
    let mut resp = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &answer);
    if let Ok(headers) = sign_response(&shared.own_key, &cfg.public_key_id, &bytes) {
        for (name, value) in headers {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    record(status);
    drop(in_flight);
    Ok(resp)
}

/// Authentication and request validation, in WeChat's order of precedence.
fn check_request(
    shared: &Shared,
    authorization: Option<&str>,
    path_and_query: &str,
    body: &[u8],
    fields: &Value,
) -> Result<(), (u16, Value)> {
    let auth = parse_authorization(authorization.unwrap_or_default()).map_err(|e| error(401, "SIGN_ERROR", &e))?;
    let no_such_merchant = || error(400, "MCH_NOT_EXISTS", "商户号不存在");
    let account = shared.accounts.get(&auth.mchid);
    let key = match account {
        Some(account) => &account.key,
        None => shared.merchant_key.as_ref().ok_or_else(no_such_merchant)?,
    };
    verify_request(key, &auth, "POST", path_and_query, body)
        .map_err(|_| error(401, "SIGN_ERROR", "签名错误: signature does not verify with the merchant certificate"))?;
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - auth.timestamp.parse::<i64>().unwrap_or(0);
    if age.abs() > 300 {
        return Err(error(401, "SIGN_ERROR", "timestamp expired"));
    }
    if account.is_none() && shared.config.mchid.as_deref().is_some_and(|m| m != auth.mchid) {
        return Err(no_such_merchant());
    }
    if fields.get("coupon_value").is_some() || fields.get("coupon_minimum").is_some() {
        return Err(error(400, "PARAM_ERROR", "coupon_value/coupon_minimum are not accepted for this stock"));
    }
    let text = |k: &str| fields[k].as_str().filter(|s| !s.is_empty());
    let (Some(_), Some(out_request_no), Some(appid), Some(_)) =
        (text("stock_id"), text("out_request_no"), text("appid"), text("stock_creator_mchid"))
    else {
        return Err(error(400, "PARAM_ERROR", "stock_id, out_request_no, appid and stock_creator_mchid are required"));
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_|*-".contains(c);
    if out_request_no.len() > 128 || !out_request_no.chars().all(allowed) {
        return Err(error(400, "PARAM_ERROR", "out_request_no must be [0-9A-Za-z_|*-], at most 128"));
    }
    if !shared.config.appids.is_empty() && !shared.config.appids.iter().any(|a| a == appid) {
        return Err(error(400, "APPID_MCHID_NOT_MATCH", "appid 与 mchid 不匹配"));
    }
    Ok(())
}

/// Like [`start`], but on threads of its own, as the real WeChat Pay runs apart
/// from its callers: sharing a runtime with a busy caller (a test, a benchmark's
/// bookkeeping) delays accepting, and requests our consumers sent evenly were
/// stamped together on arrival (measured: 104 requests in 20 ms after a 200 ms
/// stall of the bench's runtime, while the consumer's own send instants stayed
/// 1 per 2 ms). Serves until `shutdown`; answers once listening.
pub async fn start_on_own_thread(config: SimConfig, shutdown: CancellationToken) -> Result<SocketAddr, SimError> {
    let (started, addr) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("wxpay-sim".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wxpay-sim-worker")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = started.send(Err(SimError::Bind(config.addr.clone(), e)));
                    return;
                }
            };
            runtime.block_on(async move {
                match start(config, shutdown.clone()).await {
                    Ok(running) => {
                        let _ = started.send(Ok(running.addr));
                        shutdown.cancelled().await;
                        let _ = running.task.await;
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| SimError::Bind("a thread for the simulator".into(), e))?;
    addr.await.map_err(|_| SimError::Bind("a thread for the simulator".into(), std::io::Error::other("it ended")))?
}
