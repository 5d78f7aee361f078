//! `lijian load` refuses a file it could never load before reading a row, and
//! leaves no rejects file when nothing was rejected.

use crate::helpers::*;

fn load(app: &TestApp, file: &std::path::Path, flags: &[&str]) -> std::process::Output {
    lijian_command(&app.settings)
        .arg("load")
        .arg(file)
        .args(["--merchant-id", MERCHANT])
        .args(flags)
        .output()
        .expect("run lijian load")
}

#[tokio::test]
async fn a_missing_required_column_refuses_the_file_before_any_row_and_no_empty_rejects_file() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("spring.csv");
    let rejects = dir.path().join("spring.rejects.csv");
    std::fs::write(&file, "openId,productCode\noA1,p-test\noA2,p-test\n").expect("csv");

    // No activityId column and no --activity-id: every row would be refused.
    let out = load(&app, &file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit ≠ 0: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("activityId") && stderr.contains("--activity-id"), "{stderr}");
    assert!(!rejects.exists(), "no rejects file for a file refused whole");
    assert_eq!(app.count("SELECT count(*) FROM campaigns").await, 0, "no campaign left behind");

    // The flag supplies it: loads, nothing rejected, so no rejects file either.
    let out = load(&app, &file, &["--activity-id", ACTIVITY]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accepted:   2") && stdout.contains("rejected:   0"), "{stdout}");
    assert!(!rejects.exists(), "no empty rejects file: {stdout}");
    assert!(!stdout.contains("rejects.csv"), "nothing to point at: {stdout}");

    // A file without productCode and no --product-code is refused the same way.
    std::fs::write(&file, "openId,activityId\noB1,a-test\n").expect("csv");
    let out = load(&app, &file, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("productCode"));
    app.stop().await;
}
