//! One send per (account, openid) in flight across every consumer process:
//! WeChat answers concurrent sends to one user with a spurious RULE_LIMIT, which
//! would fail (and refund) an order the user was entitled to.
//!
//! Within a process, sends to one user queue on a local lock first, so only one
//! of them asks PostgreSQL; across processes a lease row (migration 0007) is the
//! turn. Taking is batched over concurrent sends (one statement for many); giving
//! back is batched by a background task. Leases are short ([`TTL`]) and renewed
//! every [`RENEW_EVERY`] while their send lasts (a WeChat call may take its whole
//! timeout): a consumer killed mid-call blocks its users for at most [`TTL`]
//! (measured: with 32 s leases, a SIGKILLed consumer's ~1,000 users held the
//! survivor's redelivered jobs and its rate fell to 20–40% for seconds). If
//! renewals cannot reach PostgreSQL for longer than the TTL, a lease can lapse
//! mid-call; then the database is unreachable for every process alike, and no
//! other process can take the lease or a send slot either.

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
/// How long a lease lasts unless renewed. A send holds its user's lease while it
/// waits for its slot, so a consumer killed with a backlog holds hundreds: with
/// 5 s leases the survivor's rate fell to 10% in the fourth second after a kill
/// (its senders waited for the dead one's users); the issue allows 3 s.
pub const TTL: Duration = Duration::from_secs(2);
/// How often held leases are renewed: a quarter of the TTL, so a renewal late by
/// a slow statement or two does not let a live send's lease lapse.
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// Wait before asking again for a lease another process holds (its send takes
/// about one WeChat round trip).
const BUSY_RETRY: Duration = Duration::from_millis(20);
const LONGEST_RETRY: Duration = Duration::from_millis(250);

/// An (account mchid, openid) pair.
pub type User = (String, String);

/// This process's side of the lease table.
pub struct Leases {
    taker: Batcher<Take>,
    releases: mpsc::UnboundedSender<Lease>,
    /// `<process>/`: the prefix of every token this process takes.
    process: String,
    /// Leases held now, renewed in the background until given back.
    held: Arc<std::sync::Mutex<HashMap<String, Lease>>>,
    turns: std::sync::atomic::AtomicU64,
    locals: std::sync::Mutex<HashMap<User, Arc<tokio::sync::Mutex<()>>>>,
}

impl Leases {
    /// `holder` names this process in the table (no `/`).
    pub fn start(store: Store, holder: String) -> Leases {
        let (releases, rx) = mpsc::unbounded_channel();
        let held = Arc::new(std::sync::Mutex::new(HashMap::new()));
        tokio::spawn(give_back(store.clone(), rx));
        tokio::spawn(renew(store.clone(), Arc::downgrade(&held)));
        Leases {
            taker: Batcher::spawn(Take { store, ttl: TTL }, 2, TAKE_BATCH),
            releases,
            process: format!("{holder}/"),
            held,
            turns: std::sync::atomic::AtomicU64::new(0),
            locals: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes `user`'s turn in this process (a local lock: other senders of this
    /// process to the same user wait here); the lease across processes is taken
    /// with [`UserTurn::try_lease`] once a send slot is near.
    pub async fn user(&self, user: User) -> UserTurn<'_> {
        let local = {
            let mut locals = self.locals.lock().unwrap_or_else(|p| p.into_inner());
            locals.entry(user.clone()).or_default().clone()
        };
        let guard = local.clone().lock_owned().await;
        let turn = self.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lease = Lease { mchid: user.0.clone(), openid: user.1.clone(), token: format!("{}{turn}", self.process) };
        UserTurn { leases: self, user: Some(user), lease, leased: false, local: Some(local), guard: Some(guard) }
    }
}

/// A user's turn in this process, and once leased, in the cluster. Giving the
/// lease back is queued on drop.
pub struct UserTurn<'a> {
    leases: &'a Leases,
    user: Option<User>,
    lease: Lease,
    leased: bool,
    local: Option<Arc<tokio::sync::Mutex<()>>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl UserTurn<'_> {
    /// One attempt at the lease; false while another process holds it (or
    /// PostgreSQL cannot be asked: no lease, no send).
    pub async fn try_lease(&mut self) -> bool {
        if !self.leased {
            match self.leases.taker.call(self.lease.clone()).await {
                Ok(taken) => self.leased = taken,
                Err(e) => tracing::warn!(error = %e, "cannot take a send lease; waiting"),
            }
            if self.leased {
                let mut held = self.leases.held.lock().unwrap_or_else(|p| p.into_inner());
                held.insert(self.lease.token.clone(), self.lease.clone());
            }
        }
        self.leased
    }

    /// Waits until the lease is taken (the other process's send ends, or its
    /// lease expires).
    pub async fn wait_for_lease(&mut self) {
        let mut retry = BUSY_RETRY;
        while !self.try_lease().await {
            let jitter = Duration::from_micros(rand::random::<u64>() % 5000);
            tokio::time::sleep(retry + jitter).await;
            retry = (retry * 2).min(LONGEST_RETRY);
        }
    }
}

impl Drop for UserTurn<'_> {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else { return };
        if self.leased {
            self.leases.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.lease.token);
            let _ = self.leases.releases.send(self.lease.clone());
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
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Consumer;

    async fn write(&self, leases: &[Lease]) -> Result<Vec<bool>, StoreError> {
        self.store.take_leases(leases, self.ttl).await
    }
}

/// Renews the leases held now, every [`RENEW_EVERY`], until the process's
/// `Leases` is gone.
async fn renew(store: Store, held: std::sync::Weak<std::sync::Mutex<HashMap<String, Lease>>>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let Some(held) = held.upgrade() else { return };
        let leases: Vec<Lease> = held.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        drop(held);
        if leases.is_empty() {
            continue;
        }
        if let Err(e) = store.renew_leases(&leases, TTL).await {
            tracing::warn!(error = %e, leases = leases.len(), "cannot renew send leases");
        }
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
