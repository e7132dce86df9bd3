//! Marathon timestamps: ISO-8601 UTC with millisecond precision (`2015-09-25T15:13:48.343Z`).
//!
//! App versions are timestamps and must be unique per app, so [`VersionClock`] hands out
//! strictly increasing ones even when two changes land in the same millisecond.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// A point in time as Marathon writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// A string that is not a Marathon timestamp.
#[derive(Debug, thiserror::Error)]
#[error("'{raw}' is not an ISO-8601 timestamp such as 2015-09-25T15:13:48.343Z")]
pub struct TimestampError {
    raw: String,
}

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Self::from_millis(Utc::now().timestamp_millis())
    }

    /// A timestamp from milliseconds since the epoch.
    pub fn from_millis(millis: i64) -> Self {
        Timestamp(
            Utc.timestamp_millis_opt(millis)
                .single()
                .unwrap_or_else(Utc::now),
        )
    }

    /// Milliseconds since the epoch.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Parses the forms Marathon accepts (any RFC 3339 timestamp).
    pub fn parse(raw: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Self::from_millis(t.with_timezone(&Utc).timestamp_millis()))
            .map_err(|_| TimestampError {
                raw: raw.to_string(),
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Hands out strictly increasing version timestamps.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: Mutex<i64>,
}

impl VersionClock {
    /// The next version: now, or one millisecond after the previous one if the clock has not moved.
    pub fn next(&self) -> Timestamp {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Utc::now().timestamp_millis().max(*last + 1);
        *last = now;
        Timestamp::from_millis(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_with_milliseconds_and_z() {
        let t = Timestamp::from_millis(1_443_194_028_343);
        assert_eq!(t.to_string(), "2015-09-25T15:13:48.343Z");
        assert_eq!(Timestamp::parse("2015-09-25T15:13:48.343Z").unwrap(), t);
        let whole = Timestamp::from_millis(1_443_194_028_000);
        assert_eq!(whole.to_string(), "2015-09-25T15:13:48.000Z");
    }

    #[test]
    fn version_clock_never_repeats() {
        let clock = VersionClock::default();
        let mut previous = clock.next();
        for _ in 0..1000 {
            let next = clock.next();
            assert!(next > previous);
            previous = next;
        }
    }
}
