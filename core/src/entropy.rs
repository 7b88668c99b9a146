//! Entropy as an input.
//!
//! The core never asks the operating system for randomness. Every call that
//! needs random bytes (ephemeral keys, session indices, retransmission jitter)
//! takes an [`Entropy`] source from the caller: the adapters wrap the OS
//! generator, a simulation wraps a seeded [`HashDrbg`], so one seed reproduces
//! a whole run byte for byte.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A source of random bytes supplied by the caller.
///
/// Implementations used outside tests and simulations must be cryptographically
/// secure: ephemeral Diffie-Hellman keys are drawn from it.
pub trait Entropy {
    /// Fills `dst` with random bytes.
    fn fill_bytes(&mut self, dst: &mut [u8]);

    /// A random `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    /// A uniformly random value in `0..bound` (`0` when `bound` is zero).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Rejection sampling keeps the result exactly uniform.
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            let v = u64::from_le_bytes(b);
            if v < zone {
                return v % bound;
            }
        }
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        (**self).fill_bytes(dst);
    }
}

/// A deterministic generator: SHA-256 in counter mode over a 32-byte seed.
///
/// Same seed, same stream, on every platform. Secure as long as the seed is
/// secret and uniformly random (for example from a hardware generator on a
/// microcontroller); with a public seed it is only fit for tests and
/// simulations, which is what it is mostly used for.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HashDrbg {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl HashDrbg {
    /// A generator whose whole output is determined by `seed`.
    #[must_use]
    pub fn new(seed: [u8; 32]) -> Self {
        HashDrbg { seed, counter: 0, block: [0; 32], used: 32 }
    }

    /// A generator seeded from a small number (simulations and tests).
    #[must_use]
    pub fn from_u64(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self::new(s)
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(b"peercollab hash-drbg v1\0");
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        self.block.copy_from_slice(&h.finalize());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl Entropy for HashDrbg {
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            if self.used == self.block.len() {
                self.refill();
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}

impl core::fmt::Debug for HashDrbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HashDrbg").field("counter", &self.counter).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream_regardless_of_chunking() {
        let mut a = HashDrbg::from_u64(7);
        let mut b = HashDrbg::from_u64(7);
        let mut x = [0u8; 100];
        a.fill_bytes(&mut x);
        let mut y = [0u8; 100];
        let (y1, y2) = y.split_at_mut(33);
        b.fill_bytes(y1);
        b.fill_bytes(y2);
        assert_eq!(x, y);
        let mut c = HashDrbg::from_u64(8);
        let mut z = [0u8; 100];
        c.fill_bytes(&mut z);
        assert_ne!(x, z);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = HashDrbg::from_u64(1);
        for bound in [1u64, 2, 3, 334, u64::MAX] {
            for _ in 0..50 {
                assert!(r.below(bound) < bound);
            }
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn debug_does_not_print_the_seed() {
        let r = HashDrbg::new([0xAB; 32]);
        let mut s = heapless::String::<128>::new();
        core::fmt::write(&mut s, format_args!("{r:?}")).ok();
        assert!(!s.contains("171"), "{s}");
    }
}
