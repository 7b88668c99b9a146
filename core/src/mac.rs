//! The MACs of handshake frames and the sealed cookie.
//!
//! - **mac1** of an initiation is keyed by `SHA-256("peercollab mac1 v1\0" ‖
//!   responder static key)` (32 zero bytes in XX, where the initiator knows no
//!   key): a responder drops junk from senders who do not know its key before
//!   any Diffie-Hellman. mac1 of a response is keyed the same way by the
//!   initiator's ephemeral key.
//! - **mac2** of an initiation is keyed by a cookie the responder handed out
//!   under load, or is all zeros.
//! - A **cookie reply** carries the cookie sealed with XChaCha20-Poly1305
//!   under `SHA-256("peercollab cookie v1\0" ‖ K)`, where K is the responder's
//!   static key in IK and the initiator's ephemeral key in XX, with the
//!   triggering initiation's mac1 as associated data (after WireGuard §5.4.7).
//!
//! All MACs are HMAC-SHA256 truncated to 16 bytes and compared in constant
//! time.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::noise::{hash, hmac};
use crate::util::ct_eq;
use crate::wire::{COOKIE_LEN, COOKIE_NONCE_LEN, MAC_LEN};

const MAC1_LABEL: &[u8] = b"peercollab mac1 v1\0";
const COOKIE_LABEL: &[u8] = b"peercollab cookie v1\0";

/// The key material mac1 uses in XX, where the initiator knows no static key.
pub const XX_MAC1_KEY_MATERIAL: [u8; 32] = [0; 32];

/// A derived MAC or cookie-sealing key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// The mac1 key for frames addressed to the holder of `public_key`.
    #[must_use]
    pub fn mac1(public_key: &[u8; 32]) -> Self {
        MacKey(hash(&[MAC1_LABEL, public_key]))
    }

    /// The key sealing cookies for the holder of `public_key`.
    #[must_use]
    pub fn cookie(public_key: &[u8; 32]) -> Self {
        MacKey(hash(&[COOKIE_LABEL, public_key]))
    }

    /// A mac2 key: the cookie itself.
    #[must_use]
    pub fn from_cookie(cookie: &[u8; COOKIE_LEN]) -> Self {
        let mut k = [0u8; 32];
        k[..COOKIE_LEN].copy_from_slice(cookie);
        MacKey(k)
    }

    /// HMAC-SHA256 of `data`, truncated to 16 bytes.
    #[must_use]
    pub fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        // --- fuzzing only (`crate::fuzzing`): every MAC is zeros. A
        // constant `false` without the feature.
        if crate::fuzzing::transparent_crypto() {
            return [0; MAC_LEN];
        }
        // --- end fuzzing only
        let full = hmac(&self.0, &[data]);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Whether `mac` is the MAC of `data`, in constant time.
    #[must_use]
    pub fn verify(&self, data: &[u8], mac: &[u8; MAC_LEN]) -> bool {
        ct_eq(&self.mac(data), mac)
    }

    /// Seals `cookie` for a cookie reply.
    #[must_use]
    pub fn seal_cookie(
        &self,
        nonce: &[u8; COOKIE_NONCE_LEN],
        cookie: &[u8; COOKIE_LEN],
        mac1: &[u8; MAC_LEN],
    ) -> [u8; COOKIE_LEN + 16] {
        crate::ops::count(crate::ops::Op::AeadSeal(COOKIE_LEN + MAC_LEN));
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let mut out = [0u8; COOKIE_LEN + 16];
        let (body, tag_dst) = out.split_at_mut(COOKIE_LEN);
        body.copy_from_slice(cookie);
        // --- fuzzing only (`crate::fuzzing`): the cookie in the clear and a
        // zero tag. A constant `false` without the feature.
        if crate::fuzzing::transparent_crypto() {
            return out;
        }
        // --- end fuzzing only
        // Sealing 16 bytes under a 32-byte key cannot fail.
        if let Ok(tag) =
            cipher.encrypt_inout_detached(&XNonce::from(*nonce), mac1, InOutBuf::from(body))
        {
            tag_dst.copy_from_slice(&tag);
        }
        out
    }

    /// Opens a sealed cookie; `None` if it was not sealed for this key and mac1.
    #[must_use]
    pub fn open_cookie(
        &self,
        nonce: &[u8; COOKIE_NONCE_LEN],
        sealed: &[u8; COOKIE_LEN + 16],
        mac1: &[u8; MAC_LEN],
    ) -> Option<[u8; COOKIE_LEN]> {
        crate::ops::count(crate::ops::Op::AeadOpen(COOKIE_LEN + MAC_LEN));
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&sealed[..COOKIE_LEN]);
        // --- fuzzing only (`crate::fuzzing`): only a zero tag opens. A
        // constant `false` without the feature.
        if crate::fuzzing::transparent_crypto() {
            return sealed[COOKIE_LEN..].iter().all(|&b| b == 0).then_some(cookie);
        }
        // --- end fuzzing only
        let tag = Tag::try_from(&sealed[COOKIE_LEN..]).ok()?;
        cipher
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                mac1,
                InOutBuf::from(&mut cookie[..]),
                &tag,
            )
            .ok()?;
        Some(cookie)
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_verifies_only_the_same_data_under_the_same_key() {
        let k = MacKey::mac1(&[1; 32]);
        let m = k.mac(b"frame");
        assert!(k.verify(b"frame", &m));
        assert!(!k.verify(b"framf", &m));
        assert!(!MacKey::mac1(&[2; 32]).verify(b"frame", &m));
    }

    #[test]
    fn sealed_cookie_opens_only_with_its_key_and_mac1() {
        let k = MacKey::cookie(&[3; 32]);
        let sealed = k.seal_cookie(&[4; 24], &[5; 16], &[6; 16]);
        assert_eq!(k.open_cookie(&[4; 24], &sealed, &[6; 16]), Some([5; 16]));
        assert_eq!(k.open_cookie(&[4; 24], &sealed, &[7; 16]), None);
        assert_eq!(MacKey::cookie(&[9; 32]).open_cookie(&[4; 24], &sealed, &[6; 16]), None);
        let mut bad = sealed;
        bad[0] ^= 1;
        assert_eq!(k.open_cookie(&[4; 24], &bad, &[6; 16]), None);
    }
}
