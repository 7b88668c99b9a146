//! Monotonic time as an input.
//!
//! The core never reads a clock. Every call that may depend on time takes an
//! [`Instant`] chosen by the caller: an adapter counts milliseconds from a start
//! point of its own, a simulation counts virtual milliseconds from zero. All
//! arithmetic saturates, so no input — however large, however out of order —
//! can overflow or panic.

use core::ops::{Add, AddAssign};

/// A point on the caller's monotonic clock, in milliseconds since an epoch the
/// caller chose (usually the moment it created the core object).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Duration(u64);

impl Instant {
    /// The caller's epoch.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; a timer that must never fire uses it.
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `ms` milliseconds after the epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    #[must_use]
    pub const fn saturating_add(self, d: Duration) -> Self {
        Instant(self.0.saturating_add(d.0))
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// `ms` milliseconds.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    /// `s` seconds (saturating).
    #[must_use]
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1000))
    }

    /// The span in milliseconds.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + other`, saturating.
    #[must_use]
    pub const fn saturating_add(self, other: Duration) -> Self {
        Duration(self.0.saturating_add(other.0))
    }

    /// `self - other`, zero if `other` is longer.
    #[must_use]
    pub const fn saturating_sub(self, other: Duration) -> Self {
        Duration(self.0.saturating_sub(other.0))
    }

    /// `self * k`, saturating.
    #[must_use]
    pub const fn saturating_mul(self, k: u64) -> Self {
        Duration(self.0.saturating_mul(k))
    }

    /// The shorter of two spans.
    #[must_use]
    pub const fn min(self, other: Duration) -> Self {
        if self.0 <= other.0 { self } else { other }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating addition: adding to [`Instant::MAX`] stays at `MAX`.
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl From<core::time::Duration> for Duration {
    /// Truncates to whole milliseconds, saturating at `u64::MAX` ms.
    fn from(d: core::time::Duration) -> Self {
        Duration(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_millis(d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_overflowing() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::from_millis(u64::MAX));
        assert_eq!(
            Instant::ZERO.saturating_duration_since(Instant::from_millis(5)),
            Duration::ZERO
        );
        assert_eq!(
            Duration::from_millis(3).saturating_sub(Duration::from_millis(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn instant_plus_duration_adds_milliseconds() {
        let t = Instant::from_millis(1_000) + Duration::from_secs(2);
        assert_eq!(t.as_millis(), 3_000);
        assert_eq!(t.saturating_duration_since(Instant::from_millis(500)).as_millis(), 2_500);
    }

    #[test]
    fn core_duration_converts_both_ways() {
        let d: Duration = core::time::Duration::from_micros(2_500).into();
        assert_eq!(d.as_millis(), 2);
        assert_eq!(core::time::Duration::from(Duration::from_millis(7)).as_millis(), 7);
    }
}
