//! A real headless Chromium, driven through chromedriver's W3C WebDriver HTTP
//! API with plain reqwest (no WebDriver crate: the dozen endpoints the console
//! tests use are a few lines each). Debian's `chromium` and `chromium-driver`
//! packages; `.ci/run` installs them when missing. Each test's browser has a
//! profile of its own and is ended with its driver.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The W3C identifier of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    /// Where the browser saves what it downloads.
    downloads: tempfile::TempDir,
}

/// Where screenshots go, for a person to look at after the run.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/console-screenshots"))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("port").port()
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub async fn start() -> Browser {
        let port = free_port();
        // A process group of its own, so that ending it ends the browser too.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not found: apt-get install -y chromium chromium-driver (.ci/run does)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(answer) = http.get(format!("{base}/status")).send().await {
                let status: Value = answer.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = tempfile::tempdir().expect("downloads dir");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US",
                format!("--user-data-dir={}", profile.path().display()),
            ],
            "prefs": {
                "download.default_directory": downloads.path().display().to_string(),
                "download.prompt_for_download": false,
            }}
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}"));
        Browser { driver, session: format!("{base}/session/{id}"), http, _profile: profile, downloads }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.expect("WebDriver call").json().await.expect("WebDriver JSON");
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        let answer = self.post("/url", json!({ "url": url })).await;
        assert!(answer.is_null(), "navigating to {url}: {answer}");
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or_default().to_string()
    }

    /// The elements matching a CSS selector (none, or a page still loading, is
    /// an empty list).
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.post("/elements", json!({ "using": "css selector", "value": css })).await;
        found
            .as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The first element matching `css`; the test fails if there is none.
    pub async fn find(&self, css: &str) -> String {
        self.find_all(css).await.into_iter().next().unwrap_or_else(|| panic!("no element {css}"))
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/clear"), json!({})).await;
        self.post(&format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    /// Chooses `path` in the file input matching `css`.
    pub async fn choose_file(&self, css: &str, path: &std::path::Path) {
        let element = self.find(css).await;
        let answer =
            self.post(&format!("/element/{element}/value"), json!({ "text": path.display().to_string() })).await;
        assert!(answer.is_null(), "choosing {}: {answer}", path.display());
    }

    /// The content of the file the browser downloaded as `name`, once it is
    /// complete (within 10 s).
    pub async fn downloaded(&self, name: &str) -> String {
        let path = self.downloads.path().join(name);
        for _ in 0..100 {
            let partial = std::fs::read_dir(self.downloads.path())
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".crdownload")))
                .unwrap_or(false);
            if !partial {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen: Vec<String> = std::fs::read_dir(self.downloads.path())
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        panic!("no download {name}; the folder has {seen:?}")
    }

    /// Clicks the first element matching `css` (a link or a submit button: the
    /// navigation it starts has finished when this returns).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let answer = self.post(&format!("/element/{element}/click"), json!({})).await;
        assert!(answer.is_null(), "clicking {css}: {answer}");
    }

    /// The visible text of the whole page.
    pub async fn text(&self) -> String {
        // Between two pages (a navigation still landing) there may be no body yet.
        for _ in 0..50 {
            if let Some(body) = self.find_all("body").await.into_iter().next() {
                let text = self.get(&format!("/element/{body}/text")).await;
                if let Some(text) = text.as_str() {
                    return text.to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page has no body: {}", self.url().await)
    }

    /// The page's text once it contains `needle` (a click's navigation may
    /// still be landing), or as it is after 10 s.
    pub async fn text_with(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text().await;
            if text.contains(needle) || tokio::time::Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current URL once `accept` takes it, or as it is after 10 s.
    pub async fn url_when(&self, accept: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await;
            if accept(&url) || tokio::time::Instant::now() > deadline {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of an attribute of the first element matching `css`.
    pub async fn attribute(&self, css: &str, name: &str) -> String {
        let element = self.find(css).await;
        self.get(&format!("/element/{element}/attribute/{name}")).await.as_str().unwrap_or_default().to_string()
    }

    /// Runs a script in the page (the way a forged request is built in a test).
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Builds a form in the page from `fields` and submits it to `action` by
    /// POST, as a forged or tampered request would; returns once the answer loaded.
    pub async fn submit_forged_form(&self, action: &str, fields: &[(&str, &str)]) {
        let fields: Vec<Value> = fields.iter().map(|(k, v)| json!([k, v])).collect();
        let script = "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
            for (const [k, v] of arguments[1]) { const i = document.createElement('input'); i.type = 'hidden';
              i.name = k; i.value = v; f.appendChild(i); }
            f.id = 'forged'; const b = document.createElement('button'); b.type = 'submit'; b.id = 'forged-submit';
            f.appendChild(b); document.body.appendChild(f);";
        self.execute(script, json!([action, fields])).await;
        self.click("#forged-submit").await;
    }

    /// Saves the page as `target/console-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("save screenshot");
    }

    /// Ends the session (chromedriver closes the browser), then the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    /// Also when a test fails halfway: the driver's whole process group goes,
    /// the browser it started with it, so no Chromium outlives its test.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
