//! Time for the core, which never reads a clock itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use peercollab_core::{Duration, Instant};

/// Called when a [`ManualClock`] moves, so an adapter re-reads its deadline.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Where an adapter's `now` comes from. Must be monotonic.
///
/// [`SystemClock`] is real time; [`ManualClock`] moves only when told, so
/// tests run five-minute expiries in microseconds while real sockets carry
/// the datagrams (tokio's paused time would race them).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// How long to wait in real time before `deadline` may have come;
    /// `None` when only a [`Wake`] can bring it (a manual clock).
    fn wait_until(&self, deadline: Instant) -> Option<std::time::Duration>;

    /// Registers `wake`, run whenever the clock jumps. Real clocks never
    /// jump and ignore it.
    fn on_jump(&self, wake: Wake) {
        drop(wake);
    }
}

/// Real monotonic time, in milliseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// A clock whose zero is now.
    #[must_use]
    pub fn new() -> Self {
        SystemClock { origin: std::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    fn wait_until(&self, deadline: Instant) -> Option<std::time::Duration> {
        let wait = deadline.saturating_duration_since(self.now());
        // The core counts whole milliseconds: wait out the one in progress
        // too, so the deadline has surely come when the wait ends.
        Some(std::time::Duration::from_millis(wait.as_millis().saturating_add(1)))
    }
}

/// A clock that moves only by [`advance`](Self::advance). Clones share
/// the same time.
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Default)]
struct ManualInner {
    now_ms: AtomicU64,
    wakes: Mutex<Vec<Wake>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock").field("now", &self.now()).finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` and wakes every adapter using it.
    pub fn advance(&self, by: Duration) {
        self.inner.now_ms.fetch_add(by.as_millis(), Ordering::SeqCst);
        let wakes = self.inner.wakes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for wake in wakes {
            wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.inner.now_ms.load(Ordering::SeqCst))
    }

    fn wait_until(&self, deadline: Instant) -> Option<std::time::Duration> {
        (deadline <= self.now()).then_some(std::time::Duration::ZERO)
    }

    fn on_jump(&self, wake: Wake) {
        self.inner.wakes.lock().unwrap_or_else(PoisonError::into_inner).push(wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_wakes_its_adapters() {
        let clock = ManualClock::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&woken);
        clock.on_jump(Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        let deadline = Instant::from_millis(1_000);
        assert_eq!(clock.wait_until(deadline), None);
        clock.advance(Duration::from_millis(999));
        assert_eq!(clock.wait_until(deadline), None);
        clock.advance(Duration::from_millis(1));
        assert_eq!(clock.wait_until(deadline), Some(std::time::Duration::ZERO));
        assert_eq!(clock.now(), deadline);
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_system_clock_waits_at_least_until_the_deadline() {
        let clock = SystemClock::new();
        let now = clock.now();
        let wait = clock.wait_until(now.saturating_add(Duration::from_millis(50)));
        assert!(wait.is_some_and(|w| w >= std::time::Duration::from_millis(50)));
        assert!(clock.now() >= now);
    }
}
