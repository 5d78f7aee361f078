//! What the simulator remembers: stocks and their budgets, who holds how many
//! coupons, every coupon issued, every request received, the requests in
//! flight per (mchid, openid) and per-second counts per account.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// One coupon in the simulator's ledger.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub out_request_no: String,
    pub openid: String,
    pub stock_id: String,
    pub coupon_id: String,
    pub time_ms: i64,
}

/// One request as received, with the status answered (0 when the connection was
/// dropped or timed out without an answer).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RequestRecord {
    /// Arrival, Unix milliseconds: tests compute sliding windows from it.
    pub time_ms: i64,
    pub out_request_no: String,
    pub status: u16,
    /// From the Authorization header; empty when it could not be parsed.
    #[serde(default)]
    pub mchid: String,
    #[serde(default)]
    pub openid: String,
}

/// `GET /__sim/stats`: counts since start. Seconds are Unix seconds of arrival.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SimStats {
    /// Send-coupon requests received.
    pub requests: u64,
    /// Answered 429 (over an account's rate or simulated throttling).
    pub throttled: u64,
    /// Requests that arrived while another for the same (mchid, openid) was in flight.
    pub overlaps: u64,
    pub per_second: BTreeMap<i64, u64>,
    /// mchid → second → requests.
    pub per_mchid: BTreeMap<String, BTreeMap<i64, u64>>,
}

/// The most requests in any sliding one-second window of `records` (by
/// arrival): what a per-second limit at WeChat is judged by.
pub fn busiest_second(records: &[RequestRecord]) -> usize {
    let mut times: Vec<i64> = records.iter().map(|r| r.time_ms).collect();
    times.sort_unstable();
    let (mut busiest, mut end) = (0, 0);
    for start in 0..times.len() {
        while end < times.len() && times[end] < times[start] + 1000 {
            end += 1;
        }
        busiest = busiest.max(end - start);
    }
    busiest
}

#[derive(Default)]
pub struct SimState {
    /// Remaining budget per stock; absent = created on first use, unlimited.
    pub budgets: HashMap<String, Option<u64>>,
    /// Coupons per (stock, openid), for the per-user maximum.
    pub held: HashMap<(String, String), u32>,
    /// out_request_no → index in `ledger`: the idempotency WeChat documents.
    pub by_request: HashMap<String, usize>,
    pub ledger: Vec<IssuedCoupon>,
    pub requests: Vec<RequestRecord>,
    /// Per rate bucket (an account's mchid, or None for the default merchant):
    /// the current one-second window (epoch seconds) and its request count.
    windows: HashMap<Option<String>, (i64, u32)>,
    /// Requests being processed per (mchid, openid).
    in_flight: HashMap<(String, String), u32>,
    pub stats: SimStats,
    next_coupon: u64,
}

/// Why a coupon was not issued (maps to WeChat's 403 codes).
pub enum Refusal {
    NotEnough,
    RuleLimit,
}

impl SimState {
    pub fn new(budgets: HashMap<String, u64>) -> SimState {
        SimState { budgets: budgets.into_iter().map(|(k, v)| (k, Some(v))).collect(), ..Default::default() }
    }

    /// Counts an arriving request for `mchid` in its second and in `bucket`'s
    /// aligned one-second window; false when that window is over `limit`.
    pub fn admit(&mut self, now_ms: i64, mchid: &str, bucket: Option<&str>, limit: Option<u32>) -> bool {
        let second = now_ms.div_euclid(1000);
        self.stats.requests += 1;
        *self.stats.per_second.entry(second).or_default() += 1;
        *self.stats.per_mchid.entry(mchid.to_string()).or_default().entry(second).or_default() += 1;
        let window = self.windows.entry(bucket.map(str::to_string)).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        limit.is_none_or(|l| window.1 <= l)
    }

    /// Counts a request for (mchid, openid) in flight; false (and an overlap
    /// counted) when another already was.
    pub fn enter(&mut self, mchid: &str, openid: &str) -> bool {
        let n = self.in_flight.entry((mchid.to_string(), openid.to_string())).or_insert(0);
        *n += 1;
        let alone = *n == 1;
        if !alone {
            self.stats.overlaps += 1;
        }
        alone
    }

    pub fn leave(&mut self, mchid: &str, openid: &str) {
        let key = (mchid.to_string(), openid.to_string());
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&key);
            }
        }
    }

    /// Logs a request with the status answered.
    pub fn record(&mut self, record: RequestRecord) {
        if record.status == 429 {
            self.stats.throttled += 1;
        }
        self.requests.push(record);
    }

    /// Issues (or, for a known out_request_no, returns) a coupon.
    pub fn issue(
        &mut self,
        out_request_no: &str,
        openid: &str,
        stock_id: &str,
        max_per_user: u32,
        now_ms: i64,
    ) -> Result<IssuedCoupon, Refusal> {
        if let Some(&i) = self.by_request.get(out_request_no) {
            return Ok(self.ledger[i].clone());
        }
        let budget = self.budgets.entry(stock_id.to_string()).or_insert(None);
        if *budget == Some(0) {
            return Err(Refusal::NotEnough);
        }
        let held = self.held.entry((stock_id.to_string(), openid.to_string())).or_insert(0);
        if *held >= max_per_user {
            return Err(Refusal::RuleLimit);
        }
        *held += 1;
        if let Some(b) = budget.as_mut() {
            *b -= 1;
        }
        self.next_coupon += 1;
        let coupon = IssuedCoupon {
            out_request_no: out_request_no.to_string(),
            openid: openid.to_string(),
            stock_id: stock_id.to_string(),
            coupon_id: format!("{}{:08}", 9_000_000_000u64 + self.next_coupon, rand::random::<u32>() % 100_000_000),
            time_ms: now_ms,
        };
        self.by_request.insert(out_request_no.to_string(), self.ledger.len());
        self.ledger.push(coupon.clone());
        Ok(coupon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_stays_in_flight_until_the_last_request_leaves() {
        let mut s = SimState::default();
        assert!(s.enter("m", "o"));
        assert!(!s.enter("m", "o"), "second is an overlap");
        s.leave("m", "o");
        assert!(!s.enter("m", "o"), "the first is still in flight");
        assert!(s.enter("m2", "o"), "another account's user is another user");
        s.leave("m", "o");
        s.leave("m", "o");
        assert!(s.enter("m", "o"));
        assert_eq!(s.stats.overlaps, 2);
    }

    #[test]
    fn each_bucket_has_its_own_window() {
        let mut s = SimState::default();
        assert!(s.admit(1_000, "a", Some("a"), Some(1)));
        assert!(!s.admit(1_500, "a", Some("a"), Some(1)));
        assert!(s.admit(1_600, "b", None, Some(1)));
        assert!(s.admit(2_000, "a", Some("a"), Some(1)), "a new second");
        assert_eq!(s.stats.per_second, BTreeMap::from([(1, 3), (2, 1)]));
        assert_eq!(s.stats.per_mchid["a"], BTreeMap::from([(1, 2), (2, 1)]));
    }
}
