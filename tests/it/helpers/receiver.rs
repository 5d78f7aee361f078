//! A merchant's callback endpoint: a real local HTTP server that records every
//! report (headers and raw body) and answers as the test scripts it. Reports are
//! verified here with code that shares nothing with lijian: the string is built by
//! hand and RSA is aws-lc-rs called directly.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio_util::sync::CancellationToken;

use super::{fixture, md5_upper};

/// How the endpoint answers one report.
#[derive(Clone, Debug)]
pub enum Answer {
    Reply(u16, &'static str),
    /// Accept the request, never answer.
    BlackHole,
    Redirect(String),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("report body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or_default()
    }

    /// The documented string: sorted auth headers (sign excluded) + raw body.
    pub fn string_to_sign(&self) -> Vec<u8> {
        let mut s = format!(
            "businessId={}&nonce={}&signType={}&timestamp={}",
            self.header("businessId"),
            self.header("nonce"),
            self.header("signType"),
            self.header("timestamp")
        )
        .into_bytes();
        s.extend_from_slice(&self.body);
        s
    }

    /// SHA256-RSA with the platform public key, or MD5 with `md5_key`.
    pub fn verifies(&self, md5_key: Option<&str>) -> bool {
        match self.header("signType") {
            "SHA256-RSA" => {
                let pem = fixture("platform-public.pem");
                let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("key");
                let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(self.header("sign")) else {
                    return false;
                };
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).verify(&self.string_to_sign(), &sig).is_ok()
            }
            "MD5" => md5_key.is_some_and(|k| md5_upper(&self.string_to_sign(), k) == self.header("sign")),
            _ => false,
        }
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    /// After the script runs out.
    then: Option<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Answers `script` in order, then `then` for ever.
    pub async fn start(script: Vec<Answer>, then: Answer) -> Receiver {
        let state = Arc::new(Mutex::new(State { script: script.into(), then: Some(then), received: Vec::new() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let handler_state = state.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = handler_state.clone();
            async move { answer(state, headers, body).await }
        });
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        Receiver { addr, state, stop }
    }

    pub async fn healthy() -> Receiver {
        Receiver::start(Vec::new(), Answer::Reply(200, "SUCCESS")).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/lijian/callback", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("receiver").received.clone()
    }

    /// Distinct notifyIds received.
    pub fn notify_ids(&self) -> std::collections::HashSet<String> {
        self.received().iter().map(|r| r.json()["notifyId"].as_str().unwrap_or_default().to_string()).collect()
    }

    pub async fn wait_for(&self, distinct: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.notify_ids().len() < distinct && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.notify_ids().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.state) <= 2 {
            self.stop.cancel();
        }
    }
}

async fn answer(state: Arc<Mutex<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let next = {
        let mut s = state.lock().expect("receiver");
        s.received.push(Received {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body: body.to_vec(),
        });
        let then = s.then.clone();
        s.script.pop_front().or(then).unwrap_or(Answer::Reply(200, "SUCCESS"))
    };
    match next {
        Answer::Reply(code, text) => (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), text).into_response(),
        Answer::BlackHole => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Answer::Redirect(to) => (StatusCode::FOUND, [("Location", to)], "").into_response(),
    }
}
