//! Issue 13 over HTTP without a browser: the JSON API (401 without a token,
//! 403 for a viewer's change, the same data as the page and the CLI), the
//! session cookie's attributes and expiry, sign-in limits, and the audit log of
//! actions taken with the CLI. Language, time zone and send rates as pages
//! show them: console_pages.rs.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::console::{browser_session, client, get_json, post_json, sign_in_form};
use crate::helpers::*;

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
