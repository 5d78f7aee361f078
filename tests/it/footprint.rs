//! The broker footprint of one queue prefix: what a deployment, its staging and
//! every test run cost a RabbitMQ that may have only 1,024 file handles.

use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::queue::{Lane, Topology};

use crate::helpers::*;

/// Retry tiers once each: with the default schedules (8 issue delays, 9 notify
/// delays and the 2 s busy wait) a prefix holds 2 × (work + dead-letter) + 18
/// delay queues, plus the campaign work queue of the issue lane (issue 15:
/// campaign jobs must not queue in front of API orders, and quorum queues on
/// RabbitMQ 3.x have no priorities). It was 58 when every tier was declared
/// three times for jitter.
const QUEUES_PER_PREFIX: usize = 23;

#[tokio::test]
async fn a_prefix_declares_one_queue_per_retry_tier_and_no_more() {
    let app = spawn_app().await;
    let mut settings = Settings::default();
    settings.broker.queue_prefix = format!("{}-footprint", app.settings.broker.queue_prefix);
    let topology = Topology::from_settings(&settings);
    println!("queues per prefix with the default schedules: {}", topology.queues().len());
    assert_eq!(topology.queues().len(), QUEUES_PER_PREFIX, "{:#?}", topology.queues());

    let connection = lijian_core::queue::connect(&app.amqp_url, "lijian-test").await.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    topology.declare(&channel).await.expect("declare");
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    for queue in topology.queues() {
        let channel = connection.create_channel().await.expect("channel");
        let found = channel.queue_declare(queue.as_str().into(), passive, Default::default()).await;
        assert!(found.is_ok(), "{queue} was declared");
    }
    // The jittered variants of a tier are gone (a passive declare of a missing
    // queue closes the channel, so each gets one of its own).
    for missing in [Duration::from_millis(850), Duration::from_millis(1150)] {
        let channel = connection.create_channel().await.expect("channel");
        let name = topology.retry_queue(Lane::Issue, missing);
        let found = channel.queue_declare(name.as_str().into(), passive, Default::default()).await;
        assert!(found.is_err(), "{name} should not exist");
    }
    // Each retry goes to the one tier of its delay.
    assert_eq!(
        topology.retry_queue_for(Lane::Issue, Duration::from_secs(1)),
        topology.retry_queue(Lane::Issue, Duration::from_secs(1))
    );
    let _ = connection.close(200, "done".into()).await;
    topology.remove(&app.amqp_url).await;
    app.stop().await;
}
