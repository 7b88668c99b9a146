//! Identities, static keys and the certificates that bind them.
//!
//! A peer's **identity** is an ed25519 key (Windows' "peer name"). Its Noise
//! handshakes use a separate x25519 **static key** (Noise §14: one key, one
//! purpose). A **certificate** is the identity's signature over a
//! domain-separated label, the static key, an endpoint id (one identity may
//! run several endpoints, each with its own static key) and a serial (a newer
//! certificate of the same endpoint replaces an older one).
//!
//! A [`Certificate`] value is always verified: the only way to get one from
//! bytes is [`Certificate::parse`], which checks the encoding, refuses weak,
//! small-order and non-canonical keys and verifies the signature with
//! `verify_strict`.
//!
//! A certificate only shows that an identity vouches for a key; anybody may
//! certify anybody's public key. That is why each side of a handshake also
//! *states* its identity inside the handshake and the receiver compares it
//! with the identity it expects (see [`crate::session`]).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::Entropy;
use crate::mutation::{Defence, enabled};
use crate::noise::{KeyPair, hash};
use crate::util::{Hex, ct_eq};

/// Length of an encoded certificate.
pub const CERT_LEN: usize = 1 + 32 + 32 + 4 + 8 + 64;
/// Certificate format version.
pub const CERT_VERSION: u8 = 1;
/// Domain-separation label signed in front of every certificate.
pub const CERT_LABEL: &[u8] = b"peercollab static-key certificate v1\0";
/// Label hashed in front of a certificate to name it by hash.
const CERT_HASH_LABEL: &[u8] = b"peercollab certificate hash v1\0";
/// Label hashed in front of an identity key to make its fingerprint.
const FINGERPRINT_LABEL: &[u8] = b"peercollab fingerprint v1\0";
/// Offset of the signature in an encoded certificate.
const SIG_OFFSET: usize = CERT_LEN - 64;

/// Why an identity key or certificate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The encoding has the wrong length.
    BadLength,
    /// The certificate's version byte is not one this implementation knows.
    UnknownVersion,
    /// The identity key is not a valid, canonically encoded ed25519 point.
    InvalidIdentityKey,
    /// The identity key has small order (it would verify forged signatures).
    WeakIdentityKey,
    /// The static key is non-canonical or of small order.
    InvalidStaticKey,
    /// The signature does not verify under `verify_strict`.
    BadSignature,
}

impl core::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            IdentityError::BadLength => "identity data has the wrong length",
            IdentityError::UnknownVersion => "unknown certificate version",
            IdentityError::InvalidIdentityKey => "invalid ed25519 identity key",
            IdentityError::WeakIdentityKey => "weak (small-order) ed25519 identity key",
            IdentityError::InvalidStaticKey => "invalid x25519 static key",
            IdentityError::BadSignature => "certificate signature does not verify",
        })
    }
}

impl core::error::Error for IdentityError {}

/// A peer's public identity: a validated ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityKey([u8; 32]);

impl IdentityKey {
    /// Validates an encoded identity key: canonical, on the curve, not weak.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        let vk = VerifyingKey::from_bytes(bytes).map_err(|_| IdentityError::InvalidIdentityKey)?;
        if vk.to_bytes() != *bytes {
            return Err(IdentityError::InvalidIdentityKey);
        }
        if vk.is_weak() && enabled(Defence::StrictSignatures) {
            return Err(IdentityError::WeakIdentityKey);
        }
        Ok(IdentityKey(*bytes))
    }

    /// The encoded key.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short human-comparable fingerprint of this identity.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        let h = hash(&[FINGERPRINT_LABEL, &self.0]);
        let mut f = [0u8; FINGERPRINT_BYTES];
        f.copy_from_slice(&h[..FINGERPRINT_BYTES]);
        Fingerprint(f)
    }

    /// Verifies `signature` over `message` with `verify_strict`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), IdentityError> {
        let vk =
            VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::InvalidIdentityKey)?;
        crate::ops::count(crate::ops::Op::Ed25519Verify);
        let signature = Signature::from_bytes(signature);
        if enabled(Defence::StrictSignatures) {
            vk.verify_strict(message, &signature)
        } else {
            vk.verify(message, &signature)
        }
        .map_err(|_| IdentityError::BadSignature)
    }
}

impl core::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

/// Bytes of identity hash shown in a fingerprint (80 bits).
pub const FINGERPRINT_BYTES: usize = 10;

/// A short, human-comparable name of an identity: 80 bits of a hash of the
/// identity key, shown as four groups of four base32 characters
/// (`ABCD-EFGH-JKMN-PQRS`). Two people compare it aloud to check a card.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_BYTES]);

/// Crockford's base32 alphabet (no I, L, O, U: nothing to misread aloud).
pub(crate) const BASE32_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl core::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // 80 bits = 16 characters of 5 bits.
        let mut acc: u128 = 0;
        for b in self.0 {
            acc = (acc << 8) | u128::from(b);
        }
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                f.write_str("-")?;
            }
            let idx = ((acc >> (75 - 5 * i)) & 31) as usize;
            write!(f, "{}", char::from(BASE32_ALPHABET[idx]))?;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Checks an x25519 public key: canonical encoding (high bit clear, value
/// below 2^255 - 19) and not of small order.
pub fn check_static_key(key: &[u8; 32]) -> Result<(), IdentityError> {
    let high_bit = key[31] & 0x80 != 0;
    let at_least_p = key[31] == 0x7f && key[1..31].iter().all(|&b| b == 0xff) && key[0] >= 0xed;
    if high_bit || at_least_p {
        return Err(IdentityError::InvalidStaticKey);
    }
    // X25519 clamps scalars to a multiple of the cofactor 8 below 8·ℓ, so the
    // product with a point is the identity exactly when the point's order
    // divides 8: a small-order point.
    let probe = StaticSecret::from([0x55; 32]);
    if probe.diffie_hellman(&PublicKey::from(*key)).was_contributory()
        || !enabled(Defence::Contributory)
    {
        Ok(())
    } else {
        Err(IdentityError::InvalidStaticKey)
    }
}

/// The id of one endpoint (device or installation) of an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u32);

/// The hash naming a certificate, stated in a handshake where the peer already
/// pinned the certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertHash(pub [u8; 32]);

impl CertHash {
    /// Constant-time comparison.
    #[must_use]
    pub fn ct_eq(&self, other: &CertHash) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl core::fmt::Debug for CertHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CertHash({})", Hex(&self.0[..8]))
    }
}

/// A verified static-key certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Certificate {
    identity: IdentityKey,
    static_key: [u8; 32],
    endpoint: EndpointId,
    serial: u64,
    signature: [u8; 64],
}

impl Certificate {
    /// Signs a certificate for `static_key` with `identity`.
    #[must_use]
    pub fn issue(
        identity: &IdentitySecret,
        static_key: &[u8; 32],
        endpoint: EndpointId,
        serial: u64,
    ) -> Self {
        let mut cert = Certificate {
            identity: identity.public(),
            static_key: *static_key,
            endpoint,
            serial,
            signature: [0; 64],
        };
        let body = cert.encode();
        let sig = identity.sign_parts(CERT_LABEL, &body[..SIG_OFFSET]);
        cert.signature = sig;
        cert
    }

    /// Parses and fully verifies an encoded certificate.
    pub fn parse(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: &[u8; CERT_LEN] = bytes.try_into().map_err(|_| IdentityError::BadLength)?;
        if bytes[0] != CERT_VERSION {
            return Err(IdentityError::UnknownVersion);
        }
        let id: [u8; 32] = take(bytes, 1);
        let identity = IdentityKey::from_bytes(&id)?;
        let static_key: [u8; 32] = take(bytes, 33);
        check_static_key(&static_key)?;
        let endpoint = EndpointId(u32::from_be_bytes(take(bytes, 65)));
        let serial = u64::from_be_bytes(take(bytes, 69));
        let signature: [u8; 64] = take(bytes, SIG_OFFSET);
        let mut msg = [0u8; CERT_LABEL.len() + SIG_OFFSET];
        msg[..CERT_LABEL.len()].copy_from_slice(CERT_LABEL);
        msg[CERT_LABEL.len()..].copy_from_slice(&bytes[..SIG_OFFSET]);
        identity.verify(&msg, &signature)?;
        Ok(Certificate { identity, static_key, endpoint, serial, signature })
    }

    /// The encoding: version, identity, static key, endpoint id (big-endian
    /// u32), serial (big-endian u64), signature.
    #[must_use]
    pub fn encode(&self) -> [u8; CERT_LEN] {
        let mut out = [0u8; CERT_LEN];
        out[0] = CERT_VERSION;
        out[1..33].copy_from_slice(&self.identity.0);
        out[33..65].copy_from_slice(&self.static_key);
        out[65..69].copy_from_slice(&self.endpoint.0.to_be_bytes());
        out[69..77].copy_from_slice(&self.serial.to_be_bytes());
        out[SIG_OFFSET..].copy_from_slice(&self.signature);
        out
    }

    /// The hash that names this certificate.
    #[must_use]
    pub fn hash(&self) -> CertHash {
        CertHash(hash(&[CERT_HASH_LABEL, &self.encode()]))
    }

    /// The certifying identity.
    #[must_use]
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The certified x25519 static key.
    #[must_use]
    pub fn static_key(&self) -> &[u8; 32] {
        &self.static_key
    }

    /// The endpoint the static key belongs to.
    #[must_use]
    pub fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    /// The serial: of two certificates for the same identity and endpoint, the
    /// higher serial wins.
    #[must_use]
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether `self` should replace `other`: same identity and endpoint,
    /// higher serial.
    #[must_use]
    pub fn supersedes(&self, other: &Certificate) -> bool {
        self.identity == other.identity
            && self.endpoint == other.endpoint
            && self.serial > other.serial
    }
}

fn take<const N: usize>(bytes: &[u8; CERT_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

impl core::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Certificate")
            .field("identity", &self.identity)
            .field("static_key", &Hex(&self.static_key[..8]))
            .field("endpoint", &self.endpoint.0)
            .field("serial", &self.serial)
            .finish()
    }
}

/// The private half of an identity. Zeroized on drop; `Debug` shows only the
/// fingerprint.
#[derive(Clone)]
pub struct IdentitySecret {
    key: SigningKey,
    public: IdentityKey,
}

impl IdentitySecret {
    /// The identity of a 32-byte ed25519 secret key. `None` in the
    /// (negligible-probability) case that it yields a weak public key.
    #[must_use]
    pub fn from_bytes(secret: &[u8; 32]) -> Option<Self> {
        let key = SigningKey::from_bytes(secret);
        let public = IdentityKey::from_bytes(&key.verifying_key().to_bytes()).ok()?;
        Some(IdentitySecret { key, public })
    }

    /// A fresh identity drawn from `rng`.
    pub fn generate(rng: &mut impl Entropy) -> Self {
        loop {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            if let Some(s) = Self::from_bytes(&b) {
                zeroize::Zeroize::zeroize(&mut b);
                return s;
            }
        }
    }

    /// The public identity.
    #[must_use]
    pub fn public(&self) -> IdentityKey {
        self.public
    }

    /// The secret key bytes (for storage; handle with care).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Signs `label ‖ body`.
    #[must_use]
    pub fn sign_parts(&self, label: &[u8], body: &[u8]) -> [u8; 64] {
        // Messages signed here are short (certificates, cards).
        let mut buf = [0u8; SIGN_BUF];
        let n = label.len() + body.len();
        if n <= SIGN_BUF {
            buf[..label.len()].copy_from_slice(label);
            buf[label.len()..n].copy_from_slice(body);
            crate::ops::count(crate::ops::Op::Ed25519Sign);
            self.key.sign(&buf[..n]).to_bytes()
        } else {
            // Longer messages are hashed first, label included, so the
            // signature still covers everything.
            let digest = hash(&[b"peercollab long-message\0", label, body]);
            crate::ops::count(crate::ops::Op::Ed25519Sign);
            self.key.sign(&digest).to_bytes()
        }
    }
}

/// Largest message `sign_parts` signs directly rather than by hash.
pub(crate) const SIGN_BUF: usize = 2048;

impl core::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentitySecret").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Everything one endpoint needs to take part in handshakes: its identity, its
/// static key pair and the certificate binding them, with the values derived
/// from them computed once.
#[derive(Clone)]
pub struct LocalIdentity {
    secret: IdentitySecret,
    static_keys: KeyPair,
    cert: Certificate,
    cert_bytes: [u8; CERT_LEN],
    cert_hash: CertHash,
}

impl LocalIdentity {
    /// Assembles an endpoint from stored secrets, issuing its certificate.
    #[must_use]
    pub fn new(
        secret: IdentitySecret,
        static_keys: KeyPair,
        endpoint: EndpointId,
        serial: u64,
    ) -> Self {
        let cert = Certificate::issue(&secret, static_keys.public(), endpoint, serial);
        LocalIdentity {
            secret,
            static_keys,
            cert_bytes: cert.encode(),
            cert_hash: cert.hash(),
            cert,
        }
    }

    /// A fresh identity and static key from `rng`, certificate serial 1.
    pub fn generate(rng: &mut impl Entropy, endpoint: EndpointId) -> Self {
        let secret = IdentitySecret::generate(rng);
        let static_keys = KeyPair::generate(rng);
        Self::new(secret, static_keys, endpoint, 1)
    }

    /// The public identity.
    #[must_use]
    pub fn identity(&self) -> IdentityKey {
        self.secret.public()
    }

    /// The identity's secret.
    #[must_use]
    pub fn secret(&self) -> &IdentitySecret {
        &self.secret
    }

    /// The static key pair.
    #[must_use]
    pub fn static_keys(&self) -> &KeyPair {
        &self.static_keys
    }

    /// This endpoint's certificate.
    #[must_use]
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The certificate's encoding, computed once.
    #[must_use]
    pub fn certificate_bytes(&self) -> &[u8; CERT_LEN] {
        &self.cert_bytes
    }

    /// The certificate's hash, computed once.
    #[must_use]
    pub fn certificate_hash(&self) -> CertHash {
        self.cert_hash
    }
}

impl core::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalIdentity").field("certificate", &self.cert).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashDrbg;

    fn alice() -> LocalIdentity {
        LocalIdentity::generate(&mut HashDrbg::from_u64(1), EndpointId(7))
    }

    #[test]
    fn issued_certificate_parses_and_round_trips() {
        let a = alice();
        let bytes = a.certificate().encode();
        let c = Certificate::parse(&bytes).unwrap();
        assert_eq!(&c, a.certificate());
        assert_eq!(c.identity(), &a.identity());
        assert_eq!(c.static_key(), a.static_keys().public());
        assert_eq!(c.endpoint(), EndpointId(7));
        assert_eq!(c.serial(), 1);
        assert_eq!(c.hash(), a.certificate_hash());
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = alice().certificate().encode();
        for bit in 0..CERT_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Certificate::parse(&bad).is_err(), "bit {bit} accepted");
        }
    }

    #[test]
    fn wrong_length_and_version_are_specific_errors() {
        let bytes = alice().certificate().encode();
        assert_eq!(Certificate::parse(&bytes[..CERT_LEN - 1]), Err(IdentityError::BadLength));
        let mut v = bytes;
        v[0] = 2;
        assert_eq!(Certificate::parse(&v), Err(IdentityError::UnknownVersion));
    }

    #[test]
    fn small_order_and_non_canonical_static_keys_are_refused() {
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        let mut high = [0x09u8; 32];
        high[31] |= 0x80;
        for k in [[0u8; 32], one, p, high] {
            assert_eq!(check_static_key(&k), Err(IdentityError::InvalidStaticKey));
        }
        assert_eq!(check_static_key(alice().static_keys().public()), Ok(()));
        // A certificate over a small-order static key is refused at parse.
        let a = alice();
        let c = Certificate::issue(a.secret(), &[0; 32], EndpointId(1), 1);
        assert_eq!(Certificate::parse(&c.encode()), Err(IdentityError::InvalidStaticKey));
    }

    #[test]
    fn weak_identity_keys_are_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(IdentityKey::from_bytes(&ident), Err(IdentityError::WeakIdentityKey));
        // A non-canonical encoding of the same point (y + p).
        let mut nc = [0xffu8; 32];
        nc[0] = 0xee;
        nc[31] = 0x7f;
        assert!(IdentityKey::from_bytes(&nc).is_err());
    }

    #[test]
    fn higher_serial_of_the_same_endpoint_supersedes() {
        let a = alice();
        let newer = Certificate::issue(a.secret(), a.static_keys().public(), EndpointId(7), 2);
        assert!(newer.supersedes(a.certificate()));
        assert!(!a.certificate().supersedes(&newer));
        let other_endpoint =
            Certificate::issue(a.secret(), a.static_keys().public(), EndpointId(8), 9);
        assert!(!other_endpoint.supersedes(a.certificate()));
    }

    #[test]
    fn fingerprint_is_four_groups_of_four_unambiguous_characters() {
        let mut s = heapless::String::<32>::new();
        core::fmt::write(&mut s, format_args!("{}", alice().identity().fingerprint())).unwrap();
        assert_eq!(s.len(), 19);
        for (i, c) in s.chars().enumerate() {
            if i % 5 == 4 {
                assert_eq!(c, '-');
            } else {
                assert!(BASE32_ALPHABET.contains(&(c as u8)), "{s}");
            }
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let a = alice();
        let secret = a.secret().to_bytes();
        let mut s = heapless::String::<512>::new();
        core::fmt::write(&mut s, format_args!("{a:?} {:?}", a.secret())).unwrap();
        let mut hex = heapless::String::<16>::new();
        core::fmt::write(&mut hex, format_args!("{}", Hex(&secret[..4]))).unwrap();
        assert!(!s.contains(hex.as_str()), "{s}");
    }
}
