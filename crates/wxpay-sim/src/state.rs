//! What the simulator remembers: stocks and their budgets, who holds how many
//! coupons, every coupon issued and every request received.

use std::collections::HashMap;

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
    pub time_ms: i64,
    pub out_request_no: String,
    pub status: u16,
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
    /// The current one-second window (epoch seconds) and its request count.
    pub window: (i64, u32),
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

    /// Counts a request in the current second; false when over `limit`.
    pub fn admit(&mut self, now_ms: i64, limit: Option<u32>) -> bool {
        let second = now_ms.div_euclid(1000);
        if self.window.0 != second {
            self.window = (second, 0);
        }
        self.window.1 += 1;
        limit.is_none_or(|l| self.window.1 <= l)
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
