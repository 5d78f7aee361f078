//! What this host's settings and files say, without any server: the platform
//! report key, the default WeChat Pay account (every missing setting named at
//! once, its key files read and parsed as the consumer does) and the SSRF guard.

use std::net::{IpAddr, Ipv4Addr};

use lijian_consumer::accounts::{load_keys, missing_default_settings, missing_list};
use lijian_core::config::Settings;
use lijian_core::ssrf::Guard;

use super::Finding;

/// The cloud metadata service: an allowlist that reaches it lets a merchant's
/// callbackUrl read the host's credentials.
const METADATA: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));

pub fn check(settings: &Settings) -> Vec<Finding> {
    vec![platform_key(settings), default_account(settings), ssrf(settings)]
}

fn platform_key(settings: &Settings) -> Finding {
    let Some(path) = &settings.notifier.platform_private_key else {
        return Finding::warn(
            "platform key",
            "LIJIAN_PLATFORM_PRIVATE_KEY is not set: a notifier will not start without it",
            "where notifiers run, set it to the PEM file of the key that signs reports (lijian keygen --out keys/platform)",
        );
    };
    match lijian_notifier::platform_key(settings) {
        Ok(_) => Finding::ok("platform key", format!("{} is a readable RSA private key", path.display())),
        Err(e) => Finding::fail(
            "platform key",
            format!("{:#}", anyhow::Error::from(e)),
            "point LIJIAN_PLATFORM_PRIVATE_KEY at a PEM private key readable by the notifier's user",
        ),
    }
}

fn default_account(settings: &Settings) -> Finding {
    let w = &settings.wxpay;
    let missing = missing_default_settings(w);
    if !missing.is_empty() {
        return Finding::fail(
            "wxpay default",
            format!("{} missing: the default WeChat Pay account needs all five", missing_list(&missing)),
            "set them all, or unset every LIJIAN_WXPAY_* account setting to send from stored accounts only",
        );
    }
    let (Some(mchid), Some(private), Some(public)) = (&w.mchid, &w.private_key, &w.public_key) else {
        return Finding::ok("wxpay default", "no LIJIAN_WXPAY_* default account (stored accounts only)");
    };
    match load_keys(private, public) {
        Ok(_) => Finding::ok("wxpay default", format!("account {mchid}: both key files readable and well-formed")),
        Err(e) => Finding::fail(
            "wxpay default",
            format!("account {mchid}: {:#}", anyhow::Error::from(e)),
            "fix LIJIAN_WXPAY_PRIVATE_KEY / LIJIAN_WXPAY_PUBLIC_KEY (PEM files readable by the consumer's user)",
        ),
    }
}

/// The guard parses, and its allowlist opens no more than it should.
fn ssrf(settings: &Settings) -> Finding {
    let guard = match Guard::from_settings(settings) {
        Ok(guard) => guard,
        Err(e) => return Finding::fail("ssrf guard", e, "fix the setting: CIDRs and ports, comma-separated"),
    };
    let allowed = guard.allowed();
    let ports = &settings.notifier.ports;
    if let Some(net) = allowed.iter().find(|n| n.prefix_len() == 0 || n.contains(&METADATA)) {
        return Finding::fail(
            "ssrf guard",
            format!("LIJIAN_NOTIFY_ALLOW_CIDRS opens {net}, which reaches the cloud metadata service {METADATA}"),
            "narrow LIJIAN_NOTIFY_ALLOW_CIDRS to the ranges of your own test receivers",
        );
    }
    let internal: Vec<String> = allowed
        .iter()
        .filter_map(|net| Guard::default().check(net.network()).err().map(|why| format!("{net} ({why})")))
        .collect();
    if !internal.is_empty() {
        return Finding::warn(
            "ssrf guard",
            format!("reports may be sent inside our network: LIJIAN_NOTIFY_ALLOW_CIDRS opens {}", internal.join(", ")),
            "fine for local receivers in development; in production leave it unset",
        );
    }
    let risky: Vec<u16> = [22, 23, 25].into_iter().filter(|p| guard.check_port(*p).is_ok()).collect();
    if !risky.is_empty() {
        return Finding::warn(
            "ssrf guard",
            format!("LIJIAN_NOTIFY_PORTS ({ports}) lets callbacks reach ports {risky:?} (ssh, telnet, mail)"),
            "keep LIJIAN_NOTIFY_PORTS at 80,443,1024-65535 unless a merchant needs another",
        );
    }
    Finding::ok("ssrf guard", format!("internal addresses refused, no range opened, callback ports {ports}"))
}
