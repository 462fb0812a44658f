//! Sign-in throttling: slow attackers down without locking the real user out
//! (security goal G9).
//!
//! Three counters, each a [`Backoff`], are kept by the store:
//! - **account + IP**: after 5 failures from one address for one account, the
//!   next attempt from that address waits 1 s, then 2 s, 4 s … up to 15 min;
//! - **account (all addresses)**: after 20 failures the account is slowed by
//!   1 s doubling up to 60 s, never more — a distributed attacker gets at most
//!   about 60 guesses an hour, and the real user, from their own address,
//!   waits at most a minute;
//! - **IP (all accounts)**: after 100 failures the address waits 1 s doubling
//!   up to 1 h (credential stuffing across many accounts).
//!
//! Counters forget after a quiet period (no failure for `reset_after`), and a
//! successful sign-in clears the account+IP and account counters. A throttled
//! attempt is answered 429 with `Retry-After` *without checking the password*,
//! so it costs the attacker a guess.

use chrono::{DateTime, Duration, Utc};

/// Parameters of one backoff counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// Delay after the first counted failure; doubles each further failure.
    pub base_delay: Duration,
    /// The delay never exceeds this (no permanent lockout).
    pub max_delay: Duration,
    /// The count resets after this long without a failure.
    pub reset_after: Duration,
}

impl BackoffPolicy {
    /// One account from one address.
    pub fn account_and_ip() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            reset_after: Duration::hours(24),
        }
    }

    /// One account from anywhere.
    pub fn account() -> Self {
        Self {
            free_failures: 20,
            base_delay: Duration::seconds(1),
            max_delay: Duration::seconds(60),
            reset_after: Duration::hours(24),
        }
    }

    /// One address across all accounts.
    pub fn ip() -> Self {
        Self {
            free_failures: 100,
            base_delay: Duration::seconds(1),
            max_delay: Duration::hours(1),
            reset_after: Duration::minutes(10),
        }
    }

    /// The delay owed after `failures` consecutive failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures <= self.free_failures {
            return Duration::zero();
        }
        let exponent = (failures - self.free_failures - 1).min(30);
        let factor = 1i32.checked_shl(exponent).unwrap_or(i32::MAX);
        let delay = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay);
        delay.min(self.max_delay)
    }
}

/// What to do with a sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    /// Check the password.
    Proceed,
    /// Answer 429 with `Retry-After` (seconds, rounded up) and do not check.
    RetryAfter(Duration),
}

impl ThrottleDecision {
    /// The stricter of two decisions.
    pub fn and(self, other: ThrottleDecision) -> ThrottleDecision {
        match (self, other) {
            (ThrottleDecision::RetryAfter(a), ThrottleDecision::RetryAfter(b)) => {
                ThrottleDecision::RetryAfter(a.max(b))
            }
            (ThrottleDecision::RetryAfter(a), _) | (_, ThrottleDecision::RetryAfter(a)) => {
                ThrottleDecision::RetryAfter(a)
            }
            _ => ThrottleDecision::Proceed,
        }
    }

    /// Whole seconds for the `Retry-After` header (at least 1 when throttled).
    pub fn retry_after_seconds(self) -> Option<i64> {
        match self {
            ThrottleDecision::Proceed => None,
            ThrottleDecision::RetryAfter(d) => {
                let ms = d.num_milliseconds();
                Some(((ms + 999) / 1000).max(1))
            }
        }
    }
}

/// One failure counter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    pub failures: u32,
    pub last_failure_at: Option<DateTime<Utc>>,
}

impl Backoff {
    fn effective_failures(&self, policy: &BackoffPolicy, now: DateTime<Utc>) -> u32 {
        match self.last_failure_at {
            Some(at) if now - at < policy.reset_after => self.failures,
            _ => 0,
        }
    }

    /// May an attempt proceed at `now`?
    pub fn check(&self, policy: &BackoffPolicy, now: DateTime<Utc>) -> ThrottleDecision {
        let failures = self.effective_failures(policy, now);
        let delay = policy.delay_after(failures);
        match self.last_failure_at {
            Some(at) if delay > Duration::zero() && now < at + delay => {
                ThrottleDecision::RetryAfter(at + delay - now)
            }
            _ => ThrottleDecision::Proceed,
        }
    }

    /// A wrong password (or unknown account) at `now`.
    pub fn record_failure(&mut self, policy: &BackoffPolicy, now: DateTime<Utc>) {
        self.failures = self.effective_failures(policy, now).saturating_add(1);
        self.last_failure_at = Some(now);
    }

    /// A successful sign-in.
    pub fn record_success(&mut self) {
        *self = Self::default();
    }
}

/// The three counters of one sign-in attempt, with their policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub account_and_ip: BackoffPolicy,
    pub account: BackoffPolicy,
    pub ip: BackoffPolicy,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            account_and_ip: BackoffPolicy::account_and_ip(),
            account: BackoffPolicy::account(),
            ip: BackoffPolicy::ip(),
        }
    }
}

/// The stored counters for one attempt (account may be unknown: then the
/// store keys the account counters by the normalised e-mail address, so
/// unknown and known accounts behave alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptCounters {
    pub account_and_ip: Backoff,
    pub account: Backoff,
    pub ip: Backoff,
}

impl LoginThrottle {
    pub fn check(&self, c: &AttemptCounters, now: DateTime<Utc>) -> ThrottleDecision {
        c.account_and_ip
            .check(&self.account_and_ip, now)
            .and(c.account.check(&self.account, now))
            .and(c.ip.check(&self.ip, now))
    }

    pub fn record_failure(&self, c: &mut AttemptCounters, now: DateTime<Utc>) {
        c.account_and_ip.record_failure(&self.account_and_ip, now);
        c.account.record_failure(&self.account, now);
        c.ip.record_failure(&self.ip, now);
    }

    /// Success clears the account counters; the IP counter is left alone so
    /// that one valid account does not launder a stuffing run.
    pub fn record_success(&self, c: &mut AttemptCounters) {
        c.account_and_ip.record_success();
        c.account.record_success();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn clock() -> FixedClock {
        FixedClock::new(Utc.with_ymd_and_hms(2026, 7, 1, 9, 0, 0).single().unwrap())
    }

    #[test]
    fn first_failures_are_free_then_delays_double_up_to_the_cap() {
        let p = BackoffPolicy::account_and_ip();
        let delays: Vec<i64> = (0..=30).map(|n| p.delay_after(n).num_seconds()).collect();
        assert_eq!(&delays[..=5], &[0, 0, 0, 0, 0, 0]);
        assert_eq!(&delays[6..=10], &[1, 2, 4, 8, 16]);
        assert_eq!(delays[30], 15 * 60);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "monotone");
        assert_eq!(
            p.delay_after(u32::MAX),
            Duration::minutes(15),
            "huge counts do not overflow"
        );
    }

    #[test]
    fn an_attacker_from_one_address_is_slowed_and_told_when_to_retry() {
        let c = clock();
        let t = LoginThrottle::default();
        let mut counters = AttemptCounters::default();
        for _ in 0..5 {
            assert_eq!(t.check(&counters, c.now()), ThrottleDecision::Proceed);
            t.record_failure(&mut counters, c.now());
        }
        // Sixth failure → 1 s wait.
        t.record_failure(&mut counters, c.now());
        let d = t.check(&counters, c.now());
        assert_eq!(d, ThrottleDecision::RetryAfter(Duration::seconds(1)));
        assert_eq!(d.retry_after_seconds(), Some(1));
        c.advance(Duration::seconds(1));
        assert_eq!(t.check(&counters, c.now()), ThrottleDecision::Proceed);
    }

    #[test]
    fn the_real_user_is_never_locked_out_for_more_than_the_cap() {
        let c = clock();
        let t = LoginThrottle::default();
        let mut counters = AttemptCounters::default();
        // An attacker hammers the account 10,000 times, as fast as allowed.
        for _ in 0..10_000 {
            if let ThrottleDecision::RetryAfter(d) = t.check(&counters, c.now()) {
                c.advance(d);
            }
            t.record_failure(&mut counters, c.now());
        }
        // The worst wait is the account+IP cap (15 min), and after a quiet
        // day everything is forgiven.
        match t.check(&counters, c.now()) {
            ThrottleDecision::RetryAfter(d) => assert!(d <= Duration::minutes(15)),
            ThrottleDecision::Proceed => {}
        }
        // The real user from a fresh address is only slowed by the account
        // counter (≤ 60 s), never by the attacker's address counters.
        let theirs = AttemptCounters {
            account: counters.account,
            ..AttemptCounters::default()
        };
        match t.check(&theirs, c.now()) {
            ThrottleDecision::RetryAfter(d) => assert!(d <= Duration::seconds(60)),
            ThrottleDecision::Proceed => {}
        }
        c.advance(Duration::seconds(60));
        assert_eq!(t.check(&theirs, c.now()), ThrottleDecision::Proceed);
    }

    #[test]
    fn success_clears_account_counters_but_not_the_ip_counter() {
        let c = clock();
        let t = LoginThrottle::default();
        let mut counters = AttemptCounters::default();
        for _ in 0..150 {
            t.record_failure(&mut counters, c.now());
        }
        t.record_success(&mut counters);
        assert_eq!(counters.account_and_ip, Backoff::default());
        assert_eq!(counters.account, Backoff::default());
        assert_eq!(counters.ip.failures, 150);
        assert!(matches!(
            t.check(&counters, c.now()),
            ThrottleDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn counters_forget_after_a_quiet_period() {
        let c = clock();
        let p = BackoffPolicy::ip();
        let mut b = Backoff::default();
        for _ in 0..101 {
            b.record_failure(&p, c.now());
        }
        assert!(matches!(
            b.check(&p, c.now()),
            ThrottleDecision::RetryAfter(_)
        ));
        c.advance(Duration::minutes(10));
        assert_eq!(b.check(&p, c.now()), ThrottleDecision::Proceed);
        b.record_failure(&p, c.now());
        assert_eq!(b.failures, 1, "count restarted");
    }

    #[test]
    fn ip_counter_throttles_stuffing_across_many_accounts() {
        let c = clock();
        let t = LoginThrottle::default();
        let mut ip = Backoff::default();
        // 100 different accounts, one guess each, within a minute.
        for _ in 0..100 {
            let fresh = AttemptCounters {
                ip,
                ..Default::default()
            };
            assert_eq!(t.check(&fresh, c.now()), ThrottleDecision::Proceed);
            ip.record_failure(&t.ip, c.now());
            c.advance(Duration::milliseconds(500));
        }
        ip.record_failure(&t.ip, c.now());
        let fresh = AttemptCounters {
            ip,
            ..Default::default()
        };
        assert!(matches!(
            t.check(&fresh, c.now()),
            ThrottleDecision::RetryAfter(_)
        ));
    }

    proptest! {
        /// Whatever the sequence of failures and pauses, no wait exceeds the
        /// largest cap, and a full quiet period always clears the throttle.
        #[test]
        fn waits_are_bounded(pauses in prop::collection::vec(0i64..5_000, 0..300)) {
            let c = clock();
            let t = LoginThrottle::default();
            let mut counters = AttemptCounters::default();
            for ms in pauses {
                c.advance(Duration::milliseconds(ms));
                if let ThrottleDecision::RetryAfter(d) = t.check(&counters, c.now()) {
                    prop_assert!(d <= Duration::hours(1));
                    prop_assert!(d > Duration::zero());
                } else {
                    t.record_failure(&mut counters, c.now());
                }
            }
            c.advance(Duration::hours(24));
            prop_assert_eq!(t.check(&counters, c.now()), ThrottleDecision::Proceed);
        }
    }
}
