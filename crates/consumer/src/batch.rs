//! The consumer's two hot statements as batched writes (`lijian_core::batch`).
//! Concurrent jobs each need one "begin" and one "finish" write; instead of one
//! statement and one commit apiece, whatever is waiting is written together in
//! one statement (arrays unnested in SQL). A batch that fails as a whole (a
//! deadlock with another consumer's batch, say) is written again one by one.

use lijian_core::batch::{BatchWrite, Batcher};
use lijian_core::store::{Begun, Finished, Issued, Store, StoreError};

/// Writer tasks per batched statement.
const WRITERS: usize = 2;
/// Most jobs one batched write carries.
const WRITE_BATCH: usize = 64;

/// "Mark processing": the start of an attempt.
pub struct Begins(Store);

impl BatchWrite for Begins {
    type Item = String;
    type Output = Begun;
    type Error = StoreError;
    const NAME: &'static str = "begin attempts";
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Consumer;

    async fn write(&self, codes: &[String]) -> Result<Vec<Begun>, StoreError> {
        self.0.begin_attempts(codes).await
    }
}

/// "Issued": status 2 with the coupon, the attempt and the report.
pub struct Finishes(Store);

impl BatchWrite for Finishes {
    type Item = Issued;
    type Output = Finished;
    type Error = StoreError;
    const NAME: &'static str = "finish issued";
    const LOG: lijian_core::telemetry::LogTarget = lijian_core::telemetry::LogTarget::Consumer;

    async fn write(&self, batch: &[Issued]) -> Result<Vec<Finished>, StoreError> {
        self.0.finish_issued(batch).await
    }
}

pub fn begins(store: Store) -> Batcher<Begins> {
    Batcher::spawn(Begins(store), WRITERS, WRITE_BATCH)
}

pub fn finishes(store: Store) -> Batcher<Finishes> {
    Batcher::spawn(Finishes(store), WRITERS, WRITE_BATCH)
}
