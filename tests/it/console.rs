//! Issue 13 over HTTP without a browser: the JSON API (401 without a token,
//! 403 for a viewer's change, the same data as the page and the CLI), the
//! session cookie's attributes and expiry, sign-in limits, and the audit log of
//! actions taken with the CLI.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::console::ConsoleHandle;
use crate::helpers::*;

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn get_json(console: &ConsoleHandle, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(console.url(path)).header(ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let answer = request.send().await.expect("GET");
    (answer.status(), answer.json().await.unwrap_or_default())
}

async fn post_json(console: &ConsoleHandle, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
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

#[tokio::test]
async fn json_needs_a_token_and_a_viewer_changes_nothing() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("ana", "admin");
    app.add_operator("vic", "viewer");
    let (admin, viewer) = (app.operator_token("ana"), app.operator_token("vic"));
    assert!(admin.starts_with("ljt_") && admin != viewer);

    for path in ["/", "/dlq", "/campaigns", "/merchants", "/merchants/m-test", "/activities", "/audit"] {
        let (status, body) = get_json(&console, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without a token");
        assert!(body["error"].as_str().unwrap_or_default().contains("Bearer"), "{body}");
        let (status, _) = get_json(&console, path, Some(&admin.replace("ljt_", "ljt_0"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with a mangled token");
        let (status, _) = get_json(&console, path, Some(&viewer)).await;
        assert_eq!(status, StatusCode::OK, "{path}: a viewer sees everything");
    }
    // A token with one character of its secret changed is refused.
    let mut forged = admin.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("utf8");
    assert_eq!(get_json(&console, "/", Some(&forged)).await.0, StatusCode::UNAUTHORIZED);

    let balance = app.balance(MERCHANT).await;
    let topup = serde_json::json!({ "amount": "12.34", "note": "ticket 9" });
    let (status, body) = post_json(&console, "/merchants/m-test/topup", &viewer, topup.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) =
        post_json(&console, "/dlq/replay", &viewer, serde_json::json!({ "lane": "issue", "reason": "x" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.balance(MERCHANT).await, balance);
    let (status, body) = post_json(&console, "/merchants/m-test/topup", &admin, topup).await;
    assert_eq!((status, body["balance"].as_str()), (StatusCode::OK, Some("10012.34")), "{body}");
    assert_eq!(app.balance(MERCHANT).await, balance + 1234);
    let (_, bad) =
        post_json(&console, "/merchants/m-test/topup", &admin, serde_json::json!({ "amount": "1.234" })).await;
    assert!(bad["error"].as_str().unwrap_or_default().contains("two decimals"), "{bad}");

    // Disabled: its token stops working at once.
    lijian_ok(&app, &["operator", "disable", "--name", "ana"]);
    assert_eq!(get_json(&console, "/", Some(&admin)).await.0, StatusCode::UNAUTHORIZED);
    let listed = lijian_ok(&app, &["operator", "list"]);
    assert!(listed.contains("ana") && listed.contains("disabled") && !listed.contains(&admin[4..20]), "{listed}");
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn json_shows_the_same_data_as_the_page_and_the_cli() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("ana", "admin");
    let token = app.operator_token("ana");
    let answer = app.order("same-1").await;
    let code = answer["data"]["orderCode"].as_str().expect("orderCode").to_string();

    let (status, story) = get_json(&console, &format!("/orders/{code}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{story}");
    let shown = lijian_ok(&app, &["order", "show", &code]);
    let text: Vec<&str> = story["text"].as_array().expect("text").iter().filter_map(Value::as_str).collect();
    assert_eq!(text, shown.lines().collect::<Vec<_>>(), "the JSON carries order show's own lines");
    let (_, found) = get_json(&console, "/orders?merchant=m-test&biz=same-1", Some(&token)).await;
    assert_eq!(found["order_code"], code.as_str());
    assert_eq!(get_json(&console, "/orders?code=LJ-nope", Some(&token)).await.0, StatusCode::NOT_FOUND);

    let (_, merchant) = get_json(&console, "/merchants/m-test", Some(&token)).await;
    let balance = merchant["balance"].as_str().expect("balance").to_string();
    assert_eq!(balance, "9990.50");
    assert!(lijian_ok(&app, &["merchant", "show", "--merchant-id", MERCHANT])
        .contains(&format!("balance      {balance} yuan")));
    assert_eq!(merchant["ledger"][0]["kind"], "debit");
    // The page a browser gets shows the same figure (the session comes from the form).
    let cookie = browser_session(&app, &console).await;
    let page = client()
        .get(console.url("/merchants/m-test"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(&format!("¥{balance}")), "{page}");
    // A session cookie alone does not open the JSON API.
    let answer = client()
        .get(console.url("/merchants/m-test"))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let (_, activities) = get_json(&console, "/activities", Some(&token)).await;
    let a = &activities["activities"][0];
    assert_eq!(
        (a["activity_id"].as_str(), a["budget"].as_i64(), a["used"].as_i64()),
        (Some(ACTIVITY), Some(100_000), Some(1))
    );
    assert_eq!((a["left"].as_i64(), a["sends_from"].as_str()), (Some(99_999), Some("1900000001")), "{a}");
    assert!(a["account_rate"].is_null(), "no stored account: the default sends");
    let (_, overview) = get_json(&console, "/", Some(&token)).await;
    assert_eq!(overview["minutes"].as_array().map(Vec::len), Some(60));
    let accepted: i64 =
        overview["minutes"].as_array().expect("minutes").iter().filter_map(|m| m["accepted"].as_i64()).sum();
    assert_eq!(accepted, 1, "{overview}");
    console.stop().await;
    app.stop().await;
}

/// Signs `ana` in through the form like a browser (form token cookie, then
/// the session cookie); returns the `Cookie` header to send.
pub(crate) async fn browser_session(app: &TestApp, console: &ConsoleHandle) -> String {
    let password = app.add_operator("bo", "admin");
    let (status, session) = sign_in_form(console, "bo", &password).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    session.expect("a session cookie")
}

/// One sign-in through the form: (status, `lijian_session=…` if one was set).
async fn sign_in_form(console: &ConsoleHandle, name: &str, password: &str) -> (StatusCode, Option<String>) {
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

#[tokio::test]
async fn the_session_cookie_is_locked_down_and_expires() {
    let app = spawn_app().await;
    let mut settings = app.settings.clone();
    settings.console.session_ttl = Duration::from_secs(2);
    settings.console.secure_cookies = true;
    let console = app.start_console_with(&settings).await;
    let password = app.add_operator("ana", "admin");
    let (status, cookie) = sign_in_form(&console, "ana", &password).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=2", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let value = cookie.split(';').next().expect("pair").to_string();
    let id = value.trim_start_matches("lijian_session=");
    let secret = id.split_once('_').map(|(_, s)| s).expect("selector_secret");
    assert_eq!(secret.len(), 64, "32 random bytes");
    let page = client().get(console.url("/audit")).header(COOKIE, &value).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let stored: i64 =
        app.count(&format!("SELECT count(*) FROM operator_sessions WHERE secret_hash::text LIKE '%{secret}%'")).await;
    assert_eq!(stored, 0, "only a hash of the session id is stored");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = client().get(console.url("/audit")).header(COOKIE, &value).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "expired: back to sign-in");
    assert!(page.headers()[LOCATION].to_str().unwrap_or_default().starts_with("/login"));

    // Without the form's own token (a sign-in posted from elsewhere) nothing happens.
    let answer = client()
        .post(console.url("/login"))
        .form(&[("name", "ana"), ("password", password.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn sign_ins_are_limited_per_name() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    let password = app.add_operator("ana", "admin");
    let other = app.add_operator("bo", "viewer");
    for _ in 0..5 {
        assert_eq!(sign_in_form(&console, "ana", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, cookie) = sign_in_form(&console, "ana", &password).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "locked, right password or not");
    assert!(cookie.is_none());
    assert_eq!(
        sign_in_form(&console, "nobody", "guess").await.0,
        StatusCode::UNAUTHORIZED,
        "unknown names answer alike"
    );
    assert_eq!(sign_in_form(&console, "bo", &other).await.0, StatusCode::SEE_OTHER, "another name still signs in");
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn actions_taken_with_the_cli_are_in_the_audit_log() {
    let app = spawn_app().await;
    lijian_ok(&app, &["merchant", "topup", "--merchant-id", MERCHANT, "--amount", "5", "--note", "refill"]);
    lijian_ok(&app, &["dlq", "replay", "--all"]);
    let fail = lijian_ok(&app, &["dlq", "fail", "--order", "LJ-none"]);
    assert!(fail.contains("failed 0 orders"), "{fail}");
    let listed = lijian_ok(&app, &["audit", "list"]);
    let user = listed.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
    assert!(user.starts_with("cli:") && user.len() > 4, "{listed}");
    for (action, count) in [("topup", "500"), ("replay", "0"), ("fail", "0")] {
        let line =
            listed.lines().find(|l| l.contains(&format!(" {action} "))).unwrap_or_else(|| panic!("{action}: {listed}"));
        assert!(line.contains(&user) && line.contains(&format!(" {count} ")), "{line}");
    }
    assert!(listed.contains("5.00 yuan added") && listed.contains("note: refill"), "{listed}");

    let console = app.start_console().await;
    app.add_operator("ana", "viewer");
    let token = app.operator_token("ana");
    let (_, audit) = get_json(&console, "/audit?action=topup", Some(&token)).await;
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!((entries[0]["actor"].as_str(), entries[0]["count"].as_i64()), (Some(user.as_str()), Some(500)));
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn long_lists_come_a_page_at_a_time_in_the_page_and_its_json() {
    let app = spawn_app().await;
    let db = app.store.client().await.expect("client");
    db.batch_execute(&format!(
        "INSERT INTO campaigns (name, merchant_id, created_at)
             SELECT 'pg-' || lpad(i::text, 3, '0'), '{MERCHANT}', now() - interval '1 hour' + i * interval '1 second'
               FROM generate_series(1, 120) i;
             INSERT INTO balance_ledger (merchant_id, kind, amount_fen, balance_after_fen)
             SELECT '{MERCHANT}', 'topup', 100, 1000000 + i * 100 FROM generate_series(1, 70) i;"
    ))
    .await
    .expect("seed");
    let console = app.start_console().await;
    app.add_operator("ana", "viewer");
    let token = app.operator_token("ana");

    // Newest first, 50 a page: pg-120 … pg-071, then pg-070 … pg-021, then the last 20.
    let mut seen = Vec::new();
    let mut next = Some("/campaigns".to_string());
    let mut pages = 0;
    while let Some(path) = next {
        let (status, page) = get_json(&console, &path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let names: Vec<String> = page["campaigns"]
            .as_array()
            .expect("campaigns")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        assert!(names.len() <= 50, "{path}: {}", names.len());
        pages += 1;
        assert_eq!(page["page"].as_i64(), Some(pages));
        assert_eq!(page["prev"].is_null(), pages == 1, "{page}");
        seen.extend(names);
        next = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=120).rev().map(|i| format!("pg-{i:03}")).collect();
    assert_eq!(seen, expected, "every campaign once, newest first");

    // The page a browser gets: the first 50 and a link to the rest.
    let html = |path: &str| {
        let url = console.url(path);
        let token = token.clone();
        async move {
            client()
                .get(url)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("html")
        }
    };
    let first = html("/campaigns").await;
    assert!(first.contains(">pg-120<") && first.contains(">pg-071<") && !first.contains(">pg-070<"), "{first}");
    assert!(first.contains(r#"rel="next" href="/campaigns?page=2""#), "{first}");
    let last = html("/campaigns?page=3").await;
    assert!(last.contains(">pg-020<") && last.contains(">pg-001<") && !last.contains(">pg-021<"), "{last}");
    assert!(last.contains(r#"rel="prev" href="/campaigns?page=2""#) && !last.contains(r#"rel="next""#), "{last}");
    assert!(last.contains("← Previous") && last.contains("page 3"), "{last}");
    // The links are in the operator's language like the rest of the page.
    let zh = client()
        .get(console.url("/campaigns?page=2"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(reqwest::header::ACCEPT_LANGUAGE, "zh-CN")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(zh.contains("← 上一页") && zh.contains("第 2 页") && zh.contains("下一页 →"), "{zh}");

    // A merchant's ledger: 50 newest entries, then older ones by `before`.
    let (_, merchant) = get_json(&console, "/merchants/m-test", Some(&token)).await;
    let ledger = merchant["ledger"].as_array().expect("ledger");
    assert_eq!(ledger.len(), 50);
    assert_eq!(ledger[0]["balance_after"], "10070.00", "{merchant}");
    let older = merchant["next"].as_str().expect("a link to older entries");
    let (_, rest) = get_json(&console, older, Some(&token)).await;
    let rest = rest["ledger"].as_array().expect("ledger").clone();
    let total: i64 = app.count("SELECT count(*) FROM balance_ledger WHERE merchant_id = 'm-test'").await;
    assert_eq!((50 + rest.len()) as i64, total, "every entry once");
    assert_eq!(rest[0]["balance_after"], "10020.00");
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn admin_commands_of_the_cli_are_in_the_audit_log() {
    let app = spawn_app().await;
    lijian_ok(&app, &["merchant", "disable", "--merchant-id", MERCHANT]);
    lijian_ok(&app, &["merchant", "enable", "--merchant-id", MERCHANT]);
    lijian_ok(&app, &["product", "add", "--product-code", "p-audit", "--face-value", "5", "--price", "4.5"]);
    lijian_ok(&app, &["activity", "set", "--activity-id", ACTIVITY, "--budget", "200000"]);
    // Refused before anything changed: nothing recorded.
    lijian_fails(&app, &["product", "add", "--product-code", "p-free", "--face-value", "5", "--price", "0"]);
    let listed = lijian_ok(&app, &["audit", "list"]);
    for (action, target, detail) in [
        ("merchant_disable", MERCHANT, "requests refused (status 1)"),
        ("merchant_enable", MERCHANT, "requests accepted"),
        ("product_add", "p-audit", "face value 5.00 yuan, price 4.50 yuan"),
        ("activity_set", ACTIVITY, "budget 200000"),
    ] {
        let line = listed
            .lines()
            .find(|l| l.contains(&format!(" {action} ")))
            .unwrap_or_else(|| panic!("{action} missing:\n{listed}"));
        assert!(line.contains(" cli:") && line.contains(target) && line.contains(detail), "{line}");
    }
    assert!(!listed.contains("p-free"), "{listed}");
    let only = lijian_ok(&app, &["audit", "list", "--action", "product_add"]);
    assert_eq!(only.lines().count(), 2, "a header and one line: {only}");
    app.stop().await;
}

/// A page's HTML for a browser that sends `cookie` and `Accept-Language: accept`.
async fn page_in(console: &ConsoleHandle, path: &str, cookie: &str, accept: Option<&str>) -> (StatusCode, String) {
    let mut request = client().get(console.url(path)).header(COOKIE, cookie);
    if let Some(accept) = accept {
        request = request.header(reqwest::header::ACCEPT_LANGUAGE, accept);
    }
    let answer = request.send().await.expect("GET");
    (answer.status(), answer.text().await.expect("html"))
}

#[tokio::test]
async fn pages_speak_the_language_asked_for_and_json_stays_raw() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    let session = browser_session(&app, &console).await;
    let session = session.split(';').next().expect("pair").to_string();

    // Accept-Language: Chinese when it ranks Chinese first, English otherwise.
    let (_, zh) = page_in(&console, "/merchants/m-test", &session, Some("zh-CN,zh;q=0.9,en;q=0.8")).await;
    assert!(zh.contains(r#"<html lang="zh-CN">"#) && zh.contains("商户 m-test") && zh.contains("最近流水"), "{zh}");
    assert!(zh.contains("¥10000.00") && zh.contains("余额"), "money in yuan, two decimals: {zh}");
    assert!(zh.contains(r#"href="/lang/en?next=%2Fmerchants%2Fm-test""#), "the switch back to English: {zh}");
    for accept in [None, Some("en-US,en;q=0.9,zh-CN;q=0.8"), Some("de-DE")] {
        let (_, en) = page_in(&console, "/merchants/m-test", &session, accept).await;
        assert!(en.contains(r#"<html lang="en">"#) && en.contains("Recent ledger entries"), "{accept:?}");
        assert!(en.contains(r#"href="/lang/zh?next=%2Fmerchants%2Fm-test""#), "the switch to Chinese");
    }

    // The switch sets a cookie that outranks the header, and comes back.
    let answer = client()
        .get(console.url("/lang/zh?next=%2Fdlq%3Flane%3Dissue"))
        .header(COOKIE, &session)
        .send()
        .await
        .expect("switch");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/dlq?lane=issue");
    let set = answer.headers()[SET_COOKIE].to_str().expect("cookie").to_string();
    assert!(set.starts_with("lijian_lang=zh;") && set.contains("Path=/"), "{set}");
    let chosen = format!("{session}; lijian_lang=zh");
    let (_, page) = page_in(&console, "/", &chosen, Some("en-US")).await;
    assert!(page.contains("近一小时受理") && page.contains("各微信支付商户号的发送速率"), "{page}");
    // Only a path on this console is followed; an unknown language sets nothing.
    let answer = client().get(console.url("/lang/xx?next=https://evil.example/")).send().await.expect("switch");
    assert_eq!(answer.headers()[LOCATION], "/");
    assert!(answer.headers().get(SET_COOKIE).is_none());

    // The sign-in page and error pages speak it too, signed in or not.
    let (_, login) = page_in(&console, "/login", "", Some("zh-CN")).await;
    assert!(login.contains("操作员名称") && login.contains("密码"), "{login}");
    let (status, missing) = page_in(&console, "/nowhere", &chosen, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("没有这个页面") && missing.contains("返回概览"), "{missing}");

    // JSON is the same whatever language is asked for.
    app.add_operator("ana", "viewer");
    let token = app.operator_token("ana");
    let json = |accept: &'static str| {
        let request = client()
            .get(console.url("/merchants/m-test"))
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(reqwest::header::ACCEPT_LANGUAGE, accept)
            .header(COOKIE, "lijian_lang=zh");
        async move { request.send().await.expect("GET").json::<Value>().await.expect("json") }
    };
    let (zh, en) = (json("zh-CN").await, json("en").await);
    assert_eq!(zh, en);
    assert_eq!(zh["balance"], "10000.00");
    assert!(zh["ledger"][0]["at"].as_str().unwrap_or_default().ends_with('Z'), "{zh}");
    console.stop().await;
    app.stop().await;
}

/// The first `<time datetime="…">` of a page: (its UTC instant, the text shown, its title).
fn first_time(page: &str) -> (time::OffsetDateTime, String, String) {
    let start = page.find("<time datetime=\"").expect("a <time> element");
    let element = &page[start..];
    let attribute = |name: &str| {
        let from = element.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        element[from..].split('"').next().expect("value").to_string()
    };
    let datetime = attribute("datetime");
    let shown = element.split_once('>').expect(">").1.split('<').next().expect("text").to_string();
    let at = time::OffsetDateTime::parse(&datetime, &time::format_description::well_known::Rfc3339).expect("rfc3339");
    (at, shown, attribute("title"))
}

fn plain(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&format).expect("format")
}

#[tokio::test]
async fn times_show_in_the_operators_zone_with_utc_on_hover() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    let session = browser_session(&app, &console).await;
    let session = session.split(';').next().expect("pair").to_string();
    let (_, audit) = page_in(&console, "/audit", &session, None).await;
    let (at, shown, title) = first_time(&audit);
    assert!(audit.contains("Times in Asia/Shanghai"), "the default zone, said on the page");
    assert_eq!(title, format!("{} UTC", plain(at)));
    assert_eq!(shown, format!("{} CST", plain(at + time::Duration::hours(8))), "{audit}");
    console.stop().await;

    // Another zone, half an hour off whole hours: a real zone database, not a fixed +08:00.
    let mut settings = app.settings.clone();
    settings.console.time_zone = "Asia/Kolkata".into();
    let console = app.start_console_with(&settings).await;
    let (_, audit) = page_in(&console, "/audit", &session, Some("zh-CN")).await;
    let (at, shown, title) = first_time(&audit);
    assert_eq!(title, format!("{} UTC", plain(at)));
    assert_eq!(shown, format!("{} IST", plain(at + time::Duration::minutes(330))), "{audit}");
    assert!(audit.contains("时间为 Asia/Kolkata 时区"), "{audit}");
    console.stop().await;

    // A name the database does not know stops the console before it starts.
    let out = lijian_command(&app.settings)
        .env("LIJIAN_CONSOLE_TIME_ZONE", "Asia/Shangai")
        .arg("console")
        .output()
        .expect("run lijian console");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && error.contains("LIJIAN_CONSOLE_TIME_ZONE"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn the_overview_shows_each_accounts_send_rate_against_its_limit() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("ana", "viewer");
    let token = app.operator_token("ana");
    // Thirty calls from the default account in the last seconds, and older ones
    // that are outside the window.
    let client_db = app.store.client().await.expect("db");
    client_db
        .execute(
            "INSERT INTO upstream_attempts (order_code, attempt, started_at, latency_ms, outcome, mchid)
             SELECT 'LJ-rate-' || i, 1, now() - make_interval(secs => CASE WHEN i <= 30 THEN 1 ELSE 120 END), 5,
                    'issued', $1
               FROM generate_series(1, 50) i",
            &[&crate::helpers::wxpay::MCHID],
        )
        .await
        .expect("attempts");
    let (_, overview) = get_json(&console, "/", Some(&token)).await;
    let accounts = overview["accounts"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 1, "{overview}");
    let a = &accounts[0];
    assert_eq!((a["mchid"].as_str(), a["source"].as_str()), (Some(crate::helpers::wxpay::MCHID), Some("default")));
    assert_eq!((a["sends"].as_i64(), a["window_secs"].as_i64()), (Some(30), Some(10)), "{a}");
    assert_eq!(a["sends_per_sec"].as_f64(), Some(3.0));
    assert_eq!(a["limit"].as_u64(), Some(u64::from(app.settings.wxpay.rate)));
    let cookie = browser_session(&app, &console).await;
    let cookie = cookie.split(';').next().expect("pair").to_string();
    let (_, page) = page_in(&console, "/", &cookie, None).await;
    let limit = app.settings.wxpay.rate;
    assert!(page.contains(&format!(r#"<meter min="0" max="{limit}" value="3.0""#)), "{page}");
    assert!(page.contains(&format!("3.0 / {limit}/s")), "{page}");
    // Live pages carry the refresh mark and the script is ours, allowed by the policy.
    assert!(page.contains(r#"<main data-refresh="5">"#) && page.contains(r#"<script src="/assets/console.js""#));
    let script = client().get(console.url("/assets/console.js")).send().await.expect("script");
    let policy = script.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert!(script.text().await.expect("js").contains("data-refresh"));
    let (_, confirm_page) = page_in(&console, "/merchants/m-test", &cookie, None).await;
    assert!(!confirm_page.contains("data-refresh"), "a page with a form to fill does not refresh");
    console.stop().await;
    app.stop().await;
}
