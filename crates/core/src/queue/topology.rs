//! Exchange and queue names under `LIJIAN_QUEUE_PREFIX`, and their declaration.
//!
//! Two lanes with the same shape (prefix `p`, lane `issue` or `notify`):
//! - `p.<lane>` direct exchange → `p.<lane>` quorum queue (routing key = lane);
//!   the issue lane has a second work queue, `p.issue.campaign` (routing key
//!   `issue.campaign`), so campaign jobs never sit in front of interactive ones
//!   (quorum queues on RabbitMQ 3.x have no priorities; docs/decisions.md);
//! - `p.<lane>.dlx` exchange → `p.<lane>.dlq` quorum queue, where jobs are parked;
//! - `p.<lane>.retry.<delay>` quorum queues, one per distinct delay of the lane's
//!   schedule, with a queue-level TTL that dead-letter back to `p.<lane>`:
//!   retries wait in the broker, not in a task.
//!
//! With the default schedules that is 23 queues per prefix (docs/operations.md,
//! "Broker footprint"). Each delay had three queues once (85/100/115%, for
//! jitter); docs/decisions.md says why one is enough.
//!
//! Work queues dead-letter with `at-least-once` (which needs
//! `overflow = reject-publish`): RabbitMQ only confirm-protects dead-lettering with
//! that strategy, so a job cannot vanish between two queues.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use super::QueueError;

pub use crate::vocab::{IssueLane, Lane};

impl Lane {
    /// Routing key on the lane's exchanges.
    pub fn routing_key(self) -> &'static str {
        self.as_str()
    }
}

impl IssueLane {
    /// Routing key on the issue exchange. Interactive jobs keep the issue lane's
    /// own key: retry tiers dead-letter back with it, and publishers from before
    /// the campaign queue existed use it.
    pub fn routing_key(self) -> &'static str {
        match self {
            IssueLane::Interactive => Lane::Issue.routing_key(),
            IssueLane::Campaign => "issue.campaign",
        }
    }
}

/// The distinct delays of a schedule, one delay queue each.
fn tiers(delays: &[Duration]) -> Vec<Duration> {
    let mut all = delays.to_vec();
    all.sort();
    all.dedup();
    all
}

/// Exchange and queue names of one installation.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    /// Delay queues of the issue lane; one per distinct delay, because per-message
    /// TTL only expires at the head and a long wait would block short ones.
    issue_delays: Vec<Duration>,
    notify_delays: Vec<Duration>,
}

impl Topology {
    pub fn new(prefix: &str) -> Topology {
        Topology { prefix: prefix.to_string(), issue_delays: Vec::new(), notify_delays: Vec::new() }
    }

    /// The topology for these settings, retry tiers of both lanes included.
    pub fn from_settings(settings: &crate::config::Settings) -> Topology {
        let mut notify = settings.notifier.schedule.clone();
        notify.push(crate::config::NOTIFY_BUSY_DELAY);
        Topology::new(&settings.broker.queue_prefix)
            .with_retry_delays(&settings.consumer.retry_schedule)
            .with_notify_delays(&notify)
    }

    /// Declares one delay queue per distinct delay of the issue lane.
    pub fn with_retry_delays(mut self, delays: &[Duration]) -> Topology {
        self.issue_delays = tiers(delays);
        self
    }

    /// Like [`Topology::with_retry_delays`], for the notify lane.
    pub fn with_notify_delays(mut self, delays: &[Duration]) -> Topology {
        self.notify_delays = tiers(delays);
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn delays(&self, lane: Lane) -> &[Duration] {
        match lane {
            Lane::Issue => &self.issue_delays,
            Lane::Notify => &self.notify_delays,
        }
    }

    pub fn exchange(&self, lane: Lane) -> String {
        format!("{}.{}", self.prefix, lane.as_str())
    }
    pub fn queue(&self, lane: Lane) -> String {
        format!("{}.{}", self.prefix, lane.as_str())
    }
    pub fn dead_letter_exchange(&self, lane: Lane) -> String {
        format!("{}.{}.dlx", self.prefix, lane.as_str())
    }
    pub fn dead_letter_queue(&self, lane: Lane) -> String {
        format!("{}.{}.dlq", self.prefix, lane.as_str())
    }
    /// The delay queue that holds a job for `delay`, then dead-letters it back to
    /// the lane's exchange. Only declared delays exist.
    pub fn retry_queue(&self, lane: Lane, delay: Duration) -> String {
        format!("{}.{}.retry.{}", self.prefix, lane.as_str(), crate::config::format_duration(delay))
    }
    /// The delay queue a retry after `delay` goes to: its tier, or the nearest
    /// declared one if `delay` is not in the schedule (never a queue that does
    /// not exist, where the publish would be unroutable).
    pub fn retry_queue_for(&self, lane: Lane, delay: Duration) -> String {
        let declared = self.delays(lane);
        let nearest = declared.iter().min_by_key(|d| d.abs_diff(delay)).copied().unwrap_or(delay);
        self.retry_queue(lane, nearest)
    }

    /// A delay queue for the `n`th hand-back in a row of a job: about 2^(n-1)
    /// seconds, at most `cap`, as near as the lane's declared delays allow (the
    /// longest of them not above the target, else the shortest).
    pub fn backoff_queue(&self, lane: Lane, n: u32, cap: Duration) -> String {
        let base = self.delays(lane);
        let target = cap.min(Duration::from_secs(1u64 << n.saturating_sub(1).min(20)));
        let delay = base.iter().rev().find(|d| **d <= target).or(base.first()).copied().unwrap_or(cap);
        self.retry_queue(lane, delay)
    }

    pub fn issue_exchange(&self) -> String {
        self.exchange(Lane::Issue)
    }
    /// The interactive work queue (`p.issue`).
    pub fn issue_queue(&self) -> String {
        self.queue(Lane::Issue)
    }
    /// The work queue of an issue lane: `p.issue` or `p.issue.campaign`.
    pub fn issue_lane_queue(&self, lane: IssueLane) -> String {
        match lane {
            IssueLane::Interactive => self.issue_queue(),
            IssueLane::Campaign => format!("{}.issue.campaign", self.prefix),
        }
    }
    pub fn issue_dead_letter_queue(&self) -> String {
        self.dead_letter_queue(Lane::Issue)
    }

    /// Every queue this topology declares, for operators and test cleanup.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = Vec::new();
        for lane in [Lane::Issue, Lane::Notify] {
            queues.push(self.queue(lane));
            if lane == Lane::Issue {
                queues.push(self.issue_lane_queue(IssueLane::Campaign));
            }
            queues.push(self.dead_letter_queue(lane));
            queues.extend(self.delays(lane).iter().map(|d| self.retry_queue(lane, *d)));
        }
        queues
    }

    pub fn exchanges(&self) -> Vec<String> {
        [Lane::Issue, Lane::Notify].into_iter().flat_map(|l| [self.exchange(l), self.dead_letter_exchange(l)]).collect()
    }

    /// Deletes every queue and exchange of this topology, messages included:
    /// for throwaway installations (tests, benchmarks, the demo), whose leftover
    /// quorum queues would otherwise slow the broker for everyone. Best effort.
    pub async fn remove(&self, amqp_url: &str) {
        let Ok(connection) = super::connect(amqp_url, "lijian-cleanup").await else { return };
        if let Ok(channel) = connection.create_channel().await {
            for q in self.queues() {
                let _ = channel.queue_delete(q.as_str().into(), Default::default()).await;
            }
            for e in self.exchanges() {
                let _ = channel.exchange_delete(e.as_str().into(), Default::default()).await;
            }
            // Channel first: closing the connection under an open channel makes
            // lapin log "invalid channel state: Closing" as an ERROR.
            let _ = channel.close(200, "removed".into()).await;
        }
        let _ = connection.close(200, "removed".into()).await;
    }

    /// Declares everything; safe to run on every start and from several processes.
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        for lane in [Lane::Issue, Lane::Notify] {
            self.declare_lane(channel, lane).await?;
        }
        Ok(())
    }

    async fn declare_lane(&self, channel: &Channel, lane: Lane) -> Result<(), QueueError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        for exchange in [self.exchange(lane), self.dead_letter_exchange(lane)] {
            channel
                .exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, durable, FieldTable::default())
                .await?;
        }
        let key = lane.routing_key();
        let mut dlq_args = quorum_args();
        dlq_args.insert("x-overflow".into(), text("reject-publish"));
        declare_queue(channel, &self.dead_letter_queue(lane), dlq_args).await?;
        bind(channel, &self.dead_letter_queue(lane), &self.dead_letter_exchange(lane), key).await?;

        let mut work_args = quorum_args();
        work_args.insert("x-dead-letter-exchange".into(), text(&self.dead_letter_exchange(lane)));
        work_args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        work_args.insert("x-overflow".into(), text("reject-publish"));
        declare_queue(channel, &self.queue(lane), work_args.clone()).await?;
        bind(channel, &self.queue(lane), &self.exchange(lane), key).await?;
        if lane == Lane::Issue {
            // Same arguments as the interactive queue: parked campaign jobs go to
            // the one issue dead-letter queue, retries through the same tiers.
            let campaign = self.issue_lane_queue(IssueLane::Campaign);
            declare_queue(channel, &campaign, work_args).await?;
            bind(channel, &campaign, &self.exchange(lane), IssueLane::Campaign.routing_key()).await?;
        }

        for delay in self.delays(lane) {
            let mut args = quorum_args();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis() as i64));
            args.insert("x-dead-letter-exchange".into(), text(&self.exchange(lane)));
            args.insert("x-dead-letter-routing-key".into(), text(key));
            args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
            args.insert("x-overflow".into(), text("reject-publish"));
            declare_queue(channel, &self.retry_queue(lane, *delay), args).await?;
        }
        Ok(())
    }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    channel.queue_declare(name.into(), QueueDeclareOptions::durable(), args).await?;
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    channel
        .queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_retry_tier_per_distinct_delay_named_by_it() {
        let t = Topology::new("p").with_retry_delays(&[Duration::from_secs(1), Duration::from_secs(1)]);
        assert_eq!(t.queues().len(), 5 + 1);
        assert!(t.queues().contains(&"p.issue.campaign".to_string()));
        assert!(t.queues().contains(&"p.issue.retry.1s".to_string()));
        assert_eq!(t.retry_queue_for(Lane::Issue, Duration::from_secs(1)), "p.issue.retry.1s");
        assert_eq!(t.retry_queue_for(Lane::Issue, Duration::from_millis(1100)), "p.issue.retry.1s");
        assert!(t.queues().contains(&"p.notify.dlq".to_string()));
    }

    #[test]
    fn back_off_grows_to_the_cap_within_declared_delays() {
        let secs = |s: &[u64]| s.iter().map(|s| Duration::from_secs(*s)).collect::<Vec<_>>();
        let t = Topology::new("p").with_retry_delays(&secs(&[1, 5, 30]));
        let cap = Duration::from_secs(10);
        let base = |n| {
            let q = t.backoff_queue(Lane::Issue, n, cap);
            assert!(t.queues().contains(&q), "{q} is declared");
            q
        };
        assert!(["p.issue.retry.850ms", "p.issue.retry.1s", "p.issue.retry.1150ms"].contains(&base(1).as_str()));
        for _ in 0..20 {
            let q = base(4);
            assert!(["p.issue.retry.4250ms", "p.issue.retry.5s", "p.issue.retry.5750ms"].contains(&q.as_str()), "{q}");
            let q = base(16);
            assert!(q.ends_with("retry.4250ms") || q.ends_with("retry.5s") || q.ends_with("retry.5750ms"), "{q}");
        }
    }
}
