//! A fixed-capacity table whose entries are named by generation-checked
//! keys.
//!
//! Every slot carries a 32-bit generation that grows each time the slot is
//! freed. A key names a slot *and* the generation it was issued at, so a key
//! kept after its entry was removed never reaches the next entry of that
//! slot. A slot whose generation would wrap is **retired** instead of being
//! reused: capacity shrinks by one slot after 2³² uses of it, and no stale key
//! can ever become valid again.

/// A key into a [`Slab`]: slot index and generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u16,
    pub(crate) generation: u32,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

struct Slot<T> {
    generation: u32,
    /// Freed at `u32::MAX`: never handed out again.
    retired: bool,
    value: Option<T>,
}

/// `N` slots of `T`, at most `u16::MAX` of them.
pub(crate) struct Slab<T, const N: usize> {
    slots: [Slot<T>; N],
    /// Vacant, unretired slots; the next insert takes the last.
    free: heapless::Vec<u16, N>,
    /// Slots retired for good.
    retired: usize,
}

impl<T, const N: usize> Slab<T, N> {
    /// An empty slab. (`N` above `u16::MAX` is refused at compile time.)
    pub(crate) fn new() -> Self {
        const { assert!(N <= u16::MAX as usize, "a slab holds at most 65,535 slots") };
        let mut free = heapless::Vec::new();
        for i in (0..N).rev() {
            // N slots, capacity N.
            let _ = free.push(i as u16);
        }
        Slab {
            slots: core::array::from_fn(|_| Slot { generation: 0, retired: false, value: None }),
            free,
            retired: 0,
        }
    }

    /// Entries present.
    pub(crate) fn len(&self) -> usize {
        N - self.free.len() - self.retired
    }

    /// How many inserts would succeed.
    pub(crate) fn vacancies(&self) -> usize {
        self.free.len()
    }

    /// Whether an insert would fail.
    pub(crate) fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// The key the `n`-th insert from now would return (0 for the next),
    /// if nothing is removed in between.
    pub(crate) fn nth_next_key(&self, n: usize) -> Option<Key> {
        let at = self.free.len().checked_sub(n + 1)?;
        let index = self.free[at];
        Some(Key { index, generation: self.slots[usize::from(index)].generation })
    }

    /// The key the next [`insert`](Self::insert) would return, if any.
    pub(crate) fn next_key(&self) -> Option<Key> {
        self.nth_next_key(0)
    }

    /// Stores `value`; `Err(value)` when no slot is free.
    pub(crate) fn insert(&mut self, value: T) -> Result<Key, T> {
        let Some(index) = self.free.pop() else { return Err(value) };
        let slot = &mut self.slots[usize::from(index)];
        slot.value = Some(value);
        Ok(Key { index, generation: slot.generation })
    }

    /// The entry `key` names, if it is still there.
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(usize::from(key.index))?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The entry `key` names, mutably.
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(usize::from(key.index))?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The entry in slot `index`, whatever its generation, with its key.
    pub(crate) fn at(&self, index: u16) -> Option<(Key, &T)> {
        let slot = self.slots.get(usize::from(index))?;
        let key = Key { index, generation: slot.generation };
        slot.value.as_ref().map(|v| (key, v))
    }

    /// The entry in slot `index`, mutably.
    pub(crate) fn at_mut(&mut self, index: u16) -> Option<(Key, &mut T)> {
        let slot = self.slots.get_mut(usize::from(index))?;
        let key = Key { index, generation: slot.generation };
        slot.value.as_mut().map(|v| (key, v))
    }

    /// Removes the entry `key` names and advances the slot's generation (or
    /// retires the slot if the generation would wrap).
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(usize::from(key.index))?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        match slot.generation.checked_add(1) {
            Some(g) => {
                slot.generation = g;
                // Every slot is in `free` at most once: capacity N.
                let _ = self.free.push(key.index);
            }
            None => {
                slot.retired = true;
                self.retired += 1;
            }
        }
        Some(value)
    }

    /// Every entry with its key, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let key = Key { index: i as u16, generation: s.generation };
            s.value.as_ref().map(|v| (key, v))
        })
    }

    /// Every entry, mutably, in slot order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.value.as_mut())
    }

    /// Sets a vacant slot's generation (tests of the wrap rule).
    #[cfg(test)]
    pub(crate) fn set_generation(&mut self, index: usize, generation: u32) {
        self.slots[index].generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_never_reaches_the_next_entry_of_its_slot() {
        let mut s: Slab<u32, 2> = Slab::new();
        let a = s.insert(1).unwrap();
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2).unwrap();
        assert_eq!(a.index, b.index);
        assert_ne!(a.generation, b.generation);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&2));
    }

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let mut s: Slab<u32, 2> = Slab::new();
        s.set_generation(0, u32::MAX);
        let last = s.insert(7).unwrap();
        assert_eq!(last, Key { index: 0, generation: u32::MAX });
        s.remove(last).unwrap();
        // Slot 0 is never handed out again: the next insert takes slot 1,
        // and once slot 1 is taken the slab is full.
        let other = s.insert(8).unwrap();
        assert_eq!(other.index, 1);
        assert!(s.is_full());
        assert_eq!(s.insert(9), Err(9));
        assert_eq!(s.get(last), None);
        assert_eq!(s.get(Key { index: 0, generation: 0 }), None);
    }

    #[test]
    fn full_slab_refuses_and_keeps_the_value() {
        let mut s: Slab<u8, 1> = Slab::new();
        s.insert(1).unwrap();
        assert_eq!(s.insert(2), Err(2));
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_key(), None);
    }

    #[test]
    fn keys_out_of_range_find_nothing() {
        let s: Slab<u8, 1> = Slab::new();
        assert_eq!(s.get(Key { index: 5, generation: 0 }), None);
        assert!(s.at(9).is_none());
    }
}
