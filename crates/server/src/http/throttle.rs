//! Failed management logins, counted per source address: after
//! `max` (default [`MAX_FAILURES`]; 0 turns this off) within [`WINDOW`]
//! a source gets 429 without its
//! credentials being checked, until the window has passed. Guessing
//! passwords over HTTP is slowed to a crawl; a user who mistypes gets a
//! few tries. The table is bounded ([`MAX_TRACKED`] sources).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const MAX_FAILURES: u32 = 10;
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub(crate) struct LoginThrottle {
    max: u32,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(MAX_FAILURES)
    }
}

impl LoginThrottle {
    pub fn new(max: u32) -> LoginThrottle {
        LoginThrottle {
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` must wait before trying again.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        if self.max == 0 {
            return false;
        }
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        map.get(&ip)
            .is_some_and(|(n, since)| *n >= self.max && now.duration_since(*since) < WINDOW)
    }

    /// A failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if self.max == 0 {
            return;
        }
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                // Flooded from many sources: start over rather than grow.
                map.clear();
            }
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    /// A successful login clears the source's count.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_within_the_window() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(ip, t0);
        }
        assert!(!t.blocked(ip, t0));
        t.failed(ip, t0);
        assert!(t.blocked(ip, t0));
        assert!(!t.blocked(other, t0));
        assert!(!t.blocked(ip, t0 + WINDOW), "the window passed");
        t.succeeded(ip);
        assert!(!t.blocked(ip, t0));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(t.failures.lock().unwrap().len() <= MAX_TRACKED);
    }
}
