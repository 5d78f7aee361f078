//! `lijian merchant …`: merchant accounts, their keys, addresses and balance.

use anyhow::{bail, Context};
use clap::Subcommand;
use ipnet::IpNet;
use lijian_core::config::Settings;
use lijian_core::signing::RsaPublicKey;
use lijian_core::store::{MerchantEdit, NewMerchant};
use lijian_producer::check_callback_url;

use super::merchant_keys::{merchant_key, KeyCommand};
use lijian_core::vocab::AuditAction;

use super::{audit, store, yuan};

#[derive(Subcommand)]
pub enum MerchantCommand {
    /// Register a merchant. At least one of --public-key or --md5-key is needed to sign requests.
    Add {
        #[arg(long)]
        merchant_id: String,
        #[arg(long)]
        business_id: String,
        #[arg(long)]
        name: String,
        /// RSA public key file: PEM SPKI, PEM PKCS#1 or bare Base64 DER.
        #[arg(long, value_name = "FILE")]
        public_key: Option<std::path::PathBuf>,
        /// Shared key for signType MD5. On the command line it lands in shell
        /// history and `ps`; prefer --md5-key-file.
        #[arg(long, conflicts_with = "md5_key_file")]
        md5_key: Option<String>,
        /// Read the MD5 key from this file (its first line), or from standard
        /// input when FILE is `-`.
        #[arg(long, value_name = "FILE")]
        md5_key_file: Option<std::path::PathBuf>,
        /// Default callbackUrl for status reports.
        #[arg(long)]
        callback_url: Option<String>,
        /// Address or CIDR allowed to call the API (repeatable; none = any).
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ip: Vec<String>,
        /// Opening balance in yuan.
        #[arg(long, default_value = "0")]
        balance: String,
    },
    /// Change a merchant's name, default callback URL or allowed addresses.
    Set {
        #[arg(long)]
        merchant_id: String,
        #[arg(long)]
        name: Option<String>,
        /// New default callbackUrl for status reports (checked like any callbackUrl).
        #[arg(long, conflicts_with = "no_callback_url")]
        callback_url: Option<String>,
        /// Remove the default callbackUrl (orders without one get no report).
        #[arg(long)]
        no_callback_url: bool,
        /// Replace the allowed addresses (repeatable).
        #[arg(long = "allow-ip", value_name = "CIDR", conflicts_with = "allow_any_ip")]
        allow_ip: Vec<String>,
        /// Allow calls from any address.
        #[arg(long)]
        allow_any_ip: bool,
    },
    /// Add money to a merchant's balance (yuan); recorded in the audit log.
    Topup {
        #[arg(long)]
        merchant_id: String,
        #[arg(long)]
        amount: String,
        /// Why (an invoice number, a ticket); kept in the audit log.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Show a merchant, its balance and its orders by status.
    Show {
        #[arg(long)]
        merchant_id: String,
    },
    /// Refuse the merchant's requests (status 1) until enabled again.
    Disable {
        #[arg(long)]
        merchant_id: String,
    },
    /// Accept the merchant's requests again.
    Enable {
        #[arg(long)]
        merchant_id: String,
    },
    /// The merchant's request keys: add one beside the old, list, retire the old.
    #[command(subcommand)]
    Key(KeyCommand),
}

pub async fn merchant(settings: &Settings, cmd: MerchantCommand) -> anyhow::Result<()> {
    match cmd {
        MerchantCommand::Add {
            merchant_id,
            business_id,
            name,
            public_key,
            md5_key,
            md5_key_file,
            callback_url,
            allow_ip,
            balance,
        } => {
            let md5_key = match md5_key_file {
                Some(path) => Some(read_secret(&path)?),
                None => md5_key,
            };
            let rsa_public_key = public_key.as_deref().map(read_public_key).transpose()?;
            if rsa_public_key.is_none() && md5_key.is_none() {
                bail!(
                    "give --public-key FILE or --md5-key KEY (better --md5-key-file FILE, off the command line): \
                     without either the merchant cannot sign requests"
                );
            }
            if let Some(key) = &md5_key {
                check_md5_key(key)?;
            }
            for (flag, value) in [("merchant-id", &merchant_id), ("business-id", &business_id), ("name", &name)] {
                if value.trim().is_empty() || value.len() > 64 {
                    bail!("--{flag} must be 1 to 64 characters");
                }
            }
            if let Some(url) = &callback_url {
                let guard = lijian_core::ssrf::Guard::from_settings(settings).map_err(anyhow::Error::msg)?;
                check_callback_url(url, &guard).map_err(anyhow::Error::msg).context("--callback-url")?;
            }
            let allow_ips = allow_ip.iter().map(|t| parse_cidr(t)).collect::<anyhow::Result<Vec<_>>>()?;
            let m = NewMerchant {
                merchant_id,
                business_id,
                name,
                rsa_public_key,
                md5_key,
                callback_url,
                allow_ips,
                opening_balance: yuan("balance", &balance)?,
            };
            let store = store(settings)?;
            store.add_merchant(&m).await?;
            let signing = match (m.rsa_public_key.is_some(), m.md5_key.is_some()) {
                (true, true) => "SHA256-RSA and MD5",
                (true, false) => "SHA256-RSA",
                _ => "MD5",
            };
            let detail = format!("{}, signing {signing}, opening balance {} yuan", m.name, m.opening_balance);
            audit(&store, AuditAction::MerchantAdd, &m.merchant_id, detail).await?;
            println!("merchant {} added (balance {} yuan)", m.merchant_id, m.opening_balance);
        }
        MerchantCommand::Set { merchant_id, name, callback_url, no_callback_url, allow_ip, allow_any_ip } => {
            if let Some(n) = &name {
                if n.trim().is_empty() || n.len() > 64 {
                    bail!("--name must be 1 to 64 characters");
                }
            }
            if let Some(url) = &callback_url {
                let guard = lijian_core::ssrf::Guard::from_settings(settings).map_err(anyhow::Error::msg)?;
                check_callback_url(url, &guard).map_err(anyhow::Error::msg).context("--callback-url")?;
            }
            let allow_ips = match (allow_ip.is_empty(), allow_any_ip) {
                (_, true) => Some(Vec::new()),
                (false, false) => Some(allow_ip.iter().map(|t| parse_cidr(t)).collect::<anyhow::Result<Vec<_>>>()?),
                (true, false) => None,
            };
            let edit = MerchantEdit {
                name,
                callback_url: if no_callback_url { Some(None) } else { callback_url.map(Some) },
                allow_ips,
            };
            if edit.name.is_none() && edit.callback_url.is_none() && edit.allow_ips.is_none() {
                bail!(
                    "nothing to change: give --name, --callback-url, --no-callback-url, --allow-ip or --allow-any-ip"
                );
            }
            let store = store(settings)?;
            store.edit_merchant(&merchant_id, &edit).await?;
            let mut changed = Vec::new();
            if let Some(name) = &edit.name {
                changed.push(format!("name {name}"));
            }
            match &edit.callback_url {
                Some(Some(url)) => changed.push(format!("callbackUrl {url}")),
                Some(None) => changed.push("no callbackUrl".into()),
                None => {}
            }
            match &edit.allow_ips {
                Some(ips) if ips.is_empty() => changed.push("any address".into()),
                Some(ips) => changed
                    .push(format!("addresses {}", ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" "))),
                None => {}
            }
            audit(&store, AuditAction::MerchantSet, &merchant_id, changed.join("; ")).await?;
            println!("merchant {merchant_id} changed (gateways apply it within LIJIAN_MERCHANT_CACHE_TTL)");
        }
        MerchantCommand::Topup { merchant_id, amount, note } => {
            let amount = yuan("amount", &amount)?;
            let actor = lijian_console::Actor::cli();
            let balance =
                lijian_console::actions::merchants::topup(&store(settings)?, &merchant_id, amount, &note, &actor)
                    .await?;
            println!("merchant {merchant_id} balance {balance} yuan");
        }
        MerchantCommand::Show { merchant_id } => {
            let m = store(settings)?.show_merchant(&merchant_id).await?;
            println!("merchant     {}", m.merchant_id);
            println!("business     {}", m.business_id);
            println!("name         {}", m.name);
            println!("enabled      {}", m.enabled);
            println!("balance      {} yuan", m.balance);
            println!(
                "signing      {}{}({} live keys: lijian merchant key list)",
                if m.has_rsa_key { "SHA256-RSA " } else { "" },
                if m.has_md5_key { "MD5 " } else { "" },
                m.live_keys
            );
            println!("callback     {}", m.callback_url.as_deref().unwrap_or("-"));
            println!(
                "allow-ip     {}",
                if m.allow_ips.is_empty() { "any".to_string() } else { m.allow_ips.join(", ") }
            );
            let counts: Vec<String> = m.orders_by_status.iter().map(|(s, n)| super::status_count(*s, *n)).collect();
            println!("orders       {}", if counts.is_empty() { "none".to_string() } else { counts.join(", ") });
        }
        MerchantCommand::Disable { merchant_id } => {
            let store = store(settings)?;
            store.set_merchant_enabled(&merchant_id, false).await?;
            audit(&store, AuditAction::MerchantDisable, &merchant_id, "requests refused (status 1)".into()).await?;
            println!("merchant {merchant_id} disabled");
        }
        MerchantCommand::Enable { merchant_id } => {
            let store = store(settings)?;
            store.set_merchant_enabled(&merchant_id, true).await?;
            audit(&store, AuditAction::MerchantEnable, &merchant_id, "requests accepted".into()).await?;
            println!("merchant {merchant_id} enabled");
        }
        MerchantCommand::Key(cmd) => merchant_key(settings, cmd).await?,
    }
    Ok(())
}

fn parse_cidr(text: &str) -> anyhow::Result<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| anyhow::anyhow!("--allow-ip {t:?} is not an IP address or CIDR such as 203.0.113.0/24"))
}

/// An RSA public key file's text, refused unless it parses.
pub(super) fn read_public_key(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    RsaPublicKey::parse(&text).with_context(|| format!("--public-key {}", path.display()))?;
    Ok(text.trim().to_string())
}

pub(super) fn check_md5_key(key: &str) -> anyhow::Result<()> {
    if key.len() < 16 {
        bail!("an MD5 key must be at least 16 characters");
    }
    Ok(())
}

/// A secret's first line from a file, or from standard input for `-`.
pub(super) fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading the MD5 key from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading --md5-key-file {}", path.display()))?
    };
    let key = text.lines().next().unwrap_or_default().trim().to_string();
    if key.is_empty() {
        bail!("--md5-key-file {} holds no key", path.display());
    }
    Ok(key)
}
