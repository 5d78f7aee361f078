//! Times as people read and type them: RFC 3339 in UTC, always the same width
//! (so columns line up and text sorts as time does), and the time flags of the
//! CLI (`--starts`, `--ends`, `--at`), which also take `now` and `now+30d`.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::config::parse_duration;

/// `2026-11-25T10:00:00.120Z`: UTC with milliseconds, 24 characters whatever the
/// instant (RFC 3339 itself drops trailing zeros of the fraction).
pub fn rfc3339_millis(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_default()
}

/// `2026-11-25T10:00:00Z`: UTC to the second, 20 characters.
pub fn rfc3339_seconds(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
        .unwrap_or_default()
}

/// Reads a time flag's value: an RFC 3339 time (`2026-12-01T00:00:00+08:00`),
/// `now`, or `now+DURATION` (`now+60d`, `now+90m`). The error says, once, what
/// to write instead; a bare date is answered with the two midnights it could mean.
pub fn parse_time(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now);
        }
        let offset = rest
            .strip_prefix('+')
            .ok_or_else(|| format!("{t:?}: write now, or now+DURATION such as now+60d"))
            .and_then(|d| parse_duration(d).map_err(|e| format!("{t:?}: {e}")))?;
        let offset = time::Duration::try_from(offset).map_err(|_| format!("{t:?}: the duration is too long"))?;
        return now.checked_add(offset).ok_or_else(|| format!("{t:?}: too far in the future"));
    }
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(at);
    }
    let is_date = t.len() == 10 && time::Date::parse(t, format_description!("[year]-[month]-[day]")).is_ok();
    Err(if is_date {
        format!(
            "{t:?} is a date without a time of day; write {t}T00:00:00+08:00 (midnight in China) or {t}T00:00:00Z (midnight UTC)"
        )
    } else {
        format!("{t:?} is not a time: write RFC 3339 such as 2026-12-01T00:00:00+08:00, or now, or now+60d")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn shown_times_keep_their_width() {
        let whole = datetime!(2026-11-25 10:00:00 +08:00);
        let fraction = datetime!(2026-11-25 10:00:00.123456 UTC);
        assert_eq!(rfc3339_millis(whole), "2026-11-25T02:00:00.000Z");
        assert_eq!(rfc3339_millis(fraction), "2026-11-25T10:00:00.123Z");
        assert_eq!(rfc3339_seconds(fraction), "2026-11-25T10:00:00Z");
    }

    #[test]
    fn time_flags_take_rfc3339_now_and_offsets() {
        let now = datetime!(2026-11-25 10:00:00 UTC);
        assert_eq!(parse_time("2026-12-01T00:00:00+08:00", now), Ok(datetime!(2026-12-01 00:00:00 +08:00)));
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("now+60d", now), Ok(datetime!(2027-01-24 10:00:00 UTC)));
        assert_eq!(parse_time("now+90m", now), Ok(datetime!(2026-11-25 11:30:00 UTC)));
        let date = parse_time("2026-12-01", now).expect_err("a bare date");
        assert!(date.contains("2026-12-01T00:00:00+08:00") && date.contains("without a time"), "{date}");
        assert_eq!(date.matches("without").count(), 1, "{date}");
        assert!(parse_time("tomorrow", now).expect_err("a word").contains("RFC 3339"));
        assert!(parse_time("now-1h", now).is_err());
    }
}
