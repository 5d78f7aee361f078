//! The console's HTTP side: the router, who is asking ([`Ctx`]), how an answer
//! is rendered (a page, or the same data as JSON), and how a state-changing
//! request is checked (CSRF token of the session, admin role).
//!
//! Every page answers HTML to a browser with a session cookie and JSON to a
//! script that sends `Accept: application/json` and `Authorization: Bearer
//! <token>`; both render one view value, so they never disagree.

mod activities;
mod audit;
mod auth;
mod campaign_more;
mod campaigns;
mod chart;
mod dlq;
mod form;
pub(crate) mod i18n;
mod layout;
pub(crate) mod limiter;
mod merchants;
mod orders;
mod overview;
mod paging;
mod rates;
pub(crate) mod upload;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lijian_core::store::{OperatorRow, StoreError};
use lijian_core::vocab::OperatorRole;
use maud::Markup;

pub use form::Form;
pub use i18n::{Lang, Zone, M};

use crate::actions::{ActionError, Actor};
use crate::Console;
use lijian_producer::campaign::CampaignError;

/// The routes, each a page and its JSON.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/orders", get(orders::search))
        .route("/orders/{code}", get(orders::page))
        .route("/dlq", get(dlq::page))
        .route("/dlq/replay", post(dlq::replay))
        .route("/dlq/fail", post(dlq::fail))
        // The upload streams: no cap on its body (the loader reads it as it comes).
        .route("/campaigns", get(campaigns::list).post(upload::upload).layer(DefaultBodyLimit::disable()))
        .route("/campaigns/{name}", get(campaigns::page))
        .route("/campaigns/{name}/rejects", get(upload::rejects))
        .route("/campaigns/{name}/{action}", post(campaigns::act))
        .route("/merchants", get(merchants::list))
        .route("/merchants/{id}", get(merchants::page))
        .route("/merchants/{id}/topup", post(merchants::topup))
        .route("/activities", get(activities::list))
        .route("/audit", get(audit::page))
        .route("/lang/{code}", get(i18n::switch))
        .route("/assets/console.css", get(layout::stylesheet))
        .route("/assets/console.js", get(layout::script))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(server_timing))
        .with_state(console)
}

/// `Server-Timing: app;dur=<ms>`: the time from the request to its answer
/// (body included: pages are rendered before they are returned), which
/// `lijian bench console` reads beside its own clock.
async fn server_timing(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let value = format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

/// Script, styles and fetches from the console only (no inline script or
/// style), no frames, no other origin; forms post only here; nothing cached.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn not_found(headers: HeaderMap) -> Response {
    let lang = Lang::of_request(&headers);
    let message = lang.t(M::NoSuchPage).into();
    Failure { status: StatusCode::NOT_FOUND, message, json: wants_json(&headers), lang }.into_response()
}

/// Whether the client asked for JSON.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("application/json")))
}

/// How the asker proved who they are.
#[derive(Debug, Clone)]
enum Via {
    /// A browser session; state-changing forms must carry this CSRF token.
    Session { csrf: String },
    /// An API token: no cookie, so no cross-site forgery to guard against.
    Token,
}

/// Who is asking, in what form and language they want the answer, and where
/// they are (the language switch comes back there).
pub struct Ctx {
    pub operator: OperatorRow,
    pub json: bool,
    pub lang: Lang,
    pub zone: Zone,
    /// The page a language switch returns to: this one, or for a form's
    /// answer (a POST) the page the form was on.
    pub here: String,
    via: Via,
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Ctx, Response> {
        let json = wants_json(&parts.headers);
        let lang = Lang::of_request(&parts.headers);
        match auth::authenticate(console, &parts.headers, json).await {
            Ok(Some((operator, via))) => {
                let here = here(parts);
                Ok(Ctx { operator, json, lang, zone: console.zone.clone(), here, via })
            }
            Ok(None) if json || parts.headers.contains_key(header::AUTHORIZATION) => Err(Failure {
                status: StatusCode::UNAUTHORIZED,
                message: lang.t(M::TokenNeeded).into(),
                json: true,
                lang,
            }
            .into_response()),
            Ok(None) => {
                let wanted = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let next: String = form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
                Err(Redirect::to(&format!("/login?next={next}")).into_response())
            }
            Err(e) => Err(Failure::from_problem(e.explain(lang), json, lang).into_response()),
        }
    }
}

/// This page's path and query; for a POST, the page its form was on (the
/// path less its last part: `/campaigns/spring/pause` → `/campaigns/spring`).
fn here(parts: &Parts) -> String {
    let path = parts.uri.path();
    if parts.method == axum::http::Method::GET {
        return parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| path.to_string());
    }
    match path.rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_string(),
        _ => "/".to_string(),
    }
}

impl Ctx {
    pub fn is_admin(&self) -> bool {
        self.operator.role == OperatorRole::Admin
    }

    pub fn actor(&self) -> Actor {
        Actor::Operator(self.operator.name.clone())
    }

    /// The CSRF token forms of this session carry (empty for token callers).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf } => csrf,
            Via::Token => "",
        }
    }

    /// A session's form must carry its CSRF token (compared in constant time).
    pub fn check_csrf(&self, form: &Form) -> Result<(), Failure> {
        match &self.via {
            Via::Token => Ok(()),
            Via::Session { csrf } if crate::secrets::same_token(form.get("csrf").unwrap_or_default(), csrf) => Ok(()),
            Via::Session { .. } => Err(self.fail(Problem(StatusCode::FORBIDDEN, self.t(M::CsrfWrong).into()))),
        }
    }

    /// A state change: the session's CSRF token, then the admin role.
    pub fn check_admin(&self, form: &Form) -> Result<(), Failure> {
        self.check_csrf(form)?;
        if !self.is_admin() {
            let why = i18n::viewer_refused(self.lang, &self.operator.name);
            return Err(self.fail(Problem(StatusCode::FORBIDDEN, why)));
        }
        Ok(())
    }

    /// The page, or `view` as JSON.
    pub fn render<T: serde::Serialize>(&self, title: &str, view: &T, body: impl FnOnce(&T) -> Markup) -> Response {
        self.render_as(title, view, body, false)
    }

    /// A page that changes while it is watched: it refreshes itself (see
    /// `assets/console.js`); the JSON is the same as [`Ctx::render`]'s.
    pub fn render_live<T: serde::Serialize>(&self, title: &str, view: &T, body: impl FnOnce(&T) -> Markup) -> Response {
        self.render_as(title, view, body, true)
    }

    fn render_as<T: serde::Serialize>(
        &self,
        title: &str,
        view: &T,
        body: impl FnOnce(&T) -> Markup,
        live: bool,
    ) -> Response {
        if self.json {
            Json(view).into_response()
        } else {
            layout::page(self, title, body(view), live).into_response()
        }
    }

    /// A fixed interface text in this operator's language.
    pub fn t(&self, message: M) -> &'static str {
        self.lang.t(message)
    }

    /// The error answer for `e`, worded in this operator's language.
    pub fn fail(&self, e: impl Explain) -> Failure {
        Failure::from_problem(e.explain(self.lang), self.json, self.lang)
    }
}

/// What went wrong and the status it answers with.
#[derive(Debug)]
pub struct Problem(pub StatusCode, pub String);

/// An error told as a [`Problem`] in a language: typed errors are worded
/// variant by variant from the catalogue; text that comes only as text stays
/// as it is (English).
pub trait Explain {
    fn explain(self, l: Lang) -> Problem;
}

impl Explain for Problem {
    fn explain(self, _: Lang) -> Problem {
        self
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem(status, e.to_string())
    }
}

/// The store's refusals carry their text only: English.
impl Explain for StoreError {
    fn explain(self, _: Lang) -> Problem {
        Problem::from(self)
    }
}

impl Explain for ActionError {
    fn explain(self, l: Lang) -> Problem {
        use lijian_producer::bulk::LoadError;
        match self {
            ActionError::Store(e) | ActionError::Campaign(CampaignError::Store(e)) => Problem::from(e),
            ActionError::Load(LoadError::Csv(why)) => Problem(StatusCode::BAD_REQUEST, i18n::csv_unreadable(l, &why)),
            ActionError::Load(LoadError::NoHeader) => Problem(StatusCode::BAD_REQUEST, l.t(M::CsvNoHeader).into()),
            ActionError::Load(LoadError::Store(e)) => Problem::from(e),
            ActionError::Load(LoadError::Campaign(e)) | ActionError::Campaign(e) => e.explain(l),
            e if e.is_refusal() => Problem(StatusCode::CONFLICT, e.to_string()),
            e => Problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl Explain for CampaignError {
    fn explain(self, l: Lang) -> Problem {
        let status = match &self {
            CampaignError::NotFound(_) => StatusCode::NOT_FOUND,
            e if e.is_refusal() => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match self {
            CampaignError::Store(e) => Problem::from(e),
            e => Problem(status, i18n::campaign_refused(l, &e)),
        }
    }
}

/// An error answer: a short page, or `{"error": …}`.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
    json: bool,
    lang: Lang,
}

impl Failure {
    fn from_problem(Problem(status, message): Problem, json: bool, lang: Lang) -> Failure {
        if status.is_server_error() {
            tracing::error!(target: lijian_core::telemetry::logs::CONSOLE, %status, error = %message, "console request failed");
        }
        Failure { status, message, json, lang }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            return (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        }
        let title = i18n::status_title(self.lang, self.status);
        (self.status, layout::bare(self.lang, &title, &self.message)).into_response()
    }
}

/// A handler's outcome: its answer or a [`Failure`].
pub type Answer = Result<Response, Failure>;
