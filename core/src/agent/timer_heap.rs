//! An indexed binary min-heap of deadlines, one per slot: the agent finds
//! its next deadline in O(1) and updates one slot's in O(log n), so its cost
//! per datagram does not grow with the number of live invitations.

use crate::Instant;

const NONE: u16 = u16::MAX;

/// At most one deadline per slot `0..N`.
pub(crate) struct TimerHeap<const N: usize> {
    /// Slots, heap-ordered by deadline (ties by slot index).
    heap: heapless::Vec<u16, N>,
    /// Where each slot sits in `heap`, or [`NONE`].
    position: [u16; N],
    deadline: [Instant; N],
}

impl<const N: usize> TimerHeap<N> {
    pub(crate) fn new() -> Self {
        TimerHeap { heap: heapless::Vec::new(), position: [NONE; N], deadline: [Instant::ZERO; N] }
    }

    /// The earliest deadline and its slot.
    pub(crate) fn peek(&self) -> Option<(Instant, u16)> {
        self.heap.first().map(|&s| (self.deadline[usize::from(s)], s))
    }

    /// Sets, moves or (with `None`) clears `slot`'s deadline.
    pub(crate) fn set(&mut self, slot: u16, at: Option<Instant>) {
        let i = usize::from(slot);
        if i >= N {
            return;
        }
        match (self.position[i], at) {
            (NONE, None) => {}
            (NONE, Some(at)) => {
                self.deadline[i] = at;
                let pos = self.heap.len();
                // One entry per slot and N slots: never full.
                let _ = self.heap.push(slot);
                self.position[i] = pos as u16;
                self.sift_up(pos);
            }
            (pos, Some(at)) => {
                self.deadline[i] = at;
                let pos = usize::from(pos);
                self.sift_up(pos);
                self.sift_down(usize::from(self.position[i]));
            }
            (pos, None) => self.remove_at(usize::from(pos)),
        }
    }

    fn remove_at(&mut self, pos: usize) {
        let last = self.heap.len() - 1;
        self.swap(pos, last);
        if let Some(slot) = self.heap.pop() {
            self.position[usize::from(slot)] = NONE;
        }
        if pos < self.heap.len() {
            self.sift_up(pos);
            self.sift_down(usize::from(self.position[usize::from(self.heap[pos])]));
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (sa, sb) = (self.heap[a], self.heap[b]);
        (self.deadline[usize::from(sa)], sa) < (self.deadline[usize::from(sb)], sb)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.position[usize::from(self.heap[a])] = a as u16;
        self.position[usize::from(self.heap[b])] = b as u16;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.less(pos, parent) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < self.heap.len() && self.less(l, least) {
                least = l;
            }
            if r < self.heap.len() && self.less(r, least) {
                least = r;
            }
            if least == pos {
                break;
            }
            self.swap(pos, least);
            pos = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn earliest_deadline_comes_first_and_updates_move_it() {
        let mut h: TimerHeap<4> = TimerHeap::new();
        h.set(0, Some(at(30)));
        h.set(1, Some(at(10)));
        h.set(2, Some(at(20)));
        assert_eq!(h.peek(), Some((at(10), 1)));
        h.set(1, Some(at(40)));
        assert_eq!(h.peek(), Some((at(20), 2)));
        h.set(2, None);
        assert_eq!(h.peek(), Some((at(30), 0)));
        h.set(0, None);
        h.set(1, None);
        assert_eq!(h.peek(), None);
        h.set(9, Some(at(1)));
        assert_eq!(h.peek(), None);
    }

    proptest! {
        /// Against a model: after any sequence of sets, the heap's minimum
        /// is the model's.
        #[test]
        fn heap_minimum_matches_a_model(ops in proptest::collection::vec((0u16..8, proptest::option::of(0u64..50)), 0..200)) {
            let mut h: TimerHeap<8> = TimerHeap::new();
            let mut model: [Option<u64>; 8] = [None; 8];
            for (slot, deadline) in ops {
                h.set(slot, deadline.map(at));
                model[usize::from(slot)] = deadline;
                let expected = model
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| d.map(|d| (at(d), i as u16)))
                    .min();
                prop_assert_eq!(h.peek(), expected);
            }
        }
    }
}
