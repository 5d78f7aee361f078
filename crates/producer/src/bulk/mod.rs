//! The CSV door: a campaign file streamed into orders, a batch at a time.
//!
//! Three stages run at once so PostgreSQL, the only real bottleneck, never
//! waits: a reader thread parses and validates rows into batches (bounded
//! channel, so memory stays flat whatever the file size); the writer stages each
//! batch with `COPY` and judges, charges and stores it with one call of
//! `lijian_accept_batch` (one transaction, orders plus their outbox rows); a
//! flusher publishes the outbox under confirms. Re-running a load is the resume
//! and the retry: stored rows come back as duplicates, nothing is charged twice,
//! and the outbox left by a killed run is flushed.

mod rows;

pub use rows::{generated_biz_code, judge, Layout, Rejected, RowDefaults, ValidRow};

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csv::ByteRecord;
use futures::SinkExt;
use lijian_core::money::Fen;
use lijian_core::queue::Publisher;
use lijian_core::store::{Store, StoreError};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::campaign::{self, CampaignError, CampaignSpec};
use crate::outbox::{self, JOB_SIZE};

/// Rows per transaction: large enough that the per-batch costs (commit, the
/// merchant row, the plan) vanish, small enough that a killed load redoes little.
pub const BATCH_ROWS: usize = 20_000;

/// Why a load stopped. Bad rows never stop it; these do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the CSV: {0}")]
    Csv(String),
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
    /// Orders whose jobs this run published (bulk jobs of up to 100 orders).
    pub enqueued: u64,
    /// Orders whose jobs are still owed in the outbox at the end (RabbitMQ was
    /// unreachable): stored and safe; a gateway's relay, a scheduler or the next
    /// run of the load publishes them.
    pub owed: u64,
    /// True when the campaign is scheduled: orders wait for the scheduler.
    pub scheduled: bool,
    pub elapsed: Duration,
}

impl LoadSummary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// One parsed batch: valid rows to stage, and rows refused while reading.
struct Batch {
    rows: Vec<ValidRow>,
    /// Each valid row's record as read, for the rejects file should the database
    /// refuse it (a batch's worth: bounded).
    records: Vec<ByteRecord>,
    rejected: Vec<Rejected>,
}

impl Batch {
    fn new() -> Batch {
        Batch { rows: Vec::with_capacity(BATCH_ROWS), records: Vec::with_capacity(BATCH_ROWS), rejected: Vec::new() }
    }
}

/// Loads a campaign file. `rejects` receives the header `line,reason,<file's
/// columns>` and one record per refused row, in line order.
pub async fn load_csv<R, W>(
    store: &Store,
    publisher: &Arc<Publisher>,
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
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(Counting {
        inner: input,
        progress: progress.clone(),
        newlines: newlines.clone(),
        offset: 0,
    });
    let mut header = ByteRecord::new();
    if !reader.read_byte_record(&mut header).map_err(|e| LoadError::Csv(e.to_string()))? {
        return Err(LoadError::Csv("the file is empty (a header row is required)".into()));
    }
    let layout = Layout::from_header(&header).map_err(LoadError::Csv)?;
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
    };

    let mut rejects = csv::WriterBuilder::new().flexible(true).from_writer(rejects);
    let mut rejects_header = ByteRecord::from(vec!["line", "reason"]);
    rejects_header.extend(header.iter());
    rejects.write_byte_record(&rejects_header).map_err(|e| LoadError::Rejects(e.to_string()))?;

    let (batches_tx, mut batches) = mpsc::channel::<Result<Batch, String>>(2);
    let reading = std::thread::spawn(move || read_batches(reader, newlines, layout, defaults, batches_tx));

    let flush_wanted = Arc::new(Notify::new());
    let flushed = Arc::new(AtomicU64::new(0));
    let reading_done = CancellationToken::new();
    let flusher = tokio::spawn(run_flusher(
        store.clone(),
        publisher.clone(),
        flush_wanted.clone(),
        flushed.clone(),
        reading_done.clone(),
    ));

    let mut summary = LoadSummary { scheduled: campaign.is_scheduled(), ..Default::default() };
    let mut client = store.client().await?;
    client
        .batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS load_rows (
                 line bigint, biz_code text, open_id text, app_id text, product_code text,
                 activity_id text, callback_url text) ON COMMIT DELETE ROWS",
        )
        .await?;
    let mut copy_buf = Vec::with_capacity(BATCH_ROWS * 96);
    let outcome: Result<(), LoadError> = async {
        while let Some(batch) = batches.recv().await {
            let batch = batch.map_err(LoadError::Csv)?;
            summary.rows += (batch.rows.len() + batch.rejected.len()) as u64;
            let mut refused = batch.rejected;
            if !batch.rows.is_empty() {
                let judged =
                    store_batch(&mut client, &spec.campaign, summary.scheduled, &batch.rows, &mut copy_buf).await?;
                summary.accepted += judged.accepted;
                summary.charged = Fen(summary.charged.0 + judged.charged);
                summary.duplicates += judged.duplicates;
                progress.accepted.fetch_add(judged.accepted, Ordering::Relaxed);
                progress.duplicates.fetch_add(judged.duplicates, Ordering::Relaxed);
                if !judged.refused.is_empty() {
                    let by_line: BTreeMap<u64, &ByteRecord> =
                        batch.rows.iter().map(|r| r.line).zip(batch.records.iter()).collect();
                    for (line, reason) in judged.refused {
                        let record = by_line.get(&line).map(|r| (*r).clone()).unwrap_or_default();
                        refused.push(Rejected { line, reason, record });
                    }
                }
                if !summary.scheduled && judged.accepted > 0 {
                    flush_wanted.notify_one();
                }
            }
            refused.sort_by_key(|r| r.line);
            progress.rejected.fetch_add(refused.len() as u64, Ordering::Relaxed);
            progress.rows.store(summary.rows, Ordering::Relaxed);
            for r in refused {
                *summary.rejected.entry(reason_kind(&r.reason)).or_default() += 1;
                let mut out = ByteRecord::from(vec![r.line.to_string(), r.reason]);
                out.extend(r.record.iter());
                rejects.write_byte_record(&out).map_err(|e| LoadError::Rejects(e.to_string()))?;
            }
        }
        Ok(())
    }
    .await;
    drop(batches);
    let _ = reading.join();
    rejects.flush().map_err(|e| LoadError::Rejects(e.to_string()))?;
    // Let a flush in progress finish rather than abort it (an aborted one would
    // leave its jobs published and still owed: duplicates for the consumer).
    reading_done.cancel();
    let _ = flusher.await;
    outcome?;
    // Whatever is still owed (this run's last batches, or a killed run's), now.
    summary.enqueued = outbox::flush(store, publisher).await? as u64;
    summary.enqueued += flushed.load(Ordering::Relaxed);
    summary.owed = outbox::owed(store).await? as u64;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Publishes the outbox whenever a batch commits; `flushed` counts the orders.
async fn run_flusher(
    store: Store,
    publisher: Arc<Publisher>,
    wanted: Arc<Notify>,
    flushed: Arc<AtomicU64>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = wanted.notified() => {}
        }
        match outbox::flush(&store, &publisher).await {
            Ok(n) => {
                flushed.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "outbox flush failed; the load retries at the end"),
        }
    }
}

/// Rejects are counted per kind; the rejects file keeps the exact reason.
fn reason_kind(reason: &str) -> String {
    if reason.starts_with("bizCode repeats line") {
        return "bizCode repeats an earlier line".into();
    }
    if reason.starts_with("field ") && reason.contains("UTF-8") {
        return "not valid UTF-8".into();
    }
    reason.to_string()
}

/// What the database said about one batch.
struct Judged {
    accepted: u64,
    charged: i64,
    duplicates: u64,
    refused: Vec<(u64, String)>,
}

async fn store_batch(
    client: &mut deadpool_postgres::Object,
    campaign: &CampaignSpec,
    scheduled: bool,
    rows: &[ValidRow],
    buf: &mut Vec<u8>,
) -> Result<Judged, LoadError> {
    buf.clear();
    for row in rows {
        rows::copy_line(buf, row);
    }
    let tx = client.transaction().await?;
    let sink = tx.copy_in("COPY load_rows FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::copy_from_slice(buf)).await?;
    sink.finish().await?;
    let judged = tx
        .query(
            "SELECT line, status, detail, accepted, charged FROM lijian_accept_batch($1, $2, $3, $4)",
            &[&campaign.merchant_id, &campaign.name, &scheduled, &JOB_SIZE],
        )
        .await
        // The function refuses a cancelled (or foreign) campaign with a check
        // violation whose message is meant for the operator.
        .map_err(|e| match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::CHECK_VIOLATION => {
                LoadError::Campaign(CampaignError::Refused(db.message().to_string()))
            }
            _ => LoadError::from(e),
        })?;
    tx.commit().await?;
    let mut out = Judged { accepted: 0, charged: 0, duplicates: 0, refused: Vec::new() };
    for r in judged {
        let line: Option<i64> = r.get(0);
        match line {
            None => {
                out.accepted = r.get::<_, Option<i64>>(3).unwrap_or(0) as u64;
                out.charged = r.get::<_, Option<i64>>(4).unwrap_or(0);
            }
            Some(line) => {
                let status: i32 = r.get(1);
                if status == 8 {
                    out.duplicates += 1;
                } else {
                    out.refused.push((line as u64, r.get::<_, Option<String>>(2).unwrap_or_default()));
                }
            }
        }
    }
    Ok(out)
}

/// The reader thread: records into batches until the file ends.
fn read_batches<R: Read>(
    mut reader: csv::Reader<Counting<R>>,
    newlines: Arc<std::sync::Mutex<LineIndex>>,
    layout: Layout,
    defaults: RowDefaults,
    out: mpsc::Sender<Result<Batch, String>>,
) {
    let mut batch = Batch::new();
    let mut record = ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let _ = out.blocking_send(Err(format!("{e}; rows before it were loaded, fix the file and load again")));
                return;
            }
        }
        let start = record.position().map(|p| p.byte()).unwrap_or(0);
        let line = newlines.lock().map(|mut index| index.line_at(start)).unwrap_or(0);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank line
        }
        match judge(&layout, &defaults, line, &record) {
            Ok(row) => {
                batch.rows.push(row);
                batch.records.push(record.clone());
            }
            Err(reason) => batch.rejected.push(Rejected { line, reason, record: record.clone() }),
        }
        if batch.rows.len() + batch.rejected.len() >= BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Batch::new());
            if out.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.rows.is_empty() || !batch.rejected.is_empty() {
        let _ = out.blocking_send(Ok(batch));
    }
}

/// Counts bytes read (for the progress bar) and where lines end, because the csv
/// crate's own line numbers drift on CRLF files and rejects must name the line a
/// person sees in an editor.
struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
    newlines: Arc<std::sync::Mutex<LineIndex>>,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        if let Ok(mut index) = self.newlines.lock() {
            for (i, byte) in buf[..n].iter().enumerate() {
                index.saw(self.offset + i as u64, *byte);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Line ends read but not yet passed by a record; bounded by the csv reader's
/// buffer, whatever the file size.
#[derive(Default)]
struct LineIndex {
    /// (offset of the `\n`, whether the line it ends was blank).
    pending: std::collections::VecDeque<(u64, bool)>,
    /// Whether the line being read has anything but `\r` so far.
    line_has_content: bool,
    /// Line ends before the last record asked about.
    passed: u64,
}

impl LineIndex {
    fn saw(&mut self, offset: u64, byte: u8) {
        match byte {
            b'\n' => {
                self.pending.push_back((offset, !self.line_has_content));
                self.line_has_content = false;
            }
            b'\r' => {}
            _ => self.line_has_content = true,
        }
    }

    /// The 1-based line on which the record the csv crate says starts at byte
    /// `start` begins. Its `start` can sit before the record: on the previous
    /// line's `\n` for CRLF files, and before any blank lines it skipped.
    fn line_at(&mut self, start: u64) -> u64 {
        while let Some(&(offset, blank)) = self.pending.front() {
            if offset <= start || blank {
                self.pending.pop_front();
                self.passed += 1;
            } else {
                break;
            }
        }
        self.passed + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_lines(data: &'static [u8]) -> Vec<u64> {
        let newlines = Arc::new(std::sync::Mutex::new(LineIndex::default()));
        let input = Counting { inner: data, progress: Arc::default(), newlines: newlines.clone(), offset: 0 };
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        let mut record = ByteRecord::new();
        let mut lines = Vec::new();
        while reader.read_byte_record(&mut record).expect("csv") {
            let start = record.position().map(|p| p.byte()).unwrap_or(0);
            lines.push(newlines.lock().expect("lock").line_at(start));
        }
        lines
    }

    #[test]
    fn lines_are_the_ones_an_editor_shows() {
        assert_eq!(record_lines(b"h\na\nb\n"), vec![1, 2, 3]);
        // The csv crate alone says [1, 1, 2] here.
        assert_eq!(record_lines(b"h\r\na\r\nb\r\n"), vec![1, 2, 3]);
        assert_eq!(record_lines(b"\xEF\xBB\xBFh\r\n\r\n\"x\r\ny\",a\r\nb"), vec![1, 3, 5]);
    }
}
