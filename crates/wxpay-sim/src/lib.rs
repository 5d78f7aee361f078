//! wxpay-sim: a stand-in for WeChat Pay API v3's "send coupon of a stock"
//! (发放指定批次的代金券), so lijian can be developed, tested and benchmarked
//! without WeChat. It is a real HTTP server speaking the real protocol.
//!
//! # Owns
//! - `POST /v3/marketing/favor/users/{openid}/coupons`: verifies the
//!   `WECHATPAY2-SHA256-RSA2048` Authorization with the merchant's public key,
//!   is idempotent on `out_request_no`, keeps stock budgets and a per-user maximum,
//!   enforces a requests-per-second limit, signs every answer with its own key;
//! - several merchant accounts, each with its own key and rate limit;
//! - strict mode: a second concurrent request for one (mchid, openid) is
//!   answered 403 RULE_LIMIT, as WeChat does; overlaps are counted either way;
//! - fault injection: latency, 5xx, timeouts, 429s, "issue then drop the connection";
//! - `GET /__sim/ledger`, `GET /__sim/requests` and `GET /__sim/stats` so tests can audit it.
//!
//! # Must not touch
//! lijian's database, queues or consumer code: it knows only the wire protocol, so
//! it checks our client rather than agreeing with it by construction.
//!
//! # Layout
//! - `protocol.rs` Authorization parsing and verification, response signing
//! - `state.rs`    stocks, ledger, request log, rate windows, in-flight users, stats
//! - `server.rs`   the hyper server, routing and fault injection

mod protocol;
mod server;
mod state;

pub use protocol::{parse_authorization, Authorization};
pub use server::{start, start_on_own_thread, RunningSim, SimAccount, SimConfig, SimError};
pub use state::{busiest_second, IssuedCoupon, RequestRecord, SimStats};
