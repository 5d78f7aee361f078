//! Keeping a dead-letter queue in step with the database after an operator
//! replayed or failed parked jobs: their messages are taken out, the others put
//! back. The database says what is parked; the queue is the broker's copy.

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{Lane, Publisher, QueueError};

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    pub kept: usize,
}

/// Goes once through `lane`'s dead-letter queue: a message whose job
/// `still_parked` rejects is removed, any other is re-parked (same payload and
/// headers, confirmed) before its original is acknowledged, so a crash mid-sweep
/// can duplicate a parked message but never lose one.
pub async fn sweep_dead_letters(
    publisher: &Publisher,
    lane: Lane,
    still_parked: impl Fn(&[u8]) -> bool,
) -> Result<Swept, QueueError> {
    let topology = publisher.topology().clone();
    let queue = topology.dead_letter_queue(lane);
    let connection = super::connect(publisher.url(), "lijian-dlq-sweep").await?;
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let depth = match channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await {
        Ok(declared) => declared.message_count(),
        // No role has declared this prefix's queues yet: nothing is parked on the
        // broker, so there is nothing to keep in step (and no broker error to show).
        Err(e) if not_found(&e) => {
            let _ = connection.close(200, "nothing to sweep".into()).await;
            return Ok(Swept::default());
        }
        Err(e) => return Err(e.into()),
    };
    let mut swept = Swept::default();
    // At most the messages present at the start: re-parked ones go to the back
    // and must not be seen again.
    for _ in 0..depth {
        let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await? else {
            break;
        };
        let delivery = message.delivery;
        if still_parked(&delivery.data) {
            let headers = delivery.properties.headers().clone();
            publisher
                .publish(&topology.dead_letter_exchange(lane), lane.routing_key(), &delivery.data, headers)
                .await?;
            swept.kept += 1;
        } else {
            swept.removed += 1;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    // Channel first (see `Topology::remove`).
    let _ = channel.close(200, "swept".into()).await;
    let _ = connection.close(200, "swept".into()).await;
    Ok(swept)
}

fn not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}
