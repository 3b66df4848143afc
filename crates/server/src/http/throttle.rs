//! Failed management logins, counted per source address and per user
//! name: after `max` (default [`MAX_FAILURES`]; 0 turns this off) within
//! [`WINDOW`], a source, or a user name, gets 429 without its credentials
//! being checked, until the window has passed. Guessing passwords over
//! HTTP is slowed to a crawl, from one address or from many; a user who
//! mistypes gets a few tries.
//!
//! - Only a successful *management* login (a user with a management tag,
//!   allowed from that source) forgives failures, and only its own: the
//!   user name's count, and the failures its source made with that name.
//!   A correct password of a user without a management tag, or of another
//!   account of the attacker's, forgives nothing.
//! - A user name's count does not block loopback sources (an operator on
//!   the machine can always log in while someone guesses that name's
//!   password from outside); their source count does.
//! - The tables are bounded ([`MAX_TRACKED`] entries each): when one is
//!   full of entries still inside the window it is cleared rather than
//!   grown.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const MAX_FAILURES: u32 = 10;
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 10_000;
/// User names longer than this are counted under their first bytes.
const MAX_NAME: usize = 255;

/// Failures per key within the window: (count, start of the window).
#[derive(Debug)]
struct Counts<K>(HashMap<K, (u32, Instant)>);

impl<K: Hash + Eq> Counts<K> {
    fn new() -> Self {
        Counts(HashMap::new())
    }

    fn current(&self, k: &K, now: Instant) -> u32 {
        match self.0.get(k) {
            Some((n, since)) if now.duration_since(*since) < WINDOW => *n,
            _ => 0,
        }
    }

    fn add(&mut self, k: K, now: Instant) {
        if self.0.len() >= MAX_TRACKED && !self.0.contains_key(&k) {
            self.0
                .retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if self.0.len() >= MAX_TRACKED {
                // Flooded: start over rather than grow.
                self.0.clear();
            }
        }
        let e = self.0.entry(k).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    fn sub(&mut self, k: &K, n: u32) {
        if let Some(e) = self.0.get_mut(k) {
            e.0 = e.0.saturating_sub(n);
            if e.0 == 0 {
                self.0.remove(k);
            }
        }
    }
}

#[derive(Debug)]
struct Tables {
    by_source: Counts<IpAddr>,
    by_user: Counts<String>,
    /// What a source failed with one name: forgiven when that name logs
    /// in from there.
    by_pair: Counts<(IpAddr, String)>,
}

#[derive(Debug)]
pub(crate) struct LoginThrottle {
    max: u32,
    tables: Mutex<Tables>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(MAX_FAILURES)
    }
}

fn key(user: &str) -> String {
    let mut end = user.len().min(MAX_NAME);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_string()
}

impl LoginThrottle {
    pub fn new(max: u32) -> LoginThrottle {
        LoginThrottle {
            max,
            tables: Mutex::new(Tables {
                by_source: Counts::new(),
                by_user: Counts::new(),
                by_pair: Counts::new(),
            }),
        }
    }

    /// Whether a login from `ip` as `user` must wait.
    pub fn blocked(&self, ip: IpAddr, user: &str, now: Instant) -> bool {
        if self.max == 0 {
            return false;
        }
        let Ok(t) = self.tables.lock() else {
            return false;
        };
        t.by_source.current(&ip, now) >= self.max
            || (!ip.is_loopback() && t.by_user.current(&key(user), now) >= self.max)
    }

    /// A failed login from `ip` as `user` (empty when no name was given).
    pub fn failed(&self, ip: IpAddr, user: &str, now: Instant) {
        if self.max == 0 {
            return;
        }
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        t.by_source.add(ip, now);
        let name = key(user);
        t.by_user.add(name.clone(), now);
        t.by_pair.add((ip, name), now);
    }

    /// A successful management login from `ip` as `user`: forgives that
    /// name's failures, and those its source made with that name.
    pub fn succeeded(&self, ip: IpAddr, user: &str, now: Instant) {
        let Ok(mut t) = self.tables.lock() else {
            return;
        };
        let name = key(user);
        let pair = (ip, name.clone());
        let own = t.by_pair.current(&pair, now);
        t.by_pair.sub(&pair, u32::MAX);
        t.by_source.sub(&ip, own);
        t.by_user.sub(&name, u32::MAX);
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
            t.failed(ip, "admin", t0);
        }
        assert!(!t.blocked(ip, "x", t0));
        t.failed(ip, "admin", t0);
        assert!(t.blocked(ip, "x", t0));
        // Another source is blocked for that name only.
        assert!(!t.blocked(other, "x", t0));
        assert!(t.blocked(other, "admin", t0));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            !t.blocked(lo, "admin", t0),
            "loopback ignores the name's count"
        );
        assert!(!t.blocked(ip, "x", t0 + WINDOW), "the window passed");
        t.succeeded(ip, "admin", t0);
        assert!(!t.blocked(ip, "admin", t0));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), &i.to_string(), t0);
        }
        let tables = t.tables.lock().unwrap();
        assert!(tables.by_source.0.len() <= MAX_TRACKED);
        assert!(tables.by_user.0.len() <= MAX_TRACKED);
        assert!(tables.by_pair.0.len() <= MAX_TRACKED);
    }

    #[test]
    fn a_login_forgives_only_its_own_failures() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        // Guesses at "admin" interleaved with the attacker's own account.
        for _ in 0..MAX_FAILURES {
            t.failed(ip, "admin", t0);
            t.succeeded(ip, "mine", t0);
        }
        assert!(t.blocked(ip, "mine", t0));
        assert!(t.blocked(ip, "admin", t0));
    }
}
