//! `lijian merchant set`: what `merchant add` set up can be changed — name,
//! default callback URL (checked like any callbackUrl), allowed addresses — and
//! the gateway applies it within its credential cache TTL.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn merchant_set_changes_name_callback_and_allowed_addresses() {
    let app = spawn_app().await;
    // Refused at the door like merchant add: a target that can never be delivered.
    let out = lijian_command(&app.settings)
        .args(["merchant", "set", "--merchant-id", MERCHANT, "--callback-url", "http://10.1.2.3/cb"])
        .output()
        .expect("run lijian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("10.1.2.3 is private"), "{stderr}");
    let nothing = lijian_command(&app.settings).args(["merchant", "set", "--merchant-id", MERCHANT]).output();
    assert!(!nothing.expect("run lijian").status.success(), "nothing to change is an error");
    let unknown = lijian_command(&app.settings)
        .args(["merchant", "set", "--merchant-id", "nobody", "--name", "X"])
        .output()
        .expect("run lijian");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("merchant nobody does not exist"));

    lijian_ok(&app, &["merchant", "set", "--merchant-id", MERCHANT, "--name", "Renamed Shop"]);
    lijian_ok(&app, &["merchant", "set", "--merchant-id", MERCHANT, "--callback-url", "https://shop.example/cb"]);
    let shown = lijian_ok(&app, &["merchant", "show", "--merchant-id", MERCHANT]);
    assert!(shown.contains("Renamed Shop") && shown.contains("https://shop.example/cb"), "{shown}");

    // Only 10.0.0.0/8 may call now: our request from 127.0.0.1 is refused (status 10).
    assert_eq!(app.order("edit-1").await["status"], 0);
    lijian_ok(&app, &["merchant", "set", "--merchant-id", MERCHANT, "--allow-ip", "10.0.0.0/8"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.order("edit-2").await["status"], 10);
    lijian_ok(&app, &["merchant", "set", "--merchant-id", MERCHANT, "--allow-any-ip", "--no-callback-url"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.order("edit-3").await["status"], 0);
    let shown = lijian_ok(&app, &["merchant", "show", "--merchant-id", MERCHANT]);
    assert!(shown.contains("callback     -") && shown.contains("allow-ip     any"), "{shown}");
    app.stop().await;
}
