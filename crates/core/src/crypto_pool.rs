//! The threads that do this process's RSA work: one per core.
//!
//! Why not tokio's blocking pool: it starts a thread per concurrent job, and a
//! consumer starting 16 orders at once had 16 signing threads runnable beside
//! the two async workers on a 2-core host; the workers then woke late — a 10 ms
//! timer fired a median 1.5 ms, p90 14 ms and p99 75 ms late — and send slots,
//! which must be used within 10 ms of their time, went stale by the thousand
//! (`lijian bench rate`: 0.6× the limit; with this pool, 0.97×). Here at most
//! one thread per core signs, so a waking async worker competes with at most
//! that many, and signatures queue here instead of on the cores.
//!
//! The threads keep the normal priority: at nice +10 (tried) signing starved
//! on a saturated host, sends waited for their signature and three debug-build
//! consumers reached 130 of a 200/s limit instead of 190.
//!
//! A process-wide pool rather than one passed in: it holds no state a test or a
//! role would configure, and the gateway, consumer and notifier of one process
//! should share the same few threads.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` on a crypto thread; `None` if it panicked.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(work());
    });
    if let Err(unsent) = pool().send(job) {
        // No crypto thread could be started (the error was logged): tokio's
        // blocking pool is slower beside busy workers, but signing still works.
        tokio::task::spawn_blocking(unsent.0).await.ok()?;
    }
    answered.await.ok()
}

fn pool() -> &'static Sender<Job> {
    static POOL: OnceLock<Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new().name(format!("lijian-crypto-{i}")).spawn(move || serve(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a crypto thread");
            }
        }
        jobs
    })
}

fn serve(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A panicking job loses only its own answer (the caller sees `None`).
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}
