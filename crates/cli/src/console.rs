//! `lijian operator …` and `lijian audit list`: console operators and the audit
//! log from the command line. Wiring and display only; the actions (and their
//! audit records) are `lijian_console::actions`.

use anyhow::bail;
use clap::{Args, Subcommand};
use lijian_console::actions::{operators, Actor};
use lijian_core::config::Settings;
use lijian_core::store::AuditFilter;
use lijian_core::times::rfc3339_seconds;
use lijian_core::vocab::{AuditAction, OperatorRole};

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Register an operator; prints a generated password once (stored only as an argon2 hash).
    Add {
        #[arg(long)]
        name: String,
        /// admin (acts) or viewer (sees everything, changes nothing).
        #[arg(long)]
        role: OperatorRole,
    },
    /// Issue an API token (for `Authorization: Bearer`); printed once, stored only hashed.
    Token {
        #[arg(long)]
        name: String,
    },
    /// Every operator with role, state and live tokens.
    List,
    /// Lock an operator out at once: sessions and tokens end.
    Disable {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// What operators did, newest first (console and CLI alike).
    List(AuditListArgs),
}

#[derive(Args)]
pub struct AuditListArgs {
    /// Only this actor (an operator's name, or cli:USER).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (replay, fail, topup, load, campaign_pause, …).
    #[arg(long)]
    action: Option<AuditAction>,
    /// At most N entries.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub async fn operator(settings: &Settings, cmd: OperatorCommand) -> anyhow::Result<()> {
    let store = crate::command_store(settings)?;
    let actor = Actor::cli();
    match cmd {
        OperatorCommand::Add { name, role } => {
            let (row, password) = operators::add(&store, &name, role, &actor).await?;
            println!("operator {} added ({}); password (shown once, keep it safe):", row.name, row.role);
            println!("{password}");
        }
        OperatorCommand::Token { name } => {
            let token = operators::token(&store, &name, &actor).await?;
            println!("API token for {name} (shown once; send as Authorization: Bearer <token>):");
            println!("{token}");
        }
        OperatorCommand::List => {
            let all = store.operators().await?;
            if all.is_empty() {
                println!("no operators yet (lijian operator add --name NAME --role admin)");
                return Ok(());
            }
            println!("{:<24} {:<7} {:<9} {:>6}  CREATED", "NAME", "ROLE", "STATE", "TOKENS");
            for o in all {
                let state = if o.enabled { "enabled" } else { "disabled" };
                println!(
                    "{:<24} {:<7} {:<9} {:>6}  {}",
                    o.name,
                    o.role.as_str(),
                    state,
                    o.tokens,
                    rfc3339_seconds(o.created_at)
                );
            }
        }
        OperatorCommand::Disable { name } => {
            operators::disable(&store, &name, &actor).await?;
            println!("operator {name} disabled: its sessions and tokens no longer work");
        }
    }
    Ok(())
}

pub async fn audit(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List(args) = cmd;
    if !(1..=1000).contains(&args.limit) {
        bail!("--limit must be 1 to 1000");
    }
    let store = crate::command_store(settings)?;
    let filter = AuditFilter { actor: args.actor, action: args.action, before: None, limit: args.limit };
    let entries = store.audit_entries(&filter).await?;
    if entries.is_empty() {
        println!("nothing recorded");
        return Ok(());
    }
    println!("{:<20}  {:<20} {:<21} {:>8}  {:<30}  DETAIL", "AT (UTC)", "WHO", "ACTION", "COUNT", "TARGET");
    for e in entries {
        println!(
            "{:<20}  {:<20} {:<21} {:>8}  {:<30}  {}",
            rfc3339_seconds(e.at),
            e.actor,
            e.action.as_str(),
            e.count,
            e.target,
            e.detail
        );
    }
    Ok(())
}
