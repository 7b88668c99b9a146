//! Fuzzing-only transparent cryptography.
//!
//! With the cargo feature `fuzzing-transparent-crypto`, which compiles only
//! under `cfg(fuzzing)` (cargo-fuzz sets it; anywhere else the feature is a
//! compile error), a process-wide switch, `set_transparent_crypto`, makes
//! the symmetric cryptography transparent so a fuzzer can forge handshake
//! frames and transport payloads and reach the states behind them:
//!
//! - AEAD (`noise::cipher`, ChaCha20-Poly1305): sealing copies the
//!   plaintext and appends a 16-byte all-zero tag; opening accepts only an
//!   all-zero tag and copies the body;
//! - mac1, mac2 and every other [`MacKey::mac`](crate::mac::MacKey::mac)
//!   are all zeros (so a zero MAC verifies and any other does not);
//! - sealed cookies (XChaCha20-Poly1305): the cookie in the clear and an
//!   all-zero tag, opened only with that tag.
//!
//! Diffie-Hellman, hashing, key derivation and signatures stay real. The
//! switch is off at start, and targets that never turn it on keep the real
//! cryptography (features unify across a fuzz workspace; the switch does
//! not). Without the feature [`transparent_crypto`] is a constant `false`
//! and nothing here exists to turn it on: release and test builds cannot
//! get transparent cryptography.

#[cfg(all(feature = "fuzzing-transparent-crypto", not(fuzzing)))]
compile_error!(
    "the `fuzzing-transparent-crypto` feature of peercollab-core makes its cryptography \
     forgeable: it builds only under cfg(fuzzing) (cargo fuzz)"
);

#[cfg(feature = "fuzzing-transparent-crypto")]
static TRANSPARENT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turns transparent cryptography on or off for the whole process (see the
/// [module documentation](self)). Only fuzz targets can call it.
#[cfg(feature = "fuzzing-transparent-crypto")]
pub fn set_transparent_crypto(on: bool) {
    TRANSPARENT.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the cryptography is transparent now: always `false` unless the
/// feature is compiled in (fuzzing only) and a target turned it on.
#[must_use]
#[inline]
pub fn transparent_crypto() -> bool {
    #[cfg(feature = "fuzzing-transparent-crypto")]
    {
        TRANSPARENT.load(core::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "fuzzing-transparent-crypto"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use crate::mac::MacKey;
    use crate::noise::CipherState;

    #[test]
    fn nothing_is_transparent_by_default() {
        const { assert!(!cfg!(feature = "fuzzing-transparent-crypto"), "off outside fuzzing") };
        assert!(!super::transparent_crypto());
        // A sealed message carries a real tag, and an all-zero tag is refused.
        let mut tx = CipherState::new([7; 32]);
        let mut ct = [0u8; 21];
        assert_eq!(tx.encrypt_with_ad(b"", b"hello", &mut ct), Ok(21));
        assert_ne!(&ct[..5], b"hello");
        assert_ne!(ct[5..], [0; 16]);
        let forged = *b"hello\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        let mut out = [0u8; 5];
        let mut rx = CipherState::new([7; 32]);
        assert!(rx.decrypt_with_ad(b"", &forged, &mut out).is_err());
        // MACs are real: not zero, and zero does not verify.
        let k = MacKey::mac1(&[1; 32]);
        assert_ne!(k.mac(b"frame"), [0; 16]);
        assert!(!k.verify(b"frame", &[0; 16]));
        // A sealed cookie is not in the clear; a zero tag does not open.
        let c = MacKey::cookie(&[3; 32]);
        let sealed = c.seal_cookie(&[4; 24], &[5; 16], &[6; 16]);
        assert_ne!(sealed[..16], [5; 16]);
        let mut clear = [0u8; 32];
        clear[..16].copy_from_slice(&[5; 16]);
        assert_eq!(c.open_cookie(&[4; 24], &clear, &[6; 16]), None);
    }
}
