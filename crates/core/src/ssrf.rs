//! Where a merchant's status report may be sent. A merchant-supplied URL must
//! not reach our own network: loopback, private ranges, link-local (cloud
//! metadata at 169.254.169.254), CGNAT, multicast, broadcast, unspecified, and
//! the IPv6 equivalents including IPv4-mapped forms. One guard for both doors:
//! order intake and `merchant add` refuse a URL that can never pass it
//! ([`Guard::check_host`]), and the notifier checks the address it actually
//! connects to (its resolver hands reqwest only vetted addresses), so a hostname
//! that resolves (or re-resolves) to 127.0.0.1 cannot slip through either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The guard: forbidden ranges, minus an operator's allowlist.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// `allow` opens chosen ranges (local development, tests).
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow }
    }

    /// Parses `LIJIAN_NOTIFY_ALLOW_CIDRS` ("127.0.0.0/8,10.1.0.0/16").
    pub fn from_list(text: &str) -> Result<Guard, String> {
        let allow = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Guard { allow })
    }

    /// The guard of these settings (`LIJIAN_NOTIFY_ALLOW_CIDRS`).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Guard, String> {
        Guard::from_list(settings.notifier.allow_cidrs.as_deref().unwrap_or_default())
            .map_err(|e| format!("LIJIAN_NOTIFY_ALLOW_CIDRS: {e}"))
    }

    /// Ok unless a URL's host can never pass [`Guard::check`]: an address
    /// literal in a forbidden range, or `localhost`. Names are otherwise judged
    /// at delivery, after resolution (they may resolve elsewhere by then).
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let bare = host.strip_prefix('[').and_then(|h| h.split_once(']')).map(|(h, _)| h);
        let bare = bare.unwrap_or_else(|| host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host));
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return self.check(IpAddr::V4(Ipv4Addr::LOCALHOST)).map_err(|_| format!("{host} is loopback"));
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }

    /// Ok when `ip` may be connected to; otherwise why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = ip.to_canonical();
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match forbidden(ip) {
            Some(kind) => Err(format!("{ip} is {kind}")),
            None => Ok(()),
        }
    }
}

fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u8) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (0.0.0.0/8)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private (10/8)"),
        ([172, 16, 0, 0], 12, "private (172.16/12)"),
        ([192, 168, 0, 0], 16, "private (192.168/16)"),
        ([169, 254, 0, 0], 16, "link-local (169.254/16, cloud metadata)"),
        ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64/10)"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved (240/4) or broadcast"),
    ];
    RANGES.iter().find(|(net, bits, _)| in_v4(ip, *net, *bits)).map(|(_, _, kind)| *kind)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).map(|_| "an IPv4-mapped forbidden address");
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("IPv6 loopback")
    } else if ip.is_unspecified() {
        Some("IPv6 unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("IPv6 unique local (fc00::/7)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("IPv6 link-local (fe80::/10)")
    } else if first & 0xff00 == 0xff00 {
        Some("IPv6 multicast")
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the embedded IPv4 address decides.
        let [.., a, b] = ip.segments();
        let v4 = Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
        forbidden_v4(v4).map(|_| "a NAT64 form of a forbidden IPv4 address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        Guard::default().check(ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))).is_err()
    }

    #[test]
    fn forbidden_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(!refused(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_are_judged_names_are_left_to_delivery() {
        let guard = Guard::default();
        assert!(guard.check_host("10.1.2.3").is_err_and(|e| e.contains("private")));
        assert!(guard.check_host("10.1.2.3:8080").is_err());
        assert!(guard.check_host("[::1]:80").is_err());
        assert!(guard.check_host("localhost:9000").is_err());
        assert!(guard.check_host("merchant.example").is_ok());
        assert!(guard.check_host("8.8.8.8").is_ok());
    }

    #[test]
    fn allowlist_opens_a_range() -> Result<(), String> {
        let guard = Guard::from_list("127.0.0.0/8, 10.9.0.0/16")?;
        assert!(guard.check("127.0.0.1".parse().map_err(|_| "ip")?).is_ok());
        assert!(guard.check("10.9.1.1".parse().map_err(|_| "ip")?).is_ok());
        assert!(guard.check("10.8.1.1".parse().map_err(|_| "ip")?).is_err());
        assert!(Guard::from_list("nonsense").is_err());
        Ok(())
    }
}
