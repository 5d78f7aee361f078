//! The console's pages as an operator reads them (issue 13): the language asked
//! for (JSON stays raw), times in the operator's zone with UTC on hover, and
//! each WeChat Pay account's send rate against its limit on the overview.

use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::console::{browser_session, client, get_json, ConsoleHandle};
use crate::helpers::*;

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
