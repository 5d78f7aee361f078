//! `lijian dlq …` and `lijian order show`: finding and fixing stuck work without
//! reading code. Wiring and display only; replay and fail are the console's
//! audited actions (`lijian_console::actions::dlq`, the same code `/dlq` runs),
//! whose rules live in the store, the producer (replay) and the queue (sweeping
//! the dead-letter queues).

use anyhow::bail;
use clap::{Args, Subcommand};
use lijian_console::actions::{dlq, Actor};
use lijian_core::config::Settings;
use lijian_core::queue::{Lane, Publisher, Topology};
use lijian_core::store::{DeadFilter, Store};
use lijian_core::times::rfc3339_seconds;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// What is parked, why, and after how many attempts.
    List {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Put parked jobs back with a fresh retry budget (safe to run twice: never a
    /// second coupon, never a second charge).
    Replay {
        /// Every parked job.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Re-target: send the replayed reports to this callback URL instead
        /// (the orders' own URL changes; checked like any callbackUrl).
        #[arg(long, value_name = "URL")]
        callback_url: Option<String>,
    },
    /// Give up on parked work of these orders: an issue job is finished as failed
    /// (status 3, refund, report queued); a parked report is dismissed (nothing
    /// more is sent). An order whose last WeChat Pay call left the outcome
    /// unknown (timeout, dropped connection, unverifiable answer, 5xx) is
    /// refused: `dlq replay` learns the truth.
    Fail {
        #[arg(long = "order", value_name = "CODE", num_args = 1.., required = true)]
        orders: Vec<String>,
        /// Fail orders whose last outcome is unknown too (should their coupon
        /// arrive after all, it is recorded and charged again).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Default)]
pub struct FilterArgs {
    /// issue (coupon not issued) or notify (report not delivered); default both.
    #[arg(long, value_name = "LANE")]
    kind: Option<Lane>,
    /// Only jobs whose reason contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[arg(long, value_name = "NAME")]
    campaign: Option<String>,
    /// Only these orders (repeatable).
    #[arg(long = "order", value_name = "CODE", num_args = 1..)]
    orders: Vec<String>,
}

impl FilterArgs {
    fn to_filter(&self) -> DeadFilter {
        DeadFilter {
            lane: self.kind,
            reason: self.reason.clone(),
            campaign: self.campaign.clone(),
            order_codes: self.orders.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.reason.is_none() && self.campaign.is_none() && self.orders.is_empty()
    }
}

#[derive(Args)]
pub struct OrderShowArgs {
    /// The order code (LJ…).
    code: Option<String>,
    #[arg(long, requires = "biz_code", conflicts_with = "code")]
    merchant_id: Option<String>,
    #[arg(long, requires = "merchant_id")]
    biz_code: Option<String>,
}

fn connect(settings: &Settings) -> anyhow::Result<(Store, std::sync::Arc<Publisher>)> {
    let store = crate::command_store(settings)?;
    let publisher = Publisher::for_settings(settings, "lijian-dlq", Topology::from_settings(settings));
    Ok((store, publisher))
}

pub async fn dlq(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<()> {
    let (store, publisher) = connect(settings)?;
    match cmd {
        DlqCommand::List { filter } => {
            let jobs = store.dead_jobs(&filter.to_filter()).await?;
            if jobs.is_empty() {
                println!("nothing parked");
                return Ok(());
            }
            println!(
                "{:<7} {:<24} {:<14} {:<16} {:>8}  {:<20}  REASON",
                "KIND", "ORDER", "MERCHANT", "CAMPAIGN", "ATTEMPTS", "PARKED AT"
            );
            for j in &jobs {
                println!(
                    "{:<7} {:<24} {:<14} {:<16} {:>8}  {:<20}  {}",
                    j.lane.as_str(),
                    j.order_code,
                    j.merchant_id,
                    j.campaign.as_deref().unwrap_or("-"),
                    format!("{}/{}", j.attempts_since_replay, j.attempts),
                    rfc3339_seconds(j.dead_at),
                    j.reason
                );
            }
            println!("{} parked (attempts: since the last replay / in all)", jobs.len());
        }
        DlqCommand::Replay { all, filter, callback_url } => {
            if all != filter.is_empty() {
                bail!("say what to replay: --all, or --order CODE…, --reason TEXT, --campaign NAME, --kind");
            }
            let actor = Actor::cli();
            let done =
                dlq::replay(settings, &store, &publisher, &filter.to_filter(), callback_url.as_deref(), &actor).await?;
            if let (Some(n), Some(url)) = (done.retargeted, &callback_url) {
                println!("re-targeted {n} reports to {url}");
            }
            println!("replayed {} issue jobs and {} reports", done.issue_jobs, done.reports);
            if done.reports > 0 {
                println!("(reports are queued again by a running `lijian notifier`)");
            }
        }
        DlqCommand::Fail { orders, force } => {
            let done = dlq::fail(&store, &publisher, &orders, force, &Actor::cli()).await?;
            println!("failed {} orders: status 3, refunded, reports queued", done.failed.len());
            if !done.dismissed.is_empty() {
                println!(
                    "dismissed {} parked reports (nothing more is sent): {}",
                    done.dismissed.len(),
                    done.dismissed.join(" ")
                );
            }
            if !done.skipped.is_empty() {
                println!("not parked, left alone: {}", done.skipped.join(" "));
            }
            if !done.unknown.is_empty() {
                for (code, why) in &done.unknown {
                    eprintln!(
                        "refused to fail {code}: the outcome of its last WeChat Pay call is unknown ({why}), \
                         so WeChat may have issued its coupon"
                    );
                }
                let codes = done.unknown.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(" ");
                bail!(
                    "{} orders left parked. `lijian dlq replay --order {codes}` re-sends the same out_request_no, \
                     which WeChat answers with the coupon it issued, if any, and so learns the truth; \
                     `lijian dlq fail --force --order {codes}` fails them anyway (a coupon that arrives later \
                     is recorded and charged again)",
                    done.unknown.len()
                );
            }
        }
    }
    Ok(())
}

pub async fn order_show(settings: &Settings, args: OrderShowArgs) -> anyhow::Result<()> {
    let store = crate::command_store(settings)?;
    let by_biz = args.merchant_id.as_deref().zip(args.biz_code.as_deref());
    if args.code.is_none() && by_biz.is_none() {
        bail!("name the order: lijian order show CODE, or --merchant-id M --biz-code B");
    }
    let Some(t) = store.order_timeline(args.code.as_deref(), by_biz).await? else {
        bail!("order not found");
    };
    for line in lijian_core::timeline_text::render(&t) {
        println!("{line}");
    }
    Ok(())
}
