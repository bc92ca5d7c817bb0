//! Working days: reviews are due a number of working days after submission, where weekends and
//! the marketplace's configured holidays do not count.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use std::collections::BTreeSet;

/// The days the marketplace's staff work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkCalendar {
    holidays: BTreeSet<NaiveDate>,
}

impl WorkCalendar {
    /// A calendar with these public holidays besides weekends.
    pub fn new(holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        WorkCalendar {
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// The instant `days` working days after `from`, at the same time of day: each step moves to
    /// the next working day. Submitted on Friday, 3 working days are due on Wednesday.
    pub fn add_working_days(&self, from: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut at = from;
        let mut left = days;
        // A year of holidays in a row is a configuration mistake; stop rather than loop forever.
        let mut guard = 0;
        while left > 0 && guard < 3660 {
            at += Duration::days(1);
            guard += 1;
            if self.is_working_day(at.date_naive()) {
                left -= 1;
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).unwrap()
    }

    #[test]
    fn skips_weekends() {
        let cal = WorkCalendar::default();
        // 2027-03-05 is a Friday.
        assert_eq!(cal.add_working_days(at(2027, 3, 5), 3), at(2027, 3, 10));
        // Monday -> Thursday.
        assert_eq!(cal.add_working_days(at(2027, 3, 1), 3), at(2027, 3, 4));
        // Saturday -> Wednesday.
        assert_eq!(cal.add_working_days(at(2027, 3, 6), 3), at(2027, 3, 10));
    }

    #[test]
    fn skips_configured_holidays() {
        let cal = WorkCalendar::new([
            NaiveDate::from_ymd_opt(2027, 3, 2).unwrap(),
            NaiveDate::from_ymd_opt(2027, 3, 3).unwrap(),
        ]);
        assert_eq!(cal.add_working_days(at(2027, 3, 1), 3), at(2027, 3, 8));
    }
}
