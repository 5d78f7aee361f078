//! One send per (account, openid) in flight across every consumer process:
//! WeChat answers concurrent sends to one user with a spurious RULE_LIMIT, which
//! would fail (and refund) an order the user was entitled to.
//!
//! Within a process, sends to one user queue on a local lock first, so only one
//! of them asks PostgreSQL; across processes a lease row (migration 0007) is the
//! turn. Taking is batched over concurrent sends (one statement for many); giving
//! back is batched by a background task. A lease outlives its holder by at most
//! its TTL (the call's timeout plus a margin): a consumer killed mid-call blocks
//! that one user for that long, never two sends at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lijian_core::batch::{BatchWrite, Batcher};
use lijian_core::store::{Lease, Store, StoreError};
use tokio::sync::mpsc;

/// Concurrent lease requests one statement takes.
const TAKE_BATCH: usize = 64;
/// Leases given back in one statement.
const RELEASE_BATCH: usize = 256;
/// Wait before asking again for a lease another process holds (its send takes
/// about one WeChat round trip).
const BUSY_RETRY: Duration = Duration::from_millis(20);
const LONGEST_RETRY: Duration = Duration::from_secs(1);

/// An (account mchid, openid) pair.
pub type User = (String, String);

/// This process's side of the lease table.
pub struct Leases {
    taker: Batcher<Take>,
    releases: mpsc::UnboundedSender<Lease>,
    /// `<process>/`: the prefix of every token this process takes.
    process: String,
    turns: std::sync::atomic::AtomicU64,
    locals: std::sync::Mutex<HashMap<User, Arc<tokio::sync::Mutex<()>>>>,
}

impl Leases {
    /// `holder` names this process in the table; `ttl` is how long a lease
    /// lasts if it is never given back.
    pub fn start(store: Store, holder: String, ttl: Duration) -> Leases {
        let (releases, rx) = mpsc::unbounded_channel();
        tokio::spawn(give_back(store.clone(), rx));
        Leases {
            taker: Batcher::spawn(Take { store, ttl }, 2, TAKE_BATCH),
            releases,
            process: format!("{holder}/"),
            turns: std::sync::atomic::AtomicU64::new(0),
            locals: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Waits until this process may send to `user`; the turn lasts as long as
    /// the returned value. While PostgreSQL cannot be asked, it waits (a send
    /// without the lease could overlap another process's).
    pub async fn turn(&self, user: User) -> Turn<'_> {
        let local = {
            let mut locals = self.locals.lock().unwrap_or_else(|p| p.into_inner());
            locals.entry(user.clone()).or_default().clone()
        };
        let guard = local.clone().lock_owned().await;
        let turn = self.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lease = Lease { mchid: user.0.clone(), openid: user.1.clone(), token: format!("{}{turn}", self.process) };
        let mut retry = BUSY_RETRY;
        loop {
            match self.taker.call(lease.clone()).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take a send lease; waiting"),
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 5000);
            tokio::time::sleep(retry + jitter).await;
            retry = (retry * 2).min(LONGEST_RETRY);
        }
        Turn { leases: self, user: Some(user), lease: Some(lease), local: Some(local), guard: Some(guard) }
    }
}

/// A held send turn for one user; giving it back is queued on drop.
pub struct Turn<'a> {
    leases: &'a Leases,
    user: Option<User>,
    lease: Option<Lease>,
    local: Option<Arc<tokio::sync::Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else { return };
        if let Some(lease) = self.lease.take() {
            let _ = self.leases.releases.send(lease);
        }
        self.guard.take();
        if let (Some(local), Ok(mut locals)) = (self.local.take(), self.leases.locals.lock()) {
            // Two references left (the map's and ours): nobody else waits; forget it.
            if Arc::strong_count(&local) == 2 {
                locals.remove(&user);
            }
        }
    }
}

/// The batched "take these leases" statement.
struct Take {
    store: Store,
    ttl: Duration,
}

impl BatchWrite for Take {
    type Item = Lease;
    type Output = bool;
    type Error = StoreError;
    const NAME: &'static str = "send leases";

    async fn write(&self, leases: &[Lease]) -> Result<Vec<bool>, StoreError> {
        self.store.take_leases(leases, self.ttl).await
    }
}

/// Gives leases back in batches until every turn is gone.
async fn give_back(store: Store, mut rx: mpsc::UnboundedReceiver<Lease>) {
    let mut batch = Vec::with_capacity(RELEASE_BATCH);
    while rx.recv_many(&mut batch, RELEASE_BATCH).await > 0 {
        if let Err(e) = store.release_leases(&batch).await {
            // They expire by themselves; until then those users wait a little.
            tracing::warn!(error = %e, leases = batch.len(), "cannot give send leases back; they will expire");
        }
        batch.clear();
    }
}
