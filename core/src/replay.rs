//! The sliding replay window of transport counters (RFC 6479's idea, one
//! machine word wide).
//!
//! A transport frame names its counter explicitly, so frames may arrive out of
//! order. The window remembers the highest counter accepted and which of the
//! [`REPLAY_WINDOW`] counters below it were seen. A counter is fresh if it is
//! above the highest, or inside the window and unseen; anything older is
//! refused. [`ReplayWindow::check`] is read-only: the caller decrypts first
//! and calls [`ReplayWindow::commit`] only for authentic frames, so forged
//! frames never move the window.

/// How many counters below the highest one are remembered. An invitation
/// session carries a few dozen messages at most (16 KiB of application data
/// is 15 fragments), so reordering deeper than 128 frames is not worth memory.
pub const REPLAY_WINDOW: u64 = 128;

/// The window: the highest accepted counter plus one (0: none yet) and a
/// bitmap whose bit `i` is counter `top - 1 - i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    top: u64,
    seen: u128,
}

impl ReplayWindow {
    /// Whether `counter` would be accepted.
    #[must_use]
    pub fn check(&self, counter: u64) -> bool {
        if counter >= self.top {
            return counter != u64::MAX;
        }
        let age = self.top - 1 - counter;
        age < REPLAY_WINDOW && self.seen & (1u128 << age) == 0
    }

    /// Records `counter` as seen. Call only after [`check`](Self::check)
    /// succeeded and the frame was authenticated.
    pub fn commit(&mut self, counter: u64) {
        if counter >= self.top {
            let shift = counter - self.top + 1;
            self.seen = if shift >= REPLAY_WINDOW { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = counter.saturating_add(1);
        } else {
            let age = self.top - 1 - counter;
            if age < REPLAY_WINDOW {
                self.seen |= 1u128 << age;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_counters_are_fresh_once() {
        let mut w = ReplayWindow::default();
        for c in 0..300 {
            assert!(w.check(c));
            w.commit(c);
            assert!(!w.check(c));
        }
    }

    #[test]
    fn out_of_order_inside_the_window_is_accepted_once_and_older_is_refused() {
        let mut w = ReplayWindow::default();
        w.commit(200);
        assert!(w.check(200 - 127));
        assert!(!w.check(200 - 128));
        w.commit(150);
        assert!(!w.check(150));
        assert!(w.check(151));
        w.commit(1000);
        assert!(!w.check(200));
        assert!(!w.check(u64::MAX));
    }

    proptest! {
        #[test]
        fn no_counter_is_ever_accepted_twice(counters in proptest::collection::vec(0u64..400, 0..200)) {
            let mut w = ReplayWindow::default();
            let mut accepted = std::collections::BTreeSet::new();
            for c in counters {
                if w.check(c) {
                    prop_assert!(accepted.insert(c), "counter {} accepted twice", c);
                    w.commit(c);
                }
            }
        }
    }
}
