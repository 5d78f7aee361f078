//! The page shell (navigation, who is signed in, sign out), the stylesheet
//! compiled into the binary, and the small pieces every page writes alike:
//! money in yuan, times in UTC, ages, confirmation forms.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use lijian_core::money::Fen;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;

use super::Ctx;

const STYLESHEET: &str = include_str!("../../assets/console.css");

pub(super) async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLESHEET)
}

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/campaigns", "Campaigns"),
    ("/dlq", "Dead letters"),
    ("/orders", "Orders"),
    ("/merchants", "Merchants"),
    ("/activities", "Activities"),
    ("/audit", "Audit"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · lijian" }
            link rel="stylesheet" href="/assets/console.css";
        }
    }
}

/// A page for a signed-in operator.
pub(super) fn page(ctx: &Ctx, title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "lijian" }
                    nav { @for (href, label) in NAV { a href=(href) { (label) } } }
                    div.who {
                        span.operator { (ctx.operator.name) " (" (ctx.operator.role) ")" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf());
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation (sign-in, errors).
pub(super) fn bare_markup(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { main { (body) } }
        }
    };
    Html(markup.into_string())
}

/// An error page: what went wrong and the way back.
pub(super) fn bare(title: &str, message: &str) -> Html<String> {
    bare_markup(
        title,
        html! {
            h1 { (title) }
            p.problem role="alert" { (message) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// Yuan with two decimals.
pub(super) fn yuan(amount: Fen) -> Markup {
    html! { span.money { "¥" (amount) } }
}

/// A time in UTC (RFC 3339, seconds).
pub(super) fn at(t: OffsetDateTime) -> Markup {
    let text = lijian_core::times::rfc3339_seconds(t);
    html! { time datetime=(text) { (text) } }
}

/// How long ago, roughly: "45 s", "12 min", "3 h", "2 d".
pub(super) fn age(since: OffsetDateTime, now: OffsetDateTime) -> String {
    duration_words((now - since).whole_seconds().max(0) as f64)
}

/// Seconds as an operator reads them.
pub(super) fn duration_words(secs: f64) -> String {
    let secs = secs.max(0.0);
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 90.0 * 60.0 => format!("{:.0} min", s / 60.0),
        s if s < 48.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86400.0),
    }
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
            a href=(back) { "Cancel" }
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
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration_words(42.0), "42 s");
        assert_eq!(duration_words(600.0), "10 min");
        assert_eq!(duration_words(3.0 * 3600.0), "3.0 h");
        assert_eq!(duration_words(3.0 * 86400.0), "3.0 d");
    }

    #[test]
    fn values_are_escaped() {
        let carried = hidden("order", &["\"><script>".to_string()]).into_string();
        assert!(!carried.contains("<script>"), "{carried}");
    }
}
