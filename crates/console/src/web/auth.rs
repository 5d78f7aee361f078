//! Who is asking: an API token (`Authorization: Bearer`) or a browser session
//! cookie; signing in (rate-limited, with a form token of its own) and out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lijian_core::store::{CredentialKind, NewAudit, OperatorRow, StoreError};
use lijian_core::telemetry::logs::CONSOLE;
use lijian_core::vocab::AuditAction;
use maud::html;

use super::{layout, Ctx, Explain, Failure, Form, Lang, Via, M};
use crate::secrets::{self, Presented};
use crate::Console;

const SESSION_COOKIE: &str = "lijian_session";
/// The sign-in form's own CSRF token (there is no session yet to bind one to).
const LOGIN_COOKIE: &str = "lijian_login";

/// The operator behind a request's credential, if it is valid. JSON callers
/// must bring a token: a session cookie alone does not open the JSON API.
pub(super) async fn authenticate(
    console: &Console,
    headers: &HeaderMap,
    json: bool,
) -> Result<Option<(OperatorRow, Via)>, StoreError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).and_then(Presented::parse_token);
        let Some(token) = token else { return Ok(None) };
        let found = console.store.credential(CredentialKind::Token, &token.selector).await?;
        return Ok(found.filter(|c| token.matches(&c.secret_hash)).map(|c| (c.operator, Via::Token)));
    }
    if json {
        return Ok(None);
    }
    let Some(session) = cookie(headers, SESSION_COOKIE).and_then(|v| Presented::parse(&v)) else { return Ok(None) };
    let found = console.store.credential(CredentialKind::Session, &session.selector).await?;
    Ok(found.filter(|c| session.matches(&c.secret_hash)).map(|c| (c.operator, Via::Session { csrf: session.csrf() })))
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

/// A cookie scripts cannot read and other sites never trigger.
pub(super) fn set_cookie(console: &Console, name: &str, value: &str, path: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if console.settings.console.secure_cookies { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(serde::Deserialize, Default)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this console: never another site after signing in, and
/// nothing a `Location` header cannot carry.
pub(super) fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

pub(super) async fn login_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = Lang::of_request(&headers);
    login_form(&console, lang, &local_next(q.next.as_deref()), None, StatusCode::OK)
}

/// The sign-in form with a fresh form token (also set as a cookie).
fn login_form(console: &Console, lang: Lang, next: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let Ok(token) = secrets::form_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the system's random source failed").into_response();
    };
    let body = html! {
        form.login method="post" action="/login" {
            h1 { (lang.t(M::ConsoleName)) }
            @if let Some(problem) = problem { p.problem role="alert" { (problem) } }
            input type="hidden" name="login_token" value=(token);
            input type="hidden" name="next" value=(next);
            label { (lang.t(M::OperatorName)) input name="name" autocomplete="username" required autofocus; }
            label { (lang.t(M::Password)) input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { (lang.t(M::SignIn)) }
        }
    };
    let here = format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
    let mut response = (status, layout::bare_markup(lang, &here, lang.t(M::SignInTitle), body)).into_response();
    let cookie = set_cookie(console, LOGIN_COOKIE, &token, "/login", 3600);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

pub(super) async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let next = local_next(form.get("next"));
    let lang = Lang::of_request(&headers);
    let name = form.get("name").unwrap_or_default().trim().to_string();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !secrets::same_token(form.get("login_token").unwrap_or_default(), &expected) {
        return login_form(&console, lang, &next, Some(lang.t(M::FormExpired)), StatusCode::FORBIDDEN);
    }
    if let Err(wait) = console.limiter.check(&name, peer.ip()) {
        tracing::warn!(target: CONSOLE, operator = %name, address = %peer.ip(), "sign-in refused: too many failures");
        let why = super::i18n::too_many_sign_ins(lang, wait.as_secs().div_ceil(60).max(1));
        return login_form(&console, lang, &next, Some(&why), StatusCode::TOO_MANY_REQUESTS);
    }
    let password = form.get("password").unwrap_or_default().to_string();
    let operator = match verify(&console, &name, password).await {
        Ok(Some(operator)) => operator,
        Ok(None) => {
            console.limiter.failed(&name, peer.ip());
            tracing::warn!(target: CONSOLE, operator = %name, address = %peer.ip(), "sign-in failed");
            return login_form(&console, lang, &next, Some(lang.t(M::WrongPassword)), StatusCode::UNAUTHORIZED);
        }
        Err(e) => return Failure::from_problem(e.explain(lang), false, lang).into_response(),
    };
    console.limiter.succeeded(&name);
    match open_session(&console, &operator, peer).await {
        Ok(cookie) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response.headers_mut().append(header::SET_COOKIE, set_cookie(&console, LOGIN_COOKIE, "", "/login", 0));
            response
        }
        Err(e) => Failure::from_problem(e.explain(lang), false, lang).into_response(),
    }
}

/// The enabled operator `name` if `password` is theirs. An unknown name costs
/// the same argon2 verification as a known one.
async fn verify(console: &Console, name: &str, password: String) -> Result<Option<OperatorRow>, StoreError> {
    let found = console.store.operator_password(name).await?;
    let stored = found.as_ref().map(|(_, hash)| hash.clone()).unwrap_or_else(|| secrets::decoy_hash().to_string());
    // Each verification holds 19 MiB for tens of milliseconds: a few at a time.
    let _turn = console.hashing.acquire().await.map_err(|_| StoreError::Invalid("console stopping".into()))?;
    let matched =
        tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored)).await.unwrap_or(false);
    Ok(found.filter(|_| matched).map(|(operator, _)| operator))
}

async fn open_session(console: &Console, operator: &OperatorRow, peer: SocketAddr) -> Result<HeaderValue, StoreError> {
    let ttl = console.settings.console.session_ttl;
    let made = secrets::new_credential().map_err(|e| StoreError::Invalid(e.to_string()))?;
    let _ = console.store.prune_sessions().await;
    let expires = time::OffsetDateTime::now_utc() + ttl;
    console
        .store
        .add_credential(CredentialKind::Session, &operator.name, &made.selector, &made.secret_hash, Some(expires))
        .await?;
    let entry = NewAudit {
        actor: operator.name.clone(),
        action: AuditAction::Login,
        target: operator.name.clone(),
        count: 1,
        detail: format!("from {}", peer.ip()),
    };
    console.store.audit(&entry).await?;
    tracing::info!(target: CONSOLE, operator = %operator.name, address = %peer.ip(), "signed in");
    Ok(set_cookie(console, SESSION_COOKIE, &made.text, "/", ttl.as_secs()))
}

pub(super) async fn logout(ctx: Ctx, State(console): State<Arc<Console>>, headers: HeaderMap, form: Form) -> Response {
    if let Err(refused) = ctx.check_csrf(&form) {
        return refused.into_response();
    }
    if let Some(session) = cookie(&headers, SESSION_COOKIE).and_then(|v| Presented::parse(&v)) {
        if let Err(e) = console.store.end_session(&session.selector).await {
            return ctx.fail(e).into_response();
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&console, SESSION_COOKIE, "", "/", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_next(Some("/dlq?lane=issue")), "/dlq?lane=issue");
        for elsewhere in ["https://evil.example/", "//evil.example/", "/\\evil.example", "dlq", "/a\r\nSet-Cookie: x=1"]
        {
            assert_eq!(local_next(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(local_next(None), "/");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("lijian_session_x=1; lijian_session=abc; other=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }
}
