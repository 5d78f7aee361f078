//! `lijian doctor`: checks what an operator would otherwise learn the hard way,
//! one line per check — OK, WARN or FAIL, and for the last two what to do. The
//! PostgreSQL and RabbitMQ checks run side by side, each bounded by its connect
//! timeout, so a dead or silent server costs one timeout, not one per check.
//! The exit code is non-zero when any check FAILs.
//!
//! `database` PostgreSQL, migrations, clock, what is stored (accounts, keys,
//! callback URLs); `broker` RabbitMQ, quorum queues, file handles; `local` the
//! key files and settings of this host.

mod broker;
mod database;
mod local;

use clap::Args;
use lijian_core::config::Settings;

#[derive(Args)]
pub struct DoctorArgs {
    /// RabbitMQ's management API, for the broker's file handles (`/api/nodes`).
    /// Default: port 15672 on the broker's host, with LIJIAN_AMQP_URL's user and
    /// password. Without the management plugin that line is a WARN, not a failure.
    #[arg(long, value_name = "URL")]
    pub management_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub check: &'static str,
    pub text: String,
    /// What to do (WARN and FAIL).
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, text: impl Into<String>) -> Finding {
        Finding { level: Level::Ok, check, text: text.into(), fix: None }
    }

    pub fn warn(check: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Warn, check, text: text.into(), fix: Some(fix.into()) }
    }

    pub fn fail(check: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Fail, check, text: text.into(), fix: Some(fix.into()) }
    }

    /// A check that needs a server that could not be reached.
    pub fn skipped(check: &'static str, server: &str) -> Finding {
        Finding::warn(
            check,
            format!("not checked: {server} is unreachable"),
            format!("fix {server} first, then run lijian doctor again"),
        )
    }

    fn line(&self) -> String {
        let mut line = format!("{:<4}  {:<15} {}", self.level.label(), self.check, self.text);
        if let Some(fix) = &self.fix {
            line.push_str(" -> ");
            line.push_str(fix);
        }
        line
    }
}

pub async fn run(settings: &Settings, args: DoctorArgs) -> anyhow::Result<()> {
    let (mut findings, broker) =
        tokio::join!(database::check(settings), broker::check(settings, args.management_url.as_deref()));
    findings.extend(broker);
    findings.extend(local::check(settings));
    for finding in &findings {
        println!("{}", finding.line());
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    println!("{} checks: {} OK, {warns} WARN, {fails} FAIL", findings.len(), count(Level::Ok));
    if fails > 0 {
        anyhow::bail!("{fails} of {} checks failed (the FAIL lines above say what to do)", findings.len());
    }
    Ok(())
}
