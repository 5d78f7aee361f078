//! The operator console in a test: started in-process on a free port against
//! the test's database and broker; operators made with the real `lijian
//! operator` commands (so their output is read as a person reads it).

use std::net::SocketAddr;
use std::time::Duration;

use lijian_core::config::Settings;
use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::browser::Browser;
use super::{lijian_ok, TestApp};

pub struct ConsoleHandle {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleHandle {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

impl TestApp {
    /// A console on a free port with `settings` (the app's, adjusted).
    pub async fn start_console_with(&self, settings: &Settings) -> ConsoleHandle {
        let mut settings = settings.clone();
        settings.console.addr = "127.0.0.1:0".into();
        let stop = CancellationToken::new();
        let deps = lijian_core::deps::Deps::connect(&settings, "lijian-test-console").expect("deps");
        let running = lijian_console::start(&deps, stop.clone()).await.expect("start console");
        ConsoleHandle { addr: running.addr, stop, task: running.task }
    }

    pub async fn start_console(&self) -> ConsoleHandle {
        self.start_console_with(&self.settings).await
    }

    /// `lijian operator add`; returns the password it printed once.
    pub fn add_operator(&self, name: &str, role: &str) -> String {
        let out = lijian_ok(self, &["operator", "add", "--name", name, "--role", role]);
        assert!(out.contains(&format!("operator {name} added ({role})")), "{out}");
        out.lines().last().expect("password line").trim().to_string()
    }

    /// `lijian operator token`; returns the token it printed once.
    pub fn operator_token(&self, name: &str) -> String {
        let out = lijian_ok(self, &["operator", "token", "--name", name]);
        out.lines().last().expect("token line").trim().to_string()
    }
}

/// Signs in through the form; the browser then shows `next` (or the overview).
/// The console started, operator `name` added with `role` and signed in
/// through the form in a new browser: how most browser tests begin.
pub async fn signed_in(app: &TestApp, name: &str, role: &str) -> (ConsoleHandle, Browser) {
    let console = app.start_console().await;
    let password = app.add_operator(name, role);
    let browser = Browser::start().await;
    sign_in(&browser, &console, name, &password).await;
    (console, browser)
}

pub async fn sign_in(browser: &Browser, console: &ConsoleHandle, name: &str, password: &str) {
    browser.goto(&console.url("/login")).await;
    browser.type_into("input[name=name]", name).await;
    browser.type_into("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    let url = browser.url_when(|u| !u.contains("/login")).await;
    assert!(!url.contains("/login"), "{name} could not sign in: {}", browser.text().await);
}

/// A campaign file of six rows, three of them bad (an empty openId, one with
/// a space and a '!', one with an unknown product), for the upload tests.
pub const UPLOAD_CSV: &str = "openId,productCode\noUp1,\n,p-test\noUp3,\no bad!,\noUp5,p-nope\noUp6,\n";

/// The bad rows of [`UPLOAD_CSV`]: (line, as an editor counts them, the
/// header being line 1; the row as written).
pub const UPLOAD_BAD_LINES: [(u64, &str); 3] = [(3, ",p-test"), (5, "o bad!,"), (6, "oUp5,p-nope")];

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub async fn get_json(console: &ConsoleHandle, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(console.url(path)).header(ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let answer = request.send().await.expect("GET");
    (answer.status(), answer.json().await.unwrap_or_default())
}

pub async fn post_json(console: &ConsoleHandle, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let answer = client()
        .post(console.url(path))
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    (answer.status(), answer.json().await.unwrap_or_default())
}

/// Signs `ana` in through the form like a browser (form token cookie, then
/// the session cookie); returns the `Cookie` header to send.
pub async fn browser_session(app: &TestApp, console: &ConsoleHandle) -> String {
    let password = app.add_operator("bo", "admin");
    let (status, session) = sign_in_form(console, "bo", &password).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    session.expect("a session cookie")
}

/// One sign-in through the form: (status, `lijian_session=…` if one was set).
pub async fn sign_in_form(console: &ConsoleHandle, name: &str, password: &str) -> (StatusCode, Option<String>) {
    let form = client().get(console.url("/login")).send().await.expect("GET /login");
    let token_cookie = form
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lijian_login="))
        .expect("form token cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let token = token_cookie.trim_start_matches("lijian_login=").to_string();
    let answer = client()
        .post(console.url("/login"))
        .header(COOKIE, &token_cookie)
        .form(&[("name", name), ("password", password), ("login_token", &token), ("next", "/")])
        .send()
        .await
        .expect("POST /login");
    let status = answer.status();
    let session = answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lijian_session="))
        .map(str::to_string);
    if status.is_server_error() {
        panic!("sign-in failed: {}", answer.text().await.unwrap_or_default());
    }
    (status, session)
}
