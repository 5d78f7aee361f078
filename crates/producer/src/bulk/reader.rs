//! The reader thread: the file's records judged and grouped into batches.

use std::io::Read;
use std::sync::{Arc, Mutex};

use csv::ByteRecord;
use tokio::sync::mpsc;

use super::lines::{Counting, LineIndex};
use super::rows::{judge, Layout, Rejected, RowDefaults, ValidRow};
use super::BATCH_ROWS;

/// One parsed batch: valid rows to stage, and rows refused while reading.
pub(super) struct Batch {
    pub(super) rows: Vec<ValidRow>,
    /// Each valid row's record as read, for the rejects file should the database
    /// refuse it (a batch's worth: bounded).
    pub(super) records: Vec<ByteRecord>,
    pub(super) rejected: Vec<Rejected>,
}

impl Batch {
    fn new() -> Batch {
        Batch { rows: Vec::with_capacity(BATCH_ROWS), records: Vec::with_capacity(BATCH_ROWS), rejected: Vec::new() }
    }
}

/// Reads records into batches until the file ends; a file the csv crate cannot
/// read ends the batches with the error.
pub(super) fn read_batches<R: Read>(
    mut reader: csv::Reader<Counting<R>>,
    newlines: Arc<Mutex<LineIndex>>,
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
