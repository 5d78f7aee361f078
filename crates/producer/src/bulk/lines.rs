//! Which line of the file a record starts on, as an editor numbers it: the csv
//! crate's own line numbers drift on CRLF files, and rejects must name the line
//! a person sees.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Progress;

/// The load's input, counting bytes read (for the progress bar) and noting
/// where lines end in the shared [`LineIndex`].
pub(super) struct Counting<R> {
    inner: R,
    progress: Arc<Progress>,
    newlines: Arc<Mutex<LineIndex>>,
    offset: u64,
}

impl<R> Counting<R> {
    pub(super) fn new(inner: R, progress: Arc<Progress>, newlines: Arc<Mutex<LineIndex>>) -> Counting<R> {
        Counting { inner, progress, newlines, offset: 0 }
    }
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
pub(super) struct LineIndex {
    /// (offset of the `\n`, whether the line it ends was blank).
    pending: VecDeque<(u64, bool)>,
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
    pub(super) fn line_at(&mut self, start: u64) -> u64 {
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
    use csv::ByteRecord;

    fn record_lines(data: &'static [u8]) -> Vec<u64> {
        let newlines = Arc::new(Mutex::new(LineIndex::default()));
        let input = Counting::new(data, Arc::default(), newlines.clone());
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
