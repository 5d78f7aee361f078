//! Property tests for the CSV row reader: whatever a spreadsheet or a script
//! writes (quoted commas, quotes, line breaks in an ignored column, any column
//! order, any Unicode in bizCode), each row reads back to exactly what was
//! written, and the COPY text we stage from it decodes to the same fields.

use csv::ByteRecord;
use proptest::prelude::*;

use super::{copy_line, judge, Layout, RowDefaults};

/// One row as a merchant's tool writes it.
#[derive(Debug, Clone)]
struct Row {
    open_id: String,
    biz_code: String,
    product_code: String,
    note: String,
}

fn row() -> impl Strategy<Value = Row> {
    (
        "[A-Za-z0-9_-]{1,32}",
        // Any printable Unicode, no surrounding spaces: what validate accepts.
        "[^\\p{Cc}\\s][^\\p{Cc}]{0,30}[^\\p{Cc}\\s]",
        "[A-Za-z0-9]{1,12}",
        // An ignored column may hold anything a spreadsheet exports.
        "[ -~\n\r\t\",]{0,20}",
    )
        .prop_map(|(open_id, biz_code, product_code, note)| Row { open_id, biz_code, product_code, note })
}

/// Decodes PostgreSQL's COPY text format, as the server does.
fn copy_fields(line: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(line.strip_suffix(b"\n").expect("one line")).expect("utf-8");
    text.split('\t')
        .map(|field| {
            let mut out = String::new();
            let mut chars = field.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('t') => out.push('\t'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            }
            out
        })
        .collect()
}

proptest! {
    #[test]
    fn rows_read_back_as_written(rows in prop::collection::vec(row(), 1..12), order in Just([0usize, 1, 2, 3]).prop_shuffle()) {
        let names = ["openId", "bizCode", "productCode", "note"];
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(order.iter().map(|&i| names[i])).expect("header");
        for r in &rows {
            let values = [&r.open_id, &r.biz_code, &r.product_code, &r.note];
            writer.write_record(order.iter().map(|&i| values[i].as_str())).expect("row");
        }
        let file = writer.into_inner().expect("flush");

        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(file.as_slice());
        let mut record = ByteRecord::new();
        prop_assert!(reader.read_byte_record(&mut record).expect("header"));
        let layout = Layout::from_header(&record).expect("layout");
        prop_assert_eq!(&layout.ignored, &vec!["note".to_string()]);
        let defaults = RowDefaults { merchant_id: "m1".into(), activity_id: Some("a1".into()), ..Default::default() };
        for (i, r) in rows.iter().enumerate() {
            prop_assert!(reader.read_byte_record(&mut record).expect("row"));
            let line = i as u64 + 2;
            let valid = judge(&layout, &defaults, line, &record).map_err(TestCaseError::fail)?;
            prop_assert_eq!((&valid.open_id, &valid.biz_code, &valid.product_code), (&r.open_id, &r.biz_code, &r.product_code));
            let mut staged = Vec::new();
            copy_line(&mut staged, &valid);
            let fields = copy_fields(&staged);
            prop_assert_eq!(fields, vec![line.to_string(), r.biz_code.clone(), r.open_id.clone(), String::new(), r.product_code.clone(), "a1".to_string(), String::new()]);
        }
        prop_assert!(!reader.read_byte_record(&mut record).expect("end"));
    }

    /// Arbitrary bytes in any field: judged without panicking, and an accepted
    /// row never carries a control character into the database.
    #[test]
    fn any_bytes_are_judged_safely(fields in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 2)) {
        let layout = Layout::from_header(&ByteRecord::from(vec!["openId", "bizCode"])).expect("layout");
        let defaults = RowDefaults { merchant_id: "m1".into(), activity_id: Some("a1".into()), product_code: Some("p1".into()), ..Default::default() };
        if let Ok(valid) = judge(&layout, &defaults, 2, &ByteRecord::from(fields)) {
            prop_assert!(!valid.biz_code.chars().any(char::is_control));
            prop_assert!(valid.open_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }
}
