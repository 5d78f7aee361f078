//! Issue 13's campaign upload over HTTP: `POST /campaigns` refused without a
//! token (401), to a viewer (403) and without the session's CSRF token (403);
//! by token it loads as `lijian load` does (the same rejects file, byte for
//! byte) while the body is still arriving; the rejects download and the audit
//! line.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::console::{browser_session, client, get_json};
use crate::helpers::console::{ConsoleHandle, UPLOAD_BAD_LINES, UPLOAD_CSV};
use crate::helpers::*;

fn upload_form(campaign: &str, csv: &'static str, csrf: Option<&str>) -> Form {
    let mut form = Form::new();
    if let Some(csrf) = csrf {
        form = form.text("csrf", csrf.to_string());
    }
    form.text("merchant_id", MERCHANT)
        .text("activity_id", ACTIVITY)
        .text("product_code", PRODUCT)
        .text("campaign", campaign.to_string())
        .part(
            "file",
            Part::bytes(csv.as_bytes()).file_name(format!("{campaign}.csv")).mime_str("text/csv").expect("mime"),
        )
}

async fn upload_by_token(console: &ConsoleHandle, token: Option<&str>, form: Form) -> (StatusCode, Value) {
    let mut request = client().post(console.url("/campaigns")).header(ACCEPT, "application/json").multipart(form);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let answer = request.send().await.expect("POST /campaigns");
    (answer.status(), answer.json().await.unwrap_or_default())
}

async fn campaigns(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM campaigns").await
}

#[tokio::test]
async fn an_upload_needs_a_token_an_admin_and_the_sessions_csrf_token() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("vic", "viewer");
    let viewer = app.operator_token("vic");

    let (status, body) = upload_by_token(&console, None, upload_form("nope", UPLOAD_CSV, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = upload_by_token(&console, Some(&viewer), upload_form("nope", UPLOAD_CSV, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("vic is a viewer"), "{body}");

    // A browser's session: without the form's CSRF token, or with another, refused.
    let cookie = browser_session(&app, &console).await;
    let page = client().get(console.url("/campaigns")).header(COOKIE, &cookie).send().await.expect("page");
    let page = page.text().await.expect("html");
    assert!(page.contains("enctype=\"multipart/form-data\""), "an admin sees the upload form");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf").to_string();
    for token in [None, Some("0".repeat(64))] {
        let answer = client()
            .post(console.url("/campaigns"))
            .header(COOKIE, &cookie)
            .multipart(upload_form("nope", UPLOAD_CSV, token.as_deref()))
            .send()
            .await
            .expect("POST");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        assert!(answer.text().await.unwrap_or_default().contains("CSRF token is missing or wrong"));
    }
    assert_eq!(campaigns(&app).await, 0, "nothing loaded by a refused upload");

    // With it: loaded, and the browser is sent to the campaign's page.
    let answer = client()
        .post(console.url("/campaigns"))
        .header(COOKIE, &cookie)
        .multipart(upload_form("autumn", UPLOAD_CSV, Some(&csrf)))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/campaigns/autumn");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE campaign = 'autumn'").await, 3);
    let page = client().get(console.url("/campaigns/autumn")).header(COOKIE, &cookie).send().await.expect("page");
    let page = page.text().await.expect("html");
    assert!(page.contains("upload autumn.csv: 3 accepted, 0 duplicates, 3 rejected"), "{page}");
    assert!(page.contains("href=\"/campaigns/autumn/rejects\""), "{page}");
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn an_upload_by_token_streams_into_the_loader_and_leaves_the_clis_rejects_file() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("ana", "admin");
    let token = app.operator_token("ana");
    lijian_ok(&app, &["merchant", "topup", "--merchant-id", MERCHANT, "--amount", "500000"]);

    // The same file through `lijian load`: the reference rejects file.
    let dir = tempfile::tempdir().expect("tempdir");
    let first_rows = 25_000; // more than a loader batch (20,000): stored before the upload ends
    let mut csv = String::from("openId,productCode\n");
    for i in 0..first_rows {
        csv.push_str(&format!("oMany{i},\n"));
    }
    let head_len = csv.len();
    csv.push_str(UPLOAD_CSV.split_once('\n').expect("header").1);
    let file = dir.path().join("cli.csv");
    std::fs::write(&file, &csv).expect("csv");
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", MERCHANT, "--activity-id", ACTIVITY, "--product-code", PRODUCT, "--campaign", "cli"])
        .output()
        .expect("lijian load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_rejects = std::fs::read_to_string(dir.path().join("cli.rejects.csv")).expect("CLI rejects file");
    // Now the same file uploaded as another campaign (its bizCodes, generated
    // from the campaign's name, are new): the bad rows are refused alike.

    // The body in two parts; the second waits until the first is stored.
    let (tx, sending) = streamed_upload(&console, &token, "web");
    tx.send(Ok(csv.as_bytes()[..head_len].to_vec())).await.expect("first part");
    let stored = "SELECT count(*) FROM orders WHERE campaign = 'web'";
    assert_eq!(app.wait_for_count(stored, 20_000, Duration::from_secs(30)).await, 20_000, "a batch stored mid-upload");
    let (_, page) = get_json(&console, "/campaigns/web", Some(&token)).await;
    assert_eq!(page["loading"]["by"], "ana", "the page shows the load running: {page}");
    assert_eq!(page["loading"]["accepted"], 20_000);
    let (_, list) = get_json(&console, "/campaigns", Some(&token)).await;
    let listed = |list: &Value, name: &str| {
        list["campaigns"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == name)).cloned()
    };
    // The list's orders are the stored total: what committed batches added.
    let web = listed(&list, "web").unwrap_or_else(|| panic!("web listed mid-upload: {list}"));
    assert_eq!(web["orders"].as_i64(), Some(app.count(stored).await), "{web}");
    tx.send(Ok(csv.as_bytes()[head_len..].to_vec())).await.expect("second part");
    drop(tx);
    let (status, loaded) = sending.await.expect("upload task");
    assert_eq!(status, StatusCode::OK, "{loaded}");
    let good = first_rows as u64 + 3;
    assert_eq!((loaded["accepted"].as_u64(), loaded["rejected_total"].as_u64()), (Some(good), Some(3)), "{loaded}");
    assert_eq!(loaded["rejects"], "/campaigns/web/rejects");

    let rejects = client()
        .get(console.url("/campaigns/web/rejects"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("rejects");
    assert_eq!(rejects.status(), StatusCode::OK);
    assert!(rejects.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let served = rejects.text().await.expect("csv");
    assert_eq!(served, cli_rejects, "the CLI's rejects file, byte for byte");
    let served_rows: Vec<&str> = served.lines().skip(1).collect();
    assert_eq!(served_rows.len(), UPLOAD_BAD_LINES.len());
    for (row, (line, bad)) in served_rows.iter().zip(UPLOAD_BAD_LINES) {
        let line = line + first_rows as u64;
        assert!(row.starts_with(&format!("{line},")) && row.ends_with(&format!(",{bad}")), "{row}: line {line}");
    }
    let (_, page) = get_json(&console, "/campaigns/web", Some(&token)).await;
    assert!(page["loading"].is_null(), "{page}");
    assert_eq!(page["campaign"]["orders"].as_i64(), Some(good as i64), "{page}");
    assert_eq!(app.campaign_totals_match().await, 2 * good as i64, "the CLI's load and the upload");
    let (_, list) = get_json(&console, "/campaigns", Some(&token)).await;
    let web = listed(&list, "web").unwrap_or_else(|| panic!("web listed: {list}"));
    assert_eq!(web["orders"].as_i64(), Some(good as i64), "{web}");
    // The overview's running campaigns too: stored total, final orders counted.
    let (_, overview) = get_json(&console, "/", Some(&token)).await;
    let web = listed(&overview, "web").unwrap_or_else(|| panic!("web running: {overview}"));
    assert_eq!((web["orders"].as_i64(), web["finished"].as_i64()), (Some(good as i64), Some(0)), "{web}");
    let detail = page["last_load"]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.starts_with(&format!("{} rows from upload web.csv: {good} accepted", good + 3)), "{detail}");
    let audit = lijian_ok(&app, &["audit", "list", "--action", "load"]);
    assert!(audit.contains(" ana ") && audit.contains("upload web.csv"), "{audit}");
    assert!(audit.contains("cli:"), "the CLI's load is recorded too: {audit}");

    // A file that is only a header, not even a newline: read whole before the
    // loader's thread starts, and loaded (nothing) without waiting for more.
    let (status, empty) =
        upload_by_token(&console, Some(&token), upload_form("empty", "openId,productCode", None)).await;
    assert_eq!(
        (status, empty["rows"].as_u64(), empty["rejects"].is_null()),
        (StatusCode::OK, Some(0), true),
        "{empty}"
    );
    console.stop().await;
    app.stop().await;
}

/// Body parts sent through the channel as they come.
pub(crate) type Parts = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// An upload by token into `campaign` whose file is what `Parts` is sent
/// (ended when it is dropped); the task answers (status, JSON).
pub(crate) fn streamed_upload(
    console: &ConsoleHandle,
    token: &str,
    campaign: &str,
) -> (Parts, tokio::task::JoinHandle<(StatusCode, Value)>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let form = Form::new()
        .text("merchant_id", MERCHANT)
        .text("activity_id", ACTIVITY)
        .text("product_code", PRODUCT)
        .text("campaign", campaign.to_string())
        .part("file", Part::stream(reqwest::Body::wrap_stream(body)).file_name(format!("{campaign}.csv")));
    let request = client()
        .post(console.url("/campaigns"))
        .header(ACCEPT, "application/json")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .multipart(form);
    let sending = tokio::spawn(async move {
        let answer = request.send().await.expect("POST");
        (answer.status(), answer.json::<Value>().await.unwrap_or_default())
    });
    (tx, sending)
}
