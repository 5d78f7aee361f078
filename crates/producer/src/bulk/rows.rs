//! Reading a campaign CSV: header mapping, one record at a time, each row judged
//! by the same [`OrderRequest::validate`] the open API uses.

use csv::ByteRecord;

use crate::request::{OrderRequest, Source};

/// The columns a campaign file may have; anything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    OpenId,
    BizCode,
    ActivityId,
    ProductCode,
    AppId,
    CallbackUrl,
}

impl Column {
    const ALL: [(Column, &'static str); 6] = [
        (Column::OpenId, "openId"),
        (Column::BizCode, "bizCode"),
        (Column::ActivityId, "activityId"),
        (Column::ProductCode, "productCode"),
        (Column::AppId, "appId"),
        (Column::CallbackUrl, "callbackUrl"),
    ];
}

/// Where each known column sits in a record, from the header row.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    positions: [Option<usize>; 6],
    /// Header fields we do not know, reported once so a typo is noticed.
    pub ignored: Vec<String>,
}

impl Layout {
    /// Maps the header row (names compared case-insensitively, a UTF-8 BOM
    /// dropped). A missing `openId` column or a column named twice refuses the
    /// whole file before anything is stored.
    pub fn from_header(header: &ByteRecord) -> Result<Layout, String> {
        let mut layout = Layout::default();
        for (i, raw) in header.iter().enumerate() {
            let raw = if i == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
            let name = String::from_utf8_lossy(raw).trim().to_string();
            match Column::ALL.iter().find(|(_, known)| known.eq_ignore_ascii_case(&name)) {
                Some((column, known)) => {
                    let slot = &mut layout.positions[*column as usize];
                    if slot.is_some() {
                        return Err(format!("column {known} appears twice in the header"));
                    }
                    *slot = Some(i);
                }
                None => layout.ignored.push(name),
            }
        }
        if layout.positions[Column::OpenId as usize].is_none() {
            return Err("the header has no openId column (required; columns: openId, bizCode, activityId, productCode, appId, callbackUrl)".into());
        }
        Ok(layout)
    }

    /// Refuses a file whose rows could never all be valid: a required column
    /// (activityId, productCode) absent from the header with no flag to supply
    /// it would refuse every row.
    pub fn check_required(&self, activity_flag: bool, product_flag: bool) -> Result<(), String> {
        for (column, flag, given) in [
            (Column::ActivityId, "--activity-id", activity_flag),
            (Column::ProductCode, "--product-code", product_flag),
        ] {
            if self.positions[column as usize].is_none() && !given {
                let name = Column::ALL[column as usize].1;
                return Err(format!(
                    "the header has no {name} column and no {flag} was given: every row would be refused"
                ));
            }
        }
        Ok(())
    }

    pub fn has_biz_code(&self) -> bool {
        self.positions[Column::BizCode as usize].is_some()
    }
}

/// Values used when a row's column is absent or empty (the load's flags).
#[derive(Debug, Clone, Default)]
pub struct RowDefaults {
    pub merchant_id: String,
    pub campaign: String,
    pub activity_id: Option<String>,
    pub product_code: Option<String>,
    pub callback_url: Option<String>,
    /// Refuses callback URLs that could never be delivered, as the open API does.
    pub guard: lijian_core::ssrf::Guard,
}

/// A row that passed validation, ready to be staged.
#[derive(Debug, Clone)]
pub struct ValidRow {
    pub line: u64,
    pub biz_code: String,
    pub open_id: String,
    pub app_id: String,
    pub product_code: String,
    pub activity_id: String,
    pub callback_url: String,
}

/// A refused row: its line, why, and the record as read.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
    pub record: ByteRecord,
}

/// The bizCode of a row when the file has none: stable for a campaign and a line,
/// so loading the same file again maps each row to the same order.
pub fn generated_biz_code(campaign: &str, line: u64) -> String {
    format!("{campaign}-{line}")
}

/// Judges one record (line numbers count physical lines, header = 1).
pub fn judge(layout: &Layout, defaults: &RowDefaults, line: u64, record: &ByteRecord) -> Result<ValidRow, String> {
    let field = |column: Column| -> Result<Option<String>, String> {
        let Some(i) = layout.positions[column as usize] else { return Ok(None) };
        match record.get(i) {
            None => Ok(None),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok("") => Ok(None),
                Ok(s) => Ok(Some(s.to_string())),
                Err(_) => Err(format!("{} is not valid UTF-8", Column::ALL[column as usize].1)),
            },
        }
    };
    // Any field not UTF-8 makes the row unreadable, even one we would ignore:
    // the file is probably in another encoding and the rest is suspect too.
    if let Some(i) = record.iter().position(|f| std::str::from_utf8(f).is_err()) {
        return Err(format!("field {} is not valid UTF-8 (save the file as UTF-8)", i + 1));
    }
    let biz_code = match field(Column::BizCode)? {
        Some(b) => b,
        None if layout.has_biz_code() => return Err("bizCode is required".into()),
        None => generated_biz_code(&defaults.campaign, line),
    };
    let request = OrderRequest {
        merchant_id: defaults.merchant_id.clone(),
        biz_code,
        open_id: field(Column::OpenId)?.unwrap_or_default(),
        app_id: field(Column::AppId)?,
        product_code: field(Column::ProductCode)?.or_else(|| defaults.product_code.clone()).unwrap_or_default(),
        activity_id: field(Column::ActivityId)?.or_else(|| defaults.activity_id.clone()).unwrap_or_default(),
        callback_url: field(Column::CallbackUrl)?.or_else(|| defaults.callback_url.clone()),
        source: Source::Csv,
        replay_guard: None,
    };
    request.validate(&defaults.guard)?;
    Ok(ValidRow {
        line,
        biz_code: request.biz_code,
        open_id: request.open_id,
        app_id: request.app_id.unwrap_or_default(),
        product_code: request.product_code,
        activity_id: request.activity_id,
        callback_url: request.callback_url.unwrap_or_default(),
    })
}

/// Appends a row to a `COPY … FROM STDIN` text-format buffer.
pub fn copy_line(out: &mut Vec<u8>, row: &ValidRow) {
    let line = row.line.to_string();
    let fields =
        [&line, &row.biz_code, &row.open_id, &row.app_id, &row.product_code, &row.activity_id, &row.callback_url];
    for (i, value) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        for b in value.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                other => out.push(other),
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RowDefaults {
        RowDefaults {
            merchant_id: "m1".into(),
            campaign: "spring".into(),
            activity_id: Some("a1".into()),
            product_code: Some("p1".into()),
            callback_url: None,
            guard: Default::default(),
        }
    }

    #[test]
    fn header_is_mapped_by_name() {
        let header = ByteRecord::from(vec!["\u{feff}productcode", "note", "OPENID"]);
        let layout = Layout::from_header(&header).expect("layout");
        assert_eq!(layout.ignored, vec!["note".to_string()]);
        let row = judge(&layout, &defaults(), 7, &ByteRecord::from(vec!["p9", "x", "oUser_1"])).expect("valid");
        assert_eq!((row.product_code.as_str(), row.open_id.as_str()), ("p9", "oUser_1"));
        assert_eq!((row.activity_id.as_str(), row.biz_code.as_str()), ("a1", "spring-7"));
        assert!(Layout::from_header(&ByteRecord::from(vec!["bizCode"])).is_err_and(|e| e.contains("openId")));
        assert!(Layout::from_header(&ByteRecord::from(vec!["openId", "openid"])).is_err_and(|e| e.contains("twice")));
    }

    #[test]
    fn rows_are_judged_like_api_orders() {
        let layout = Layout::from_header(&ByteRecord::from(vec!["openId", "bizCode"])).expect("layout");
        let judge_one = |fields: Vec<&[u8]>| judge(&layout, &defaults(), 2, &ByteRecord::from(fields));
        assert_eq!(judge_one(vec![b"", b"b1"]).expect_err("refused"), "openId is required");
        assert_eq!(judge_one(vec![b"o1", b""]).expect_err("refused"), "bizCode is required");
        let long = "b".repeat(65);
        assert_eq!(
            judge_one(vec![b"o1", long.as_bytes()]).expect_err("refused"),
            "bizCode is longer than 64 characters"
        );
        assert!(judge_one(vec![b"o\xff1", b"b1"]).expect_err("refused").contains("UTF-8"));
        assert!(judge_one(vec![b"o1", b"b1"]).is_ok());
    }

    #[test]
    fn copy_text_escapes_separators() {
        let row = ValidRow {
            line: 3,
            biz_code: "a\\b".into(),
            open_id: "o".into(),
            app_id: String::new(),
            product_code: "p".into(),
            activity_id: "a".into(),
            callback_url: String::new(),
        };
        let mut out = Vec::new();
        copy_line(&mut out, &row);
        assert_eq!(out, b"3\ta\\\\b\to\t\tp\ta\t\n".to_vec());
    }
}

#[cfg(test)]
mod props;
