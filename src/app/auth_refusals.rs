//! Refused authentications, counted rather than logged one by one.
//!
//! Every refused bearer token is counted, per client address (IPv6 by its
//! /64) and error code, in windows of one minute of the service clock. The
//! first refusal of each address and code in a window is audited at once
//! (`auth.token`, refused), so an alert and the SIEM see an attack begin;
//! the window's total is audited as one `auth.refused_summary` event when
//! the window closes. Across addresses at most `limits.auth_refusal_events
//! _per_minute` first refusals are written per window: beyond that budget,
//! new addresses are counted together in one `other` bucket per code. A
//! flood of bad tokens from anywhere costs a bounded number of rows a
//! minute, not one per attempt, and no caller with a valid token waits for
//! the chain head behind it.
//!
//! The counts live in each replica's memory; a replica that stops writes
//! its open window first (`App::flush_auth_refusals(true)`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub const WINDOW_MS: i64 = 60_000;
/// The label of the bucket that counts addresses beyond the budget.
pub const OTHER: &str = "other";

/// One closed (or flushed) window of one address and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub address: String,
    pub code: &'static str,
    pub window_start: i64,
    pub window_end: i64,
    /// Every refusal in the window, the first included.
    pub attempts: u64,
    /// Distinct addresses counted (more than one in the `other` bucket).
    pub addresses: u64,
    pub first_at: i64,
    pub last_at: i64,
}

struct Bucket {
    attempts: u64,
    first_at: i64,
    last_at: i64,
    /// Addresses seen in the `other` bucket (bounded).
    seen: std::collections::BTreeSet<String>,
}

struct State {
    window: i64,
    buckets: BTreeMap<(String, &'static str), Bucket>,
    firsts: u32,
    closed: Vec<Summary>,
}

pub struct AuthRefusals {
    budget: u32,
    state: Mutex<State>,
}

/// What to do with one refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// The first of its address and code in this window: audit it now.
    First { address: String },
    /// Counted; its window's summary will say so.
    Counted,
}

/// The bucket an address falls in: IPv6 by its /64, as the rate limits.
fn address_label(ip: Option<IpAddr>) -> String {
    match ip.map(crate::limits::address_key) {
        Some(IpAddr::V6(v6)) => format!("{v6}/64"),
        Some(v4) => v4.to_string(),
        None => "unknown".into(),
    }
}

const OTHER_ADDRESSES_KEPT: usize = 10_000;

impl AuthRefusals {
    pub fn new(first_events_per_window: u32) -> AuthRefusals {
        AuthRefusals {
            budget: first_events_per_window,
            state: Mutex::new(State {
                window: i64::MIN,
                buckets: BTreeMap::new(),
                firsts: 0,
                closed: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one refusal with `code` from `ip` at `now`.
    pub fn count(&self, ip: Option<IpAddr>, code: &'static str, now: i64) -> Counted {
        let mut s = self.lock();
        let window = now.div_euclid(WINDOW_MS);
        if window != s.window {
            close(&mut s);
            s.window = window;
        }
        let address = address_label(ip);
        if let Some(b) = s.buckets.get_mut(&(address.clone(), code)) {
            b.attempts += 1;
            b.last_at = now;
            return Counted::Counted;
        }
        let fresh = Bucket {
            attempts: 1,
            first_at: now,
            last_at: now,
            seen: Default::default(),
        };
        if s.firsts < self.budget {
            s.firsts += 1;
            s.buckets.insert((address.clone(), code), fresh);
            return Counted::First { address };
        }
        let b = s.buckets.entry((OTHER.into(), code)).or_insert(Bucket {
            attempts: 0,
            ..fresh
        });
        b.attempts += 1;
        b.last_at = now;
        if b.seen.len() < OTHER_ADDRESSES_KEPT {
            b.seen.insert(address);
        }
        Counted::Counted
    }

    /// The summaries of every window that has ended by `now`; with `all`,
    /// the open window's too (at shutdown).
    pub fn take(&self, now: i64, all: bool) -> Vec<Summary> {
        let mut s = self.lock();
        if all || now.div_euclid(WINDOW_MS) != s.window {
            close(&mut s);
        }
        std::mem::take(&mut s.closed)
    }
}

fn close(s: &mut State) {
    let start = s.window.saturating_mul(WINDOW_MS);
    for ((address, code), b) in std::mem::take(&mut s.buckets) {
        s.closed.push(Summary {
            addresses: if address == OTHER {
                b.seen.len() as u64
            } else {
                1
            },
            address,
            code,
            window_start: start,
            window_end: start.saturating_add(WINDOW_MS),
            attempts: b.attempts,
            first_at: b.first_at,
            last_at: b.last_at,
        });
    }
    s.firsts = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_address_and_code_is_written_once_a_window_and_every_attempt_counted() {
        let r = AuthRefusals::new(100);
        let t0 = 1_800_000_000_000;
        assert!(matches!(
            r.count(ip("10.0.0.1"), "token_malformed", t0),
            Counted::First { .. }
        ));
        for i in 1..500 {
            assert_eq!(
                r.count(ip("10.0.0.1"), "token_malformed", t0 + i),
                Counted::Counted
            );
        }
        assert!(matches!(
            r.count(ip("10.0.0.1"), "token_expired", t0 + 1),
            Counted::First { .. }
        ));
        // One /64 is one address.
        assert!(matches!(
            r.count(ip("2001:db8::1"), "token_malformed", t0),
            Counted::First { .. }
        ));
        assert_eq!(
            r.count(ip("2001:db8::ffff"), "token_malformed", t0),
            Counted::Counted
        );
        assert!(r.take(t0 + 1000, false).is_empty(), "the window is open");
        let sums = r.take(t0 + WINDOW_MS, false);
        let total: u64 = sums.iter().map(|s| s.attempts).sum();
        assert_eq!(total, 500 + 1 + 2);
        let v4 = sums
            .iter()
            .find(|s| s.address == "10.0.0.1" && s.code == "token_malformed")
            .unwrap();
        assert_eq!((v4.attempts, v4.first_at, v4.last_at), (500, t0, t0 + 499));
        assert!(sums
            .iter()
            .any(|s| s.address == "2001:db8::/64" && s.attempts == 2));
    }

    #[test]
    fn beyond_the_budget_addresses_are_counted_together() {
        let r = AuthRefusals::new(3);
        let t0 = 1_800_000_000_000;
        let mut firsts = 0;
        for a in 0..50 {
            for _ in 0..4 {
                if let Counted::First { .. } =
                    r.count(ip(&format!("10.0.1.{a}")), "token_bad_signature", t0)
                {
                    firsts += 1;
                }
            }
        }
        assert_eq!(firsts, 3);
        let sums = r.take(t0, true);
        let other = sums.iter().find(|s| s.address == OTHER).unwrap();
        assert_eq!((other.attempts, other.addresses), (47 * 4, 47));
        assert_eq!(sums.iter().map(|s| s.attempts).sum::<u64>(), 200);
        assert_eq!(sums.len(), 4);
    }
}
