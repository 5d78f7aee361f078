//! Micro-batching of the consumer's two hot statements. Concurrent jobs each need
//! one "begin" and one "finish" write; instead of one statement and one commit
//! apiece, whatever is waiting is written together in one statement (arrays
//! unnested in SQL). Under light load a batch is one job and nothing waits.

use std::future::Future;
use std::sync::Arc;

use lijian_core::store::StoreError;
use tokio::sync::{mpsc, oneshot, Mutex};

type Reply<O> = oneshot::Sender<Result<O, String>>;

/// Sends items to background writers that run `write` on batches of them.
pub struct Batcher<I, O> {
    tx: mpsc::Sender<(I, Reply<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `writers` tasks each take up to `max` waiting items per call of `write`,
    /// which must return one output per input, in order.
    pub fn spawn<F, Fut>(writers: usize, max: usize, write: F) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send,
    {
        let (tx, rx) = mpsc::channel::<(I, Reply<O>)>(max * writers.max(1) * 2);
        let rx = Arc::new(Mutex::new(rx));
        let write = Arc::new(write);
        for _ in 0..writers.max(1) {
            let (rx, write) = (rx.clone(), write.clone());
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::with_capacity(max);
                    {
                        let mut rx = rx.lock().await;
                        if rx.recv_many(&mut batch, max).await == 0 {
                            return;
                        }
                    }
                    let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
                    match write(items).await {
                        Ok(outputs) => {
                            for (reply, out) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(out));
                            }
                        }
                        Err(e) => {
                            let message = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(message.clone()));
                            }
                        }
                    }
                }
            });
        }
        Batcher { tx }
    }

    pub async fn call(&self, item: I) -> Result<O, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("writer stopped".into()))?.map_err(StoreError::Unavailable)
    }
}
