//! `lijian wxpay-account …`: the WeChat Pay merchant accounts coupons are sent
//! from. Only key file paths are stored; `add` reads both keys to check them and
//! no command ever prints key material.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use lijian_core::config::Settings;
use lijian_core::store::NewAccount;

use lijian_core::vocab::AuditAction;

use super::{audit, store};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Register an account; both key files must be readable and parse.
    Add {
        /// WeChat Pay merchant number (商户号).
        #[arg(long)]
        mchid: String,
        /// Serial of the merchant API certificate whose private key signs requests.
        #[arg(long)]
        serial_no: String,
        /// PEM file of that private key (only the path is stored).
        #[arg(long, value_name = "FILE")]
        private_key: PathBuf,
        /// PEM file of the WeChat Pay public key that signs answers.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The `Wechatpay-Serial` of that key (e.g. PUB_KEY_ID_…).
        #[arg(long)]
        public_key_id: String,
        /// An appid the account may send for (repeatable; none = any).
        #[arg(long = "appid", value_name = "APPID")]
        appids: Vec<String>,
        /// Send-coupon requests per second WeChat allows it.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// WeChat Pay API v3 address for this account (default LIJIAN_WXPAY_BASE_URL).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// List every account.
    List,
    /// Show one account.
    Show {
        #[arg(long)]
        mchid: String,
    },
    /// Change an account's requests per second.
    SetRate {
        #[arg(long)]
        mchid: String,
        #[arg(long)]
        rate: u32,
    },
    /// Send from the account again (then `lijian dlq replay` what was parked).
    Enable {
        #[arg(long)]
        mchid: String,
    },
    /// Stop sending from the account: its jobs are parked with the reason.
    Disable {
        #[arg(long)]
        mchid: String,
    },
}

pub async fn wxpay_account(settings: &Settings, cmd: AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Add { mchid, serial_no, private_key, public_key, public_key_id, appids, rate, base_url } => {
            for (flag, value) in [("mchid", &mchid), ("serial-no", &serial_no), ("public-key-id", &public_key_id)] {
                if value.trim().is_empty() || value.len() > 64 {
                    bail!("--{flag} must be 1 to 64 characters");
                }
            }
            if rate == 0 {
                bail!("--rate must be a positive number of requests per second");
            }
            if let Some(url) = &base_url {
                reqwest::Url::parse(url).with_context(|| format!("--base-url {url:?} is not a URL"))?;
            }
            lijian_consumer::accounts::load_keys(&private_key, &public_key).context("the account is not stored")?;
            let account = NewAccount {
                mchid,
                serial_no,
                // Absolute, so a consumer started from another directory finds them.
                private_key_path: absolute(private_key)?,
                public_key_path: absolute(public_key)?,
                public_key_id,
                appids,
                rate,
                base_url,
            };
            let store = store(settings)?;
            store.add_account(&account).await?;
            let detail = format!("{rate} requests/s, key serial {}", account.serial_no);
            audit(&store, AuditAction::WxpayAccountAdd, &account.mchid, detail).await?;
            println!("WeChat Pay account {} added ({} requests/s)", account.mchid, rate);
        }
        AccountCommand::List => {
            let rows = store(settings)?.accounts().await?;
            if rows.is_empty() {
                println!("no WeChat Pay accounts stored (LIJIAN_WXPAY_* is the only account, if set)");
            }
            for row in rows {
                let a = &row.account;
                println!(
                    "{}  {}  {}/s  appids {}  {}",
                    a.mchid,
                    if row.enabled { "enabled " } else { "disabled" },
                    a.rate,
                    appids(a),
                    a.base_url.as_deref().unwrap_or("(LIJIAN_WXPAY_BASE_URL)")
                );
            }
        }
        AccountCommand::Show { mchid } => {
            let row = store(settings)?
                .account(&mchid)
                .await?
                .with_context(|| format!("no WeChat Pay account {mchid} (lijian wxpay-account list)"))?;
            let a = &row.account;
            println!("mchid          {}", a.mchid);
            println!("enabled        {}", row.enabled);
            println!("serial-no      {}", a.serial_no);
            println!("private-key    {}", a.private_key_path.display());
            println!("public-key     {}", a.public_key_path.display());
            println!("public-key-id  {}", a.public_key_id);
            println!("appids         {}", appids(a));
            println!("rate           {}/s", a.rate);
            println!("base-url       {}", a.base_url.as_deref().unwrap_or("(LIJIAN_WXPAY_BASE_URL)"));
        }
        AccountCommand::SetRate { mchid, rate } => {
            let store = store(settings)?;
            store.set_account_rate(&mchid, rate).await?;
            audit(&store, AuditAction::WxpayAccountRate, &mchid, format!("{rate} requests/s")).await?;
            println!("WeChat Pay account {mchid} rate {rate}/s");
        }
        AccountCommand::Enable { mchid } => {
            let store = store(settings)?;
            store.set_account_enabled(&mchid, true).await?;
            audit(&store, AuditAction::WxpayAccountEnable, &mchid, "sends again".into()).await?;
            println!("WeChat Pay account {mchid} enabled");
        }
        AccountCommand::Disable { mchid } => {
            let store = store(settings)?;
            store.set_account_enabled(&mchid, false).await?;
            audit(&store, AuditAction::WxpayAccountDisable, &mchid, "its jobs park".into()).await?;
            println!("WeChat Pay account {mchid} disabled");
        }
    }
    Ok(())
}

fn appids(a: &NewAccount) -> String {
    if a.appids.is_empty() {
        "any".into()
    } else {
        a.appids.join(", ")
    }
}

fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))
}
