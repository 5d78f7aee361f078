//! Issue 13 in a real headless Chromium: signing in and out, a viewer who sees
//! no action and whose forged POST is refused, a POST without its CSRF token,
//! a campaign paused and resumed, a parked job replayed to exactly one coupon,
//! an order found and its timeline read, a CSV uploaded with bad rows (its
//! progress watched, its rejects downloaded). Each test saves screenshots under
//! `target/console-screenshots/`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::browser::Browser;
use crate::helpers::console::{sign_in, signed_in, ConsoleHandle, UPLOAD_BAD_LINES, UPLOAD_CSV};
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

/// A campaign of three orders held until an hour from now, 10 per second.
fn load_scheduled_campaign(app: &TestApp, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{name}.csv"));
    std::fs::write(&file, "openId\noSpring1\noSpring2\noSpring3\n").expect("csv");
    let at = lijian_core::times::rfc3339_seconds(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", MERCHANT, "--activity-id", ACTIVITY, "--product-code", PRODUCT, "--campaign", name])
        .args(["--at", &at, "--rate", "10"])
        .output()
        .expect("run lijian load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn campaign_state(app: &TestApp, name: &str) -> String {
    let client = app.store.client().await.expect("client");
    client.query_one("SELECT state FROM campaigns WHERE name = $1", &[&name]).await.expect("campaign").get(0)
}

async fn sign_out(browser: &Browser, console: &ConsoleHandle) {
    browser.click("header form[action='/logout'] button").await;
    assert!(browser.url_when(|u| u.contains("/login")).await.starts_with(&console.url("/login")));
}

#[tokio::test]
async fn logged_out_every_page_leads_to_sign_in_and_signing_in_returns_there() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    let password = app.add_operator("ana", "admin");
    let browser = Browser::start().await;
    for path in [
        "/",
        "/dlq",
        "/campaigns",
        "/campaigns/spring",
        "/orders",
        "/orders/LJ20260101000000000001",
        "/merchants",
        "/merchants/m-test",
        "/activities",
        "/audit",
    ] {
        browser.goto(&console.url(path)).await;
        let url = browser.url().await;
        assert!(url.starts_with(&console.url("/login?next=")), "{path} led to {url}");
        assert!(browser.text().await.contains("Operator name"), "{path}: the sign-in form");
    }
    browser.screenshot("sign-in").await;

    // A wrong password is refused; the form still knows where to go next.
    browser.type_into("input[name=name]", "ana").await;
    browser.type_into("input[name=password]", "not-the-password").await;
    browser.click("button[type=submit]").await;
    assert!(browser.text_with("wrong name or password").await.contains("wrong name or password"));
    browser.screenshot("sign-in-refused").await;
    browser.type_into("input[name=name]", "ana").await;
    browser.type_into("input[name=password]", &password).await;
    browser.click("button[type=submit]").await;
    let back = console.url("/audit");
    assert_eq!(browser.url_when(|u| u == back).await, back, "back to the page asked for last");
    assert!(browser.text().await.contains("login"), "the sign-in is in the audit log");

    browser.goto(&console.url("/merchants/m-test")).await;
    let text = browser.text().await;
    assert!(text.contains("Test Shop") && text.contains("10000.00"), "{text}");
    browser.goto(&console.url("/")).await;
    let text = browser.text().await;
    assert!(text.contains("accepted, last hour") && text.contains("Queues"), "{text}");
    assert_eq!(browser.find_all(".chart svg polyline").await.len(), 4, "four lines drawn on the server");
    browser.screenshot("overview").await;

    sign_out(&browser, &console).await;
    browser.goto(&console.url("/")).await;
    assert!(browser.url().await.starts_with(&console.url("/login")), "signed out means signed out");
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_action_buttons_and_a_forged_post_is_refused() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    let admin = app.add_operator("ana", "admin");
    let viewer = app.add_operator("vic", "viewer");
    load_scheduled_campaign(&app, "spring");
    let balance = app.balance(MERCHANT).await;
    let browser = Browser::start().await;
    let action_pages = ["/campaigns/spring", "/merchants/m-test"];

    // What an admin sees on these pages, a viewer must not.
    sign_in(&browser, &console, "ana", &admin).await;
    for page in action_pages {
        browser.goto(&console.url(page)).await;
        assert!(!browser.find_all("main form[method=post]").await.is_empty(), "{page} has actions for an admin");
    }
    sign_out(&browser, &console).await;

    sign_in(&browser, &console, "vic", &viewer).await;
    for page in action_pages.iter().chain(&["/dlq", "/campaigns", "/"]) {
        browser.goto(&console.url(page)).await;
        assert!(browser.find_all("main form[method=post]").await.is_empty(), "{page}: no action form for a viewer");
        assert!(browser.find_all("main button").await.is_empty(), "{page}: no button for a viewer");
        assert!(browser.text().await.contains("vic (viewer)"));
    }
    browser.goto(&console.url("/campaigns/spring")).await;
    browser.screenshot("viewer-campaign").await;

    // The viewer's own, valid CSRF token: what refuses the request is the role.
    let csrf = browser.attribute("header form input[name=csrf]", "value").await;
    assert_eq!(csrf.len(), 64, "the session's CSRF token");
    browser.submit_forged_form("/merchants/m-test/topup", &[("csrf", &csrf), ("amount", "100")]).await;
    let text = browser.text_with("vic is a viewer").await;
    assert!(text.contains("Forbidden") && text.contains("vic is a viewer"), "{text}");
    browser.screenshot("viewer-forged-post").await;
    browser.goto(&console.url("/campaigns/spring")).await;
    browser.submit_forged_form("/campaigns/spring/cancel", &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert!(browser.text_with("vic is a viewer").await.contains("vic is a viewer"));
    assert_eq!(app.balance(MERCHANT).await, balance, "nothing topped up");
    assert_eq!(campaign_state(&app, "spring").await, "active", "nothing cancelled");
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action <> 'login' AND actor = 'vic'").await, 0);
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_post_without_its_csrf_token_is_refused() {
    let app = spawn_app().await;
    let balance = app.balance(MERCHANT).await;
    let (console, browser) = signed_in(&app, "ana", "admin").await;
    browser.goto(&console.url("/merchants/m-test")).await;
    browser.submit_forged_form("/merchants/m-test/topup", &[("amount", "100")]).await;
    let text = browser.text_with("CSRF token is missing or wrong").await;
    assert!(text.contains("Forbidden") && text.contains("CSRF token is missing or wrong"), "{text}");
    browser.screenshot("csrf-refused").await;
    let wrong = "0".repeat(64);
    browser.goto(&console.url("/merchants/m-test")).await;
    browser.submit_forged_form("/merchants/m-test/topup", &[("csrf", &wrong), ("amount", "100")]).await;
    assert!(browser.text_with("CSRF token is missing").await.contains("CSRF token is missing or wrong"));
    assert_eq!(app.balance(MERCHANT).await, balance, "nothing topped up");

    // The page's own form carries the token and works.
    browser.goto(&console.url("/merchants/m-test")).await;
    browser.type_into("input[name=amount]", "25.50").await;
    browser.type_into("input[name=note]", "invoice 7").await;
    browser.click("form[action='/merchants/m-test/topup'] button").await;
    assert!(browser.text_with("balance now").await.contains("balance now ¥10025.50"));
    assert_eq!(app.balance(MERCHANT).await, balance + 2550);
    browser.goto(&console.url("/audit")).await;
    let text = browser.text().await;
    assert!(text.contains("topup") && text.contains("2550") && text.contains("note: invoice 7"), "{text}");
    browser.screenshot("audit").await;
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_campaign_is_paused_and_resumed_behind_a_confirmation() {
    let app = spawn_app().await;
    load_scheduled_campaign(&app, "spring");
    let (console, browser) = signed_in(&app, "ana", "admin").await;
    browser.goto(&console.url("/campaigns")).await;
    assert!(browser.find_all("main progress").await.len() >= 2, "progress bars");
    browser.screenshot("campaigns").await;
    browser.click("main a[href='/campaigns/spring']").await;
    browser.click("form[action='/campaigns/spring/pause'] button").await;
    let question = browser.text_with("Pause campaign").await;
    assert!(question.contains("Pause campaign spring? Its 3 unreleased orders (28.50 yuan) wait"), "{question}");
    assert_eq!(campaign_state(&app, "spring").await, "active", "nothing happens before the confirmation");
    browser.screenshot("campaign-pause-confirm").await;
    browser.click("form.confirm button").await;
    assert!(browser.text_with("Paused:").await.contains("Paused: 3 unreleased orders wait."));
    assert_eq!(campaign_state(&app, "spring").await, "paused");

    browser.goto(&console.url("/campaigns/spring")).await;
    assert!(browser.find_all("form[action='/campaigns/spring/pause']").await.is_empty(), "paused: no pause");
    browser.click("form[action='/campaigns/spring/resume'] button").await;
    let question = browser.text_with("Resume campaign").await;
    let expected = "Resume campaign spring? Its 3 unreleased orders (28.50 yuan) are released from now at 10 orders/s.";
    assert!(question.contains(expected), "{question}");
    browser.click("form.confirm button").await;
    assert!(browser.text_with("Resumed:").await.contains("Resumed: 3 unreleased orders"));
    assert_eq!(campaign_state(&app, "spring").await, "active");
    browser.goto(&console.url("/campaigns/spring")).await;
    browser.screenshot("campaign").await;
    let audit = lijian_ok(&app, &["audit", "list", "--actor", "ana"]);
    assert!(audit.contains("campaign_pause") && audit.contains("campaign_resume"), "{audit}");
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_parked_job_is_replayed_from_the_dead_letter_page_to_exactly_one_coupon() {
    let app = Arc::new(spawn_app().await);
    // The simulator expects another merchant key: every call is SIGN_ERROR.
    let wrong = spawn_sim(|c| c.merchant_public_key = fixture("merchant-test-public.pem")).await;
    let orders = app.place_orders("parked", 2, 2).await;
    let consumer = app.start_consumer(&app.consumer_settings(&wrong));
    let dead = "SELECT count(*) FROM orders WHERE dead_at IS NOT NULL";
    assert_eq!(app.wait_for_count(dead, 2, Duration::from_secs(20)).await, 2);
    consumer.stop().await;
    let right = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&right));

    let (console, browser) = signed_in(&app, "ana", "admin").await;
    browser.goto(&console.url("/dlq")).await;
    let text = browser.text().await;
    assert!(text.contains("SIGN_ERROR"), "{text}");
    browser.click("main table a[href^='/dlq?lane=issue']").await;
    browser.screenshot("dlq").await;
    browser.click(&format!("input[type=checkbox][value='{}']", orders[0])).await;
    browser.click("main form[action='/dlq/replay'] .actions button:not([formaction])").await;
    let question = browser.text_with("Replay 1").await;
    assert!(question.contains("Replay 1 parked issue jobs and 0 parked reports?"), "{question}");
    browser.screenshot("dlq-confirm").await;
    browser.click("form.confirm button").await;
    assert!(browser.text_with("Replayed").await.contains("Replayed 1 issue jobs and 0 reports."));
    let first = format!("SELECT count(*) FROM orders WHERE status = 2 AND order_code = '{}'", orders[0]);
    assert_eq!(app.wait_for_count(&first, 1, Duration::from_secs(20)).await, 1);

    // The other one: the whole reason.
    browser.goto(&console.url("/dlq")).await;
    browser.click("form[action='/dlq/replay'] button").await;
    assert!(browser.text_with("Replay 1").await.contains("Replay 1 parked issue jobs"));
    browser.click("form.confirm button").await;
    let done = browser.text_with("Replayed").await;
    assert!(done.contains("Replayed 1 issue jobs and 0 reports."), "{done}");
    let issued = "SELECT count(*) FROM orders WHERE status = 2";
    if app.wait_for_count(issued, 2, Duration::from_secs(20)).await != 2 {
        panic!(
            "{}\n{}",
            lijian_ok(&app, &["order", "show", &orders[0]]),
            lijian_ok(&app, &["order", "show", &orders[1]])
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = right.ledger().await;
    let coupons: HashSet<&str> = ledger.iter().map(|c| c.out_request_no.as_str()).collect();
    assert_eq!(ledger.len(), 2, "exactly one coupon per replayed order");
    assert_eq!(coupons, orders.iter().map(String::as_str).collect());
    assert!(wrong.ledger().await.is_empty());
    browser.goto(&console.url("/dlq")).await;
    assert!(browser.text().await.contains("Nothing is parked."));
    let audit = lijian_ok(&app, &["audit", "list", "--action", "replay"]);
    assert_eq!(audit.matches(" ana ").count(), 2, "{audit}");
    browser.quit().await;
    console.stop().await;
    consumer.stop().await;
    stop_shared(app).await;
}

#[tokio::test]
async fn an_order_is_found_by_merchant_and_biz_code_and_reads_as_order_show() {
    let app = Arc::new(spawn_app().await);
    let sim = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&sim));
    let orders = app.place_orders("find", 1, 1).await;
    assert_eq!(app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1, Duration::from_secs(20)).await, 1);
    let (console, browser) = signed_in(&app, "vic", "viewer").await;
    browser.goto(&console.url("/orders")).await;
    browser.type_into("input[name=merchant]", MERCHANT).await;
    browser.type_into("input[name=biz]", "find-0").await;
    browser.click("form:has(input[name=biz]) button").await;
    let story = console.url(&format!("/orders/{}", orders[0]));
    assert_eq!(browser.url_when(|u| u == story).await, story);
    let page = browser.text().await;
    let shown = lijian_ok(&app, &["order", "show", &orders[0]]);
    let timeline: Vec<&str> = shown.lines().skip_while(|l| !l.starts_with("timeline")).skip(1).collect();
    assert!(timeline.len() >= 4, "{shown}");
    for line in timeline {
        // "  2026-…Z  kind     detail": the page shows the same detail in words.
        let detail = line.trim().split_once("  ").map(|(_, rest)| rest).unwrap_or_default().trim();
        let detail = detail.split_once(' ').map(|(_, rest)| rest.trim()).unwrap_or_default();
        assert!(page.contains(detail), "the page lacks {detail:?}:\n{page}");
    }
    assert!(page.contains("2 (issued)") || page.contains("issued"), "{page}");
    browser.screenshot("order").await;
    browser.goto(&console.url("/orders?code=LJ-nope")).await;
    assert!(browser.text().await.contains("no order LJ-nope"));
    browser.quit().await;
    console.stop().await;
    consumer.stop().await;
    stop_shared(app).await;
}

/// The text a `<time>` element shows for `datetime` (RFC 3339 UTC) in Asia/Shanghai.
fn shanghai(datetime: &str) -> String {
    let at = time::OffsetDateTime::parse(datetime, &time::format_description::well_known::Rfc3339).expect("rfc3339");
    let local = at.to_offset(time::macros::offset!(+8));
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    format!("{} CST", local.format(&format).expect("format"))
}

#[tokio::test]
async fn the_switch_turns_the_console_chinese_with_shanghai_times_yuan_and_live_figures() {
    let app = spawn_app().await;
    load_scheduled_campaign(&app, "spring");
    // The browser asks for English (--lang=en-US): the switch turns it Chinese.
    let (console, browser) = signed_in(&app, "ana", "admin").await;
    browser.goto(&console.url("/merchants/m-test")).await;
    assert!(browser.text().await.contains("Recent ledger entries"));
    browser.click("header .lang a[hreflang=zh-CN]").await;
    let text = browser.text_with("最近流水").await;
    assert_eq!(browser.url().await, console.url("/merchants/m-test"), "the switch comes back to the page");
    assert!(text.contains("商户 m-test") && text.contains("余额") && text.contains("¥10000.00"), "{text}");
    assert!(text.contains("时间为 Asia/Shanghai 时区"), "{text}");
    assert_eq!(browser.attribute("html", "lang").await, "zh-CN");
    // Every time: Shanghai time shown, UTC in `datetime` and on hover.
    let datetime = browser.attribute("main table time", "datetime").await;
    let title = browser.attribute("main table time", "title").await;
    assert!(datetime.ends_with('Z') && title.ends_with(" UTC"), "{datetime} / {title}");
    assert_eq!(title, format!("{} UTC", datetime.trim_end_matches('Z').replace('T', " ")));
    let shown =
        browser.execute("return document.querySelector('main table time').textContent", serde_json::json!([])).await;
    assert_eq!(shown.as_str(), Some(shanghai(&datetime).as_str()));
    browser.screenshot("merchant-zh").await;

    // A campaign: its release time in Shanghai time, its money in yuan.
    browser.goto(&console.url("/campaigns/spring")).await;
    let text = browser.text().await;
    assert!(text.contains("发券计划 spring") && text.contains("¥28.50") && text.contains("CST"), "{text}");
    let release = browser.attribute("main section time", "datetime").await;
    assert!(text.contains(&shanghai(&release)), "the release time in Shanghai time: {text}");
    browser.click("form[action='/campaigns/spring/pause'] button").await;
    let question = browser.text_with("暂停发券计划").await;
    assert!(question.contains("暂停发券计划 spring？其 3 笔未释放订单（28.50 元）"), "{question}");
    browser.screenshot("campaign-pause-confirm-zh").await;
    assert!(browser.find_all("main[data-refresh]").await.is_empty(), "a confirmation does not refresh itself");

    // The overview refreshes itself: a new order shows up without navigating.
    browser.goto(&console.url("/")).await;
    let text = browser.text().await;
    assert!(text.contains("近一小时受理") && text.contains("各微信支付商户号的发送速率"), "{text}");
    browser.execute("window.stillThisPage = true", serde_json::json!([])).await;
    let figure = "return document.querySelector('main .cards .card .figure').textContent";
    let before: i64 =
        browser.execute(figure, serde_json::json!([])).await.as_str().unwrap_or("x").parse().expect("count");
    app.order("live-1").await;
    let after = (before + 1).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while browser.execute(figure, serde_json::json!([])).await.as_str() != Some(after.as_str()) {
        assert!(tokio::time::Instant::now() < deadline, "the overview did not refresh itself");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let same = browser.execute("return window.stillThisPage === true", serde_json::json!([])).await;
    assert_eq!(same, serde_json::json!(true), "refreshed in place, not reloaded");
    browser.screenshot("overview-zh").await;

    // And back to English.
    browser.click("header .lang a[hreflang=en]").await;
    let text = browser.text_with("accepted, last hour").await;
    assert!(text.contains("accepted, last hour") && text.contains("Times in Asia/Shanghai"), "{text}");
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_csv_with_bad_rows_is_uploaded_watched_and_its_rejects_downloaded() {
    let app = spawn_app().await;
    lijian_ok(&app, &["merchant", "topup", "--merchant-id", MERCHANT, "--amount", "300000"]);
    let (console, browser) = signed_in(&app, "ana", "admin").await;
    let token = app.operator_token("ana");

    // Through the form, as an operator does it.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("autumn.csv");
    std::fs::write(&file, UPLOAD_CSV).expect("csv");
    browser.goto(&console.url("/campaigns")).await;
    browser.type_into("input[name=merchant_id]", MERCHANT).await;
    browser.type_into("input[name=activity_id]", ACTIVITY).await;
    browser.type_into("input[name=product_code]", PRODUCT).await;
    browser.choose_file("input[name=file]", &file).await;
    browser.screenshot("campaign-upload-form").await;
    browser.click("form[action='/campaigns'] button[type=submit]").await;
    let page = console.url("/campaigns/autumn");
    assert_eq!(browser.url_when(|u| u == page).await, page, "the campaign is named after the file");
    let text = browser.text_with("Last load").await;
    assert!(text.contains("6 rows from upload autumn.csv: 3 accepted, 0 duplicates, 3 rejected"), "{text}");
    assert!(text.contains(" CST by "), "the load's time in the operator's zone, as every time: {text}");
    assert!(text.contains("3 / 3 orders final") || text.contains("0 / 3 orders final"), "{text}");
    browser.screenshot("campaign-uploaded").await;
    browser.click("a.rejects").await;
    let rejects = browser.downloaded("autumn.rejects.csv").await;
    let rows: Vec<&str> = rejects.lines().collect();
    assert_eq!(rows[0], "line,reason,openId,productCode", "{rejects}");
    assert_eq!(rows.len(), 1 + UPLOAD_BAD_LINES.len(), "{rejects}");
    for (row, (line, bad)) in rows[1..].iter().zip(UPLOAD_BAD_LINES) {
        assert!(row.starts_with(&format!("{line},")) && row.ends_with(&format!(",{bad}")), "{row}: line {line}");
    }

    // Its rate over time: released and issued per step (as if a scheduler and
    // a consumer had worked through it a few minutes ago).
    let db = app.store.client().await.expect("db");
    let worked = "UPDATE orders SET enqueued_at = now() - interval '6 min', status = 2,
                  finished_at = now() - interval '3 min' WHERE campaign = 'autumn'";
    db.execute(worked, &[]).await.expect("update");
    browser.goto(&console.url("/campaigns/autumn")).await;
    assert_eq!(browser.find_all(".chart svg polyline").await.len(), 2, "released and issued, drawn on the server");
    let text = browser.text().await;
    assert!(text.contains("released (3)") && text.contains("issued (3)"), "{text}");
    browser.screenshot("campaign-rate").await;

    // A bigger one by token, held halfway: the page shows its progress and
    // refreshes itself until the load is done.
    let (parts, sending) = crate::console_upload::streamed_upload(&console, &token, "winter");
    let mut head = String::from("openId\n");
    for i in 0..25_000 {
        head.push_str(&format!("oWinter{i}\n"));
    }
    parts.send(Ok(head.into_bytes())).await.expect("first part");
    let stored = "SELECT count(*) FROM orders WHERE campaign = 'winter'";
    assert_eq!(app.wait_for_count(stored, 20_000, Duration::from_secs(30)).await, 20_000);
    browser.goto(&console.url("/campaigns/winter")).await;
    let text = browser.text().await;
    assert!(text.contains("Loading now: winter") && text.contains("20000 accepted"), "{text}");
    browser.screenshot("campaign-loading").await;
    parts.send(Ok(b"oWinterLast\n".to_vec())).await.expect("last part");
    drop(parts);
    let (status, loaded) = sending.await.expect("upload");
    assert_eq!((status.as_u16(), loaded["accepted"].as_u64()), (200, Some(25_001)), "{loaded}");
    // No navigation here: the page's own refresh shows the finished load.
    let text = browser.text_with("25001 rows from upload winter.csv").await;
    assert!(!text.contains("Loading now"), "{text}");
    assert_eq!(browser.url().await, console.url("/campaigns/winter"));
    browser.screenshot("campaign-loaded").await;
    let audit = lijian_ok(&app, &["audit", "list", "--action", "load"]);
    assert!(audit.contains("autumn") && audit.contains("winter") && audit.matches(" ana ").count() == 2, "{audit}");
    browser.quit().await;
    console.stop().await;
    app.stop().await;
}
