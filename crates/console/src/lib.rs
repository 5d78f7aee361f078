//! lijian-console: the operator console, a role of its own (`lijian console`,
//! also started by `lijian serve` and `lijian demo`) on `LIJIAN_CONSOLE_ADDR`.
//!
//! # Owns
//! - the pages and their JSON twins ([`web`]): overview, orders and their
//!   timeline, dead letters, campaigns (and their upload, streamed into the
//!   loader, and rejects download), merchants, the audit log; HTML drawn
//!   on the server (maud templates compiled in, the stylesheet and a small
//!   live-refresh script embedded, every page readable without it), the same
//!   view value served as JSON to API-token holders;
//! - the interface in English and Chinese and times in the operator's zone
//!   (`web/i18n/`: the one catalogue of interface text); JSON stays raw;
//! - operator authentication: argon2 passwords, API tokens and session ids
//!   stored as hashes and compared in constant time, CSRF tokens bound to the
//!   session, sign-in rate limits ([`secrets`], `web/auth.rs`, `web/limiter.rs`);
//! - operator actions with their audit record ([`actions`]): replay, fail,
//!   pause, resume, cancel, top-up, load, operator changes; the stored copy of
//!   each campaign's latest rejects file (table `load_rejects`). The CLI runs the same
//!   functions, so a change made either way is recorded alike.
//!
//! # Must not touch
//! The rules of what it acts on: replaying is `lijian_producer::replay_orders`,
//! failing and refunding is the store's (`fail_parked_orders`), campaign states
//! are `lijian_producer::campaign`'s, reading a CSV is `lijian_producer::bulk`'s; an order's wording is
//! `lijian_core::timeline_text`. Never issues coupons, never publishes except
//! through those, never serves the open API. No secret reaches a log line, a
//! page or `Debug` output.
//!
//! # Layout
//! - `actions/`   audited operator actions (`dlq`, `campaigns`, `loads`, `merchants`, `operators`)
//! - `secrets.rs` passwords, tokens, sessions, CSRF tokens
//! - `web/`       router and request context (`mod.rs`), sign-in (`auth.rs`, `limiter.rs`),
//!   forms (`form.rs`), the page shell, stylesheet and script (`layout.rs`,
//!   `assets/console.css`, `assets/console.js`), languages, zones and the text
//!   catalogue (`i18n/`), the SVG chart (`chart.rs`), page links for long lists
//!   (`paging.rs`), one file per page

pub mod actions;
pub mod secrets;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use lijian_core::config::Settings;
use lijian_core::deps::Deps;
use lijian_core::queue::{Publisher, Topology};
use lijian_core::store::Store;
use lijian_core::telemetry::logs::CONSOLE;
use lijian_core::telemetry::Ops;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use actions::{ActionError, Actor};

/// What every request handler shares; one per console.
pub struct Console {
    settings: Settings,
    store: Store,
    publisher: Arc<Publisher>,
    /// The broker's queue depths (a connection of its own).
    ops: Arc<Ops>,
    topology: Topology,
    limiter: web::limiter::LoginLimiter,
    /// Password verifications at once (each holds argon2's 19 MiB).
    hashing: tokio::sync::Semaphore,
    /// Where pages show times (`LIJIAN_CONSOLE_TIME_ZONE`).
    zone: web::Zone,
    /// Campaign uploads loading now in this process, for their progress pages.
    uploads: web::upload::Uploads,
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot listen on {addr}")]
    Bind { addr: String, source: std::io::Error },
    #[error("console server failed: {0}")]
    Serve(std::io::Error),
    #[error("LIJIAN_CONSOLE_TIME_ZONE: {0}")]
    Zone(String),
}

/// A running console's address and the task that ends after `shutdown`.
pub struct RunningConsole {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `console.addr` (port 0 picks a free one) and serves until `shutdown`.
pub async fn start(deps: &Deps, shutdown: CancellationToken) -> Result<RunningConsole, ConsoleError> {
    let zone = web::Zone::named(&deps.settings.console.time_zone).map_err(ConsoleError::Zone)?;
    let addr = deps.settings.console.addr.clone();
    let listener = TcpListener::bind(&addr).await.map_err(|source| ConsoleError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ConsoleError::Serve)?;
    let console = Arc::new(Console {
        settings: deps.settings.clone(),
        store: deps.store.clone(),
        publisher: deps.publisher.clone(),
        ops: deps.ops.clone(),
        topology: deps.topology.clone(),
        limiter: Default::default(),
        hashing: tokio::sync::Semaphore::new(2),
        zone,
        uploads: Default::default(),
    });
    let app = web::router(console).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::error!(target: CONSOLE, error = %e, "console stopped");
        }
    });
    tracing::info!(target: CONSOLE, addr = %bound, "console listening");
    Ok(RunningConsole { addr: bound, task })
}
