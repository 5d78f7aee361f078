//! Failed sign-ins, counted per operator name and per client address over a
//! sliding window: past the limit, sign-ins for that name (or from that
//! address) are refused, right password or not, until old failures age out.
//! Per name stops guessing one operator's password from many addresses; per
//! address stops one client trying many names.
//!
//! In memory, per console process: several consoles each keep their own count.
//! The map is bounded: once full, names not seen yet are not tracked (their
//! address still is), so spraying names cannot grow memory or flush counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins one name may have within [`WINDOW`].
pub const PER_NAME: usize = 5;
/// Failed sign-ins one address may have within [`WINDOW`].
pub const PER_ADDRESS: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names and addresses tracked at most.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `Err(wait)` while `name` or `address` is over its limit.
    pub fn check(&self, name: &str, address: IpAddr) -> Result<(), Duration> {
        self.check_at(name, address, Instant::now())
    }

    fn check_at(&self, name: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |key: &Key, limit: usize| {
            let times = failures.get(key)?;
            let recent: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < WINDOW).collect();
            (recent.len() >= limit).then(|| WINDOW.saturating_sub(now.duration_since(*recent[recent.len() - limit])))
        };
        let longest = [wait(&Key::Name(name.to_string()), PER_NAME), wait(&Key::Address(address), PER_ADDRESS)]
            .into_iter()
            .flatten()
            .max();
        longest.map_or(Ok(()), Err)
    }

    /// Counts a failed sign-in against both.
    pub fn failed(&self, name: &str, address: IpAddr) {
        self.failed_at(name, address, Instant::now());
    }

    fn failed_at(&self, name: &str, address: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for (key, limit) in [(Key::Address(address), PER_ADDRESS), (Key::Name(name.to_string()), PER_NAME)] {
            if failures.len() >= MAX_KEYS && !failures.contains_key(&key) {
                continue;
            }
            let times = failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful sign-in clears the name's failures (not the address's).
    pub fn succeeded(&self, name: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&Key::Name(name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_locked_after_its_limit_until_failures_age_out() {
        let limiter = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let start = Instant::now();
        for i in 0..PER_NAME {
            assert!(limiter.check_at("ana", if i % 2 == 0 { a } else { b }, start).is_ok());
            limiter.failed_at("ana", if i % 2 == 0 { a } else { b }, start);
        }
        let wait = limiter.check_at("ana", [10, 0, 0, 3].into(), start).err();
        assert_eq!(wait, Some(WINDOW), "locked from any address");
        assert!(limiter.check_at("bo", a, start).is_ok(), "another name from the same address is not");
        assert!(limiter.check_at("ana", a, start + WINDOW).is_ok(), "failures age out");
    }

    #[test]
    fn an_address_is_locked_after_its_limit_whatever_the_names() {
        let limiter = LoginLimiter::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let now = Instant::now();
        for i in 0..PER_ADDRESS {
            limiter.failed_at(&format!("name{i}"), a, now);
        }
        assert!(limiter.check_at("fresh", a, now).is_err());
        assert!(limiter.check_at("fresh", [10, 0, 0, 9].into(), now).is_ok());
        limiter.succeeded("fresh");
        assert!(limiter.check_at("fresh", a, now).is_err(), "a success elsewhere does not clear the address");
    }
}
