//! CipherState (Noise §5.1) and the transport state a finished handshake
//! becomes.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;
use super::primitives::{DH_LEN, HASH_LEN, TAG_LEN};

/// The nonce Noise reserves: a CipherState never encrypts with it.
const RESERVED_NONCE: u64 = u64::MAX;

/// A key and a nonce (Noise §5.1). Without a key, "encryption" is the identity.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct CipherState {
    key: Option<[u8; 32]>,
    n: u64,
}

fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(b)
}

impl CipherState {
    /// A CipherState holding `key` with nonce zero.
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        CipherState { key: Some(key), n: 0 }
    }

    /// Whether a key is set.
    #[must_use]
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The next nonce this state will use.
    #[must_use]
    pub fn nonce(&self) -> u64 {
        self.n
    }

    /// Sets the nonce (Noise's `SetNonce`, for out-of-order transport).
    pub fn set_nonce(&mut self, n: u64) {
        self.n = n;
    }

    /// Encrypts `plaintext` with associated data `ad` into `out`, returning the
    /// number of bytes written (`plaintext.len() + 16` with a key). Refuses at
    /// the reserved nonce.
    pub fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = seal(self.key.as_ref(), self.n, ad, plaintext, out)?;
        if self.key.is_some() {
            self.n += 1;
        }
        Ok(len)
    }

    /// Decrypts `ciphertext` into `out`; the nonce advances only on success.
    pub fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = open(self.key.as_ref(), self.n, ad, ciphertext, out)?;
        if self.key.is_some() {
            self.n += 1;
        }
        Ok(len)
    }

    /// Encrypts with an explicit nonce, leaving the internal nonce untouched.
    pub fn encrypt_with_nonce(
        &self,
        n: u64,
        ad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        seal(self.key.as_ref(), n, ad, plaintext, out)
    }

    /// Decrypts with an explicit nonce, leaving the internal nonce untouched.
    pub fn decrypt_with_nonce(
        &self,
        n: u64,
        ad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        open(self.key.as_ref(), n, ad, ciphertext, out)
    }

    /// Noise's `Rekey`: the key becomes the first 32 bytes of encrypting zeros
    /// with the reserved nonce.
    pub fn rekey(&mut self) {
        if let Some(k) = self.key.as_mut() {
            let mut block = [0u8; 32];
            crate::ops::count(crate::ops::Op::AeadSeal(block.len()));
            let cipher = ChaCha20Poly1305::new(&(*k).into());
            // Encrypting 32 bytes under a valid key cannot fail.
            if cipher
                .encrypt_inout_detached(&nonce(RESERVED_NONCE), &[], InOutBuf::from(&mut block[..]))
                .is_ok()
            {
                *k = block;
            }
            block.zeroize();
        }
    }
}

fn seal(
    key: Option<&[u8; 32]>,
    n: u64,
    ad: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let Some(key) = key else {
        let dst = out.get_mut(..plaintext.len()).ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(plaintext);
        return Ok(plaintext.len());
    };
    if n == RESERVED_NONCE {
        return Err(Error::NonceExhausted);
    }
    let total = plaintext.len() + TAG_LEN;
    let dst = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let (body, tag_dst) = dst.split_at_mut(plaintext.len());
    // --- fuzzing only (`crate::fuzzing`): transparent AEAD, plaintext and a
    // zero tag. A constant `false` without the feature.
    if crate::fuzzing::transparent_crypto() {
        body.copy_from_slice(plaintext);
        tag_dst.fill(0);
        return Ok(total);
    }
    // --- end fuzzing only
    crate::ops::count(crate::ops::Op::AeadSeal(plaintext.len() + ad.len()));
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let buf = InOutBuf::new(plaintext, body).map_err(|_| Error::BufferTooSmall)?;
    let tag = cipher.encrypt_inout_detached(&nonce(n), ad, buf).map_err(|_| Error::BadLength)?;
    tag_dst.copy_from_slice(&tag);
    Ok(total)
}

/// One AEAD decryption of the size of an IK initiation's encrypted static
/// key, under a key nobody uses, whose result is thrown away: work done only
/// to be done (uniform rejection, `spec/agent.md` §4.1).
pub(crate) fn open_discarded() {
    const CIPHERTEXT: [u8; DH_LEN + TAG_LEN] = [0; DH_LEN + TAG_LEN];
    let mut out = [0u8; DH_LEN];
    let _ = core::hint::black_box(open(Some(&[0; 32]), 0, &[0; 32], &CIPHERTEXT, &mut out));
}

fn open(
    key: Option<&[u8; 32]>,
    n: u64,
    ad: &[u8],
    ciphertext: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let Some(key) = key else {
        let dst = out.get_mut(..ciphertext.len()).ok_or(Error::BufferTooSmall)?;
        dst.copy_from_slice(ciphertext);
        return Ok(ciphertext.len());
    };
    if n == RESERVED_NONCE {
        return Err(Error::NonceExhausted);
    }
    let body_len = ciphertext.len().checked_sub(TAG_LEN).ok_or(Error::BadLength)?;
    let (body, tag) = ciphertext.split_at(body_len);
    let dst = out.get_mut(..body_len).ok_or(Error::BufferTooSmall)?;
    // --- fuzzing only (`crate::fuzzing`): transparent AEAD, only a zero tag
    // opens. A constant `false` without the feature.
    if crate::fuzzing::transparent_crypto() {
        if tag.iter().any(|&b| b != 0) {
            return Err(Error::Decrypt);
        }
        dst.copy_from_slice(body);
        return Ok(body_len);
    }
    // --- end fuzzing only
    let tag = Tag::try_from(tag).map_err(|_| Error::BadLength)?;
    crate::ops::count(crate::ops::Op::AeadOpen(body.len() + ad.len()));
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let buf = InOutBuf::new(body, dst).map_err(|_| Error::BufferTooSmall)?;
    // The tag is checked before anything is written to `dst`.
    cipher.decrypt_inout_detached(&nonce(n), ad, buf, &tag).map_err(|_| Error::Decrypt)?;
    Ok(body_len)
}

impl core::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CipherState").field("has_key", &self.has_key()).field("n", &self.n).finish()
    }
}

/// What a finished handshake becomes: one CipherState per direction, the
/// handshake hash (a channel binding) and the peer's static key, if any.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TransportState {
    /// Encrypts what this party sends.
    pub send: CipherState,
    /// Decrypts what this party receives.
    pub recv: CipherState,
    #[zeroize(skip)]
    handshake_hash: [u8; HASH_LEN],
    #[zeroize(skip)]
    remote_static: Option<[u8; 32]>,
}

impl TransportState {
    pub(crate) fn new(
        send: CipherState,
        recv: CipherState,
        h: [u8; HASH_LEN],
        rs: Option<[u8; 32]>,
    ) -> Self {
        TransportState { send, recv, handshake_hash: h, remote_static: rs }
    }

    /// The final handshake hash `h`, unique to this session.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }

    /// The peer's static public key, if the pattern transmitted or pre-shared it.
    #[must_use]
    pub fn remote_static(&self) -> Option<&[u8; 32]> {
        self.remote_static.as_ref()
    }

    /// Encrypts a transport message with the next send nonce.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        self.send.encrypt_with_ad(&[], payload, out)
    }

    /// Decrypts a transport message with the next receive nonce.
    pub fn read_message(&mut self, message: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        self.recv.decrypt_with_ad(&[], message, out)
    }
}

impl core::fmt::Debug for TransportState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TransportState")
            .field("send", &self.send)
            .field("recv", &self.recv)
            .field("handshake_hash", &crate::util::Hex(&self.handshake_hash))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_encrypt_at_the_reserved_nonce() {
        let mut c = CipherState::new([1; 32]);
        c.set_nonce(u64::MAX);
        let mut out = [0u8; 32];
        assert_eq!(c.encrypt_with_ad(&[], b"x", &mut out), Err(Error::NonceExhausted));
        assert_eq!(c.nonce(), u64::MAX);
        c.set_nonce(u64::MAX - 1);
        assert_eq!(c.encrypt_with_ad(&[], b"x", &mut out), Ok(17));
        assert_eq!(c.encrypt_with_ad(&[], b"x", &mut out), Err(Error::NonceExhausted));
    }

    #[test]
    fn failed_decrypt_does_not_advance_the_nonce_or_touch_the_output() {
        let mut tx = CipherState::new([7; 32]);
        let mut rx = CipherState::new([7; 32]);
        let mut ct = [0u8; 21];
        let n = tx.encrypt_with_ad(b"ad", b"hello", &mut ct).unwrap();
        let mut bad = ct;
        bad[0] ^= 1;
        let mut out = [0xEEu8; 5];
        assert_eq!(rx.decrypt_with_ad(b"ad", &bad[..n], &mut out), Err(Error::Decrypt));
        assert_eq!(out, [0xEE; 5]);
        assert_eq!(rx.nonce(), 0);
        assert_eq!(rx.decrypt_with_ad(b"ad", &ct[..n], &mut out), Ok(5));
        assert_eq!(&out, b"hello");
        assert_eq!(rx.nonce(), 1);
    }

    #[test]
    fn short_ciphertext_and_small_buffer_are_errors() {
        let mut c = CipherState::new([1; 32]);
        let mut out = [0u8; 4];
        assert_eq!(c.decrypt_with_ad(&[], &[0; 15], &mut out), Err(Error::BadLength));
        assert_eq!(c.encrypt_with_ad(&[], b"hello", &mut out), Err(Error::BufferTooSmall));
        assert_eq!(c.nonce(), 0);
    }

    #[test]
    fn without_a_key_encryption_is_the_identity() {
        let mut c = CipherState::default();
        let mut out = [0u8; 3];
        assert_eq!(c.encrypt_with_ad(b"ad", b"abc", &mut out), Ok(3));
        assert_eq!(&out, b"abc");
        assert_eq!(c.nonce(), 0);
    }

    #[test]
    fn rfc8439_aead_vector() {
        // RFC 8439 §2.8.2, with its 12-byte nonce 07000000 4041424344454647 =
        // Noise nonce layout (4 zero bytes + LE counter) only when the first
        // word is zero, so the vector is checked through the raw AEAD here.
        let key =
            crate::util::hex32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let cipher = ChaCha20Poly1305::new(&key.into());
        let n = Nonce::from([0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47]);
        let ad = [0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7];
        let mut msg = *b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let tag = cipher.encrypt_inout_detached(&n, &ad, InOutBuf::from(&mut msg[..])).unwrap();
        assert_eq!(&tag[..], &crate::util::hex16("1ae10b594f09e26a7e902ecbd0600691")[..]);
        assert_eq!(&msg[..4], &[0xd3, 0x1a, 0x8d, 0x34]);
    }
}
