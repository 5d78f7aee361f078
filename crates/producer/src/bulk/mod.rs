//! The CSV door: a campaign file streamed into orders, a batch at a time.
//!
//! Two stages run at once so PostgreSQL, the only real bottleneck, never
//! waits: a reader thread parses and validates rows into batches (bounded
//! channel, so memory stays flat whatever the file size); the writer stages each
//! batch with `COPY` and judges, charges and stores it with one call of
//! `lijian_accept_batch` (one transaction). A load only stores: the orders are
//! held, and the scheduler releases them at the pace their WeChat Pay account
//! takes, in fair shares with other campaigns (`crate::release`), so a load
//! needs no broker and puts nothing in front of anyone. Re-running a load is
//! the resume and the retry: stored rows come back as duplicates, nothing is
//! charged twice.
//!
//! Here: the three stages wired together. `rows` reads one record, `lines`
//! numbers lines as an editor does, `reader` is the reader thread, `copy`
//! writes one batch, `rejects` writes the rejects file.

mod copy;
mod lines;
mod reader;
mod rejects;
mod rows;

pub use rows::{generated_biz_code, judge, Layout, Rejected, RowDefaults, ValidRow};

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csv::ByteRecord;
use lijian_core::money::Fen;
use lijian_core::store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::campaign::{self, CampaignError, CampaignSpec};
use lines::{Counting, LineIndex};
use reader::{read_batches, Batch};
use rejects::RejectsFile;

/// Rows per transaction: large enough that the per-batch costs (commit, the
/// merchant row, the plan) vanish, small enough that a killed load redoes little.
pub const BATCH_ROWS: usize = 20_000;

/// Connections a load uses at once: the writer's (held for the whole load, it
/// owns the staging table) and the campaign bookkeeping around it.
pub const CONNECTIONS: usize = 4;

/// Why a load stopped. Bad rows never stop it; these do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the CSV: {0}")]
    Csv(String),
    #[error("cannot read the CSV: the file is empty (a header row is required)")]
    NoHeader,
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the rejects file: {0}")]
    Rejects(String),
}

impl From<tokio_postgres::Error> for LoadError {
    fn from(e: tokio_postgres::Error) -> Self {
        LoadError::Store(StoreError::Db(e))
    }
}

/// What to load and how.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub campaign: CampaignSpec,
    pub activity_id: Option<String>,
    pub product_code: Option<String>,
    pub callback_url: Option<String>,
    /// The SSRF guard (`LIJIAN_NOTIFY_ALLOW_CIDRS`) rows' callback URLs must pass.
    pub callback_guard: lijian_core::ssrf::Guard,
}

/// Where a running load stands, for progress displays.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes_read: AtomicU64,
    pub rows: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
}

/// The end-of-load summary.
#[derive(Debug, Clone, Default)]
pub struct LoadSummary {
    pub rows: u64,
    pub accepted: u64,
    /// Rows whose order already existed (a re-load, or a resumed one).
    pub duplicates: u64,
    /// Refused rows per reason (the rejects file has each line).
    pub rejected: BTreeMap<String, u64>,
    pub charged: Fen,
    /// True when the campaign has a start time or a `--rate`.
    pub scheduled: bool,
    pub elapsed: Duration,
}

impl LoadSummary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Loads a campaign file. `rejects` receives the header `line,reason,<file's
/// columns>` and one record per refused row, in line order.
pub async fn load_csv<R, W>(
    store: &Store,
    spec: &LoadSpec,
    input: R,
    rejects: W,
    progress: Arc<Progress>,
) -> Result<LoadSummary, LoadError>
where
    R: Read + Send + 'static,
    W: std::io::Write + Send + 'static,
{
    let started = Instant::now();
    let newlines = Arc::new(std::sync::Mutex::new(LineIndex::default()));
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(Counting::new(
        input,
        progress.clone(),
        newlines.clone(),
    ));
    let mut header = ByteRecord::new();
    if !reader.read_byte_record(&mut header).map_err(|e| LoadError::Csv(e.to_string()))? {
        return Err(LoadError::NoHeader);
    }
    let layout = Layout::from_header(&header).map_err(LoadError::Csv)?;
    layout.check_required(spec.activity_id.is_some(), spec.product_code.is_some()).map_err(LoadError::Csv)?;
    if !layout.ignored.is_empty() {
        tracing::warn!(columns = ?layout.ignored, "ignoring columns lijian does not know");
    }
    let campaign = campaign::ensure(store, &spec.campaign).await?;
    let defaults = RowDefaults {
        merchant_id: spec.campaign.merchant_id.clone(),
        campaign: campaign.name.clone(),
        activity_id: spec.activity_id.clone(),
        product_code: spec.product_code.clone(),
        callback_url: spec.callback_url.clone(),
        guard: spec.callback_guard.clone(),
    };

    let mut rejects = RejectsFile::start(rejects, &header)?;

    let (batches_tx, mut batches) = mpsc::channel::<Result<Batch, String>>(2);
    let reading = std::thread::spawn(move || read_batches(reader, newlines, layout, defaults, batches_tx));

    let mut summary = LoadSummary { scheduled: campaign.is_scheduled(), ..Default::default() };
    let mut client = store.client().await?;
    client.batch_execute(copy::CREATE_STAGING).await?;
    let mut copy_buf = Vec::with_capacity(BATCH_ROWS * 96);
    let outcome: Result<(), LoadError> = async {
        while let Some(batch) = batches.recv().await {
            let batch = batch.map_err(LoadError::Csv)?;
            summary.rows += (batch.rows.len() + batch.rejected.len()) as u64;
            let mut refused = batch.rejected;
            if !batch.rows.is_empty() {
                let judged =
                    copy::store_batch(&mut client, &spec.campaign, summary.scheduled, &batch.rows, &mut copy_buf)
                        .await?;
                summary.accepted += judged.accepted;
                summary.charged = Fen(summary.charged.0 + judged.charged);
                summary.duplicates += judged.duplicates;
                progress.accepted.fetch_add(judged.accepted, Ordering::Relaxed);
                progress.duplicates.fetch_add(judged.duplicates, Ordering::Relaxed);
                rejects::add_database_refusals(&mut refused, &batch.rows, &batch.records, judged.refused);
            }
            progress.rejected.fetch_add(refused.len() as u64, Ordering::Relaxed);
            progress.rows.store(summary.rows, Ordering::Relaxed);
            rejects.write_batch(refused, &mut summary.rejected)?;
        }
        Ok(())
    }
    .await;
    drop(batches);
    let _ = reading.join();
    rejects.finish()?;
    outcome?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}
