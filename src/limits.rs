//! Rate limits: keyed token buckets (GCRA, from `governor`) per client
//! address, per authenticated identity, and for TOTP attempts per custodian
//! and per address. Each limit admits a burst of its per-minute figure and
//! refills evenly over the minute.
//!
//! The buckets live in each replica's memory: N replicas admit up to N
//! times the configured rate. The TOTP lockout (counted in the database)
//! stays the bound that holds across replicas.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Limits;

pub struct Limiters {
    address: DefaultKeyedRateLimiter<IpAddr>,
    identity: DefaultKeyedRateLimiter<String>,
    totp_custodian: DefaultKeyedRateLimiter<String>,
    totp_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1) is never zero"))
}

/// The key of a client address: IPv6 clients are limited by their /64, the
/// block one subscriber usually holds, so rotating addresses in it does not
/// reset the limit.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limiters {
    pub fn new(l: &Limits) -> Limiters {
        Limiters {
            address: RateLimiter::keyed(per_minute(l.requests_per_minute_per_address)),
            identity: RateLimiter::keyed(per_minute(l.requests_per_minute_per_identity)),
            totp_custodian: RateLimiter::keyed(per_minute(l.totp_attempts_per_minute)),
            totp_address: RateLimiter::keyed(per_minute(l.totp_attempts_per_minute_per_address)),
            clock: DefaultClock::default(),
        }
    }

    fn wait<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), Duration> {
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// A request from `ip`: `Err(wait)` when its address is over the limit.
    pub fn address(&self, ip: IpAddr) -> Result<(), Duration> {
        self.wait(&self.address, &address_key(ip))
    }

    /// A request of an authenticated subject.
    pub fn identity(&self, subject: &str) -> Result<(), Duration> {
        self.wait(&self.identity, &subject.to_owned())
    }

    /// A TOTP code about to be checked for `custodian`, sent from `ip`.
    pub fn totp(&self, custodian: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.wait(&self.totp_custodian, &custodian.to_owned())?;
        match ip {
            Some(ip) => self.wait(&self.totp_address, &address_key(ip)),
            None => Ok(()),
        }
    }

    /// Drop buckets that have refilled (they hold no information), so
    /// memory follows the clients of the last minute, not of all time.
    pub fn forget_idle(&self) {
        self.address.retain_recent();
        self.identity.retain_recent();
        self.totp_custodian.retain_recent();
        self.totp_address.retain_recent();
        self.address.shrink_to_fit();
        self.identity.shrink_to_fit();
        self.totp_custodian.shrink_to_fit();
        self.totp_address.shrink_to_fit();
    }
}

/// Seconds to put in `Retry-After`: at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}
