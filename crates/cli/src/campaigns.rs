//! `lijian load`, `lijian campaign …` and `lijian scheduler`: the CSV door and
//! the campaign operator commands. Wiring and display only; pause, resume,
//! cancel, delete and the load itself are the console's audited actions
//! (`lijian_console::actions::{campaigns, loads}`), shared with its upload.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use lijian_console::actions::{campaigns, loads, Actor};
use lijian_core::config::Settings;
use lijian_core::status::OrderStatus;
use lijian_core::store::Store;
use lijian_core::times::rfc3339_seconds;
use lijian_producer::bulk::{LoadSpec, LoadSummary, Progress};
use lijian_producer::campaign::{self, CampaignSpec};
use time::OffsetDateTime;

#[derive(Args)]
pub struct LoadArgs {
    /// The CSV file (header row; columns openId, bizCode, activityId, productCode, appId, callbackUrl).
    pub file: PathBuf,
    #[arg(long)]
    pub merchant_id: String,
    /// Campaign name (default: the file name without extension). Generated bizCodes are <campaign>-<line>.
    #[arg(long)]
    pub campaign: Option<String>,
    /// For rows without an activityId column value.
    #[arg(long)]
    pub activity_id: Option<String>,
    /// For rows without a productCode column value.
    #[arg(long)]
    pub product_code: Option<String>,
    /// For rows without a callbackUrl column value (else the merchant's default).
    #[arg(long)]
    pub callback_url: Option<String>,
    /// Hold the orders and release them at this time (RFC 3339, e.g. 2026-12-01T10:00:00+08:00).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Release at most N orders per second, spread evenly (implies a scheduled campaign).
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
    /// Weight among this merchant's campaigns on one WeChat Pay account, 1-100
    /// (default 1): merchants share an account alike, a merchant's campaigns by weight.
    #[arg(long, value_name = "N")]
    pub priority: Option<u32>,
    /// Where refused rows go (default: FILE.rejects.csv).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Every campaign with its state, schedule and progress.
    List,
    /// Orders per status, release progress, current rate, ETA and failures by reason.
    Status { name: String },
    /// Stop releasing (orders already released, at most its part of the release window, still complete).
    Pause { name: String },
    /// Release again, pacing from now.
    Resume { name: String },
    /// Finish every unreleased order as cancelled (status 4), refund it and queue its report.
    Cancel { name: String },
    /// Delete a campaign without orders (a load that accepted nothing).
    Delete { name: String },
    /// Set a campaign's weight among its merchant's campaigns (1-100; default 1).
    Priority { name: String, priority: u32 },
}

fn default_campaign(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "campaign".into())
}

fn rejects_path(file: &Path) -> PathBuf {
    let mut name = file.file_stem().map(|s| s.to_os_string()).unwrap_or_default();
    name.push(".rejects.csv");
    file.with_file_name(name)
}

pub async fn load(settings: &Settings, args: LoadArgs) -> anyhow::Result<()> {
    if args.rate == Some(0) {
        bail!("--rate must be at least 1 order per second");
    }
    if let Some(priority) = args.priority {
        campaign::check_priority(priority).map_err(|e| anyhow::anyhow!("--priority: {e}"))?;
    }
    let release_at = args
        .at
        .as_deref()
        .map(|t| lijian_core::times::parse_time(t, OffsetDateTime::now_utc()).map_err(|e| anyhow::anyhow!("--at {e}")))
        .transpose()?;
    let name = args.campaign.clone().unwrap_or_else(|| default_campaign(&args.file));
    campaign::check_campaign_name(&name).map_err(|e| anyhow::anyhow!("{e} (use --campaign)"))?;
    let callback_guard = lijian_core::ssrf::Guard::from_settings(settings).map_err(anyhow::Error::msg)?;
    if let Some(url) = &args.callback_url {
        lijian_producer::check_callback_url(url, &callback_guard)
            .map_err(|e| anyhow::anyhow!("--callback-url: {e}"))?;
    }
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let rejects_file = args.rejects.clone().unwrap_or_else(|| rejects_path(&args.file));
    // A rejects file left by an earlier run of this file would describe that run.
    match std::fs::remove_file(&rejects_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", rejects_file.display()));
        }
        _ => {}
    }
    let rejects = CreatedOnWrite { path: rejects_file.clone(), file: None };
    // One more than the loader's: the stored copy of the rejects is inserted beside it.
    let store = Store::for_settings(settings, lijian_producer::bulk::CONNECTIONS + 1)?;
    let spec = LoadSpec {
        campaign: CampaignSpec {
            name,
            merchant_id: args.merchant_id.clone(),
            release_at,
            rate: args.rate,
            priority: args.priority,
        },
        activity_id: args.activity_id.clone(),
        product_code: args.product_code.clone(),
        callback_url: args.callback_url.clone(),
        callback_guard,
    };
    let progress = Arc::new(Progress::default());
    let display = tokio::spawn(show_progress(progress.clone(), size));
    let from = args.file.display().to_string();
    let input = std::io::BufReader::new(file);
    let outcome = loads::load(&store, &spec, input, rejects, progress, &Actor::cli(), &from).await;
    display.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let summary = outcome?;
    print_summary(&spec, &summary, &rejects_file);
    Ok(())
}

/// A bar with rate and ETA on a terminal; a plain line every few seconds otherwise.
async fn show_progress(progress: Arc<Progress>, size: u64) {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let every = if tty { Duration::from_millis(200) } else { Duration::from_secs(5) };
    loop {
        tokio::time::sleep(every).await;
        let read = progress.bytes_read.load(Ordering::Relaxed);
        let rows = progress.rows.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let fraction = if size > 0 { (read as f64 / size as f64).min(1.0) } else { 0.0 };
        let eta = if fraction > 0.0 { secs / fraction - secs } else { 0.0 };
        let line = format!(
            "{rows} rows, {} accepted, {} duplicates, {} rejected — {:.0} rows/s, ETA {:.0}s",
            progress.accepted.load(Ordering::Relaxed),
            progress.duplicates.load(Ordering::Relaxed),
            progress.rejected.load(Ordering::Relaxed),
            rows as f64 / secs,
            eta,
        );
        if tty {
            let filled = (fraction * 30.0) as usize;
            eprint!("\r[{}{}] {:>3.0}% {line}\x1b[K", "#".repeat(filled), " ".repeat(30 - filled), fraction * 100.0);
        } else {
            eprintln!("load: {:.0}% {line}", fraction * 100.0);
        }
    }
}

/// The rejects file, created with its first byte: a load that refused nothing
/// leaves no file behind.
struct CreatedOnWrite {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl std::io::Write for CreatedOnWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() {
            let file = std::fs::File::create(&self.path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", self.path.display())))?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        self.file.as_mut().map_or(Ok(0), |f| f.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

fn print_summary(spec: &LoadSpec, s: &LoadSummary, rejects_file: &Path) {
    println!("campaign {}: {} rows in {:.1}s", spec.campaign.name, s.rows, s.elapsed.as_secs_f64());
    println!("  accepted:   {}", s.accepted);
    println!("  duplicates: {} (already stored; nothing charged again)", s.duplicates);
    if s.rejected_total() > 0 {
        println!("  rejected:   {} (see {})", s.rejected_total(), rejects_file.display());
    } else {
        println!("  rejected:   0");
    }
    for (reason, n) in &s.rejected {
        println!("    {n:>9}  {reason}");
    }
    println!("  charged:    {} yuan", s.charged);
    let when = if s.scheduled { "scheduled: at its time and rate, " } else { "" };
    println!(
        "  release:    {}by `lijian scheduler`, in a fair share of its WeChat Pay account (see `lijian campaign status {}`)",
        when, spec.campaign.name
    );
}

pub async fn campaign(settings: &Settings, cmd: CampaignCommand) -> anyhow::Result<()> {
    let store = crate::command_store(settings)?;
    match cmd {
        CampaignCommand::List => {
            let all = campaign::list(&store).await?;
            if all.is_empty() {
                println!("no campaigns yet (create one with `lijian load`)");
            }
            println!(
                "{:<24} {:<14} {:<10} {:<27} {:>8} {:>10} {:>10}",
                "NAME", "MERCHANT", "STATE", "RELEASE", "RATE", "ORDERS", "FINAL"
            );
            for (c, total, done) in all {
                println!(
                    "{:<24} {:<14} {:<10} {:<27} {:>8} {:>10} {:>10}",
                    c.name,
                    c.merchant_id,
                    c.shown_state(),
                    c.release_at.map(rfc3339_seconds).unwrap_or_else(|| "at once".into()),
                    c.rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "-".into()),
                    total,
                    done
                );
            }
        }
        CampaignCommand::Status { name } => {
            let s = campaign::status(&store, &name).await?;
            let c = &s.campaign;
            println!("campaign {} (merchant {}): {}", c.name, c.merchant_id, c.shown_state());
            match (c.release_at, c.rate) {
                (Some(at), rate) => println!(
                    "  release:   from {}{}; {} released, {} waiting",
                    rfc3339_seconds(at),
                    rate.map(|r| format!(" at {r}/s")).unwrap_or_default(),
                    c.released,
                    s.unreleased
                ),
                (None, _) => {
                    println!("  release:   at its account's pace; {} released, {} waiting", c.released, s.unreleased)
                }
            }
            println!("  orders:    {}", s.total());
            for status in OrderStatus::ALL {
                println!("    {} {:<11} {}", status.code(), status.operator_word(), s.count(status));
            }
            println!("  parked:    {} (see `lijian dlq list --campaign {}`)", s.parked, c.name);
            println!("  rate:      {:.1} orders/s finishing (last 10 s)", s.finishing_per_sec);
            println!("  priority:  {}", c.priority);
            match s.share {
                Some(share) => println!(
                    "  share:     {:.0}% of its WeChat Pay account's campaign sends, {:.1} orders/s now",
                    share.fraction * 100.0,
                    share.orders_per_sec
                ),
                None => println!("  share:     none now (not releasing, or no scheduler running)"),
            }
            match s.eta_secs() {
                Some(eta) => println!("  ETA:       {:.0}s", eta),
                None => println!("  ETA:       unknown (nothing finishing now)"),
            }
            println!(
                "  money:     {} yuan charged (orders issued or in progress); {} yuan refunded (failed and cancelled orders)",
                s.charged, s.refunded
            );
            if !s.failures.is_empty() {
                println!("  failures by reason:");
                for (reason, n) in &s.failures {
                    println!("    {n:>9}  {reason}");
                }
            }
        }
        CampaignCommand::Pause { name } => {
            campaigns::pause(&store, &name, &Actor::cli()).await?;
            println!("campaign {name} paused; resume with `lijian campaign resume {name}`");
        }
        CampaignCommand::Resume { name } => {
            campaigns::resume(&store, &name, &Actor::cli()).await?;
            println!("campaign {name} resumed");
        }
        CampaignCommand::Cancel { name } => {
            let (n, refunded) = campaigns::cancel(&store, &name, &Actor::cli()).await?;
            println!("campaign {name} cancelled: {n} unreleased orders finished as status 4, {refunded} yuan refunded, reports queued");
        }
        CampaignCommand::Delete { name } => {
            campaigns::delete(&store, &name, &Actor::cli()).await?;
            println!("campaign {name} deleted");
        }
        CampaignCommand::Priority { name, priority } => {
            campaigns::priority(&store, &name, priority, &Actor::cli()).await?;
            println!("campaign {name} now has priority {priority} among its merchant's campaigns");
        }
    }
    Ok(())
}
