//! Where a merchant's status report may be sent. A merchant-supplied URL must
//! not reach our own network: loopback, private ranges, link-local (cloud
//! metadata at 169.254.169.254), CGNAT, multicast, broadcast, unspecified, and
//! the IPv6 equivalents including IPv4-mapped forms. One guard for both doors:
//! order intake and `merchant add` refuse a URL that can never pass it
//! ([`Guard::check_host`]), and the notifier checks the address it actually
//! connects to (its resolver hands reqwest only vetted addresses), so a hostname
//! that resolves (or re-resolves) to 127.0.0.1 cannot slip through either.
//! Ports are limited too (by default 80, 443 and 1024–65535), so a callback
//! cannot talk to a mail or SSH server on a public host on the merchant's behalf.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;

/// The guard: forbidden ranges, minus an operator's allowlist, and the ports
/// a callback may use.
#[derive(Debug, Clone)]
pub struct Guard {
    allow: Vec<IpNet>,
    ports: Vec<RangeInclusive<u16>>,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard::new(Vec::new())
    }
}

/// Web ports and the unprivileged range: where merchants' servers listen.
pub const DEFAULT_PORTS: &str = "80,443,1024-65535";

impl Guard {
    /// `allow` opens chosen ranges (local development, tests).
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow, ports: parse_ports(DEFAULT_PORTS).unwrap_or_default() }
    }

    /// The ports callbacks may use, as `LIJIAN_NOTIFY_PORTS` writes them.
    pub fn with_ports(mut self, text: &str) -> Result<Guard, String> {
        self.ports = parse_ports(text)?;
        Ok(self)
    }

    /// The ranges an operator opened (`LIJIAN_NOTIFY_ALLOW_CIDRS`).
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Ok when a callback may use `port`.
    pub fn check_port(&self, port: u16) -> Result<(), String> {
        if self.ports.iter().any(|r| r.contains(&port)) {
            Ok(())
        } else {
            Err(format!("port {port} is not allowed (LIJIAN_NOTIFY_PORTS)"))
        }
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
        Ok(Guard::new(allow))
    }

    /// The guard of these settings (`LIJIAN_NOTIFY_ALLOW_CIDRS`, `LIJIAN_NOTIFY_PORTS`).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Guard, String> {
        Guard::from_list(settings.notifier.allow_cidrs.as_deref().unwrap_or_default())
            .map_err(|e| format!("LIJIAN_NOTIFY_ALLOW_CIDRS: {e}"))?
            .with_ports(&settings.notifier.ports)
            .map_err(|e| format!("LIJIAN_NOTIFY_PORTS: {e}"))
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

/// "80,443,1024-65535": ports and inclusive ranges, comma-separated.
pub fn parse_ports(text: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    let port = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("{p:?} is not a port"));
    let ranges = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (port(low)?, port(high)?);
                if low > high {
                    return Err(format!("{part:?} is an empty range"));
                }
                Ok(low..=high)
            }
            None => port(part).map(|p| p..=p),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ranges.is_empty() {
        return Err("expected ports such as 80,443,1024-65535".into());
    }
    Ok(ranges)
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
        ([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0/24)"),
        ([198, 18, 0, 0], 15, "benchmarking (198.18/15)"),
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
    } else if ip.segments()[..6] == [0, 0, 0, 0, 0, 0] {
        // Deprecated IPv4-compatible ::a.b.c.d: some stacks still route it to
        // the IPv4 address, and no public server needs it.
        Some("an IPv4-compatible IPv6 address (::/96)")
    } else if first == 0x2002 {
        // 6to4 embeds any IPv4 address, ours included; relays are obsolete.
        Some("6to4 (2002::/16)")
    } else if ip.segments()[..3] == [0x64, 0xff9b, 1] {
        // Local-use NAT64: translated inside someone's network, ours perhaps.
        Some("local-use NAT64 (64:ff9b:1::/48)")
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
            "::127.0.0.1",
            "::8.8.8.8",
            "2002:7f00:1::1",
            "2002:808:808::1",
            "64:ff9b:1::808:808",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "240.0.0.1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "198.20.0.1"] {
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

    #[test]
    fn port_policy() -> Result<(), String> {
        let guard = Guard::default();
        for port in [80, 443, 1024, 8080, 65535] {
            assert!(guard.check_port(port).is_ok(), "{port}");
        }
        for port in [22, 25, 1023, 0] {
            assert!(guard.check_port(port).is_err(), "{port}");
        }
        let narrow = Guard::default().with_ports("443, 8443-8444")?;
        assert!(narrow.check_port(8444).is_ok() && narrow.check_port(80).is_err());
        assert!(parse_ports("9-1").is_err() && parse_ports("").is_err() && parse_ports("70000").is_err());
        Ok(())
    }
}
