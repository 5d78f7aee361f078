//! Issue 12's bad-input matrix at the doors: each input below is refused by the
//! open API with status 3 and by a CSV load in its rejects file, with the same
//! words, and nothing is stored, charged or queued for any of them. The other
//! hardening points have their own modules (poison, price_rules, order_query,
//! slow_clients, notifier_edges, ops_endpoints, secrets, late_coupons); the
//! parsers have property tests (core money::props and signing::props, producer
//! bulk::rows::props).

use std::time::Duration;

use crate::helpers::*;

/// One refused input: the field it changes, the value, and words the refusal
/// must contain.
struct Case {
    field: &'static str,
    value: &'static str,
    says: &'static str,
}

const MATRIX: &[Case] = &[
    Case { field: "bizCode", value: "b\u{0}nul", says: "bizCode must not contain control characters" },
    Case { field: "bizCode", value: " padded ", says: "surrounding spaces" },
    Case {
        field: "bizCode",
        value: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        says: "bizCode is longer than 64 characters",
    },
    Case { field: "openId", value: "o user", says: "openId may contain only" },
    Case { field: "productCode", value: CHEAP, says: "1.00 yuan" },
    Case { field: "callbackUrl", value: "ftp://merchant.example/cb", says: "must start with http" },
    Case { field: "callbackUrl", value: "http://user@merchant.example/cb", says: "no spaces or credentials" },
    Case { field: "callbackUrl", value: "http://10.1.2.3/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://[::10.1.2.3]/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://[2002::1]/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://[64:ff9b:1::1]/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://198.18.0.1/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://192.0.0.8/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://240.0.0.1/cb", says: "can never be delivered" },
    Case { field: "callbackUrl", value: "http://merchant.example:25/cb", says: "port 25 is not allowed" },
    Case { field: "callbackUrl", value: "http://merchant.example:99999/cb", says: "invalid port" },
];

/// A valid order's fields, with one replaced.
fn fields(case: &Case, biz_code: &str) -> [(&'static str, String); 4] {
    let mut fields = [
        ("bizCode", biz_code.to_string()),
        ("openId", "oUser1".to_string()),
        ("productCode", PRODUCT.to_string()),
        ("callbackUrl", "https://merchant.example/cb".to_string()),
    ];
    for (name, value) in fields.iter_mut() {
        if *name == case.field {
            *value = case.value.to_string();
        }
    }
    fields
}

#[tokio::test]
async fn every_bad_input_is_refused_with_its_reason_at_both_doors_and_nothing_is_stored() {
    let app = spawn_app().await;
    app.add_cheap_product().await;
    let balance = app.balance(MERCHANT).await;

    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["bizCode", "openId", "productCode", "callbackUrl"]).expect("header");
    for (i, case) in MATRIX.iter().enumerate() {
        let fields = fields(case, &format!("bad-{i}"));
        let mut body = serde_json::json!({"merchantId": MERCHANT, "businessId": BUSINESS, "activityId": ACTIVITY});
        for (name, value) in &fields {
            body[*name] = serde_json::Value::from(value.as_str());
        }
        let answer = app.post_signed("/v1/openapi/order/wechat/coupons", &body.to_string()).await;
        let message = answer["message"].as_str().unwrap_or_default();
        assert_eq!(answer["status"], 3, "{} = {:?}: {answer}", case.field, case.value);
        assert!(message.contains(case.says), "{} = {:?}: {message}", case.field, case.value);
        csv.write_record(fields.iter().map(|(_, v)| v.as_str())).expect("row");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("matrix.csv");
    std::fs::write(&file, csv.into_inner().expect("csv")).expect("write csv");
    let out = lijian_command(&app.settings)
        .arg("load")
        .arg(&file)
        .args(["--merchant-id", MERCHANT, "--activity-id", ACTIVITY])
        .output()
        .expect("run lijian load");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rejects = std::fs::read(dir.path().join("matrix.rejects.csv")).expect("rejects file");
    let mut reader = csv::Reader::from_reader(rejects.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("rejects row")).collect();
    assert_eq!(rows.len(), MATRIX.len(), "every row rejected: {}", String::from_utf8_lossy(&rejects));
    for (i, (row, case)) in rows.iter().zip(MATRIX).enumerate() {
        assert_eq!(&row[0], (i + 2).to_string(), "line numbers in file order");
        assert!(row[1].contains(case.says), "line {}: {} = {:?}: {}", i + 2, case.field, case.value, &row[1]);
    }

    assert_eq!(app.count("SELECT count(*) FROM orders").await, 0, "nothing stored");
    assert_eq!(app.balance(MERCHANT).await, balance, "nothing charged");
    assert_eq!(app.count("SELECT count(*) FROM balance_ledger WHERE kind = 'debit'").await, 0);
    assert!(app.wait_for_issue_jobs(1, Duration::from_millis(500)).await.is_empty(), "nothing queued");
    app.stop().await;
}
