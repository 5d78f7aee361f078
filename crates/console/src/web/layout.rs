//! The page shell (navigation, who is signed in, sign out, the language
//! switch), the stylesheet and script compiled into the binary, and the small
//! pieces every page writes alike: money in yuan, times in the operator's
//! zone with UTC on hover, ages, confirmation forms.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use lijian_core::money::Fen;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;

use super::i18n::{self, Lang, M};
use super::Ctx;

const STYLESHEET: &str = include_str!("../../assets/console.css");
/// Live refresh; pages read the same without it.
const SCRIPT: &str = include_str!("../../assets/console.js");

pub(super) async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLESHEET)
}

pub(super) async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], SCRIPT)
}

/// Seconds between two refreshes of a live page.
pub(super) const REFRESH_SECS: u32 = 5;

const NAV: &[(&str, M)] = &[
    ("/", M::Overview),
    ("/campaigns", M::Campaigns),
    ("/dlq", M::DeadLetters),
    ("/orders", M::Orders),
    ("/merchants", M::Merchants),
    ("/activities", M::Activities),
    ("/audit", M::Audit),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · lijian" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// The other languages, each a link that sets the `lijian_lang` cookie and
/// comes back to `here`.
fn switch(lang: Lang, here: &str) -> Markup {
    html! {
        span.lang {
            @for other in Lang::ALL.iter().filter(|l| **l != lang) {
                a href=(i18n::switch_href(*other, here)) lang=(other.tag()) hreflang=(other.tag()) { (other.own_name()) }
            }
        }
    }
}

/// A page for a signed-in operator; a `live` one refreshes itself.
pub(super) fn page(ctx: &Ctx, title: &str, body: Markup, live: bool) -> Html<String> {
    let role = match ctx.operator.role {
        lijian_core::vocab::OperatorRole::Admin => ctx.t(M::Admin),
        lijian_core::vocab::OperatorRole::Viewer => ctx.t(M::Viewer),
    };
    let refresh = live.then(|| REFRESH_SECS.to_string());
    let markup = html! {
        (DOCTYPE)
        html lang=(ctx.lang.tag()) {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "lijian" }
                    nav { @for (href, label) in NAV { a href=(href) { (ctx.t(*label)) } } }
                    div.who {
                        (switch(ctx.lang, &ctx.here))
                        span.operator { (ctx.operator.name) " (" (role) ")" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf());
                            button.link type="submit" { (ctx.t(M::SignOut)) }
                        }
                    }
                }
                main data-refresh=[refresh] {
                    h1 { (title) }
                    (body)
                    footer.muted {
                        (i18n::times_in_zone(ctx.lang, ctx.zone.name()))
                        @if live { " " (ctx.t(M::LiveRefresh)) }
                    }
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation (sign-in, errors), with the language switch.
pub(super) fn bare_markup(lang: Lang, here: &str, title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(title))
            body.bare { main { (body) p.muted { (switch(lang, here)) } } }
        }
    };
    Html(markup.into_string())
}

/// An error page: what went wrong and the way back.
pub(super) fn bare(lang: Lang, title: &str, message: &str) -> Html<String> {
    bare_markup(
        lang,
        "/",
        title,
        html! {
            h1 { (title) }
            p.problem role="alert" { (message) }
            p { a href="/" { (lang.t(M::BackToOverview)) } }
        },
    )
}

/// Yuan with two decimals, the sign before the currency: "¥12.30", "-¥28.50".
pub(super) fn yuan(amount: Fen) -> Markup {
    let sign = if amount.0 < 0 { "-" } else { "" };
    html! { span.money { (sign) "¥" (Fen(amount.0.saturating_abs())) } }
}

/// A time in the operator's zone; the UTC time on hover and in `datetime`.
pub(super) fn at(ctx: &Ctx, t: OffsetDateTime) -> Markup {
    html! {
        time datetime=(lijian_core::times::rfc3339_seconds(t)) title=(i18n::utc_title(t)) { (ctx.zone.show(t)) }
    }
}

/// The same to the millisecond (an order's timeline).
pub(super) fn at_millis(ctx: &Ctx, t: OffsetDateTime) -> Markup {
    html! {
        time datetime=(lijian_core::times::rfc3339_millis(t)) title=(i18n::utc_title(t)) { (ctx.zone.show_millis(t)) }
    }
}

/// How long ago, roughly: "45 s", "12 min", "3 h", "2 d".
pub(super) fn age(lang: Lang, since: OffsetDateTime, now: OffsetDateTime) -> String {
    i18n::duration_words(lang, (now - since).whole_seconds().max(0) as f64)
}

/// A hidden field per value, to carry a selection through a confirmation.
pub(super) fn hidden(name: &str, values: &[String]) -> Markup {
    html! { @for v in values { input type="hidden" name=(name) value=(v); } }
}

/// The form that performs an action once the operator confirms: the question,
/// the fields carried over, the CSRF token, a confirm button and a way back.
pub(super) fn confirmation(
    ctx: &Ctx,
    action: &str,
    question: &str,
    carried: Markup,
    button: &str,
    back: &str,
) -> Markup {
    html! {
        form.confirm method="post" action=(action) {
            p.question { (question) }
            input type="hidden" name="csrf" value=(ctx.csrf());
            input type="hidden" name="confirm" value="yes";
            (carried)
            button.danger type="submit" { (button) }
            " "
            a href=(back) { (ctx.t(M::Cancel)) }
        }
    }
}

/// A progress bar (a native `<progress>`: no inline style needed, so the
/// Content-Security-Policy stays strict) with its numbers.
pub(super) fn progress(done: i64, total: i64, label: &str) -> Markup {
    let percent = if total > 0 { done as f64 * 100.0 / total as f64 } else { 0.0 };
    html! {
        span.bar {
            progress value=(done) max=(total.max(1)) { (format!("{percent:.0}%")) }
            " " (done) " / " (total) " " (label)
        }
    }
}

/// Text known to be safe HTML (the server-drawn SVG chart).
pub(super) fn trusted(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_yuan_with_its_sign_first() {
        assert_eq!(yuan(Fen(-2850)).into_string(), r#"<span class="money">-¥28.50</span>"#);
        assert_eq!(yuan(Fen(5)).into_string(), r#"<span class="money">¥0.05</span>"#);
    }

    #[test]
    fn values_are_escaped() {
        let carried = hidden("order", &["\"><script>".to_string()]).into_string();
        assert!(!carried.contains("<script>"), "{carried}");
    }
}
