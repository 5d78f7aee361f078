//! Admin commands: keys, merchants, products, activities. Every input is checked
//! before anything is stored; a refusal exits non-zero with the reason.

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;
use ipnet::IpNet;
use lijian_core::config::Settings;
use lijian_core::money::Fen;
use lijian_core::signing::{RsaPrivateKey, RsaPublicKey};
use lijian_core::store::{NewActivity, NewMerchant, NewProduct, Store};
use lijian_producer::check_callback_url;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
        /// Shared key for signType MD5.
        #[arg(long)]
        md5_key: Option<String>,
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
    /// Add money to a merchant's balance (yuan).
    Topup {
        #[arg(long)]
        merchant_id: String,
        #[arg(long)]
        amount: String,
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
}

#[derive(Subcommand)]
pub enum ProductCommand {
    /// Register a product: the coupon's face value and the price charged per order.
    Add {
        #[arg(long)]
        product_code: String,
        /// Face value in yuan.
        #[arg(long)]
        face_value: String,
        /// Settlement price charged to the merchant per order, in yuan.
        #[arg(long)]
        price: String,
    },
}

#[derive(Subcommand)]
pub enum ActivityCommand {
    /// Register an activity: a WeChat coupon stock (at most 90 days, at least 1 yuan).
    Add {
        #[arg(long)]
        activity_id: String,
        #[arg(long)]
        merchant_id: String,
        /// WeChat Pay stock_id (批次号).
        #[arg(long)]
        stock_id: String,
        /// The WeChat Pay merchant number that created the stock.
        #[arg(long)]
        stock_creator_mchid: String,
        /// The appid coupons are issued under unless a request names one.
        #[arg(long)]
        appid: String,
        /// Face value in yuan (at least 1).
        #[arg(long)]
        face_value: String,
        /// How many coupons the activity may issue.
        #[arg(long)]
        budget: i64,
        /// Start, RFC 3339 (e.g. 2026-12-01T00:00:00+08:00).
        #[arg(long)]
        starts: String,
        /// End, RFC 3339; at most 90 days after --starts.
        #[arg(long)]
        ends: String,
    },
}

pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = RsaPrivateKey::generate()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let private = out.join("private.pem");
    let public = out.join("public.pem");
    if private.exists() {
        bail!("{} already exists; refusing to overwrite a key", private.display());
    }
    write_private(&private, &key.to_pkcs8_pem()?)?;
    std::fs::write(&public, key.public_key_pem()?).with_context(|| format!("writing {}", public.display()))?;
    println!("wrote {} (keep secret) and {}", private.display(), public.display());
    Ok(())
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}

fn yuan(flag: &str, text: &str) -> anyhow::Result<Fen> {
    Fen::parse_yuan(text).with_context(|| format!("--{flag}"))
}

fn store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::connect(&settings.database.url, 2)?)
}

fn timestamp(flag: &str, text: &str) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("--{flag} {text:?} is not an RFC 3339 time such as 2026-12-01T00:00:00+08:00"))
}

pub async fn merchant(settings: &Settings, cmd: MerchantCommand) -> anyhow::Result<()> {
    match cmd {
        MerchantCommand::Add {
            merchant_id,
            business_id,
            name,
            public_key,
            md5_key,
            callback_url,
            allow_ip,
            balance,
        } => {
            let rsa_public_key = match public_key {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    RsaPublicKey::parse(&text).with_context(|| format!("--public-key {}", path.display()))?;
                    Some(text.trim().to_string())
                }
                None => None,
            };
            if rsa_public_key.is_none() && md5_key.is_none() {
                bail!("give --public-key FILE or --md5-key KEY: without either the merchant cannot sign requests");
            }
            if md5_key.as_deref().is_some_and(|k| k.len() < 16) {
                bail!("--md5-key must be at least 16 characters");
            }
            for (flag, value) in [("merchant-id", &merchant_id), ("business-id", &business_id), ("name", &name)] {
                if value.trim().is_empty() || value.len() > 64 {
                    bail!("--{flag} must be 1 to 64 characters");
                }
            }
            if let Some(url) = &callback_url {
                check_callback_url(url).map_err(anyhow::Error::msg).context("--callback-url")?;
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
            store(settings)?.add_merchant(&m).await?;
            println!("merchant {} added (balance {} yuan)", m.merchant_id, m.opening_balance);
        }
        MerchantCommand::Topup { merchant_id, amount } => {
            let balance = store(settings)?.topup(&merchant_id, yuan("amount", &amount)?).await?;
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
                "signing      {}{}",
                if m.has_rsa_key { "SHA256-RSA " } else { "" },
                if m.has_md5_key { "MD5" } else { "" }
            );
            println!("callback     {}", m.callback_url.as_deref().unwrap_or("-"));
            println!(
                "allow-ip     {}",
                if m.allow_ips.is_empty() { "any".to_string() } else { m.allow_ips.join(", ") }
            );
            let counts: Vec<String> = m.orders_by_status.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            println!("orders       {}", if counts.is_empty() { "none".to_string() } else { counts.join("  ") });
        }
        MerchantCommand::Disable { merchant_id } => {
            store(settings)?.set_merchant_enabled(&merchant_id, false).await?;
            println!("merchant {merchant_id} disabled");
        }
        MerchantCommand::Enable { merchant_id } => {
            store(settings)?.set_merchant_enabled(&merchant_id, true).await?;
            println!("merchant {merchant_id} enabled");
        }
    }
    Ok(())
}

fn parse_cidr(text: &str) -> anyhow::Result<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| anyhow::anyhow!("--allow-ip {t:?} is not an IP address or CIDR such as 203.0.113.0/24"))
}

pub async fn product(settings: &Settings, cmd: ProductCommand) -> anyhow::Result<()> {
    let ProductCommand::Add { product_code, face_value, price } = cmd;
    if product_code.trim().is_empty() || product_code.len() > 64 {
        bail!("--product-code must be 1 to 64 characters");
    }
    let p = NewProduct { product_code, face_value: yuan("face-value", &face_value)?, price: yuan("price", &price)? };
    store(settings)?.add_product(&p).await?;
    println!("product {} added (face value {} yuan, price {} yuan)", p.product_code, p.face_value, p.price);
    Ok(())
}

pub async fn activity(settings: &Settings, cmd: ActivityCommand) -> anyhow::Result<()> {
    let ActivityCommand::Add {
        activity_id,
        merchant_id,
        stock_id,
        stock_creator_mchid,
        appid,
        face_value,
        budget,
        starts,
        ends,
    } = cmd;
    if activity_id.trim().is_empty() || activity_id.len() > 64 {
        bail!("--activity-id must be 1 to 64 characters");
    }
    let a = NewActivity {
        activity_id,
        merchant_id,
        stock_id,
        stock_creator_mchid,
        appid,
        face_value: yuan("face-value", &face_value)?,
        budget,
        starts: timestamp("starts", &starts)?,
        ends: timestamp("ends", &ends)?,
    };
    lijian_core::store::validate_activity(&a).map_err(anyhow::Error::msg)?;
    store(settings)?.add_activity(&a).await?;
    println!("activity {} added ({} coupons, {} to {})", a.activity_id, a.budget, starts, ends);
    Ok(())
}
