//! The shared pool of invitation-body buffers.
//!
//! An invitation's body — its message and application data, up to
//! [`MAX_BODY`] bytes — is too large to give every invitation a buffer of
//! its own, and most invitations carry little. So bodies live in a small
//! pool the caller owns and lends to every call that may need it: the
//! inviter keeps its body there until the invitee holds all of it, the
//! invitee reassembles into it and keeps it for the application until the
//! invitation closes. When no buffer is free, an inviter's `invite` fails
//! with a typed error and an invitee answers Busy: nothing is dropped.
//!
//! Buffers are named by [`BufferId`]s that carry a generation, so an id kept
//! after its buffer was released can never reach the next user's bytes.
//! Released buffers are zeroed: application data does not outlive its
//! invitation in memory.

use zeroize::Zeroize;

use super::message::MAX_BODY;

/// Names one buffer of a pool for as long as it is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferId {
    index: u16,
    generation: u32,
}

/// Storage for invitation bodies. [`DataPool`] is the implementation the
/// crate provides; the trait lets an embedder place buffers where it wants.
pub trait BufferPool {
    /// Takes a free buffer, or `None` when all are taken.
    fn take(&mut self) -> Option<BufferId>;
    /// Returns a buffer to the pool (zeroed). Releasing a stale id does
    /// nothing.
    fn release(&mut self, id: BufferId);
    /// The bytes of a taken buffer; `None` for a stale id.
    fn get(&self, id: BufferId) -> Option<&[u8; MAX_BODY]>;
    /// The bytes of a taken buffer, mutably; `None` for a stale id.
    fn get_mut(&mut self, id: BufferId) -> Option<&mut [u8; MAX_BODY]>;
    /// Buffers currently free.
    fn free(&self) -> usize;
}

#[derive(Clone)]
struct Slot {
    generation: u32,
    taken: bool,
    bytes: [u8; MAX_BODY],
}

/// A pool of `N` body buffers of [`MAX_BODY`] bytes each (17,404 bytes).
///
/// `new` is a `const fn`, so a pool can live in a `static` on a device
/// without a heap.
#[derive(Clone)]
pub struct DataPool<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> DataPool<N> {
    /// A pool with every buffer free.
    #[must_use]
    pub const fn new() -> Self {
        DataPool {
            slots: [const { Slot { generation: 0, taken: false, bytes: [0; MAX_BODY] } }; N],
        }
    }

    /// Number of buffers.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    fn slot(&self, id: BufferId) -> Option<&Slot> {
        self.slots.get(usize::from(id.index)).filter(|s| s.taken && s.generation == id.generation)
    }
}

impl<const N: usize> Default for DataPool<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> BufferPool for DataPool<N> {
    fn take(&mut self) -> Option<BufferId> {
        let (i, slot) = self.slots.iter_mut().enumerate().find(|(_, s)| !s.taken)?;
        let index = u16::try_from(i).ok()?;
        slot.taken = true;
        Some(BufferId { index, generation: slot.generation })
    }

    fn release(&mut self, id: BufferId) {
        if let Some(slot) = self.slots.get_mut(usize::from(id.index))
            && slot.taken
            && slot.generation == id.generation
        {
            slot.bytes.zeroize();
            slot.taken = false;
            slot.generation = slot.generation.wrapping_add(1);
        }
    }

    fn get(&self, id: BufferId) -> Option<&[u8; MAX_BODY]> {
        self.slot(id).map(|s| &s.bytes)
    }

    fn get_mut(&mut self, id: BufferId) -> Option<&mut [u8; MAX_BODY]> {
        self.slots
            .get_mut(usize::from(id.index))
            .filter(|s| s.taken && s.generation == id.generation)
            .map(|s| &mut s.bytes)
    }

    fn free(&self) -> usize {
        self.slots.iter().filter(|s| !s.taken).count()
    }
}

impl<const N: usize> core::fmt::Debug for DataPool<N> {
    /// Occupancy only; never the bytes.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DataPool").field("capacity", &N).field("free", &self.free()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_refuses_and_a_release_frees_one_buffer() {
        let mut pool = DataPool::<2>::new();
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_ne!(a, b);
        assert_eq!(pool.take(), None);
        assert_eq!(pool.free(), 0);
        pool.release(a);
        assert_eq!(pool.free(), 1);
        assert!(pool.take().is_some());
    }

    #[test]
    fn a_released_id_never_reaches_the_next_users_bytes() {
        let mut pool = DataPool::<1>::new();
        let old = pool.take().unwrap();
        pool.get_mut(old).unwrap()[0] = 7;
        pool.release(old);
        let new = pool.take().unwrap();
        assert_eq!(pool.get(old), None);
        assert_eq!(pool.get_mut(old), None);
        assert_eq!(pool.get(new).unwrap()[0], 0, "released buffers are zeroed");
        // Releasing the stale id leaves the new owner's buffer taken.
        pool.release(old);
        assert_eq!(pool.free(), 0);
        assert!(pool.get(new).is_some());
    }

    #[test]
    fn an_empty_pool_has_nothing_to_give() {
        let mut pool = DataPool::<0>::new();
        assert_eq!(pool.take(), None);
        assert_eq!(pool.capacity(), 0);
    }
}
