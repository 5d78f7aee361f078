//! How each setting's type is read from text (an environment variable or a
//! file value) and written back, and the text forms shared with the CLI:
//! durations, schedules, redacted URLs.

use std::path::PathBuf;
use std::time::Duration;

/// How a setting's type is read from text (environment or file) and written back.
pub(super) trait Value: Sized {
    fn parse(text: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

impl Value for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

/// Empty text is unset, so `LIJIAN_OPS_ADDR=` means the default, as before.
impl Value for Option<String> {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(Some(text.trim()).filter(|t| !t.is_empty()).map(str::to_string))
    }
    fn show(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

impl Value for Option<PathBuf> {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(Option::<String>::parse(text)?.map(PathBuf::from))
    }
    fn show(&self) -> String {
        self.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }
}

/// Counts and sizes: zero would stop a role silently, so it is refused.
impl Value for usize {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| "expected a positive integer".into())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`); anything else is refused rather
/// than read as false, so a typo cannot turn a security switch off.
impl Value for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for u32 {
    fn parse(text: &str) -> Result<Self, String> {
        let n = usize::parse(text)?;
        u32::try_from(n).map_err(|_| "too large".into())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A percentage; the field's own parser bounds it.
impl Value for f64 {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim().parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| "expected a number".into())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn show(&self) -> String {
        format_duration(*self)
    }
}

impl Value for Vec<Duration> {
    fn parse(text: &str) -> Result<Self, String> {
        parse_schedule(text)
    }
    fn show(&self) -> String {
        self.iter().map(|d| format_duration(*d)).collect::<Vec<_>>().join(",")
    }
}

/// A queue prefix becomes part of exchange and queue names.
pub(super) fn queue_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("use letters, digits, '-', '_' or '.'".into());
    }
    Ok(text.to_string())
}

/// Ports and ranges ("80,443,1024-65535"); the notifier reads the ranges.
pub(super) fn port_list(text: &str) -> Result<String, String> {
    let ok = |p: &str| p.trim().parse::<u16>().is_ok();
    let parts: Vec<&str> = text.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    let valid = !parts.is_empty()
        && parts.iter().all(|p| match p.split_once('-') {
            Some((low, high)) => ok(low) && ok(high),
            None => ok(p),
        });
    if valid {
        Ok(text.trim().to_string())
    } else {
        Err("expected ports and ranges such as 80,443,1024-65535".into())
    }
}

/// An IANA time zone name ("Asia/Shanghai"), known to the zone database
/// compiled into the binary (so no host's /usr/share/zoneinfo is needed).
pub(super) fn time_zone(text: &str) -> Result<String, String> {
    let name = text.trim();
    jiff::tz::TimeZone::get(name)
        .map(|_| name.to_string())
        .map_err(|_| "expected an IANA time zone name such as Asia/Shanghai, Europe/Berlin or UTC".into())
}

/// A rate cap where 0 is allowed and means none.
pub(super) fn optional_rate(text: &str) -> Result<u32, String> {
    text.trim().parse().map_err(|_| "expected a whole number (0 = off)".into())
}

/// A share of a limit kept free, in percent (tenths allowed: at 500/s each
/// tenth is half a request a second), below half of it.
pub(super) fn headroom_percent(text: &str) -> Result<f64, String> {
    match f64::parse(text) {
        Ok(n) if (0.0..50.0).contains(&n) && ((n * 10.0).round() - n * 10.0).abs() < 1e-9 => Ok(n),
        _ => Err("expected a percent from 0 to 49.9, in tenths at most (e.g. 2 or 1.5)".into()),
    }
}

/// Removes the password from a connection URL before it is logged or printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The `host:port` a connection URL points at, for messages that must name the
/// server without its credentials or database.
pub fn server_address(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or(authority).to_string()
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// Parses a comma-separated list of durations ("1s,5s,30s").
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let delays: Vec<Duration> =
        text.split(',').filter(|p| !p.trim().is_empty()).map(parse_duration).collect::<Result<_, _>>()?;
    if delays.is_empty() {
        return Err("expected at least one delay, e.g. 1s,5s,30s".into());
    }
    Ok(delays)
}

/// Parses "250ms", "15s", "3m", "2h" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{t:?} is not a duration such as 500ms, 15s, 3m or 2h"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "d" => Ok(Duration::from_secs(n * 86_400)),
        other => Err(format!("unknown unit {other:?} in {t:?}; use ms, s, m, h or d")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("amqp://guest:secret@h:5672/%2f"), "amqp://guest:***@h:5672/%2f");
        assert_eq!(redact_url("postgres://postgres@h/db"), "postgres://postgres@h/db");
        assert_eq!(server_address("amqp://guest:secret@h:5672/%2f"), "h:5672");
        assert_eq!(server_address("postgres://postgres@127.0.0.1:5432/db?x=1"), "127.0.0.1:5432");
    }

    #[test]
    fn schedules_round_trip() {
        let s = parse_schedule("1s,500ms,3m").unwrap_or_default();
        assert_eq!(s.iter().map(|d| format_duration(*d)).collect::<Vec<_>>(), ["1s", "500ms", "3m"]);
        assert!(parse_schedule("").is_err());
        assert_eq!(crate::config::Settings::default().consumer.retry_schedule.len(), 8);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("3 weeks").is_err());
    }
}
