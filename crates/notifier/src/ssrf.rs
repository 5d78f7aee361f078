//! The notifier's side of the SSRF guard ([`lijian_core::ssrf`]): a resolver
//! that drops forbidden addresses, so reqwest connects only to vetted ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use lijian_core::ssrf::Guard;

/// Longest wait for a DNS answer; a resolver that hangs must not hold a slot.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// A DNS resolver for reqwest that drops forbidden addresses, so the connection
/// can only go to an address that passed the guard.
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0)))
                .await
                .map_err(|_| format!("no DNS answer for {host} within {DNS_TIMEOUT:?}"))??
                .collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| guard.check(a.ip()).is_ok()).collect();
            if allowed.is_empty() {
                let reason = addrs.first().map(|a| guard.check(a.ip()).err().unwrap_or_default()).unwrap_or_default();
                return Err(format!("refused target {host}: {reason}").into());
            }
            let iter: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(iter)
        })
    }
}
