//! `POST /campaigns`: a campaign CSV uploaded from the browser or a script,
//! loaded by `lijian load`'s own loader ([`crate::actions::loads`]) while the
//! body arrives, and `GET /campaigns/{name}/rejects`, the rejects file.
//!
//! The file is streamed, never held: the multipart field's chunks go through
//! a bounded channel to the loader's reader thread, so the body arrives as fast
//! as rows are stored and memory stays flat whatever the file's size. The
//! request therefore ends when the load does; then the browser is sent to the
//! campaign's page (its last load and rejects), a script gets the summary. While
//! it runs, the campaign's page and `/campaigns` show its progress to anyone and
//! refresh themselves.
//!
//! The form's fields must come before the file (a browser sends them in the
//! form's order): the CSRF token and the role are checked before a byte of the
//! file is read.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use bytes::{Bytes, BytesMut};
use lijian_core::times::{parse_time, rfc3339_seconds};
use lijian_producer::bulk::{LoadSpec, Progress};
use lijian_producer::campaign::{self, CampaignSpec};
use maud::{html, Markup};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::i18n::{self, Lang, M};
use super::{Answer, Ctx, Form, Problem};
use crate::actions::loads;
use crate::Console;

/// Seconds between a progress page's refreshes.
const REFRESH_SECS: u32 = 2;
/// Chunks of the body in flight to the loader (hyper's chunks are ~8-16 KiB).
const IN_FLIGHT: usize = 64;
/// The header row must end within this many bytes (read before the loader's thread starts).
const HEADER_MAX: usize = 64 * 1024;
/// A text field of the form is short.
const FIELD_MAX: usize = 4096;

/// The uploads running in this console process, by campaign.
#[derive(Default)]
pub(crate) struct Uploads(Mutex<HashMap<String, Arc<Running>>>);

struct Running {
    by: String,
    file: String,
    started: OffsetDateTime,
    size: Option<u64>,
    progress: Arc<Progress>,
}

/// A running upload as a page and JSON show it.
#[derive(Serialize, Clone)]
pub(super) struct UploadView {
    file: String,
    by: String,
    started: String,
    bytes_read: u64,
    /// The request's length, if the client said it.
    bytes_total: Option<u64>,
    rows: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The upload running into `campaign`, if any.
    pub(super) fn view(&self, campaign: &str) -> Option<UploadView> {
        self.lock().get(campaign).map(|r| r.view())
    }

    /// Every running upload, by campaign name.
    pub(super) fn all(&self) -> Vec<(String, UploadView)> {
        let mut all: Vec<_> = self.lock().iter().map(|(name, r)| (name.clone(), r.view())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl Running {
    fn view(&self) -> UploadView {
        let p = &self.progress;
        UploadView {
            file: self.file.clone(),
            by: self.by.clone(),
            started: rfc3339_seconds(self.started),
            bytes_read: p.bytes_read.load(Ordering::Relaxed),
            bytes_total: self.size,
            rows: p.rows.load(Ordering::Relaxed),
            accepted: p.accepted.load(Ordering::Relaxed),
            duplicates: p.duplicates.load(Ordering::Relaxed),
            rejected: p.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Holds a campaign's place in [`Uploads`] until the load ends, however it ends.
struct Registered {
    console: Arc<Console>,
    campaign: String,
}

impl Registered {
    fn begin(console: &Arc<Console>, campaign: &str, running: Running) -> Option<Registered> {
        let mut uploads = console.uploads.lock();
        if uploads.contains_key(campaign) {
            return None;
        }
        uploads.insert(campaign.to_string(), Arc::new(running));
        Some(Registered { console: console.clone(), campaign: campaign.to_string() })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.console.uploads.lock().remove(&self.campaign);
    }
}

/// A running upload's numbers, refreshing the page they are on (a `<meta>`
/// refresh: no script).
pub(super) fn progress_box(l: Lang, name: &str, u: &UploadView) -> Markup {
    let (read, of) = (u.bytes_read as f64 / 1e6, u.bytes_total.map(|t| t as f64 / 1e6));
    html! {
        meta http-equiv="refresh" content=(REFRESH_SECS);
        section.loading {
            h2 { (l.t(M::UploadLoading)) ": " (name) }
            p { (i18n::upload_read(l, &u.file, &u.by, &u.started, read, of)) }
            p { (i18n::upload_rows(l, u.rows, u.accepted, u.duplicates, u.rejected)) }
        }
    }
}

/// The upload form, for admins (viewers see none).
pub(super) fn form(ctx: &Ctx) -> Markup {
    if !ctx.is_admin() {
        return html! {};
    }
    html! {
        details.upload open {
            summary { (ctx.t(M::UploadHeading)) }
            form method="post" action="/campaigns" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(ctx.csrf());
                label { (ctx.t(M::UploadMerchant)) input name="merchant_id" required; }
                label { (ctx.t(M::UploadActivity)) input name="activity_id"; }
                label { (ctx.t(M::UploadProduct)) input name="product_code"; }
                label { (ctx.t(M::UploadCampaign)) input name="campaign"; }
                label { (ctx.t(M::UploadAt)) input name="at" placeholder="2026-12-01T10:00:00+08:00"; }
                label { (ctx.t(M::UploadRate)) input name="rate" type="number" min="1"; }
                label { (ctx.t(M::UploadFile)) input name="file" type="file" accept=".csv,text/csv" required; }
                p.muted { (ctx.t(M::UploadHint)) }
                button type="submit" { (ctx.t(M::UploadSubmit)) }
            }
        }
    }
}

/// What a script gets once its upload is loaded (a browser goes to the campaign).
#[derive(Serialize)]
struct Loaded {
    campaign: String,
    rows: u64,
    accepted: u64,
    duplicates: u64,
    rejected: BTreeMap<String, u64>,
    rejected_total: u64,
    charged: String,
    scheduled: bool,
    elapsed_secs: f64,
    /// Where the rejects file is, if a row was refused.
    rejects: Option<String>,
}

pub(super) async fn upload(
    ctx: Ctx,
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Answer {
    let l = ctx.lang;
    let bad = |why: String| ctx.fail(Problem(StatusCode::BAD_REQUEST, why));
    let mut fields = Vec::new();
    let mut file = loop {
        let Some(mut field) = multipart.next_field().await.map_err(|e| bad(i18n::bad_upload(l, &e.to_string())))?
        else {
            ctx.check_admin(&Form::from_fields(fields))?;
            return Err(bad(ctx.t(M::UploadNoFile).into()));
        };
        if field.name() == Some("file") {
            break field;
        }
        let name = field.name().unwrap_or_default().to_string();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| bad(i18n::bad_upload(l, &e.to_string())))? {
            value.extend_from_slice(&chunk);
            if value.len() > FIELD_MAX {
                return Err(bad(i18n::field_too_long(l, &name)));
            }
        }
        fields.push((name, String::from_utf8_lossy(&value).into_owned()));
    };
    let form = Form::from_fields(fields);
    ctx.check_admin(&form)?;
    let file_name = file.file_name().filter(|n| !n.is_empty()).unwrap_or("upload.csv").to_string();
    let spec = spec_of(&console, &form, &file_name, l).map_err(bad)?;
    let name = spec.campaign.name.clone();
    let progress = Arc::new(Progress::default());
    let size = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let running = Running {
        by: ctx.operator.name.clone(),
        file: file_name.clone(),
        started: OffsetDateTime::now_utc(),
        size,
        progress: progress.clone(),
    };
    let registered = Registered::begin(&console, &name, running)
        .ok_or_else(|| ctx.fail(Problem(StatusCode::CONFLICT, i18n::loading_already(l, &name))))?;

    // The loader reads the header row on its async side, where the reader
    // must not block: that row comes from here.
    let mut head = BytesMut::new();
    let mut ended = false;
    while !header_row_in(&head) && head.len() < HEADER_MAX {
        match file.chunk().await.map_err(|e| bad(i18n::upload_broke_off(l, &e.to_string())))? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => {
                ended = true;
                break;
            }
        }
    }
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    // A file that fit in its first chunks has nothing more to send.
    let tx = (!ended).then_some(tx);
    let complete = Arc::new(AtomicBool::new(ended));
    let reader = UploadReader { pending: head.freeze(), rx, complete: complete.clone() };
    let (store, actor, from) = (console.store.clone(), ctx.actor(), format!("upload {file_name}"));
    // A task of its own: should the client go away, the load still ends
    // cleanly (its reader sees the upload cut short) and leaves the registry.
    let loading = tokio::spawn(async move {
        let _registered = registered;
        loads::load(&store, &spec, reader, std::io::sink(), progress, &actor, &from).await
    });
    if let Some(tx) = tx {
        loop {
            match file.chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the loader stopped; its error says why
                    }
                }
                Ok(None) => {
                    complete.store(true, Ordering::Release);
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(format!("the upload broke off: {e}")))).await;
                    break;
                }
            }
        }
    }
    let summary = loading
        .await
        .map_err(|e| ctx.fail(Problem(StatusCode::INTERNAL_SERVER_ERROR, i18n::load_failed(l, &e.to_string()))))?
        .map_err(|e| ctx.fail(e))?;
    if !ctx.json {
        return Ok(Redirect::to(&format!("/campaigns/{name}")).into_response());
    }
    let rejected_total = summary.rejected_total();
    let loaded = Loaded {
        rejects: (rejected_total > 0).then(|| format!("/campaigns/{name}/rejects")),
        campaign: name,
        rows: summary.rows,
        accepted: summary.accepted,
        duplicates: summary.duplicates,
        rejected_total,
        rejected: summary.rejected,
        charged: summary.charged.to_string(),
        scheduled: summary.scheduled,
        elapsed_secs: summary.elapsed.as_secs_f64(),
    };
    Ok(axum::Json(loaded).into_response())
}

/// The load the form asks for, checked as `lijian load` checks its flags;
/// what is wrong is told in `l`.
fn spec_of(console: &Console, form: &Form, file_name: &str, l: Lang) -> Result<LoadSpec, String> {
    let merchant_id = form.text("merchant_id").ok_or(l.t(M::MerchantIdRequired))?;
    let stem = std::path::Path::new(file_name).file_stem().map(|s| s.to_string_lossy().to_string());
    let name = form.text("campaign").or(stem).unwrap_or_else(|| "campaign".into());
    campaign::check_campaign_name(&name).map_err(|e| i18n::campaign_name_wrong(l, &e))?;
    let rate = match form.text("rate") {
        Some(r) => Some(r.parse::<u32>().ok().filter(|r| *r > 0).ok_or(l.t(M::RateWhole))?),
        None => None,
    };
    let release_at = match form.text("at") {
        Some(t) => Some(parse_time(&t, OffsetDateTime::now_utc()).map_err(|e| i18n::start_time_wrong(l, &e))?),
        None => None,
    };
    Ok(LoadSpec {
        campaign: CampaignSpec { name, merchant_id, release_at, rate, priority: None },
        activity_id: form.text("activity_id"),
        product_code: form.text("product_code"),
        callback_url: None,
        callback_guard: lijian_core::ssrf::Guard::from_settings(&console.settings)?,
    })
}

/// Whether `head` holds a whole first line (and a byte past it, so that a
/// `\r\n` is not cut in two).
fn header_row_in(head: &[u8]) -> bool {
    head.iter().position(|b| *b == b'\n').is_some_and(|at| at + 1 < head.len())
}

/// The upload as the loader's `Read`: the header row first, then the body's
/// chunks as they arrive. Only the loader's reader thread waits on the channel.
struct UploadReader {
    pending: Bytes,
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    /// Set once the body ended as it should (else a closed channel is a cut).
    complete: Arc<AtomicBool>,
}

impl Read for UploadReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            if self.complete.load(Ordering::Acquire) && self.rx.is_closed() && self.rx.is_empty() {
                return Ok(0);
            }
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err(std::io::Error::other(format!(
                    "the header row must end within the first {} KiB",
                    HEADER_MAX / 1024
                )));
            }
            match self.rx.blocking_recv() {
                Some(chunk) => self.pending = chunk?,
                None if self.complete.load(Ordering::Acquire) => return Ok(0),
                None => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the upload was cut short")),
            }
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// `GET /campaigns/{name}/rejects`: the latest load's rejects file as the CLI
/// writes it, streamed a stored chunk at a time; for the browser and for
/// token holders alike.
pub(super) async fn rejects(ctx: Ctx, State(console): State<Arc<Console>>, Path(name): Path<String>) -> Answer {
    let found = loads::rejects_chunks(&console.store, &name).await.map_err(|e| ctx.fail(e))?;
    let Some((load_id, chunks)) = found else {
        return Err(ctx.fail(Problem(StatusCode::NOT_FOUND, i18n::no_rejects(ctx.lang, &name))));
    };
    let disposition = format!("attachment; filename=\"{name}.rejects.csv\"");
    let store = console.store.clone();
    let stream = futures::stream::unfold(0, move |seq| {
        let (store, name) = (store.clone(), name.clone());
        async move {
            if seq >= chunks {
                return None;
            }
            let chunk = loads::rejects_chunk(&store, &name, load_id, seq).await.map_err(std::io::Error::other);
            Some((chunk, seq + 1))
        }
    });
    let headers =
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)];
    Ok((headers, Body::from_stream(stream)).into_response())
}
