//! How many sends of one account and lane a process prepares ahead of their
//! slot: a request is signed, its attempt begun and its user leased before it
//! waits for a slot, and without a bound every order a process holds would do
//! that at once.
//!
//! Measured without it (three debug consumers at a 200/s limit, 50 ms
//! simulator, `tests/it/scale_out.rs`): a consumer starting on a backlog holds
//! 64 jobs of 16 orders, so it signed about a thousand requests in its first
//! few hundred milliseconds. Both cores went to RSA, the requests already on
//! their slot sat in the process for 100–290 ms before reaching the simulator,
//! and then arrived together: 219 requests in one sliding second while our own
//! send instants never exceeded 197. With the bound, a process only prepares
//! what its slots can take soon, so the work at start is a few dozen
//! signatures and transit stays in the low milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sends prepared ahead: this long of the account's whole-cluster rate. A
/// process alone must have a send waiting for every slot it can be granted —
/// 100 ms ahead plus a database round trip — or it falls short of the limit;
/// twice that covers a slow round trip.
pub const AHEAD: Duration = Duration::from_millis(250);
/// Never fewer than this (a low limit still keeps a few sends ready).
const FEWEST: usize = 4;

/// One account's and lane's sends waiting for a slot in this process.
pub struct Ahead {
    permits: Arc<Semaphore>,
    /// Permits made so far: grows with the configured rate, never shrinks (a
    /// lowered rate only leaves a few more sends ready than needed).
    size: AtomicUsize,
}

/// A send's place among those prepared ahead; drop it once the send has its slot.
pub type Prepared = OwnedSemaphorePermit;

impl Ahead {
    pub fn new() -> Ahead {
        Ahead { permits: Arc::new(Semaphore::new(0)), size: AtomicUsize::new(0) }
    }

    /// Waits until fewer than [`AHEAD`] of `rate` (per second, cluster-wide)
    /// sends of this process are prepared and waiting; `None` when there is no
    /// limit (the benchmarks measure the consumer itself that way).
    pub async fn enter(&self, rate: u32) -> Option<Prepared> {
        if rate == 0 {
            return None;
        }
        let want = ((f64::from(rate) * AHEAD.as_secs_f64()).ceil() as usize).max(FEWEST);
        let had = self.size.fetch_max(want, Ordering::Relaxed);
        if want > had {
            self.permits.add_permits(want - had);
        }
        // The semaphore is never closed.
        self.permits.clone().acquire_owned().await.ok()
    }
}

impl Default for Ahead {
    fn default() -> Self {
        Ahead::new()
    }
}
