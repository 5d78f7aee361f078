//! A campaign load, audited: `lijian load` and the console's upload run this
//! one function. The loader is `lijian_producer::bulk::load_csv`; the rejects
//! file it writes goes to the caller's writer (the CLI's file; nothing for the
//! console) and into `load_rejects`, from where the console serves the
//! campaign's latest rejects to any of its processes.

use std::io::{Read, Write};
use std::sync::Arc;

use lijian_core::store::{Store, StoreError};
use lijian_core::times::rfc3339_seconds;
use lijian_producer::bulk::{self, LoadSpec, LoadSummary, Progress};
use tokio::sync::mpsc;

use super::{record, ActionError, Actor};
use lijian_core::vocab::AuditAction;

/// Bytes per stored chunk of a rejects file: one row each, few rows per file.
const CHUNK: usize = 256 * 1024;

/// Loads `input` into the campaign `spec` names, stores its rejects, and
/// records the load (`from` says where the rows came from: a path, an upload).
pub async fn load<R, W>(
    store: &Store,
    spec: &LoadSpec,
    input: R,
    rejects: W,
    progress: Arc<Progress>,
    actor: &Actor,
    from: &str,
) -> Result<LoadSummary, ActionError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let name = spec.campaign.name.clone();
    let (stored, saving) = StoredRejects::start(store.clone(), name.clone());
    let outcome = bulk::load_csv(store, spec, input, Both(rejects, stored), progress).await;
    // The loader has dropped its writer (so the last chunk is sent): the saver ends.
    let saved = saving.await.unwrap_or_else(|e| Err(StoreError::Invalid(format!("saving rejects: {e}"))));
    let summary = outcome?;
    let saved = match saved {
        Ok(load_id) => keep_only(store, &name, load_id).await,
        Err(e) => Err(e),
    };
    record(
        store,
        actor,
        AuditAction::Load,
        &name,
        i64::try_from(summary.accepted).unwrap_or(i64::MAX),
        detail(spec, &summary, from),
    )
    .await?;
    saved?;
    Ok(summary)
}

/// The audit line: rows, where from, what became of them, the schedule.
fn detail(spec: &LoadSpec, s: &LoadSummary, from: &str) -> String {
    let mut detail = format!(
        "{} rows from {from}: {} accepted, {} duplicates, {} rejected; {} yuan charged",
        s.rows,
        s.accepted,
        s.duplicates,
        s.rejected_total(),
        s.charged
    );
    if let Some(at) = spec.campaign.release_at {
        detail.push_str(&format!("; release from {}", rfc3339_seconds(at)));
    }
    if let Some(rate) = spec.campaign.rate {
        detail.push_str(&format!(" at {rate}/s"));
    }
    detail
}

/// After a finished load, its rejects are the campaign's: older loads' go (all
/// of them when this load refused nothing).
async fn keep_only(store: &Store, campaign: &str, load_id: Option<i64>) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute("DELETE FROM load_rejects WHERE campaign = $1 AND load_id IS DISTINCT FROM $2", &[&campaign, &load_id])
        .await?;
    Ok(())
}

/// The campaign's latest load's rejects: (load id, chunks), if it refused any.
pub async fn rejects_chunks(store: &Store, campaign: &str) -> Result<Option<(i64, i32)>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT load_id, count(*)::int FROM load_rejects WHERE campaign = $1
             GROUP BY load_id ORDER BY load_id DESC LIMIT 1",
            &[&campaign],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// One chunk of a stored rejects file.
pub async fn rejects_chunk(store: &Store, campaign: &str, load_id: i64, seq: i32) -> Result<Vec<u8>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT chunk FROM load_rejects WHERE campaign = $1 AND load_id = $2 AND seq = $3",
            &[&campaign, &load_id, &seq],
        )
        .await?;
    row.map(|r| r.get(0)).ok_or_else(|| StoreError::NotFound(format!("rejects of campaign {campaign}")))
}

/// Writes to both: the caller's rejects file and the stored copy.
struct Both<A, B>(A, B);

impl<A: Write, B: Write> Write for Both<A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// The rejects file cut into chunks and handed to a task that inserts them.
/// The loader writes from its async side, so this never blocks: the channel
/// is unbounded, and what it holds is the few rejects not yet inserted.
struct StoredRejects {
    buf: Vec<u8>,
    chunks: mpsc::UnboundedSender<Vec<u8>>,
}

impl StoredRejects {
    /// The writer, and the task that ends (with the load id used, if any
    /// chunk came) once the writer is dropped.
    fn start(
        store: Store,
        campaign: String,
    ) -> (StoredRejects, tokio::task::JoinHandle<Result<Option<i64>, StoreError>>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let saving = tokio::spawn(async move {
            let mut load_id = None;
            let mut seq = 0i32;
            while let Some(chunk) = rx.recv().await {
                let client = store.client().await?;
                let id = match load_id {
                    Some(id) => id,
                    None => {
                        let id: i64 = client.query_one("SELECT nextval('load_rejects_load_id')", &[]).await?.get(0);
                        *load_id.insert(id)
                    }
                };
                client
                    .execute(
                        "INSERT INTO load_rejects (campaign, load_id, seq, chunk) VALUES ($1, $2, $3, $4)",
                        &[&campaign, &id, &seq, &chunk],
                    )
                    .await?;
                seq += 1;
            }
            Ok(load_id)
        });
        (StoredRejects { buf: Vec::new(), chunks: tx }, saving)
    }

    fn send(&mut self) {
        if !self.buf.is_empty() {
            // The saver only stops on an error, which its handle reports.
            let _ = self.chunks.send(std::mem::take(&mut self.buf));
        }
    }
}

impl Write for StoredRejects {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StoredRejects {
    fn drop(&mut self) {
        self.send();
    }
}
