//! Who gets an account's campaign sends: the arithmetic of the release window
//! (docs/decisions.md, "Who gets the account's next send").
//!
//! Each WeChat Pay account has a window: how many campaign orders may be
//! released and not final at once ([`Window`], sized from its limit). Its campaigns share the window
//! by weighted max-min fairness ([`split`]): merchants alike, then a merchant's
//! campaigns by priority ([`campaign_quotas`]); what a campaign cannot use (its
//! `--rate` caps it) goes to the others. Consumers serve a lane first come,
//! first served, so each campaign's rate follows its part of the window — and
//! interactive sends, which go first, leave campaigns whatever they do not use.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One claimant of a split: its weight and the most it can use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    pub weight: f64,
    /// `f64::INFINITY` when it can use any amount.
    pub cap: f64,
}

/// Splits `total` by weight, no claimant above its cap; what a capped claimant
/// leaves goes to the others by weight (weighted max-min fairness, "water
/// filling"). Zero weights get nothing.
pub fn split(total: f64, claims: &[Claim]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..claims.len()).filter(|i| claims[*i].weight > 0.0).collect();
    // The most constrained first: whatever they leave is shared by the rest.
    order.sort_by(|a, b| {
        let (a, b) = (&claims[*a], &claims[*b]);
        (a.cap / a.weight).total_cmp(&(b.cap / b.weight))
    });
    let mut out = vec![0.0; claims.len()];
    let mut left = total.max(0.0);
    let mut weight: f64 = order.iter().map(|i| claims[*i].weight).sum();
    for i in order {
        let claim = claims[i];
        let fair = left * claim.weight / weight;
        out[i] = fair.min(claim.cap.max(0.0));
        left -= out[i];
        weight -= claim.weight;
    }
    out
}

/// A campaign asking for part of its account's window.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignClaim {
    pub merchant: String,
    /// Its weight among the merchant's campaigns (`--priority`, ≥ 1).
    pub priority: u32,
    /// The most it can use now (orders in flight); infinite unless `--rate` caps it.
    pub cap: f64,
}

/// Splits `window` between campaigns: equally between merchants, then within a
/// merchant by priority, each level max-min fair (a merchant or campaign that
/// cannot use its part leaves it to the others).
pub fn campaign_quotas(window: f64, campaigns: &[CampaignClaim]) -> Vec<f64> {
    let mut merchants: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in campaigns.iter().enumerate() {
        merchants.entry(c.merchant.as_str()).or_default().push(i);
    }
    let groups: Vec<&Vec<usize>> = merchants.values().collect();
    let merchant_claims: Vec<Claim> = groups
        .iter()
        .map(|members| Claim { weight: 1.0, cap: members.iter().map(|i| campaigns[*i].cap).sum() })
        .collect();
    let per_merchant = split(window, &merchant_claims);
    let mut out = vec![0.0; campaigns.len()];
    for (members, amount) in groups.iter().zip(per_merchant) {
        let claims: Vec<Claim> = members
            .iter()
            .map(|i| Claim { weight: f64::from(campaigns[*i].priority.max(1)), cap: campaigns[*i].cap })
            .collect();
        for (i, quota) in members.iter().zip(split(amount, &claims)) {
            out[*i] = quota;
        }
    }
    out
}

/// Orders always allowed in flight per account, however low its rate.
pub const FLOOR: f64 = 32.0;
/// The window never grows past this multiple of its size.
const MAX_GROWTH: f64 = 4.0;

/// An account's window: `(FLOOR + limit × seconds) × growth` orders, where
/// `limit` is the account's configured rate. `seconds` (the setting) is about
/// how long a released order waits for its send when campaigns saturate the
/// account: pause and a newly loaded campaign take effect within it.
///
/// Sized from the limit, not from what campaigns achieve: a window that
/// followed the achieved rate would shrink with it whenever releasing,
/// queueing and writing took longer than `seconds` (measured on a loaded host:
/// 60% of the limit). If the window still holds campaigns back while the
/// account's slots go unused (a slow host), it grows, up to [`MAX_GROWTH`]×;
/// while consumers queue for slots it shrinks back.
#[derive(Debug, Clone)]
pub struct Window {
    seconds: f64,
    growth: f64,
}

impl Window {
    pub fn new(seconds: Duration) -> Window {
        Window { seconds: seconds.as_secs_f64(), growth: 1.0 }
    }

    /// Orders that may be in flight now on an account limited to `limit` a second.
    pub fn size(&self, limit: f64) -> f64 {
        (FLOOR + limit.max(0.0) * self.seconds) * self.growth
    }

    /// After a step: `held_back` when a campaign was refused orders for want of
    /// room, `saturated` when consumers queued for the account's send slots (or
    /// a 429 paused it): then the window was not what kept it from sending.
    pub fn adjust(&mut self, held_back: bool, saturated: bool) {
        if held_back && !saturated {
            self.growth = (self.growth * 1.05).min(MAX_GROWTH);
        } else if saturated {
            self.growth = (self.growth * 0.99).max(1.0);
        }
    }

    pub fn growth(&self) -> f64 {
        self.growth
    }
}

/// Samples of how many orders a campaign has finished (released and no longer
/// in flight), for its rate over about the last second.
#[derive(Debug, Default, Clone)]
pub struct Flow {
    samples: VecDeque<(Instant, i64)>,
}

/// The span a rate is measured over.
const FLOW_SPAN: Duration = Duration::from_secs(1);

impl Flow {
    /// Records `finished` at `now`; returns orders finished per second over the
    /// last second or so (0 until a fifth of a second is covered).
    pub fn observe(&mut self, now: Instant, finished: i64) -> f64 {
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= FLOW_SPAN) {
            self.samples.pop_front();
        }
        self.samples.push_back((now, finished));
        let Some((first, from)) = self.samples.front().copied() else { return 0.0 };
        let span = now.duration_since(first).as_secs_f64();
        if span < 0.2 {
            return 0.0;
        }
        (finished - from).max(0) as f64 / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(weight: f64, cap: f64) -> Claim {
        Claim { weight, cap }
    }

    #[test]
    fn a_split_gives_by_weight_and_passes_on_what_a_capped_claimant_leaves() {
        assert_eq!(split(300.0, &[claim(1.0, f64::INFINITY), claim(2.0, f64::INFINITY)]), vec![100.0, 200.0]);
        // The first can use only 10: the other two share the rest equally.
        let s = split(210.0, &[claim(1.0, 10.0), claim(1.0, f64::INFINITY), claim(1.0, f64::INFINITY)]);
        assert_eq!(s, vec![10.0, 100.0, 100.0]);
        assert_eq!(split(100.0, &[claim(0.0, 50.0), claim(1.0, f64::INFINITY)]), vec![0.0, 100.0]);
        assert!(split(100.0, &[]).is_empty());
        let capped = split(100.0, &[claim(1.0, 20.0), claim(1.0, 30.0)]);
        assert_eq!(capped, vec![20.0, 30.0], "nothing beyond a cap, even with window left over");
    }

    fn campaign(merchant: &str, priority: u32, cap: f64) -> CampaignClaim {
        CampaignClaim { merchant: merchant.into(), priority, cap }
    }

    #[test]
    fn merchants_share_alike_then_their_campaigns_by_priority() {
        let inf = f64::INFINITY;
        // Merchant a has three campaigns, b one: b still gets half.
        let q = campaign_quotas(
            600.0,
            &[campaign("a", 1, inf), campaign("a", 1, inf), campaign("a", 1, inf), campaign("b", 1, inf)],
        );
        assert_eq!(q, vec![100.0, 100.0, 100.0, 300.0]);
        let q = campaign_quotas(300.0, &[campaign("a", 1, inf), campaign("a", 2, inf)]);
        assert_eq!(q, vec![100.0, 200.0]);
        // A campaign held to its --rate leaves the rest to its merchant's other
        // campaign first: the merchant's half stays the merchant's.
        let q = campaign_quotas(400.0, &[campaign("a", 1, 20.0), campaign("a", 1, inf), campaign("b", 1, inf)]);
        assert_eq!(q, vec![20.0, 180.0, 200.0]);
        // A merchant that can use little leaves the rest to the other.
        let q = campaign_quotas(400.0, &[campaign("a", 1, 50.0), campaign("b", 1, inf)]);
        assert_eq!(q, vec![50.0, 350.0]);
    }

    #[test]
    fn the_window_follows_the_limit_and_grows_only_while_slots_go_unused() {
        let mut w = Window::new(Duration::from_millis(500));
        assert_eq!(w.size(0.0), FLOOR);
        assert_eq!(w.size(480.0), FLOOR + 240.0);
        for _ in 0..10 {
            w.adjust(true, true);
        }
        assert_eq!(w.growth(), 1.0, "held back but the slots are all taken: the window is not the bottleneck");
        for _ in 0..200 {
            w.adjust(true, false);
        }
        assert_eq!(w.growth(), MAX_GROWTH);
        w.adjust(false, false);
        assert_eq!(w.growth(), MAX_GROWTH, "not held back: no reason to change");
        for _ in 0..500 {
            w.adjust(false, true);
        }
        assert_eq!(w.growth(), 1.0);
    }

    #[test]
    fn a_flow_is_the_rate_over_the_last_second() {
        let start = Instant::now();
        let mut flow = Flow::default();
        assert_eq!(flow.observe(start, 0), 0.0);
        assert_eq!(flow.observe(start + Duration::from_millis(100), 50), 0.0, "too short to say");
        let r = flow.observe(start + Duration::from_millis(500), 250);
        assert!((r - 500.0).abs() < 1e-6, "{r}");
        // Two seconds on at 100/s: the old samples no longer count.
        flow.observe(start + Duration::from_millis(1500), 350);
        flow.observe(start + Duration::from_millis(2000), 400);
        let r = flow.observe(start + Duration::from_millis(2500), 450);
        assert!((r - 100.0).abs() < 1e-6, "{r}");
    }
}
