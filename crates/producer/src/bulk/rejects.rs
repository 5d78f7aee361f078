//! The rejects file: `line,reason,<the file's columns>`, one record per refused
//! row, in line order; and the per-reason counts of the summary.

use std::collections::BTreeMap;
use std::io::Write;

use csv::ByteRecord;

use super::rows::{Rejected, ValidRow};
use super::LoadError;

pub(super) struct RejectsFile<W: Write> {
    out: csv::Writer<W>,
    /// Written before the first refused row, so a load that refused nothing
    /// writes nothing (and the CLI creates no file).
    header: Option<ByteRecord>,
}

impl<W: Write> RejectsFile<W> {
    /// The file's header is `line`, `reason`, then the input's; written with
    /// the first refused row.
    pub(super) fn start(out: W, input_header: &ByteRecord) -> Result<RejectsFile<W>, LoadError> {
        let out = csv::WriterBuilder::new().flexible(true).from_writer(out);
        let mut header = ByteRecord::from(vec!["line", "reason"]);
        header.extend(input_header.iter());
        Ok(RejectsFile { out, header: Some(header) })
    }

    /// Writes one batch's refused rows in line order and counts them per kind
    /// of reason into `counts`.
    pub(super) fn write_batch(
        &mut self,
        mut refused: Vec<Rejected>,
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<(), LoadError> {
        refused.sort_by_key(|r| r.line);
        if !refused.is_empty() {
            if let Some(header) = self.header.take() {
                self.out.write_byte_record(&header).map_err(rejects_error)?;
            }
        }
        for r in refused {
            *counts.entry(reason_kind(&r.reason)).or_default() += 1;
            let mut out = ByteRecord::from(vec![r.line.to_string(), r.reason]);
            out.extend(r.record.iter());
            self.out.write_byte_record(&out).map_err(rejects_error)?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<(), LoadError> {
        self.out.flush().map_err(rejects_error)
    }
}

/// Adds to `into` the rows of a batch the database refused, given as `(line,
/// reason)`, with their records as read (`records[i]` is `rows[i]`'s). The
/// lookup by line is built only for a batch that has refusals.
pub(super) fn add_database_refusals(
    into: &mut Vec<Rejected>,
    rows: &[ValidRow],
    records: &[ByteRecord],
    refused: Vec<(u64, String)>,
) {
    if refused.is_empty() {
        return;
    }
    let by_line: BTreeMap<u64, &ByteRecord> = rows.iter().map(|r| r.line).zip(records.iter()).collect();
    for (line, reason) in refused {
        let record = by_line.get(&line).map(|r| (*r).clone()).unwrap_or_default();
        into.push(Rejected { line, reason, record });
    }
}

fn rejects_error(e: impl std::fmt::Display) -> LoadError {
    LoadError::Rejects(e.to_string())
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
