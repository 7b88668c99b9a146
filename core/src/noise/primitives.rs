//! The suite's primitives: X25519, ChaCha20-Poly1305, SHA-256, HMAC and
//! Noise's HKDF.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use super::Error;

/// Length of an X25519 public key or shared secret.
pub const DH_LEN: usize = 32;
/// Length of a SHA-256 output.
pub const HASH_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Noise's maximum message length.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// An X25519 key pair whose public half is computed once, at construction.
#[derive(Clone)]
pub struct KeyPair {
    secret: StaticSecret,
    public: [u8; DH_LEN],
}

impl KeyPair {
    /// The key pair of a (clamped) 32-byte private key.
    #[must_use]
    pub fn from_secret_bytes(mut bytes: [u8; DH_LEN]) -> Self {
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        crate::ops::count(crate::ops::Op::X25519Public);
        let public = PublicKey::from(&secret).to_bytes();
        KeyPair { secret, public }
    }

    /// A fresh key pair drawn from `rng`.
    pub fn generate(rng: &mut impl crate::Entropy) -> Self {
        let mut b = [0u8; DH_LEN];
        rng.fill_bytes(&mut b);
        Self::from_secret_bytes(b)
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> &[u8; DH_LEN] {
        &self.public
    }

    /// The private key bytes (for storing the key; handle with care).
    #[must_use]
    pub fn secret_bytes(&self) -> [u8; DH_LEN] {
        self.secret.to_bytes()
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &crate::util::Hex(&self.public))
            .finish_non_exhaustive()
    }
}

/// X25519 between a private and a public key; refuses a result of all zeros
/// (the public key was a low-order point).
pub fn dh(secret: &KeyPair, public: &[u8; DH_LEN]) -> Result<[u8; DH_LEN], Error> {
    dh_secret(secret.secret(), public)
}

pub(crate) fn dh_secret(
    secret: &StaticSecret,
    public: &[u8; DH_LEN],
) -> Result<[u8; DH_LEN], Error> {
    crate::ops::count(crate::ops::Op::X25519Dh);
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    let contributory = shared.was_contributory()
        || !crate::mutation::enabled(crate::mutation::Defence::Contributory);
    if contributory { Ok(shared.to_bytes()) } else { Err(Error::NonContributory) }
}

/// SHA-256 of the concatenation of `parts`.
#[must_use]
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    let mut bytes = 0;
    for p in parts {
        h.update(p);
        bytes += p.len();
    }
    crate::ops::count(crate::ops::Op::Sha256(bytes));
    h.finalize().into()
}

/// HMAC-SHA256 keyed by `key` over the concatenation of `parts`.
#[must_use]
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; HASH_LEN],
    };
    let mut bytes = 0;
    for p in parts {
        m.update(p);
        bytes += p.len();
    }
    crate::ops::count(crate::ops::Op::Hmac(bytes));
    m.finalize().into_bytes().into()
}

/// Noise's HKDF with two outputs.
pub(crate) fn hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut temp = hmac(ck, &[ikm]);
    let o1 = hmac(&temp, &[&[1]]);
    let o2 = hmac(&temp, &[&o1, &[2]]);
    temp.zeroize();
    (o1, o2)
}

/// Noise's HKDF with three outputs.
pub(crate) fn hkdf3(
    ck: &[u8; HASH_LEN],
    ikm: &[u8],
) -> ([u8; HASH_LEN], [u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut temp = hmac(ck, &[ikm]);
    let o1 = hmac(&temp, &[&[1]]);
    let o2 = hmac(&temp, &[&o1, &[2]]);
    let o3 = hmac(&temp, &[&o2, &[3]]);
    temp.zeroize();
    (o1, o2, o3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_x25519_vector() {
        // RFC 7748 §6.1.
        let a = KeyPair::from_secret_bytes(crate::util::hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let b = KeyPair::from_secret_bytes(crate::util::hex32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            a.public(),
            &crate::util::hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let k =
            crate::util::hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(dh(&a, b.public()).ok(), Some(k));
        assert_eq!(dh(&b, a.public()).ok(), Some(k));
    }

    #[test]
    fn low_order_public_key_is_refused() {
        let a = KeyPair::from_secret_bytes([9; 32]);
        assert_eq!(dh(&a, &[0; 32]), Err(Error::NonContributory));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(dh(&a, &one), Err(Error::NonContributory));
    }

    #[test]
    fn rfc4231_hmac_sha256_case_2() {
        let mac = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac,
            crate::util::hex32("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
