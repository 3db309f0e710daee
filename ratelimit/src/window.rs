//! Fixed windows in Unix time: a window of length `len` starts at `floor(now / len) * len`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit;

/// The unit of a limit, and so the length of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    pub const ALL: [Unit; 7] = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];

    /// Window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// Envoy's `RateLimitResponse.RateLimit.Unit` (it has every unit we do).
    pub fn to_envoy(self) -> rate_limit::Unit {
        match self {
            Unit::Second => rate_limit::Unit::Second,
            Unit::Minute => rate_limit::Unit::Minute,
            Unit::Hour => rate_limit::Unit::Hour,
            Unit::Day => rate_limit::Unit::Day,
            Unit::Week => rate_limit::Unit::Week,
            Unit::Month => rate_limit::Unit::Month,
            Unit::Year => rate_limit::Unit::Year,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown unit {0:?}; expected second, minute, hour, day, week, month or year")]
pub struct UnknownUnit(pub String);

impl FromStr for Unit {
    type Err = UnknownUnit;

    fn from_str(s: &str) -> Result<Unit, UnknownUnit> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.name() == s)
            .ok_or_else(|| UnknownUnit(s.to_owned()))
    }
}

/// One fixed window: `[start, start + len)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: u64,
    pub len: u64,
}

impl Window {
    /// The window of `unit` holding the instant `at` (time since the Unix epoch).
    pub fn at(unit: Unit, at: Duration) -> Window {
        Window::at_secs(unit, at.as_secs())
    }

    /// The window of `unit` holding the Unix second `secs`.
    pub fn at_secs(unit: Unit, secs: u64) -> Window {
        let len = unit.seconds();
        Window {
            start: secs / len * len,
            len,
        }
    }

    /// First second after the window.
    pub fn end(self) -> u64 {
        self.start.saturating_add(self.len)
    }

    /// Time from `now` until the window ends (zero once it has).
    pub fn until_end(self, now: Duration) -> Duration {
        Duration::from_secs(self.end()).saturating_sub(now)
    }

    /// Window length in milliseconds.
    pub fn len_ms(self) -> u64 {
        self.len.saturating_mul(1_000)
    }
}

/// Time since the Unix epoch, from the system clock (zero if the clock is before 1970).
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_at_the_floor_of_now_over_its_length() {
        let at = Duration::from_millis(1_700_000_123_456);
        assert_eq!(
            Window::at(Unit::Second, at),
            Window {
                start: 1_700_000_123,
                len: 1
            }
        );
        assert_eq!(Window::at(Unit::Minute, at).start, 1_700_000_100);
        assert_eq!(Window::at(Unit::Hour, at).start, 1_699_999_200);
        assert_eq!(Window::at(Unit::Day, at).start, 1_699_920_000);
        assert_eq!(Window::at(Unit::Week, at).start % (7 * 86_400), 0);
        assert_eq!(Window::at(Unit::Month, at).len, 2_592_000);
        assert_eq!(Window::at(Unit::Year, at).len, 31_536_000);
    }

    #[test]
    fn until_end_counts_down_to_the_next_window_with_subsecond_precision() {
        let at = Duration::from_millis(1_700_000_123_250);
        let minute = Window::at(Unit::Minute, at);
        assert_eq!(minute.until_end(at), Duration::from_millis(36_750));
        assert_eq!(
            Window::at(Unit::Second, at).until_end(at),
            Duration::from_millis(750)
        );
        assert_eq!(
            minute.until_end(Duration::from_secs(minute.end() + 5)),
            Duration::ZERO
        );
    }

    #[test]
    fn boundaries_belong_to_the_window_they_start() {
        let hour = Window::at_secs(Unit::Hour, 7_200);
        assert_eq!(hour.start, 7_200);
        assert_eq!(Window::at_secs(Unit::Hour, 7_199).start, 3_600);
        assert_eq!(hour.end(), 10_800);
    }

    #[test]
    fn units_parse_by_name_and_map_to_envoy() {
        for unit in Unit::ALL {
            assert_eq!(unit.name().parse::<Unit>(), Ok(unit));
        }
        assert!("fortnight".parse::<Unit>().is_err());
        assert!("Minute".parse::<Unit>().is_err());
        assert_eq!(Unit::Week.to_envoy() as i32, 7);
        assert_eq!(Unit::Month.to_envoy() as i32, 5);
        assert_eq!(Unit::Year.to_envoy() as i32, 6);
    }
}
