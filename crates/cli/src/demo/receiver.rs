//! The demo's merchant: a local HTTP endpoint that verifies every status
//! report's signature with the platform's public key and answers SUCCESS.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use lijian_core::signing::{string_to_sign, RsaPublicKey};
use tokio_util::sync::CancellationToken;

/// What the merchant saw.
#[derive(Default)]
pub struct Seen {
    /// notifyIds whose signature verified.
    pub verified: HashSet<String>,
    /// Reports whose signature did not verify (should stay 0).
    pub bad_signatures: usize,
    /// POSTs answered 503 on purpose (`--faults`), and per report how many so far.
    pub refused: usize,
    refused_per_report: std::collections::HashMap<String, u32>,
}

/// A merchant endpoint that fails: every `every`-th report (by a hash of its
/// notifyId) is answered 503 on its first `attempts` POSTs.
#[derive(Clone, Copy, Default)]
pub struct Flaky {
    pub every: u32,
    pub attempts: u32,
}

impl Flaky {
    fn refuses(&self, notify_id: &str, seen: &mut Seen) -> bool {
        if self.every == 0 || notify_id.bytes().map(u32::from).sum::<u32>() % self.every != 0 {
            return false;
        }
        let so_far = seen.refused_per_report.entry(notify_id.to_string()).or_default();
        if *so_far >= self.attempts {
            return false;
        }
        *so_far += 1;
        seen.refused += 1;
        true
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

struct Verifier {
    key: RsaPublicKey,
    seen: Arc<Mutex<Seen>>,
    flaky: Flaky,
}

pub async fn start(platform_public_pem: &str, flaky: Flaky, stop: CancellationToken) -> anyhow::Result<Receiver> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Arc::new(Verifier { key: RsaPublicKey::parse(platform_public_pem)?, seen: seen.clone(), flaky });
    let app = Router::new().route("/callback", post(report)).with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
    });
    Ok(Receiver { addr, seen })
}

/// Verifies as docs/callbacks.md tells merchants to: the string to sign from the
/// auth headers and the raw body, SHA256-RSA with the platform key.
async fn report(State(v): State<Arc<Verifier>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let auth = [
        ("businessId", header("businessId")),
        ("nonce", header("nonce")),
        ("signType", header("signType")),
        ("timestamp", header("timestamp")),
    ];
    let pairs: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let message = string_to_sign(&pairs, &body);
    let ok = header("signType") == "SHA256-RSA" && v.key.verify_base64(&message, &header("sign")).is_ok();
    let notify_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["notifyId"].as_str().map(str::to_string));
    let mut seen = v.seen.lock().unwrap_or_else(|p| p.into_inner());
    match (ok, notify_id) {
        (true, Some(id)) if v.flaky.refuses(&id, &mut seen) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        (true, Some(id)) => {
            seen.verified.insert(id);
            (StatusCode::OK, "SUCCESS")
        }
        _ => {
            seen.bad_signatures += 1;
            (StatusCode::OK, "FAIL")
        }
    }
}
