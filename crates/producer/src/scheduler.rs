//! The scheduler role: releases every campaign's orders to the campaign queue,
//! at their time, in fair shares of each WeChat Pay account's window, and no
//! faster than a campaign's `--rate` ([`crate::release`]).
//!
//! `--rate` pacing is computed from the database clock, not counted per
//! process: a campaign paced at `rate` may have released `pace_base + rate ×
//! (now − pace_from)` orders by now. Any number of schedulers may run: one
//! plans and releases at a time, each order is released once, and nothing
//! depends on the schedulers' clocks agreeing. Small, frequent steps spread
//! the release evenly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lijian_core::config::Settings;
use lijian_core::outbox::{drain, run_periodically, Confirms};
use lijian_core::queue::Publisher;
use lijian_core::store::{Store, StoreError};
use lijian_core::telemetry::{Exposition, LogTarget, MetricsSource};
use tracing::Instrument;

use crate::release::Releaser;

/// How often the scheduler releases: 50 steps a second keeps a 100/s
/// campaign at two orders a step, and tops up windows well within their time.
pub const STEP: Duration = Duration::from_millis(20);
/// Steps between two flushes of the bulk outbox (rows a loader from before
/// migration 0014 left).
const STEPS_PER_FLUSH: u64 = 50;

/// The scheduler role: its connections and what it has released.
pub struct Scheduler {
    store: Store,
    publisher: Arc<Publisher>,
    releaser: Releaser,
    /// Orders this process handed to the campaign queue (for metrics).
    pub released: AtomicU64,
}

impl Scheduler {
    pub fn new(store: Store, publisher: Arc<Publisher>, settings: &Settings) -> Arc<Scheduler> {
        let default_account = (settings.wxpay.mchid.clone(), settings.wxpay.rate);
        let releaser = Releaser::new(settings.producer.release_window, default_account, STEP);
        Arc::new(Scheduler { store, publisher, releaser, released: AtomicU64::new(0) })
    }

    /// Runs until `shutdown`: each step releases what is due in every campaign,
    /// and flushes the bulk outbox now and then. While the database is down,
    /// steps back off (up to 5 s) instead of failing 50 times a second.
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        // Connect (and declare the topology) now: done lazily, the first release of
        // a campaign waited ~0.3 s for it and then caught up in a burst.
        if let Err(e) = self.publisher.channel().await {
            tracing::warn!(error = %e, "RabbitMQ not reachable yet; releases wait for it");
        }
        let this = &self;
        let mut steps: u64 = 0;
        run_periodically(LogTarget::Scheduler, "scheduler", STEP, shutdown, move || {
            steps += 1;
            this.tick(steps.is_multiple_of(STEPS_PER_FLUSH))
        })
        .await;
    }

    async fn tick(&self, flush_outbox: bool) -> Result<usize, StoreError> {
        let released = self.step().await;
        if let Ok(n) = released {
            self.released.fetch_add(n as u64, Ordering::Relaxed);
        }
        if flush_outbox {
            if let Err(e) = crate::outbox::flush(&self.store, &self.publisher).await {
                tracing::warn!(error = %e, "outbox pass failed; will retry");
            }
        }
        released
    }

    /// One release step over every campaign; returns the orders released (0 when
    /// another scheduler is planning).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let span = tracing::info_span!("release");
        let drained =
            drain(&self.store, &self.publisher, &self.releaser.step(), Confirms::Partial).instrument(span).await?;
        Ok(drained.settled.iter().map(|(_, codes)| codes.len()).sum())
    }
}

impl MetricsSource for Scheduler {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "lijian_orders_released_total",
            "Campaign orders released to the campaign queue",
            self.released.load(Ordering::Relaxed),
        );
        let (campaigns, accounts) = self.releaser.views();
        out.labelled_counter(
            "lijian_campaign_released_total",
            "Orders of each campaign this scheduler released (its release pace is the rate of this)",
            "campaign",
            campaigns.iter().map(|(name, v)| (name.as_str(), v.released)),
        );
        out.labelled_gauge(
            "lijian_campaign_share",
            "Each releasing campaign's part of its account's window (0-1): merchants alike, then by priority",
            "campaign",
            campaigns.iter().map(|(name, v)| (name.as_str(), v.share)),
        );
        out.labelled_gauge(
            "lijian_campaign_share_orders_per_second",
            "What each campaign's share is worth now: its account's campaign rate times the share",
            "campaign",
            campaigns.iter().map(|(name, v)| (name.as_str(), v.share_rate)),
        );
        out.labelled_gauge(
            "lijian_campaign_in_flight",
            "Each campaign's orders released and not final yet",
            "campaign",
            campaigns.iter().map(|(name, v)| (name.as_str(), v.in_flight as f64)),
        );
        out.labelled_gauge(
            "lijian_release_window",
            "Campaign orders each WeChat Pay account may have in flight (32 + LIJIAN_RELEASE_WINDOW of its limit, grown while slots go unused)",
            "mchid",
            accounts.iter().map(|(mchid, v)| (mchid.as_str(), v.window)),
        );
        out.labelled_gauge(
            "lijian_campaign_finishing_per_second",
            "Campaign orders each WeChat Pay account finished per second lately",
            "mchid",
            accounts.iter().map(|(mchid, v)| (mchid.as_str(), v.rate)),
        );
    }
}
