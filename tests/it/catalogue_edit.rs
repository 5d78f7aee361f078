//! Issue 14, point 4: activities and products can be changed after `add`.
//! `activity set` raises (or trims) the budget, moves the window, disables and
//! enables; `product set` changes the price under the rules of `product add`.
//! Each edit applies to the next order, at every door.

use crate::helpers::*;

const SHOP: &str = "m-edit";
const SHOP_ACTIVITY: &str = "a-m-edit";

fn activity_set(app: &TestApp, args: &[&str]) -> String {
    lijian_ok(app, &[&["activity", "set", "--activity-id", SHOP_ACTIVITY], args].concat())
}

fn activity_set_fails(app: &TestApp, args: &[&str]) -> String {
    lijian_fails(app, &[&["activity", "set", "--activity-id", SHOP_ACTIVITY], args].concat())
}

fn product_set<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["product", "set", "--product-code", PRODUCT], args].concat()
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).expect("format")
}

#[tokio::test]
async fn activity_edits_apply_to_the_next_order_and_a_disabled_activity_refuses() {
    let app = spawn_app().await;
    app.add_merchant(SHOP, 1_000_000, &[], 2).await;
    assert_eq!(app.order_for(SHOP, "b1").await["status"], 0);
    assert_eq!(app.order_for(SHOP, "b2").await["status"], 0);
    let full = app.order_for(SHOP, "b3").await;
    assert_eq!((full["status"].as_i64(), full["message"].as_str()), (Some(11), Some("activity budget used up")));

    // Raise the budget: the next order goes through. Lowering below what is
    // accepted is refused and changes nothing.
    let out = activity_set(&app, &["--budget", "3"]);
    assert!(out.contains("budget 3 (2 accepted)"), "{out}");
    assert_eq!(app.order_for(SHOP, "b4").await["status"], 0);
    let below = activity_set_fails(&app, &["--budget", "2"]);
    assert!(below.contains("3 coupons accepted already") && below.contains("cannot go below 3"), "{below}");
    assert_eq!(app.count("SELECT budget FROM activities WHERE activity_id = 'a-m-edit'").await, 3);
    assert!(activity_set_fails(&app, &["--budget", "-5"]).contains("positive"));

    // Disabled: status 11 naming why, nothing charged; a CSV row is refused the same way.
    activity_set(&app, &["--budget", "10", "--disable"]);
    let balance = app.balance(SHOP).await;
    let refused = app.order_for(SHOP, "d1").await;
    assert_eq!(refused["status"], 11, "{refused}");
    assert_eq!(refused["message"], "activity is disabled");
    assert_eq!(app.balance(SHOP).await, balance, "nothing charged");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("off.csv");
    std::fs::write(&file, "bizCode,openId\nL1,oUserL1\n").expect("csv");
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", SHOP, "--activity-id", SHOP_ACTIVITY, "--product-code", PRODUCT])
        .output()
        .expect("run lijian load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rejects = std::fs::read_to_string(dir.path().join("off.rejects.csv")).expect("rejects file");
    assert!(rejects.contains("2,activity is disabled,L1"), "{rejects}");
    assert!(activity_set(&app, &["--enable"]).contains("enabled"));
    assert_eq!(app.order_for(SHOP, "d2").await["status"], 0);

    // The window: end it, and the next order is refused; extend it, and it is accepted.
    let now = time::OffsetDateTime::now_utc();
    activity_set(&app, &["--ends", &rfc3339(now - time::Duration::minutes(1))]);
    assert_eq!(app.order_for(SHOP, "w1").await["message"], "activity has ended");
    let out = activity_set(&app, &["--ends", &rfc3339(now + time::Duration::days(60))]);
    assert!(out.contains(" to ") && out.contains("enabled"), "{out}");
    assert_eq!(app.order_for(SHOP, "w2").await["status"], 0);
    let long = activity_set_fails(&app, &["--ends", &rfc3339(now + time::Duration::days(120))]);
    assert!(long.contains("at most 90 days"), "{long}");
    let backwards = activity_set_fails(&app, &["--starts", &rfc3339(now + time::Duration::days(61))]);
    assert!(backwards.contains("--ends must be after --starts"), "{backwards}");

    assert!(activity_set_fails(&app, &[]).contains("nothing to change"));
    let nobody = lijian_fails(&app, &["activity", "set", "--activity-id", "nobody", "--disable"]);
    assert!(nobody.contains("activity nobody does not exist"), "{nobody}");
    app.stop().await;
}

#[tokio::test]
async fn product_set_keeps_the_price_rules_and_prices_new_orders_only() {
    let app = spawn_app().await;
    assert_eq!(app.order("before").await["status"], 0);
    let zero = lijian_fails(&app, &product_set(&["--price", "0"]));
    assert!(zero.contains("--price must be more than 0"), "{zero}");
    let negative = lijian_fails(&app, &product_set(&["--price", "-1"]));
    assert!(negative.contains("--price") && negative.contains("negative"), "{negative}");
    let above = lijian_fails(&app, &product_set(&["--price", "12"]));
    assert!(above.contains("above --face-value 10.00 yuan") && above.contains("--allow-price-above-face"), "{above}");
    let unknown = lijian_fails(&app, &["product", "set", "--product-code", "nothing", "--price", "1"]);
    assert!(unknown.contains("product nothing does not exist"), "{unknown}");
    assert_eq!(app.count("SELECT price_fen FROM products").await, PRICE_FEN, "nothing changed");

    let out = lijian_ok(&app, &product_set(&["--price", "8"]));
    assert!(out.contains("price 8.00 yuan (was 9.50 yuan"), "{out}");
    let balance = app.balance(MERCHANT).await;
    let answer = app.order("after").await;
    assert_eq!(answer["data"]["settlementPrice"].as_f64(), Some(8.0), "{answer}");
    assert_eq!(app.balance(MERCHANT).await, balance - 800);
    assert_eq!(app.count("SELECT settlement_fen FROM orders WHERE biz_code = 'before'").await, PRICE_FEN);
    lijian_ok(&app, &product_set(&["--price", "12", "--allow-price-above-face"]));
    assert_eq!(app.order("fee").await["data"]["settlementPrice"].as_f64(), Some(12.0));
    app.stop().await;
}
