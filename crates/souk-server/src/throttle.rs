//! Log-in and sign-up throttling, the limit on endpoint checks (souk must not become a tool for
//! sending calls at someone else's server), and the limit on password hashes running at once.
//!
//! Limits are counted in memory on each node (a fixed window per key), which is enough to turn
//! password guessing from thousands of tries a second into a few an hour per account. Password
//! hashing (argon2, ~19 MiB and tens of milliseconds each) runs at most `hashes_at_once` at a
//! time with at most `hash_queue` waiting; beyond that callers are told to come back, so a
//! flood of log-ins costs neither unbounded memory nor unbounded latency.

use crate::client::Peer;
use crate::error::AppError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Keys one window remembers before it drops expired ones (and then stops adding new ones).
const MAX_KEYS: usize = 100_000;

/// The configured limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Failed log-ins per account e-mail in `login_failure_window` before log-ins to it wait.
    pub login_failures_per_account: u32,
    pub login_failure_window: Duration,
    /// Log-in attempts per client address in `login_address_window`.
    pub login_attempts_per_address: u32,
    pub login_address_window: Duration,
    /// Sign-ups per client address in `signup_window`.
    pub signups_per_address: u32,
    pub signup_window: Duration,
    /// Password hashes computed at once (default: the number of cores).
    pub hashes_at_once: usize,
    /// Password hashes that may wait for a free slot; more are answered 503.
    pub hash_queue: usize,
    /// Endpoint checks (ten calls each) per merchant in `endpoint_check_window`.
    pub endpoint_checks_per_merchant: u32,
    pub endpoint_check_window: Duration,
    /// Refused signed requests per client address in `signature_refusal_window` that are
    /// answered one by one and audited; more are answered 429 and not written.
    pub signature_refusals_per_address: u32,
    pub signature_refusal_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_failures_per_account: 10,
            login_failure_window: Duration::from_secs(15 * 60),
            login_attempts_per_address: 30,
            login_address_window: Duration::from_secs(60),
            signups_per_address: 10,
            signup_window: Duration::from_secs(3600),
            hashes_at_once: std::thread::available_parallelism().map_or(2, |n| n.get()),
            hash_queue: 32,
            endpoint_checks_per_merchant: 10,
            endpoint_check_window: Duration::from_secs(3600),
            signature_refusals_per_address: 60,
            signature_refusal_window: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Limits for tests that sign up hundreds of accounts from 127.0.0.1.
    pub fn loose() -> Limits {
        Limits {
            login_failures_per_account: 1_000_000,
            login_attempts_per_address: 1_000_000,
            signups_per_address: 1_000_000,
            hash_queue: 100_000,
            endpoint_checks_per_merchant: 1_000_000,
            signature_refusals_per_address: 1_000_000,
            ..Limits::default()
        }
    }
}

/// What a full window does with a key it has no room to count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    /// Lets it through uncounted: a flood of addresses must not lock everyone out of logging in.
    Admit,
    /// Treats it as over its limit: for work that may be shed (auditing refusals), so a flood of
    /// addresses cannot get around the limit.
    Refuse,
}

/// Counts hits per key in fixed windows.
struct Window {
    limit: u32,
    period: Duration,
    when_full: WhenFull,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Window {
    fn new(limit: u32, period: Duration) -> Self {
        Window {
            limit,
            period,
            when_full: WhenFull::Admit,
            hits: Mutex::new(HashMap::new()),
        }
    }

    fn refusing_when_full(self) -> Self {
        Window {
            when_full: WhenFull::Refuse,
            ..self
        }
    }

    /// Refuses when `key` used up its window; with `count` also counts this hit.
    fn hit(&self, key: &str, count: bool) -> Result<(), AppError> {
        let now = Instant::now();
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((start, n)) = hits.get_mut(key) {
            let elapsed = now.duration_since(*start);
            if elapsed >= self.period {
                *start = now;
                *n = 0;
            } else if *n >= self.limit {
                return Err(AppError::RateLimited {
                    retry_after_secs: (self.period - elapsed).as_secs().max(1),
                });
            }
            if count {
                *n += 1;
            }
            return Ok(());
        }
        if !count {
            return Ok(());
        }
        if hits.len() >= MAX_KEYS {
            let period = self.period;
            hits.retain(|_, (start, _)| now.duration_since(*start) < period);
        }
        if hits.len() < MAX_KEYS {
            hits.insert(key.to_owned(), (now, 1));
        } else if self.when_full == WhenFull::Refuse {
            return Err(AppError::RateLimited {
                retry_after_secs: self.period.as_secs().max(1),
            });
        } else {
            tracing::warn!("throttle table full; a key goes uncounted");
        }
        Ok(())
    }
}

/// The key a client's address is counted under: an IPv4 address, or an IPv6 address's /64 (one
/// subscriber's network, whose every address its owner may use; counting them one by one would
/// let one client look like 2^64).
fn address(peer: &Peer) -> String {
    match peer.ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The throttle state of one node.
pub struct Throttle {
    login_address: Window,
    login_account: Window,
    signup_address: Window,
    endpoint_checks: Window,
    signature_refusals: Window,
    hashing: Semaphore,
    /// Hashes running or waiting.
    in_line: AtomicUsize,
    capacity: usize,
}

impl Throttle {
    /// A throttle enforcing `limits`.
    pub fn new(limits: &Limits) -> Self {
        let at_once = limits.hashes_at_once.max(1);
        Throttle {
            login_address: Window::new(
                limits.login_attempts_per_address,
                limits.login_address_window,
            ),
            login_account: Window::new(
                limits.login_failures_per_account,
                limits.login_failure_window,
            ),
            signup_address: Window::new(limits.signups_per_address, limits.signup_window),
            endpoint_checks: Window::new(
                limits.endpoint_checks_per_merchant,
                limits.endpoint_check_window,
            ),
            signature_refusals: Window::new(
                limits.signature_refusals_per_address,
                limits.signature_refusal_window,
            )
            .refusing_when_full(),
            hashing: Semaphore::new(at_once),
            in_line: AtomicUsize::new(0),
            capacity: at_once.saturating_add(limits.hash_queue),
        }
    }

    /// Before checking a password: counts the attempt against the client's address and refuses
    /// while the account has too many recent failures.
    pub fn log_in(&self, peer: &Peer, email: &str) -> Result<(), AppError> {
        self.login_address.hit(&address(peer), true)?;
        self.login_account.hit(email, false)
    }

    /// Before checking a seller endpoint: counts the check against the merchant.
    pub fn endpoint_check(&self, merchant: &str) -> Result<(), AppError> {
        self.endpoint_checks.hit(merchant, true)
    }

    /// After a signed request was refused: counts the refusal against the client's address, and
    /// refuses when the address has had its share (the request is then answered 429 and not
    /// audited, so a flood of bad signatures cannot fill the audit).
    pub fn signature_refused(&self, peer: &Peer) -> Result<(), AppError> {
        self.signature_refusals.hit(&address(peer), true)
    }

    /// Whether the client's address has had its share of refused signed requests (counting
    /// nothing): its next signature is checked before anything about it is written.
    pub fn signatures_refused_too_often(&self, peer: &Peer) -> bool {
        self.signature_refusals.hit(&address(peer), false).is_err()
    }

    /// After a wrong password (or an unknown e-mail): counts the failure against the account.
    pub fn log_in_failed(&self, email: &str) {
        let _ = self.login_account.hit(email, true);
    }

    /// Before creating an account: counts the sign-up against the client's address.
    pub fn sign_up(&self, peer: &Peer) -> Result<(), AppError> {
        self.signup_address.hit(&address(peer), true)
    }

    /// Runs a password hash (or check) in a free hashing slot, off the async threads.
    pub async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        // Counted out on drop, so a caller that goes away while waiting frees its place.
        struct InLine<'a>(&'a AtomicUsize);
        impl Drop for InLine<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _in_line = InLine(&self.in_line);
        if self.in_line.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            return Err(AppError::Busy);
        }
        async {
            let _slot = self
                .hashing
                .acquire()
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| AppError::Internal(e.to_string()))
        }
        .await
    }

    /// [`crate::auth::hash_password`] under the hashing limit.
    pub async fn hash_password(&self, password: String) -> Result<String, AppError> {
        self.hashing(move || crate::auth::hash_now(&password))
            .await?
    }

    /// [`crate::auth::verify_password`] under the hashing limit.
    pub async fn verify_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, AppError> {
        self.hashing(move || crate::auth::verify_now(&password, hash.as_deref()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_and_says_when_to_retry() {
        let w = Window::new(2, Duration::from_secs(60));
        assert!(w.hit("a", true).is_ok());
        assert!(w.hit("a", true).is_ok());
        match w.hit("a", true) {
            Err(AppError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("{other:?}"),
        }
        assert!(w.hit("b", false).is_ok(), "other keys are not affected");
    }

    #[test]
    fn a_merchant_checks_its_endpoint_ten_times_an_hour() {
        let t = Throttle::new(&Limits::default());
        for _ in 0..10 {
            assert!(t.endpoint_check("mer_a").is_ok());
        }
        assert!(matches!(
            t.endpoint_check("mer_a"),
            Err(AppError::RateLimited { .. })
        ));
        assert!(t.endpoint_check("mer_b").is_ok());
    }

    fn peer(ip: &str) -> Peer {
        Peer {
            ip: ip.parse().unwrap(),
            https: false,
        }
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address() {
        let limits = Limits {
            signature_refusals_per_address: 2,
            ..Limits::default()
        };
        let t = Throttle::new(&limits);
        assert!(t.signature_refused(&peer("2001:db8:1:2::1")).is_ok());
        assert!(t.signature_refused(&peer("2001:db8:1:2:ffff::9")).is_ok());
        assert!(
            t.signature_refused(&peer("2001:db8:1:2:abcd::7")).is_err(),
            "another address of the same /64"
        );
        assert!(t.signature_refused(&peer("2001:db8:1:3::1")).is_ok());
        assert_eq!(address(&peer("::ffff:192.0.2.7")), "192.0.2.7");
    }

    #[test]
    fn a_full_window_refuses_or_admits_new_keys_as_it_was_made_to() {
        let admit = Window::new(5, Duration::from_secs(60));
        let refuse = Window::new(5, Duration::from_secs(60)).refusing_when_full();
        for i in 0..MAX_KEYS {
            let key = i.to_string();
            admit.hit(&key, true).unwrap();
            refuse.hit(&key, true).unwrap();
        }
        assert!(admit.hit("one more", true).is_ok());
        assert!(matches!(
            refuse.hit("one more", true),
            Err(AppError::RateLimited { .. })
        ));
        assert!(refuse.hit("0", true).is_ok(), "a counted key goes on");
    }
}
