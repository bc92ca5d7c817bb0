//! The clock every part of souk asks for the time, so tests can move time instead of waiting.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// Where souk gets the current instant from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; `souk serve --test-clock` exposes it over the API.
#[derive(Debug)]
pub struct TestClock {
    millis: AtomicI64,
}

impl TestClock {
    /// A test clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        TestClock {
            millis: AtomicI64::new(start.timestamp_millis()),
        }
    }

    /// Moves the clock forward by `by` (never backwards: a negative duration is ignored).
    pub fn advance(&self, by: chrono::Duration) -> DateTime<Utc> {
        let step = by.num_milliseconds().max(0);
        let now = self.millis.fetch_add(step, Ordering::SeqCst) + step;
        from_millis(now)
    }

    /// Sets the clock to `to` if that is later than now; time never runs backwards.
    pub fn set(&self, to: DateTime<Utc>) -> DateTime<Utc> {
        let target = to.timestamp_millis();
        let prev = self.millis.fetch_max(target, Ordering::SeqCst);
        from_millis(prev.max(target))
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Converts UNIX milliseconds to an instant, clamping values outside chrono's range.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t + d`, stopping at the ends of time instead of panicking: an expiry bought at the far end
/// of the calendar still has a grace end to show.
pub fn add(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d)
        .unwrap_or(if d < chrono::Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_saturates_at_the_ends_of_time() {
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(add(max, chrono::Duration::days(15)), max);
        assert_eq!(
            add(DateTime::<Utc>::MIN_UTC, -chrono::Duration::days(1)),
            DateTime::<Utc>::MIN_UTC
        );
    }

    #[test]
    fn test_clock_moves_only_forward() {
        let start = from_millis(1_700_000_000_000);
        let clock = TestClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::days(3));
        assert_eq!(clock.now(), start + chrono::Duration::days(3));
        clock.set(start);
        assert_eq!(clock.now(), start + chrono::Duration::days(3));
        clock.advance(chrono::Duration::seconds(-10));
        assert_eq!(clock.now(), start + chrono::Duration::days(3));
    }
}
