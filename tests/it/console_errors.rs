//! Issue 13's error messages in the asker's language: the console's own
//! refusals and the typed ones from below it (a campaign's state, a CSV with no
//! header, a money amount) come in Chinese to `Accept-Language: zh-CN` and in
//! English to `en`, as JSON and as a page, with the same status either way.

use reqwest::header::{ACCEPT, ACCEPT_LANGUAGE, AUTHORIZATION, COOKIE};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::console::{browser_session, client};
use crate::helpers::console::{ConsoleHandle, UPLOAD_CSV};
use crate::helpers::*;

/// The error a JSON caller gets, in `lang`: (status, message).
async fn refused(
    console: &ConsoleHandle,
    token: &str,
    lang: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = client()
        .request(method, console.url(path))
        .header(ACCEPT, "application/json")
        .header(ACCEPT_LANGUAGE, lang)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_string())
}

/// An upload's error in `lang`: the form's fields, then the file.
async fn upload_refused(
    console: &ConsoleHandle,
    token: &str,
    lang: &str,
    fields: &[(&str, String)],
    csv: &'static str,
) -> (StatusCode, String) {
    let mut form = Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.clone());
    }
    let file = Part::bytes(csv.as_bytes()).file_name("up.csv").mime_str("text/csv").expect("mime");
    let answer = client()
        .post(console.url("/campaigns"))
        .header(ACCEPT, "application/json")
        .header(ACCEPT_LANGUAGE, lang)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .multipart(form.part("file", file))
        .send()
        .await
        .expect("POST /campaigns");
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_string())
}

/// Asks in English and in Chinese: the same status, each text in its language.
async fn both<F, Fut>(ask: F, status: StatusCode, en: &str, zh: &str)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = (StatusCode, String)>,
{
    let (en_status, en_text) = ask("en").await;
    let (zh_status, zh_text) = ask("zh-CN,zh;q=0.9,en;q=0.8").await;
    assert_eq!((en_status, zh_status), (status, status), "{en_text} / {zh_text}");
    assert!(en_text.contains(en), "English: {en_text:?} lacks {en:?}");
    assert!(zh_text.contains(zh), "Chinese: {zh_text:?} lacks {zh:?}");
    assert!(!zh_text.contains(en), "Chinese still English: {zh_text:?}");
}

#[tokio::test]
async fn refusals_are_worded_in_the_askers_language_with_the_same_status() {
    let app = spawn_app().await;
    let console = app.start_console().await;
    app.add_operator("ana", "admin");
    let token = app.operator_token("ana");
    let (c, t) = (&console, token.as_str());
    let base = |campaign: &str| {
        vec![
            ("merchant_id", MERCHANT.to_string()),
            ("activity_id", ACTIVITY.to_string()),
            ("product_code", PRODUCT.to_string()),
            ("campaign", campaign.to_string()),
        ]
    };

    // The upload's own checks, and the loader's (a file with no header row).
    let mut long = base("long");
    long.push(("note", "x".repeat(5000)));
    both(
        |l| upload_refused(c, t, l, &long, UPLOAD_CSV),
        StatusCode::BAD_REQUEST,
        "the field note is too long",
        "字段 note 过长",
    )
    .await;
    let mut rate = base("rated");
    rate.push(("rate", "0".into()));
    both(
        |l| upload_refused(c, t, l, &rate, UPLOAD_CSV),
        StatusCode::BAD_REQUEST,
        "rate must be a whole number",
        "必须是不小于 1 的整数",
    )
    .await;
    let named = base("no spaces");
    both(
        |l| upload_refused(c, t, l, &named, UPLOAD_CSV),
        StatusCode::BAD_REQUEST,
        "may contain only letters",
        "计划名称只能包含",
    )
    .await;
    let empty = base("empty");
    both(
        |l| upload_refused(c, t, l, &empty, ""),
        StatusCode::BAD_REQUEST,
        "a header row is required",
        "第一行必须是表头",
    )
    .await;

    // An unknown campaign, an action that is not one, a state that refuses.
    let get = |path: &'static str| move |l| refused(c, t, l, Method::GET, path, None);
    both(get("/campaigns/nope"), StatusCode::NOT_FOUND, "campaign nope not found", "没有发券计划 nope").await;
    both(get("/orders?merchant=m-test"), StatusCode::BAD_REQUEST, "give code, or merchant and biz", "请提供 code")
        .await;
    let (status, _) = upload_refused(c, t, "en", &base("spring"), UPLOAD_CSV).await;
    assert_eq!(status, StatusCode::OK);
    let post = |path: &'static str, body: Value| move |l| refused(c, t, l, Method::POST, path, Some(body.clone()));
    let yes = json!({ "confirm": "yes" });
    both(
        post("/campaigns/spring/explode", yes.clone()),
        StatusCode::NOT_FOUND,
        "no campaign action explode",
        "没有 explode 这个操作",
    )
    .await;
    both(
        post("/campaigns/spring/resume", yes.clone()),
        StatusCode::CONFLICT,
        "campaign spring is active, not paused",
        "发券计划 spring 的状态是“进行中”，不是“已暂停”",
    )
    .await;

    // The dead-letter actions on nothing parked; a top-up of a bad amount.
    let nothing = json!({ "lane": "issue", "order": ["LJ-nope"], "confirm": "yes" });
    both(
        post("/dlq/replay", nothing.clone()),
        StatusCode::CONFLICT,
        "none of these jobs is parked any more",
        "都已不在搁置中",
    )
    .await;
    both(
        post("/dlq/fail", json!({ "lane": "sideways" })),
        StatusCode::BAD_REQUEST,
        "is not a valid lane",
        "不是有效的值",
    )
    .await;
    let balance = app.balance(MERCHANT).await;
    both(
        post("/merchants/m-test/topup", json!({ "amount": "1.234" })),
        StatusCode::BAD_REQUEST,
        "more than two decimals",
        "小数超过两位",
    )
    .await;
    both(
        post("/merchants/m-test/topup", json!({ "amount": "-5" })),
        StatusCode::BAD_REQUEST,
        "must not be negative",
        "不能为负数",
    )
    .await;
    assert_eq!(app.balance(MERCHANT).await, balance, "nothing topped up");

    // The page around an error is in the same language: its title and its `lang`.
    let cookie = browser_session(&app, &console).await;
    for (lang, tag, title, text) in [
        ("en", "lang=\"en\"", "Not Found", "campaign nope not found"),
        ("zh-CN", "lang=\"zh-CN\"", "未找到", "没有发券计划 nope"),
    ] {
        let answer = client()
            .get(console.url("/campaigns/nope"))
            .header(COOKIE, &cookie)
            .header(ACCEPT_LANGUAGE, lang)
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        let page = answer.text().await.expect("html");
        assert!(page.contains(tag) && page.contains(title) && page.contains(text), "{lang}: {page}");
    }
    console.stop().await;
    app.stop().await;
}
