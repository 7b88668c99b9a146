//! Counts of the primitive cryptographic operations the core performs:
//! instrumentation for benchmarks and tests, so that "this invitation did
//! exactly these operations" and "junk cost no Diffie-Hellman" are
//! assertions rather than estimates.
//!
//! With the `op-counters` feature every primitive bumps a process-wide
//! relaxed atomic counter (32-bit, so it exists on every Cortex-M);
//! [`snapshot`] reads them and [`OpCounts::since`] gives the work of a
//! region. The counters are shared by every agent and thread in the
//! process: read them around single-threaded regions. Without the feature
//! nothing is counted and [`snapshot`] is all zeros.

/// How many of each primitive operation, and the bytes they covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OpCounts {
    /// X25519 public keys computed from private ones (ephemeral and static
    /// key generation): fixed-base scalar multiplications.
    pub x25519_public: u32,
    /// X25519 Diffie-Hellman operations: variable-base scalar
    /// multiplications.
    pub x25519_dh: u32,
    /// Ed25519 signatures made.
    pub ed25519_sign: u32,
    /// Ed25519 signatures checked (`verify_strict`).
    pub ed25519_verify: u32,
    /// AEAD encryptions (ChaCha20-Poly1305, XChaCha20-Poly1305).
    pub aead_seal: u32,
    /// AEAD decryptions attempted, authentic or not.
    pub aead_open: u32,
    /// Plaintext and associated-data bytes the AEAD operations covered.
    pub aead_bytes: u32,
    /// SHA-256 hashes (not counting those inside HMAC).
    pub sha256: u32,
    /// Bytes hashed by them.
    pub sha256_bytes: u32,
    /// HMAC-SHA256 computations (HKDF steps, MACs).
    pub hmac: u32,
    /// Bytes the HMACs covered (message only, not key).
    pub hmac_bytes: u32,
}

impl OpCounts {
    /// The operations counted between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: OpCounts) -> OpCounts {
        OpCounts {
            x25519_public: self.x25519_public.wrapping_sub(earlier.x25519_public),
            x25519_dh: self.x25519_dh.wrapping_sub(earlier.x25519_dh),
            ed25519_sign: self.ed25519_sign.wrapping_sub(earlier.ed25519_sign),
            ed25519_verify: self.ed25519_verify.wrapping_sub(earlier.ed25519_verify),
            aead_seal: self.aead_seal.wrapping_sub(earlier.aead_seal),
            aead_open: self.aead_open.wrapping_sub(earlier.aead_open),
            aead_bytes: self.aead_bytes.wrapping_sub(earlier.aead_bytes),
            sha256: self.sha256.wrapping_sub(earlier.sha256),
            sha256_bytes: self.sha256_bytes.wrapping_sub(earlier.sha256_bytes),
            hmac: self.hmac.wrapping_sub(earlier.hmac),
            hmac_bytes: self.hmac_bytes.wrapping_sub(earlier.hmac_bytes),
        }
    }

    /// The public-key operations, the costly ones: what junk must never
    /// cause.
    #[must_use]
    pub fn public_key_ops(&self) -> u32 {
        self.x25519_public + self.x25519_dh + self.ed25519_sign + self.ed25519_verify
    }
}

/// The counters now (all zeros without the `op-counters` feature).
#[must_use]
pub fn snapshot() -> OpCounts {
    imp::snapshot()
}

/// One operation of a kind, covering `bytes` bytes.
#[derive(Clone, Copy, Debug)]
// Without the feature nothing reads the byte counts.
#[cfg_attr(not(feature = "op-counters"), allow(dead_code))]
pub(crate) enum Op {
    X25519Public,
    X25519Dh,
    Ed25519Sign,
    Ed25519Verify,
    AeadSeal(usize),
    AeadOpen(usize),
    Sha256(usize),
    Hmac(usize),
}

/// Counts `op` (nothing without the `op-counters` feature).
#[inline(always)]
pub(crate) fn count(op: Op) {
    imp::count(op);
}

#[cfg(feature = "op-counters")]
mod imp {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

    use super::{Op, OpCounts};

    const N: usize = 11;
    static COUNTERS: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];

    fn bump(i: usize, by: usize) {
        if let Some(c) = COUNTERS.get(i) {
            c.fetch_add(u32::try_from(by).unwrap_or(u32::MAX), Relaxed);
        }
    }

    pub(super) fn count(op: Op) {
        match op {
            Op::X25519Public => bump(0, 1),
            Op::X25519Dh => bump(1, 1),
            Op::Ed25519Sign => bump(2, 1),
            Op::Ed25519Verify => bump(3, 1),
            Op::AeadSeal(n) => {
                bump(4, 1);
                bump(6, n);
            }
            Op::AeadOpen(n) => {
                bump(5, 1);
                bump(6, n);
            }
            Op::Sha256(n) => {
                bump(7, 1);
                bump(8, n);
            }
            Op::Hmac(n) => {
                bump(9, 1);
                bump(10, n);
            }
        }
    }

    pub(super) fn snapshot() -> OpCounts {
        let c = |i: usize| COUNTERS.get(i).map_or(0, |c| c.load(Relaxed));
        OpCounts {
            x25519_public: c(0),
            x25519_dh: c(1),
            ed25519_sign: c(2),
            ed25519_verify: c(3),
            aead_seal: c(4),
            aead_open: c(5),
            aead_bytes: c(6),
            sha256: c(7),
            sha256_bytes: c(8),
            hmac: c(9),
            hmac_bytes: c(10),
        }
    }
}

#[cfg(not(feature = "op-counters"))]
mod imp {
    use super::{Op, OpCounts};

    #[inline(always)]
    pub(super) fn count(_: Op) {}

    pub(super) fn snapshot() -> OpCounts {
        OpCounts::default()
    }
}
