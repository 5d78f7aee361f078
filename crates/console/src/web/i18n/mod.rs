//! Chinese (zh-CN) and English: which language a page is drawn in, the switch
//! between them, times in the operator's zone, and the catalogue of every piece
//! of interface text ([`catalogue`]). Only HTML and error messages are
//! translated: the JSON twins carry raw values (codes, yuan strings, RFC 3339
//! UTC times) in one language, but an error's message (`{"error": …}`, beside
//! its status code) is in the asker's language.
//!
//! The choice: the `lijian_lang` cookie the switch sets, else the
//! `Accept-Language` header, else English.

mod catalogue;
mod refusals;
mod sentences;

pub use catalogue::M;
pub use refusals::*;
pub use sentences::*;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;
use time::OffsetDateTime;

use crate::Console;

/// The cookie the language switch sets.
pub const LANG_COOKIE: &str = "lijian_lang";

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The page's `lang` attribute.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// As the cookie and the switch's address spell it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language's name in itself, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The switch's choice (the cookie), else what the browser asks for.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        super::auth::cookie(headers, LANG_COOKIE)
            .and_then(|v| Lang::from_code(v.trim()))
            .or_else(|| {
                let accept = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
                preferred(accept)
            })
            .unwrap_or_default()
    }

    pub fn t(self, message: M) -> &'static str {
        message.text(self)
    }
}

/// Ours that `Accept-Language` ranks highest (any `zh-*` reads Chinese, any
/// `en-*` English; the earlier wins a tie), or None when it names neither.
fn preferred(accept: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .unwrap_or(1.0);
        let lang = match tag.split('-').next().unwrap_or_default() {
            "zh" => Lang::Zh,
            "en" => Lang::En,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

#[derive(serde::Deserialize, Default)]
pub(super) struct SwitchQuery {
    next: Option<String>,
}

/// `GET /lang/{en|zh}?next=/path`: sets the cookie and goes back. A link, so
/// it works without script; signed in or not (the sign-in page has it too).
pub(super) async fn switch(
    State(console): State<Arc<Console>>,
    Path(code): Path<String>,
    Query(q): Query<SwitchQuery>,
) -> Response {
    let next = super::auth::local_next(q.next.as_deref());
    let mut response = Redirect::to(&next).into_response();
    if let Some(lang) = Lang::from_code(&code) {
        let cookie = super::auth::set_cookie(&console, LANG_COOKIE, lang.code(), "/", 365 * 24 * 3600);
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The switch's address for `lang`, coming back to `next`.
pub fn switch_href(lang: Lang, next: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/lang/{}?next={next}", lang.code())
}

/// How a time is shown: in the operator's zone, with its abbreviation.
#[derive(Clone)]
pub struct Zone(jiff::tz::TimeZone);

impl Zone {
    /// An IANA name, checked when the settings were read.
    pub fn named(name: &str) -> Result<Zone, String> {
        jiff::tz::TimeZone::get(name).map(Zone).map_err(|e| format!("time zone {name:?}: {e}"))
    }

    pub fn name(&self) -> &str {
        self.0.iana_name().unwrap_or("UTC")
    }

    /// `t` in this zone: its local date and time, and the zone's abbreviation then.
    pub fn local(&self, t: OffsetDateTime) -> (OffsetDateTime, String) {
        let stamp = jiff::Timestamp::from_second(t.unix_timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let info = self.0.to_offset_info(stamp);
        let offset = time::UtcOffset::from_whole_seconds(info.offset().seconds()).unwrap_or(time::UtcOffset::UTC);
        (t.to_offset(offset), info.abbreviation().to_string())
    }

    /// "2026-11-26 12:05:06 CST".
    pub fn show(&self, t: OffsetDateTime) -> String {
        let (local, abbreviation) = self.local(t);
        format!("{} {abbreviation}", plain(local, false))
    }

    /// "2026-11-26 12:05:06.123 CST", for timelines.
    pub fn show_millis(&self, t: OffsetDateTime) -> String {
        let (local, abbreviation) = self.local(t);
        format!("{} {abbreviation}", plain(local, true))
    }
}

/// "2026-11-26 04:05:06 UTC", the hover text of every time shown.
pub fn utc_title(t: OffsetDateTime) -> String {
    format!("{} UTC", plain(t.to_offset(time::UtcOffset::UTC), false))
}

fn plain(t: OffsetDateTime, millis: bool) -> String {
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if millis {
        text.push_str(&format!(".{:03}", t.millisecond()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_ours_by_weight() {
        assert_eq!(preferred("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::Zh));
        assert_eq!(preferred("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Lang::En));
        assert_eq!(preferred("fr-FR, zh-TW;q=0.5, en;q=0.4"), Some(Lang::Zh));
        assert_eq!(preferred("de, en;q=0, zh;q=0.1"), Some(Lang::Zh));
        assert_eq!(preferred("de-DE,fr"), None);
        assert_eq!(preferred(""), None);
    }

    #[test]
    fn the_cookie_outranks_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "zh-CN".parse().expect("header"));
        assert_eq!(Lang::of_request(&headers), Lang::Zh);
        headers.insert(header::COOKIE, "lijian_lang=en".parse().expect("header"));
        assert_eq!(Lang::of_request(&headers), Lang::En);
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::En, "English unless asked");
    }

    #[test]
    fn times_are_shown_in_the_zone_with_utc_on_hover() -> Result<(), String> {
        let t = time::macros::datetime!(2026-11-26 04:05:06.789 UTC);
        let shanghai = Zone::named("Asia/Shanghai")?;
        assert_eq!(shanghai.show(t), "2026-11-26 12:05:06 CST");
        assert_eq!(shanghai.show_millis(t), "2026-11-26 12:05:06.789 CST");
        assert_eq!(utc_title(t), "2026-11-26 04:05:06 UTC");
        // A zone with summer time: the offset is the one in force at that instant.
        let berlin = Zone::named("Europe/Berlin")?;
        assert_eq!(berlin.show(t), "2026-11-26 05:05:06 CET");
        assert_eq!(berlin.show(time::macros::datetime!(2026-07-01 12:00 UTC)), "2026-07-01 14:00:00 CEST");
        assert!(Zone::named("Mars/Olympus").is_err());
        Ok(())
    }

    #[test]
    fn the_switch_comes_back_to_the_page() {
        assert_eq!(switch_href(Lang::Zh, "/dlq?lane=issue"), "/lang/zh?next=%2Fdlq%3Flane%3Dissue");
    }
}
