//! Micro-batching of hot writes.
//!
//! Concurrent callers each need one small write (accept an order, begin or finish
//! an attempt). A row lock is held until commit, so one write per transaction caps
//! a hot row at 1 / commit latency. Instead, writer tasks take whatever items are
//! waiting (up to a maximum) and write them together in one transaction or one
//! statement. Under light load a batch is a single item and nothing waits for
//! company.
//!
//! When a batch fails as a whole (a deadlock with another process, one bad row),
//! each of its items is written again on its own, so one bad item cannot sink its
//! neighbours — and each caller gets its own, typed, error.

use std::cmp::Ordering;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::task::TaskTracker;

use crate::store::StoreError;

/// One kind of batched write.
pub trait BatchWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Error: Display + From<Stopped> + Send + 'static;
    /// Names the write in log lines.
    const NAME: &'static str;
    /// The role whose target its log lines carry.
    const LOG: crate::telemetry::LogTarget;

    /// Writes `items` together; returns one output per item, in order.
    fn write(&self, items: &[Self::Item]) -> impl Future<Output = Result<Vec<Self::Output>, Self::Error>> + Send;

    /// The order a batch is written in: one global lock order across writers and
    /// processes keeps concurrent batches from deadlocking. Default: arrival.
    fn lock_order(&self, _a: &Self::Item, _b: &Self::Item) -> Ordering {
        Ordering::Equal
    }
}

/// The writers are gone: the process is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("batch writer stopped")]
pub struct Stopped;

impl From<Stopped> for StoreError {
    fn from(_: Stopped) -> StoreError {
        StoreError::Unavailable("(the batch writer stopped)".into())
    }
}

type Reply<W> = oneshot::Sender<Result<<W as BatchWrite>::Output, <W as BatchWrite>::Error>>;
/// The waiting items, shared by the writers (one takes a batch at a time).
type Queue<W> = Arc<Mutex<mpsc::Receiver<(<W as BatchWrite>::Item, Reply<W>)>>>;

/// Hands items to background writers that run [`BatchWrite::write`] on batches.
pub struct Batcher<W: BatchWrite> {
    queue: mpsc::Sender<(W::Item, Reply<W>)>,
    writers: TaskTracker,
}

impl<W: BatchWrite> Batcher<W> {
    /// Starts `writers` tasks that each take up to `max` waiting items per write.
    /// They end once every handle is dropped and the queue is drained.
    pub fn spawn(write: W, writers: usize, max: usize) -> Batcher<W> {
        let (writers, max) = (writers.max(1), max.max(1));
        let (queue, rx) = mpsc::channel(max * writers * 4);
        let rx = Arc::new(Mutex::new(rx));
        let write = Arc::new(write);
        let tracker = TaskTracker::new();
        for _ in 0..writers {
            tracker.spawn(run_writer(write.clone(), rx.clone(), max));
        }
        tracker.close();
        Batcher { queue, writers: tracker }
    }

    /// Writes `item` with whatever else is waiting and returns its output.
    pub async fn call(&self, item: W::Item) -> Result<W::Output, W::Error> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)?
    }

    /// The writer tasks, to wait for them to drain after the last handle is dropped.
    pub fn writers(&self) -> TaskTracker {
        self.writers.clone()
    }
}

async fn run_writer<W: BatchWrite>(write: Arc<W>, rx: Queue<W>, max: usize) {
    loop {
        let mut batch = Vec::with_capacity(max);
        if rx.lock().await.recv_many(&mut batch, max).await == 0 {
            return;
        }
        batch.sort_by(|a, b| write.lock_order(&a.0, &b.0));
        let (items, replies): (Vec<W::Item>, Vec<Reply<W>>) = batch.into_iter().unzip();
        for (reply, result) in replies.into_iter().zip(write_batch(&*write, &items).await) {
            // A caller that gave up waiting is no reason to stop.
            let _ = reply.send(result);
        }
    }
}

/// One result per item: the batch's outputs, or each item written alone when the
/// batch failed as a whole.
async fn write_batch<W: BatchWrite>(write: &W, items: &[W::Item]) -> Vec<Result<W::Output, W::Error>> {
    match write.write(items).await {
        Ok(outputs) => outputs.into_iter().map(Ok).collect(),
        Err(e) if items.len() == 1 => vec![Err(e)],
        Err(e) => {
            crate::role_event!(
                W::LOG,
                tracing::Level::WARN,
                write = W::NAME,
                error = %e,
                batch = items.len(),
                "batch failed; writing its items one by one"
            );
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                let alone = write.write(std::slice::from_ref(item)).await;
                results.push(alone.and_then(|mut out| out.pop().ok_or(Stopped.into())));
            }
            results
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; a batch holding a negative number fails as a whole.
    struct Doubler;

    #[derive(Debug, PartialEq, thiserror::Error)]
    enum DoubleError {
        #[error("negative: {0}")]
        Negative(i32),
        #[error("stopped")]
        Stopped,
    }

    impl From<Stopped> for DoubleError {
        fn from(_: Stopped) -> DoubleError {
            DoubleError::Stopped
        }
    }

    impl BatchWrite for Doubler {
        type Item = i32;
        type Output = i32;
        type Error = DoubleError;
        const NAME: &'static str = "double";
        const LOG: crate::telemetry::LogTarget = crate::telemetry::LogTarget::Process;

        async fn write(&self, items: &[i32]) -> Result<Vec<i32>, DoubleError> {
            match items.iter().find(|n| **n < 0) {
                Some(n) => Err(DoubleError::Negative(*n)),
                None => Ok(items.iter().map(|n| n * 2).collect()),
            }
        }
    }

    #[tokio::test]
    async fn one_bad_item_fails_alone_with_its_own_typed_error() {
        let batcher = Arc::new(Batcher::spawn(Doubler, 1, 16));
        let calls = (-2..6).map(|n| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.call(n).await })
        });
        let results: Vec<_> = futures::future::join_all(calls).await.into_iter().map(|r| r.ok()).collect();
        let expected: Vec<_> =
            (-2..6).map(|n| Some(if n < 0 { Err(DoubleError::Negative(n)) } else { Ok(n * 2) })).collect();
        assert_eq!(results, expected);
    }

    #[tokio::test]
    async fn writers_finish_what_is_queued_then_stop() {
        let batcher = Batcher::spawn(Doubler, 2, 4);
        let writers = batcher.writers();
        assert_eq!(batcher.call(21).await, Ok(42));
        drop(batcher);
        writers.wait().await;
    }
}
