//! SymmetricState (Noise §5.2).

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;
use super::cipher::CipherState;
use super::primitives::{HASH_LEN, hash, hkdf2, hkdf3};

/// The chaining key, the handshake hash and the current CipherState.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricState {
    ck: [u8; HASH_LEN],
    h: [u8; HASH_LEN],
    cs: CipherState,
}

impl SymmetricState {
    /// `InitializeSymmetric(protocol_name)`.
    #[must_use]
    pub fn initialize(protocol_name: &[u8]) -> Self {
        let h = if protocol_name.len() <= HASH_LEN {
            let mut h = [0u8; HASH_LEN];
            h[..protocol_name.len()].copy_from_slice(protocol_name);
            h
        } else {
            hash(&[protocol_name])
        };
        SymmetricState { ck: h, h, cs: CipherState::default() }
    }

    /// `MixKey(ikm)`.
    pub fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, mut k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cs = CipherState::new(k);
        k.zeroize();
    }

    /// `MixHash(data)`.
    pub fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// `MixKeyAndHash(ikm)` (pre-shared keys).
    pub fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let (ck, temp_h, mut k) = hkdf3(&self.ck, ikm);
        self.ck = ck;
        self.mix_hash(&temp_h);
        self.cs = CipherState::new(k);
        k.zeroize();
    }

    /// Whether a key has been mixed in yet.
    #[must_use]
    pub fn has_key(&self) -> bool {
        self.cs.has_key()
    }

    /// `EncryptAndHash(plaintext)` into `out`; returns the bytes written.
    pub fn encrypt_and_hash(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let n = self.cs.encrypt_with_ad(&self.h, plaintext, out)?;
        self.mix_hash(&out[..n]);
        Ok(n)
    }

    /// `DecryptAndHash(ciphertext)` into `out`; returns the plaintext length.
    pub fn decrypt_and_hash(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let n = self.cs.decrypt_with_ad(&self.h, ciphertext, out)?;
        self.mix_hash(ciphertext);
        Ok(n)
    }

    /// The handshake hash `h`.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.h
    }

    /// `Split()`: the initiator-to-responder and responder-to-initiator states.
    #[must_use]
    pub fn split(&self) -> (CipherState, CipherState) {
        let (mut k1, mut k2) = hkdf2(&self.ck, &[]);
        let pair = (CipherState::new(k1), CipherState::new(k2));
        k1.zeroize();
        k2.zeroize();
        pair
    }
}

impl core::fmt::Debug for SymmetricState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SymmetricState")
            .field("h", &crate::util::Hex(&self.h))
            .field("cs", &self.cs)
            .finish_non_exhaustive()
    }
}
