//! `lijian order show`: a replay is an event, events are in the order they
//! happened, a failed report attempt says when the next is due, and every
//! timestamp has the same width.

use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::wxpay::spawn_sim;
use crate::helpers::*;

/// The timeline's lines: (time as shown, the rest).
fn timeline(story: &str) -> Vec<(String, String)> {
    story
        .lines()
        .skip_while(|l| !l.starts_with("timeline"))
        .skip(1)
        .map(|l| {
            let (at, rest) = l.trim_start().split_once("  ").expect("time, then the event");
            (at.to_string(), rest.trim().to_string())
        })
        .collect()
}

/// Where the first line containing each of `phrases` is, in that order.
fn positions(lines: &[(String, String)], phrases: &[&str]) -> Vec<usize> {
    phrases
        .iter()
        .map(|p| lines.iter().position(|(_, l)| l.contains(p)).unwrap_or_else(|| panic!("no {p:?} in {lines:#?}")))
        .collect()
}

#[tokio::test]
async fn a_replay_is_an_event_and_events_keep_their_true_order() {
    let app = Arc::new(spawn_app().await);
    let wrong = spawn_sim(|c| c.merchant_public_key = fixture("merchant-test-public.pem")).await;
    let orders = app.place_orders("story", 1, 1).await;
    let code = &orders[0];
    let consumer = app.start_consumer(&app.consumer_settings(&wrong));
    let dead = "SELECT count(*) FROM orders WHERE dead_at IS NOT NULL";
    assert_eq!(app.wait_for_count(dead, 1, Duration::from_secs(20)).await, 1);
    consumer.stop().await;
    // The gateway stamps `enqueued_at` when it records the broker's confirm, which
    // a fast consumer can beat: make that happen here for certain.
    let client = app.store.client().await.expect("client");
    client
        .execute(
            "UPDATE orders SET enqueued_at = (SELECT max(started_at) FROM upstream_attempts WHERE order_code = $1)
                    + interval '5 ms'
              WHERE order_code = $1",
            &[code],
        )
        .await
        .expect("late stamp");

    let right = spawn_sim(|_| {}).await;
    let consumer = app.start_consumer(&app.consumer_settings(&right));
    assert!(lijian_ok(&app, &["dlq", "replay", "--order", code]).contains("replayed 1 issue jobs"));
    assert_eq!(app.wait_for_count("SELECT count(*) FROM orders WHERE status = 2", 1, Duration::from_secs(20)).await, 1);
    consumer.stop().await;

    let story = lijian_ok(&app, &["order", "show", code]);
    let lines = timeline(&story);
    let order = positions(
        &lines,
        &[
            "accepted",
            "queued",
            "attempt 1 → parked",
            "in the issue dead-letter queue: HTTP 401 SIGN_ERROR",
            "issue job sent again by an operator",
            "attempt 2 → issued",
            "coupon",
        ],
    );
    assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order: {order:?}\n{story}");
    for (at, line) in &lines {
        assert_eq!(at.len(), "2026-11-25T10:00:00.000Z".len(), "{at} ({line})");
        OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    stop_shared(app).await;
}

#[tokio::test]
async fn a_failed_report_attempt_says_when_the_next_is_due() {
    let mut app = spawn_app().await;
    app.settings.notifier.schedule = vec![Duration::from_secs(60)];
    let app = Arc::new(app);
    let sim = spawn_sim(|_| {}).await;
    let receiver = Receiver::start(vec![], Answer::Reply(503, "busy")).await;
    app.set_callback(MERCHANT, &receiver.url()).await;
    let settings = app.consumer_settings(&sim);
    let consumer = app.start_consumer(&settings);
    let notifier = app.start_notifier(&settings);
    let orders = app.place_orders("due", 1, 1).await;
    let attempted = "SELECT count(*) FROM report_attempts";
    assert_eq!(app.wait_for_count(attempted, 1, Duration::from_secs(20)).await, 1);

    let story = lijian_ok(&app, &["order", "show", &orders[0]]);
    let lines = timeline(&story);
    let (at, line) = lines.iter().find(|(_, l)| l.contains("report attempt 1")).expect("the attempt");
    let due = line.split("next attempt due ").nth(1).unwrap_or_else(|| panic!("no due time: {line}"));
    let (at, due) = (OffsetDateTime::parse(at, &Rfc3339), OffsetDateTime::parse(due, &Rfc3339));
    let wait = due.expect("due time") - at.expect("attempt time");
    assert!(wait > time::Duration::seconds(59) && wait < time::Duration::seconds(61), "{wait}: {line}");
    consumer.stop().await;
    notifier.stop().await;
    stop_shared(app).await;
}
