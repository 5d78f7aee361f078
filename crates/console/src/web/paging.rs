//! Lists a page at a time: `?page=N` (1-based) for short lists, `?before=ID`
//! for logs read newest first. The page and its JSON carry the links to the
//! pages around it, so a script follows `next` as a person follows the link.

use maud::{html, Markup};
use serde::Serialize;

use super::i18n::{self, Lang, M};

/// Rows per page of the console's lists.
pub(super) const ROWS: i64 = 50;

/// A page's place in its list: links to the next and previous pages, if any.
#[derive(Serialize, Debug, Default)]
pub(super) struct Pager {
    pub page: i64,
    pub next: Option<String>,
    pub prev: Option<String>,
}

impl Pager {
    /// Page `page` (1-based) of a list at `path` whose other query terms are
    /// `terms` (already URL-encoded, `&`-joined, may be empty).
    pub fn numbered(path: &str, terms: &str, page: i64, more: bool) -> Pager {
        let link = |n: i64| {
            let sep = if terms.is_empty() { "" } else { "&" };
            format!("{path}?{terms}{sep}page={n}")
        };
        Pager { page, next: more.then(|| link(page + 1)), prev: (page > 1).then(|| link(page - 1)) }
    }

    /// A list read newest first by id: the next page holds ids below `last`.
    pub fn keyset(path: &str, terms: &str, before: Option<i64>, last: Option<i64>, more: bool) -> Pager {
        let sep = if terms.is_empty() { "" } else { "&" };
        let next = last.filter(|_| more).map(|id| format!("{path}?{terms}{sep}before={id}"));
        let first = if terms.is_empty() { path.to_string() } else { format!("{path}?{terms}") };
        Pager { page: 0, next, prev: before.map(|_| first) }
    }

    /// Offset of page `page` for `size` rows a page.
    pub fn offset(page: i64, size: i64) -> i64 {
        (page.max(1) - 1).saturating_mul(size)
    }

    /// The links under a table (nothing when the list fits one page).
    pub fn nav(&self, l: Lang) -> Markup {
        html! {
            @if self.next.is_some() || self.prev.is_some() {
                nav.pages {
                    @if let Some(prev) = &self.prev { a rel="prev" href=(prev) { (l.t(M::PreviousPage)) } " " }
                    @if self.page > 0 { span.muted { (i18n::page_number(l, self.page)) } " " }
                    @if let Some(next) = &self.next { a rel="next" href=(next) { (l.t(M::NextPage)) } }
                }
            }
        }
    }
}

/// `?page=N`, 1 when absent or nonsense.
#[derive(serde::Deserialize, Default)]
pub(super) struct PageQuery {
    pub page: Option<i64>,
}

impl PageQuery {
    pub fn number(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }
}

/// A query term, URL-encoded.
pub(super) fn term(name: &str, value: &str) -> String {
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{name}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_other_terms() {
        let p = Pager::numbered("/dlq", "lane=issue&reason=a+b", 2, true);
        assert_eq!(p.next.as_deref(), Some("/dlq?lane=issue&reason=a+b&page=3"));
        assert_eq!(p.prev.as_deref(), Some("/dlq?lane=issue&reason=a+b&page=1"));
        let first = Pager::numbered("/campaigns", "", 1, false);
        assert!(first.next.is_none() && first.prev.is_none());
        let k = Pager::keyset("/audit", "actor=ana", Some(90), Some(40), true);
        assert_eq!(k.next.as_deref(), Some("/audit?actor=ana&before=40"));
        assert_eq!(Pager::offset(3, 50), 100);
    }
}
