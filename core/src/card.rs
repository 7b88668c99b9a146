//! Contact cards: the copy-pasteable public identity of a peer.
//!
//! A contact card is what one person hands another (by e-mail, chat, a QR
//! code, or read aloud) so that the other can invite them: the identity key,
//! a display name, the certificates of the identity's endpoints and,
//! optionally, addresses where it may be reached. It is the equivalent of
//! Windows' `PeerCollabExportContact` / `PeerCollabParseContact`.
//!
//! A card is signed by its identity, so nobody can alter the name,
//! certificates or addresses of somebody else's card. A card does **not**
//! prove *who* the identity belongs to: the receiver should compare the
//! [`Fingerprint`] (see [`ContactCard::fingerprint`]) with its owner over a
//! channel they trust.
//!
//! A [`ContactCard`] value is always valid: it is built either by
//! [`ContactCard::issue`] or by [`ContactCard::parse`], which apply the same
//! rules, and everything [`ContactCard::issue`] returns is accepted by
//! [`ContactCard::parse`] after a trip through [`Display`](core::fmt::Display).
//!
//! # Text form
//!
//! ```text
//! card   = prefix base32( payload ‖ checksum )
//! prefix = "peercollab1:"
//! checksum = SHA-256( "peercollab card checksum v1\0" ‖ payload )[0..4]
//! ```
//!
//! The base32 alphabet is Crockford's, `0123456789ABCDEFGHJKMNPQRSTVWXYZ`.
//! Bytes are read most significant bit first, five bits per character; the
//! last character is padded with zero bits and there is no `=` padding, so
//! `n` bytes take exactly `ceil(8n / 5)` characters.
//!
//! Output is uppercase, without separators. A parser, in this order:
//! - skips leading ASCII whitespace, then requires the prefix, compared
//!   ASCII case-insensitively (an all-uppercase card fits a QR code's
//!   alphanumeric mode), else [`CardError::MissingPrefix`];
//! - reads the rest of the text in order: ignores `-` and ASCII whitespace
//!   (space, tab, CR, LF, form feed), so a card wrapped across lines or
//!   grouped still parses; accepts lowercase letters, and reads `O`/`o` as
//!   `0` and `I`/`i`/`L`/`l` as `1`, like Crockford's decoder; refuses
//!   `U`/`u` and every other character ([`CardError::BadCharacter`], with
//!   its byte offset in the whole input), and refuses a base32 character
//!   beyond the most the largest card holds ([`CardError::TooLong`]) before
//!   storing it;
//! - refuses a non-canonical encoding: a last character that does not
//!   complete a byte, or non-zero padding bits
//!   ([`CardError::NonCanonicalBase32`]), so one card has exactly one
//!   uppercase spelling;
//! - refuses text decoding to fewer than 4 bytes ([`CardError::Truncated`]);
//! - checks the checksum before anything in the payload, so a typo is
//!   reported as [`CardError::BadChecksum`], not as a bad signature.
//!
//! # Payload
//!
//! All integers are unsigned, multi-byte ones big-endian. With `n` the
//! display-name length, `c` the certificate count and `A` the total length of
//! the address entries:
//!
//! | offset            | length  | field                                                     |
//! |-------------------|---------|-----------------------------------------------------------|
//! | 0                 | 1       | version, `1`                                              |
//! | 1                 | 32      | identity key (ed25519; canonical, not of small order)     |
//! | 33                | 1       | `n`, display-name length in bytes, `1..=64`               |
//! | 34                | `n`     | display name, UTF-8, no control characters                |
//! | 34 + n            | 1       | `c`, certificate count, `1..=4`                           |
//! | 35 + n            | 141·c   | certificates, [`CERT_LEN`] bytes each                     |
//! | 35 + n + 141c     | 1       | address count, `0..=4`                                    |
//! | 36 + n + 141c     | `A`     | address entries                                           |
//! | 36 + n + 141c + A | 64      | ed25519 signature by the identity                         |
//!
//! The payload ends right after the signature; any further byte is refused
//! ([`CardError::TrailingBytes`]). An address entry is either
//! `4 ‖ IPv4 address [4] ‖ port [2]` (7 bytes) or
//! `6 ‖ IPv6 address [16] ‖ port [2]` (19 bytes).
//!
//! The payload is then read field by field; the first failure is the error
//! reported. Running out of bytes anywhere is [`CardError::Truncated`].
//! 1. the version is 1, else [`CardError::UnknownVersion`];
//! 2. the identity key is valid ([`IdentityKey::from_bytes`]), else
//!    [`CardError::InvalidIdentity`];
//! 3. the name length is not 0 ([`CardError::EmptyName`]) nor above 64
//!    ([`CardError::NameTooLong`]); the name is valid UTF-8
//!    ([`CardError::NameNotUtf8`]) and holds no control character
//!    ([`CardError::NameHasControlCharacter`]): neither a Unicode `Cc`
//!    character nor a bidirectional-formatting control (U+061C, U+200E,
//!    U+200F, U+202A–U+202E, U+2066–U+2069), which could make one name look
//!    like another;
//! 4. the certificate count is not 0 ([`CardError::NoCertificate`]) nor
//!    above 4 ([`CardError::TooManyCertificates`]); then each certificate in
//!    turn passes [`Certificate::parse`] ([`CardError::BadCertificate`]),
//!    certifies the card's identity
//!    ([`CardError::CertificateForAnotherIdentity`]) and names an endpoint id
//!    no earlier certificate names ([`CardError::DuplicateEndpoint`]);
//! 5. the address count is at most 4 ([`CardError::TooManyAddresses`]); then
//!    each address in turn has family 4 or 6
//!    ([`CardError::BadAddressFamily`]), a non-zero port
//!    ([`CardError::ZeroPort`]), a specified IP, not `0.0.0.0` or `::`
//!    ([`CardError::UnspecifiedAddress`]), and differs from every earlier
//!    one ([`CardError::DuplicateAddress`]);
//! 6. the signature is present, and nothing follows it
//!    ([`CardError::TrailingBytes`]);
//! 7. the signature verifies (`verify_strict`) under the identity key over
//!    `"peercollab contact card v1\0" ‖ payload[0 .. signature offset]`,
//!    else [`CardError::BadSignature`].
//!
//! [`ContactCard::issue`] applies the same rules to its arguments, and also
//! refuses an IPv6 address with a scope id or flow label, which a card cannot
//! carry ([`CardError::ScopedAddress`]).
//!
//! The largest payload is 804 bytes, the largest card
//! [`MAX_CARD_TEXT_LEN`] = 1305 characters. A card with one certificate, no
//! address and a 10-byte name has a 251-byte payload and is 420 characters
//! long.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use sha2::{Digest, Sha256};

use crate::identity::{
    BASE32_ALPHABET, CERT_LEN, Certificate, Fingerprint, IdentityError, IdentityKey,
    IdentitySecret, SIGN_BUF,
};
use crate::noise::hash;

/// The text in front of every card: names the format and its version, so
/// text that is not a card is refused at once, and a future format can be
/// told apart by its prefix.
pub const CARD_PREFIX: &str = "peercollab1:";
/// Payload format version.
pub const CARD_VERSION: u8 = 1;
/// Longest display name, in bytes: enough for a person's or a device's name
/// in any script, short enough to fit one line of a user interface and keep
/// cards short.
pub const MAX_NAME_LEN: usize = 64;
/// Most certificates on one card: one per endpoint, and a person runs a few
/// (laptop, phone, desktop, server); four keeps the largest card around 1300
/// characters, small enough for a QR code and a chat message.
pub const MAX_CERTIFICATES: usize = 4;
/// Most addresses on one card: addresses are hints (an IPv4 and an IPv6
/// address for two endpoints); peers find each other mostly otherwise.
pub const MAX_ADDRESSES: usize = 4;
/// Length of the checksum: 32 bits let a typo through with probability
/// 2⁻³², at a cost of under seven base32 characters.
pub const CHECKSUM_LEN: usize = 4;
/// Length of the card's ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Domain-separation label signed in front of the payload.
pub const CARD_SIGNATURE_LABEL: &[u8] = b"peercollab contact card v1\0";
/// Domain-separation label hashed in front of the payload for the checksum.
pub const CARD_CHECKSUM_LABEL: &[u8] = b"peercollab card checksum v1\0";

/// Length of an IPv4 address entry: family, address, port.
const V4_ENTRY_LEN: usize = 1 + 4 + 2;
/// Length of an IPv6 address entry: family, address, port.
const V6_ENTRY_LEN: usize = 1 + 16 + 2;
/// Length of the signed part of the largest payload.
const MAX_SIGNED_LEN: usize =
    1 + 32 + 1 + MAX_NAME_LEN + 1 + MAX_CERTIFICATES * CERT_LEN + 1 + MAX_ADDRESSES * V6_ENTRY_LEN;
/// Length of the largest payload (804 bytes).
pub const MAX_PAYLOAD_LEN: usize = MAX_SIGNED_LEN + SIGNATURE_LEN;
/// Most bytes the base32 part of a card decodes to.
const MAX_DECODED_LEN: usize = MAX_PAYLOAD_LEN + CHECKSUM_LEN;
/// Most base32 characters in a card.
const MAX_SYMBOLS: usize = base32_len(MAX_DECODED_LEN);
/// Length of the text of the largest card (1305 characters), separators
/// excluded: what a buffer receiving [`ContactCard`]'s `Display` output needs.
pub const MAX_CARD_TEXT_LEN: usize = CARD_PREFIX.len() + MAX_SYMBOLS;

// `IdentitySecret::sign_parts` signs `label ‖ body` itself (not a hash of it)
// up to `SIGN_BUF` bytes, which is what `parse` verifies.
const _: () = assert!(CARD_SIGNATURE_LABEL.len() + MAX_SIGNED_LEN <= SIGN_BUF);

/// Number of base32 characters encoding `n` bytes.
const fn base32_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Why a contact card was refused, by [`ContactCard::parse`] or
/// [`ContactCard::issue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// The text does not start with [`CARD_PREFIX`].
    MissingPrefix,
    /// A character that is neither base32, `-` nor ASCII whitespace.
    BadCharacter {
        /// Byte offset of the character in the parsed text.
        position: usize,
    },
    /// More base32 characters than the largest card holds.
    TooLong,
    /// The base32 text ends in a character that does not complete a byte, or
    /// its padding bits are not zero.
    NonCanonicalBase32,
    /// The checksum does not match: the text was mistyped or damaged.
    BadChecksum,
    /// The payload version is not one this implementation knows.
    UnknownVersion,
    /// The payload ends in the middle of a field.
    Truncated,
    /// Bytes follow the signature.
    TrailingBytes,
    /// The identity key is refused.
    InvalidIdentity(IdentityError),
    /// The display name is empty.
    EmptyName,
    /// The display name is longer than [`MAX_NAME_LEN`] bytes.
    NameTooLong,
    /// The display name is not valid UTF-8.
    NameNotUtf8,
    /// The display name holds a control character.
    NameHasControlCharacter,
    /// The card has no certificate.
    NoCertificate,
    /// The card has more than [`MAX_CERTIFICATES`] certificates.
    TooManyCertificates,
    /// A certificate is refused by [`Certificate::parse`].
    BadCertificate(IdentityError),
    /// A certificate is signed by another identity than the card's.
    CertificateForAnotherIdentity,
    /// Two certificates name the same endpoint.
    DuplicateEndpoint,
    /// The card has more than [`MAX_ADDRESSES`] addresses.
    TooManyAddresses,
    /// An address family byte other than 4 or 6.
    BadAddressFamily,
    /// An address with port 0.
    ZeroPort,
    /// An address whose IP is unspecified (`0.0.0.0` or `::`).
    UnspecifiedAddress,
    /// The same address twice.
    DuplicateAddress,
    /// An IPv6 address with a scope id or flow label, which a card cannot
    /// carry (only [`ContactCard::issue`] can meet one).
    ScopedAddress,
    /// The card's signature does not verify under its identity.
    BadSignature,
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardError::MissingPrefix => write!(f, "contact card does not start with {CARD_PREFIX}"),
            CardError::BadCharacter { position } => {
                write!(f, "invalid character in contact card at byte {position}")
            }
            CardError::TooLong => f.write_str("contact card is too long"),
            CardError::NonCanonicalBase32 => f.write_str("contact card has a bad last character"),
            CardError::BadChecksum => {
                f.write_str("contact card checksum does not match (mistyped or damaged)")
            }
            CardError::UnknownVersion => f.write_str("unknown contact card version"),
            CardError::Truncated => f.write_str("contact card is truncated"),
            CardError::TrailingBytes => f.write_str("contact card has trailing bytes"),
            CardError::InvalidIdentity(e) => write!(f, "contact card identity refused: {e}"),
            CardError::EmptyName => f.write_str("contact card display name is empty"),
            CardError::NameTooLong => {
                write!(f, "contact card display name is longer than {MAX_NAME_LEN} bytes")
            }
            CardError::NameNotUtf8 => f.write_str("contact card display name is not UTF-8"),
            CardError::NameHasControlCharacter => {
                f.write_str("contact card display name has a control character")
            }
            CardError::NoCertificate => f.write_str("contact card has no certificate"),
            CardError::TooManyCertificates => {
                write!(f, "contact card has more than {MAX_CERTIFICATES} certificates")
            }
            CardError::BadCertificate(e) => write!(f, "contact card certificate refused: {e}"),
            CardError::CertificateForAnotherIdentity => {
                f.write_str("contact card certificate belongs to another identity")
            }
            CardError::DuplicateEndpoint => {
                f.write_str("contact card has two certificates for one endpoint")
            }
            CardError::TooManyAddresses => {
                write!(f, "contact card has more than {MAX_ADDRESSES} addresses")
            }
            CardError::BadAddressFamily => f.write_str("contact card address family is not 4 or 6"),
            CardError::ZeroPort => f.write_str("contact card address has port 0"),
            CardError::UnspecifiedAddress => {
                f.write_str("contact card address is unspecified (0.0.0.0 or ::)")
            }
            CardError::DuplicateAddress => f.write_str("contact card lists an address twice"),
            CardError::ScopedAddress => {
                f.write_str("contact card cannot carry an IPv6 scope id or flow label")
            }
            CardError::BadSignature => f.write_str("contact card signature does not verify"),
        }
    }
}

// `std::error::Error` is a re-export of this trait.
impl core::error::Error for CardError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CardError::InvalidIdentity(e) | CardError::BadCertificate(e) => Some(e),
            _ => None,
        }
    }
}

/// A peer's public identity as handed to others: identity key, display name,
/// endpoint certificates and address hints, signed by the identity.
///
/// `Display` writes the text form (at most [`MAX_CARD_TEXT_LEN`]
/// characters); [`ContactCard::parse`] reads it back.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactCard {
    identity: IdentityKey,
    display_name: heapless::String<MAX_NAME_LEN>,
    certificates: heapless::Vec<Certificate, MAX_CERTIFICATES>,
    addresses: heapless::Vec<SocketAddr, MAX_ADDRESSES>,
    signature: [u8; SIGNATURE_LEN],
}

impl ContactCard {
    /// Signs a card for `secret`'s identity.
    ///
    /// Applies every rule [`ContactCard::parse`] applies, so the card always
    /// parses back; a certificate is checked with [`Certificate::parse`] (a
    /// [`Certificate::issue`]d one may certify an invalid static key).
    pub fn issue(
        secret: &IdentitySecret,
        display_name: &str,
        certificates: &[Certificate],
        addresses: &[SocketAddr],
    ) -> Result<Self, CardError> {
        let identity = secret.public();
        let display_name = check_name(display_name.as_bytes())?;
        check_certificate_count(certificates.len())?;
        let mut certs = heapless::Vec::new();
        for cert in certificates {
            let cert = Certificate::parse(&cert.encode()).map_err(CardError::BadCertificate)?;
            add_certificate(&mut certs, &identity, cert)?;
        }
        check_address_count(addresses.len())?;
        let mut addrs = heapless::Vec::new();
        for addr in addresses {
            add_address(&mut addrs, *addr)?;
        }
        let mut card = ContactCard {
            identity,
            display_name,
            certificates: certs,
            addresses: addrs,
            signature: [0; SIGNATURE_LEN],
        };
        let mut body = [0u8; MAX_SIGNED_LEN];
        let mut len = 0;
        card.for_each_signed_part(|part| {
            let end = len + part.len();
            body.get_mut(len..end).ok_or(CardError::TooLong)?.copy_from_slice(part);
            len = end;
            Ok(())
        })?;
        let body = body.get(..len).ok_or(CardError::TooLong)?;
        card.signature = secret.sign_parts(CARD_SIGNATURE_LABEL, body);
        Ok(card)
    }

    /// Parses and fully verifies the text form of a card (see the
    /// [module documentation](self)). Never panics, never allocates.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        let mut buf = [0u8; MAX_DECODED_LEN];
        let len = decode_text(text, &mut buf)?;
        let decoded = buf.get(..len).ok_or(CardError::TooLong)?;
        let split = len.checked_sub(CHECKSUM_LEN).ok_or(CardError::Truncated)?;
        let (payload, sum) = decoded.split_at(split);
        if checksum(payload) != sum {
            return Err(CardError::BadChecksum);
        }
        Self::parse_payload(payload)
    }

    fn parse_payload(payload: &[u8]) -> Result<Self, CardError> {
        let mut r = Reader { bytes: payload, pos: 0 };
        if r.u8()? != CARD_VERSION {
            return Err(CardError::UnknownVersion);
        }
        let identity = IdentityKey::from_bytes(&r.array()?).map_err(CardError::InvalidIdentity)?;

        let name_len = usize::from(r.u8()?);
        check_name_len(name_len)?;
        let display_name = check_name(r.take(name_len)?)?;

        let cert_count = usize::from(r.u8()?);
        check_certificate_count(cert_count)?;
        let mut certificates = heapless::Vec::new();
        for _ in 0..cert_count {
            let cert = Certificate::parse(r.take(CERT_LEN)?).map_err(CardError::BadCertificate)?;
            add_certificate(&mut certificates, &identity, cert)?;
        }

        let addr_count = usize::from(r.u8()?);
        check_address_count(addr_count)?;
        let mut addresses = heapless::Vec::new();
        for _ in 0..addr_count {
            let ip = match r.u8()? {
                4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                _ => return Err(CardError::BadAddressFamily),
            };
            let port = u16::from_be_bytes(r.array()?);
            add_address(&mut addresses, SocketAddr::new(ip, port))?;
        }

        let signed_len = r.pos;
        let signature: [u8; SIGNATURE_LEN] = r.array()?;
        if r.pos != payload.len() {
            return Err(CardError::TrailingBytes);
        }
        let signed = payload.get(..signed_len).ok_or(CardError::Truncated)?;
        let mut msg = [0u8; CARD_SIGNATURE_LABEL.len() + MAX_SIGNED_LEN];
        let msg_len = CARD_SIGNATURE_LABEL.len() + signed_len;
        let msg = msg.get_mut(..msg_len).ok_or(CardError::TooLong)?;
        let (label, body) = msg.split_at_mut(CARD_SIGNATURE_LABEL.len());
        label.copy_from_slice(CARD_SIGNATURE_LABEL);
        body.copy_from_slice(signed);
        identity.verify(msg, &signature).map_err(|_| CardError::BadSignature)?;

        Ok(ContactCard { identity, display_name, certificates, addresses, signature })
    }

    /// The identity the card belongs to.
    #[must_use]
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The display name the identity chose (not verified by anybody else).
    #[must_use]
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The certificates of the identity's endpoints (one to
    /// [`MAX_CERTIFICATES`], distinct endpoint ids).
    #[must_use]
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// Addresses where the identity may be reached (hints, zero to
    /// [`MAX_ADDRESSES`]).
    #[must_use]
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The identity's signature over the card.
    #[must_use]
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The fingerprint of the card's identity, to compare with its owner.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// Length of the payload in bytes.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        let addrs: usize = self.addresses.iter().map(entry_len).sum();
        1 + 32
            + 1
            + self.display_name.len()
            + 1
            + self.certificates.len() * CERT_LEN
            + 1
            + addrs
            + SIGNATURE_LEN
    }

    /// Length of the text form written by `Display`, in bytes (at most
    /// [`MAX_CARD_TEXT_LEN`]).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        CARD_PREFIX.len() + base32_len(self.payload_len() + CHECKSUM_LEN)
    }

    /// Calls `f` with the signed part of the payload, piece by piece.
    fn for_each_signed_part<E>(&self, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        f(&[CARD_VERSION])?;
        f(self.identity.as_bytes())?;
        f(&[len_u8(self.display_name.len())])?;
        f(self.display_name.as_bytes())?;
        f(&[len_u8(self.certificates.len())])?;
        for cert in &self.certificates {
            f(&cert.encode())?;
        }
        f(&[len_u8(self.addresses.len())])?;
        for addr in &self.addresses {
            let mut entry = [0u8; V6_ENTRY_LEN];
            let len = entry_len(addr);
            match addr.ip() {
                IpAddr::V4(ip) => {
                    entry[0] = 4;
                    entry[1..5].copy_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    entry[0] = 6;
                    entry[1..17].copy_from_slice(&ip.octets());
                }
            }
            entry[len - 2..len].copy_from_slice(&addr.port().to_be_bytes());
            f(&entry[..len])?;
        }
        Ok(())
    }
}

impl core::str::FromStr for ContactCard {
    type Err = CardError;

    fn from_str(s: &str) -> Result<Self, CardError> {
        Self::parse(s)
    }
}

impl fmt::Display for ContactCard {
    /// Writes the text form, streaming: no buffer for the payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CARD_PREFIX)?;
        let mut sum = Sha256::new();
        sum.update(CARD_CHECKSUM_LABEL);
        let mut out = Base32Writer::new(f);
        let mut part = |bytes: &[u8]| {
            sum.update(bytes);
            out.push(bytes)
        };
        self.for_each_signed_part(&mut part)?;
        part(&self.signature)?;
        let digest = sum.finalize();
        out.push(&digest[..CHECKSUM_LEN])?;
        out.finish()
    }
}

impl fmt::Debug for ContactCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactCard")
            .field("identity", &self.identity)
            .field("display_name", &self.display_name.as_str())
            .field("certificates", &self.certificates.as_slice())
            .field("addresses", &self.addresses.as_slice())
            .finish_non_exhaustive()
    }
}

/// `n` as a length byte; every length written is bounded far below 256 by the
/// card's invariants.
fn len_u8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Length of the entry encoding `addr`.
fn entry_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => V4_ENTRY_LEN,
        SocketAddr::V6(_) => V6_ENTRY_LEN,
    }
}

fn check_name_len(len: usize) -> Result<(), CardError> {
    match len {
        0 => Err(CardError::EmptyName),
        n if n > MAX_NAME_LEN => Err(CardError::NameTooLong),
        _ => Ok(()),
    }
}

/// Whether `c` may not appear in a display name: a `Cc` control character or
/// a bidirectional-formatting control.
fn is_forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

pub(crate) fn check_name(bytes: &[u8]) -> Result<heapless::String<MAX_NAME_LEN>, CardError> {
    check_name_len(bytes.len())?;
    let name = core::str::from_utf8(bytes).map_err(|_| CardError::NameNotUtf8)?;
    if name.chars().any(is_forbidden_in_name) {
        return Err(CardError::NameHasControlCharacter);
    }
    let mut out = heapless::String::new();
    out.push_str(name).map_err(|_| CardError::NameTooLong)?;
    Ok(out)
}

fn check_certificate_count(n: usize) -> Result<(), CardError> {
    match n {
        0 => Err(CardError::NoCertificate),
        n if n > MAX_CERTIFICATES => Err(CardError::TooManyCertificates),
        _ => Ok(()),
    }
}

fn add_certificate(
    certs: &mut heapless::Vec<Certificate, MAX_CERTIFICATES>,
    identity: &IdentityKey,
    cert: Certificate,
) -> Result<(), CardError> {
    if cert.identity() != identity {
        return Err(CardError::CertificateForAnotherIdentity);
    }
    if certs.iter().any(|c| c.endpoint() == cert.endpoint()) {
        return Err(CardError::DuplicateEndpoint);
    }
    certs.push(cert).map_err(|_| CardError::TooManyCertificates)
}

fn check_address_count(n: usize) -> Result<(), CardError> {
    if n > MAX_ADDRESSES { Err(CardError::TooManyAddresses) } else { Ok(()) }
}

fn add_address(
    addrs: &mut heapless::Vec<SocketAddr, MAX_ADDRESSES>,
    addr: SocketAddr,
) -> Result<(), CardError> {
    if let SocketAddr::V6(v6) = addr
        && (v6.scope_id() != 0 || v6.flowinfo() != 0)
    {
        return Err(CardError::ScopedAddress);
    }
    if addr.port() == 0 {
        return Err(CardError::ZeroPort);
    }
    if addr.ip().is_unspecified() {
        return Err(CardError::UnspecifiedAddress);
    }
    if addrs.contains(&addr) {
        return Err(CardError::DuplicateAddress);
    }
    addrs.push(addr).map_err(|_| CardError::TooManyAddresses)
}

/// The checksum of `payload`.
fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let h = hash(&[CARD_CHECKSUM_LABEL, payload]);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&h[..CHECKSUM_LEN]);
    out
}

/// A cursor over the payload; running out is [`CardError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CardError> {
        let end = self.pos.checked_add(n).ok_or(CardError::Truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(CardError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CardError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CardError> {
        self.take(N)?.try_into().map_err(|_| CardError::Truncated)
    }
}

/// The value of a base32 character, Crockford's decoding: case-insensitive,
/// `O` is `0`, `I` and `L` are `1`.
fn symbol_value(c: u8) -> Option<u32> {
    match c.to_ascii_uppercase() {
        b'O' => Some(0),
        b'I' | b'L' => Some(1),
        c => BASE32_ALPHABET.iter().position(|&a| a == c).and_then(|v| u32::try_from(v).ok()),
    }
}

/// Checks the prefix and decodes the base32 text after it into `out`;
/// returns the number of bytes decoded.
fn decode_text(text: &str, out: &mut [u8; MAX_DECODED_LEN]) -> Result<usize, CardError> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let prefix_end = start + CARD_PREFIX.len();
    match bytes.get(start..prefix_end) {
        Some(p) if p.eq_ignore_ascii_case(CARD_PREFIX.as_bytes()) => {}
        _ => return Err(CardError::MissingPrefix),
    }
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut symbols = 0usize;
    let mut len = 0usize;
    for (position, &c) in bytes.iter().enumerate().skip(prefix_end) {
        if c == b'-' || c.is_ascii_whitespace() {
            continue;
        }
        let v = symbol_value(c).ok_or(CardError::BadCharacter { position })?;
        if symbols == MAX_SYMBOLS {
            return Err(CardError::TooLong);
        }
        symbols += 1;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(len).ok_or(CardError::TooLong)? = (acc >> bits) as u8;
            len += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // Canonical: the leftover bits are fewer than one character's and zero.
    if bits >= 5 || acc != 0 {
        return Err(CardError::NonCanonicalBase32);
    }
    Ok(len)
}

/// Writes bytes as uppercase Crockford base32, most significant bit first.
struct Base32Writer<'a, W: fmt::Write> {
    out: &'a mut W,
    acc: u32,
    bits: u32,
}

impl<'a, W: fmt::Write> Base32Writer<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Base32Writer { out, acc: 0, bits: 0 }
    }

    fn symbol(&mut self, v: u32) -> fmt::Result {
        self.out.write_char(char::from(BASE32_ALPHABET[(v & 31) as usize]))
    }

    fn push(&mut self, bytes: &[u8]) -> fmt::Result {
        for &b in bytes {
            self.acc = (self.acc << 8) | u32::from(b);
            self.bits += 8;
            while self.bits >= 5 {
                self.bits -= 5;
                self.symbol(self.acc >> self.bits)?;
            }
            self.acc &= (1 << self.bits) - 1;
        }
        Ok(())
    }

    /// Writes the last, zero-padded character.
    fn finish(mut self) -> fmt::Result {
        if self.bits > 0 {
            self.symbol(self.acc << (5 - self.bits))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::net::SocketAddrV6;
    use std::string::{String, ToString};
    use std::sync::OnceLock;
    use std::vec::Vec;
    use std::{format, vec};

    use proptest::prelude::*;

    use super::*;
    use crate::HashDrbg;
    use crate::identity::EndpointId;
    use crate::noise::KeyPair;

    fn secret(seed: u64) -> IdentitySecret {
        IdentitySecret::generate(&mut HashDrbg::from_u64(seed))
    }

    fn alice() -> IdentitySecret {
        static ALICE: OnceLock<IdentitySecret> = OnceLock::new();
        ALICE.get_or_init(|| secret(1)).clone()
    }

    fn bob() -> IdentitySecret {
        secret(2)
    }

    /// A certificate of `id` for `endpoint`, over a static key drawn from `seed`.
    fn cert_with(id: &IdentitySecret, endpoint: u32, seed: u64) -> Certificate {
        let keys = KeyPair::generate(&mut HashDrbg::from_u64(seed));
        Certificate::issue(id, keys.public(), EndpointId(endpoint), 1)
    }

    fn cert(id: &IdentitySecret, endpoint: u32) -> Certificate {
        cert_with(id, endpoint, 1000 + u64::from(endpoint))
    }

    fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
    }

    fn v6(last: u16, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)), port)
    }

    /// One certificate, no address, a 10-byte name.
    fn typical() -> ContactCard {
        ContactCard::issue(&alice(), "Alice Hart", &[cert(&alice(), 1)], &[]).unwrap()
    }

    /// Every field at its maximum.
    fn largest() -> ContactCard {
        static LARGEST: OnceLock<ContactCard> = OnceLock::new();
        LARGEST.get_or_init(issue_largest).clone()
    }

    fn issue_largest() -> ContactCard {
        let a = alice();
        let certs = [cert(&a, 1), cert(&a, 2), cert(&a, 3), cert(&a, 4)];
        let addrs = [v6(1, 1), v6(2, 2), v6(3, 3), v6(4, 4)];
        ContactCard::issue(&a, "x".repeat(MAX_NAME_LEN).as_str(), &certs, &addrs).unwrap()
    }

    /// The text of a card whose payload is `payload`, with a valid checksum.
    fn text_of(payload: &[u8]) -> String {
        let mut s = String::from(CARD_PREFIX);
        let mut w = Base32Writer::new(&mut s);
        w.push(payload).unwrap();
        w.push(&checksum(payload)).unwrap();
        w.finish().unwrap();
        s
    }

    fn parse_payload(payload: &[u8]) -> Result<ContactCard, CardError> {
        ContactCard::parse(&text_of(payload))
    }

    fn payload_of(card: &ContactCard) -> Vec<u8> {
        let mut v = Vec::new();
        card.for_each_signed_part(|p| {
            v.extend_from_slice(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        v.extend_from_slice(card.signature());
        v
    }

    /// A payload of Alice's with the given fields, raw, and a zero signature.
    fn crafted(name: &[u8], certs: &[[u8; CERT_LEN]], addrs: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![CARD_VERSION];
        v.extend_from_slice(alice().public().as_bytes());
        v.push(name.len() as u8);
        v.extend_from_slice(name);
        v.push(certs.len() as u8);
        for c in certs {
            v.extend_from_slice(c);
        }
        v.push(addrs.len() as u8);
        for a in addrs {
            v.extend_from_slice(a);
        }
        v.extend_from_slice(&[0; SIGNATURE_LEN]);
        v
    }

    fn alice_cert() -> [u8; CERT_LEN] {
        cert(&alice(), 1).encode()
    }

    // ---- round trips and sizes ----

    #[test]
    fn issued_card_round_trips_through_its_text() {
        let a = alice();
        let cards = [
            typical(),
            largest(),
            ContactCard::issue(
                &a,
                "Alice — ノートパソコン",
                &[cert(&a, 7), cert(&a, 9)],
                &[v4([192, 0, 2, 1], 4000), v6(1, 4001)],
            )
            .unwrap(),
        ];
        for card in cards {
            let text = card.to_string();
            assert_eq!(text.len(), card.encoded_len());
            let parsed = ContactCard::parse(&text).unwrap();
            assert_eq!(parsed, card);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(text.parse::<ContactCard>(), Ok(card));
        }
    }

    #[test]
    fn getters_return_what_was_issued() {
        let a = alice();
        let certs = [cert(&a, 7), cert(&a, 9)];
        let addrs = [v4([192, 0, 2, 1], 4000), v6(1, 4001)];
        let card = ContactCard::issue(&a, "Alice", &certs, &addrs).unwrap();
        assert_eq!(card.identity(), &a.public());
        assert_eq!(card.display_name(), "Alice");
        assert_eq!(card.certificates(), &certs);
        assert_eq!(card.addresses(), &addrs);
        assert_eq!(card.fingerprint(), a.public().fingerprint());
        let dbg = format!("{card:?}");
        assert!(dbg.contains("Alice") && dbg.contains("192.0.2.1:4000"), "{dbg}");
    }

    #[test]
    fn largest_card_is_max_card_text_len_characters() {
        let card = largest();
        assert_eq!(card.payload_len(), MAX_PAYLOAD_LEN);
        assert_eq!(MAX_PAYLOAD_LEN, 804);
        assert_eq!(card.to_string().len(), MAX_CARD_TEXT_LEN);
        assert_eq!(card.encoded_len(), MAX_CARD_TEXT_LEN);
        assert_eq!(MAX_CARD_TEXT_LEN, 1305);
    }

    #[test]
    fn typical_card_is_420_characters() {
        let card = typical();
        assert_eq!(card.payload_len(), 251);
        assert_eq!(card.to_string().len(), 420);
    }

    #[test]
    fn card_text_is_prefix_then_uppercase_base32() {
        let text = typical().to_string();
        let body = text.strip_prefix(CARD_PREFIX).unwrap();
        assert!(body.bytes().all(|c| BASE32_ALPHABET.contains(&c)), "{text}");
    }

    #[test]
    fn base32_matches_crockford_bit_order() {
        // 0x00 0x44 0x32 0x14 0xC7 = 00000 00001 00010 00011 00100 00101 00110 00111.
        let mut s = String::new();
        let mut w = Base32Writer::new(&mut s);
        w.push(&[0x00, 0x44, 0x32, 0x14, 0xC7]).unwrap();
        w.finish().unwrap();
        assert_eq!(s, "01234567");
        let mut s = String::new();
        let mut w = Base32Writer::new(&mut s);
        w.push(&[0xFF]).unwrap();
        w.finish().unwrap();
        assert_eq!(s, "ZW");
    }

    // ---- lenient reading ----

    #[test]
    fn lowercase_dashes_whitespace_and_line_breaks_are_accepted() {
        let card = typical();
        let text = card.to_string();
        let body = text.strip_prefix(CARD_PREFIX).unwrap();

        let lower = text.to_ascii_lowercase();
        assert_eq!(ContactCard::parse(&lower), Ok(card.clone()));

        let mut grouped = String::from("  \n\tPeerCollab1:\n");
        for (i, c) in body.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                grouped.push(if i % 64 == 0 { '\n' } else { '-' });
            }
            if i % 48 == 0 {
                grouped.push_str(" \t\r\n\x0c ");
            }
            grouped.push(c);
        }
        grouped.push_str("-\r\n");
        assert_eq!(ContactCard::parse(&grouped), Ok(card.clone()));
    }

    #[test]
    fn crockford_aliases_of_zero_and_one_are_accepted() {
        let card = typical();
        let text = card.to_string();
        let body = text.strip_prefix(CARD_PREFIX).unwrap();
        assert!(body.contains('0') && body.contains('1'));
        for (zero, one) in [("O", "I"), ("o", "i"), ("O", "L"), ("o", "l")] {
            let aliased = format!("{CARD_PREFIX}{}", body.replace('0', zero).replace('1', one));
            assert_eq!(ContactCard::parse(&aliased), Ok(card.clone()), "{zero} {one}");
        }
    }

    // ---- error detection ----

    #[test]
    fn every_single_character_substitution_is_detected() {
        let text = typical().to_string();
        let mut subs: Vec<u8> = BASE32_ALPHABET.to_vec();
        subs.extend(BASE32_ALPHABET.to_ascii_lowercase());
        subs.extend_from_slice(b"OoIiLlUu- \n\t!:=_.+");
        let prefix = CARD_PREFIX.len();
        for (i, &orig) in text.as_bytes().iter().enumerate() {
            for &s in &subs {
                // Equivalent spellings decode to the same card; tested above.
                let same = if i < prefix {
                    s.eq_ignore_ascii_case(&orig)
                } else {
                    symbol_value(s).is_some() && symbol_value(s) == symbol_value(orig)
                };
                if same {
                    continue;
                }
                let mut bytes = text.clone().into_bytes();
                bytes[i] = s;
                let bad = String::from_utf8(bytes).unwrap();
                let res = ContactCard::parse(&bad);
                assert!(res.is_err(), "substitution {:?} at {i} accepted", char::from(s));
            }
        }
    }

    #[test]
    fn every_deleted_character_is_detected() {
        let text = typical().to_string();
        for i in 0..text.len() {
            let mut bad = text.clone();
            bad.remove(i);
            assert!(ContactCard::parse(&bad).is_err(), "deletion at {i} accepted");
        }
    }

    #[test]
    fn typo_in_the_body_is_a_checksum_error() {
        let text = typical().to_string();
        let mut bytes = text.into_bytes();
        let i = CARD_PREFIX.len() + 100;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bytes).unwrap();
        assert_eq!(ContactCard::parse(&bad), Err(CardError::BadChecksum));
    }

    #[test]
    fn tampered_payload_with_fixed_checksum_is_a_bad_signature() {
        let card = typical();
        let mut payload = payload_of(&card);
        // "Alice Hart" → "Alice Hurt": same length, so still well formed.
        let at = 34 + 7;
        assert_eq!(payload[at], b'a');
        payload[at] = b'u';
        assert_eq!(parse_payload(&payload), Err(CardError::BadSignature));
    }

    #[test]
    fn flipped_signature_bit_is_a_bad_signature() {
        let payload = payload_of(&typical());
        for bit in [0, 7, 100, 511] {
            let mut bad = payload.clone();
            let at = bad.len() - SIGNATURE_LEN + bit / 8;
            bad[at] ^= 1 << (bit % 8);
            assert_eq!(parse_payload(&bad), Err(CardError::BadSignature), "bit {bit}");
        }
    }

    #[test]
    fn card_signed_by_another_identity_is_a_bad_signature() {
        // Bob signs a card naming Alice's identity.
        let card = typical();
        let mut payload = payload_of(&card);
        let sig_at = payload.len() - SIGNATURE_LEN;
        let sig = bob().sign_parts(CARD_SIGNATURE_LABEL, &payload[..sig_at]);
        payload[sig_at..].copy_from_slice(&sig);
        assert_eq!(parse_payload(&payload), Err(CardError::BadSignature));
    }

    #[test]
    fn text_without_the_prefix_is_refused() {
        let text = typical().to_string();
        let body = text.strip_prefix(CARD_PREFIX).unwrap();
        for bad in ["", "   ", "peercollab1", "peercollab2:00", "hello", "ペアコラボ1:00", body]
        {
            assert_eq!(ContactCard::parse(bad), Err(CardError::MissingPrefix), "{bad:?}");
        }
        assert_eq!(ContactCard::parse(&format!("x{text}")), Err(CardError::MissingPrefix));
    }

    #[test]
    fn invalid_character_is_refused_with_its_byte_position() {
        let text = typical().to_string();
        let cases: [(String, usize); 5] = [
            (format!("{CARD_PREFIX}AB!C"), 14),
            (format!("  {CARD_PREFIX}ABU"), 16),
            (format!("{CARD_PREFIX}é"), 12),
            (format!("{}=", text), text.len()),
            (format!("{CARD_PREFIX}00_{}", &text[12..]), 14),
        ];
        for (bad, position) in cases {
            assert_eq!(
                ContactCard::parse(&bad),
                Err(CardError::BadCharacter { position }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn card_longer_than_the_largest_is_refused() {
        let text = largest().to_string();
        assert_eq!(ContactCard::parse(&format!("{text}0")), Err(CardError::TooLong));
        let zeros = format!("{CARD_PREFIX}{}", "0".repeat(100_000));
        assert_eq!(ContactCard::parse(&zeros), Err(CardError::TooLong));
        // Separators do not count.
        let spaced = format!("{text}{}", " -\n".repeat(10_000));
        assert_eq!(ContactCard::parse(&spaced), Ok(largest()));
    }

    #[test]
    fn card_with_a_dangling_character_or_padding_bits_is_refused() {
        // The typical card's 255 bytes fill 408 characters exactly.
        let text = typical().to_string();
        assert_eq!(ContactCard::parse(&format!("{text}0")), Err(CardError::NonCanonicalBase32));
        // Three payload bytes and the checksum: 56 bits in 12 characters,
        // 4 padding bits, set here.
        let short = text_of(&[1, 2, 3]);
        let last = *short.as_bytes().last().unwrap();
        let value = symbol_value(last).unwrap();
        assert_eq!(value & 0xF, 0);
        let mut bad = short.clone();
        bad.pop();
        bad.push(char::from(BASE32_ALPHABET[(value | 1) as usize]));
        assert_eq!(ContactCard::parse(&bad), Err(CardError::NonCanonicalBase32));
    }

    #[test]
    fn card_too_short_for_a_checksum_is_truncated() {
        // Five characters decode to three bytes (and one zero padding bit).
        for bad in ["peercollab1:", "peercollab1:00000"] {
            assert_eq!(ContactCard::parse(bad), Err(CardError::Truncated), "{bad}");
        }
    }

    #[test]
    fn card_cut_short_is_truncated() {
        let payload = payload_of(&largest());
        for len in [0, 1, 20, 33, 34, 50, 99, 300, payload.len() - 100, payload.len() - 1] {
            assert_eq!(parse_payload(&payload[..len]), Err(CardError::Truncated), "{len}");
        }
    }

    #[test]
    fn card_with_bytes_after_the_signature_is_refused() {
        let mut payload = payload_of(&typical());
        payload.push(0);
        assert_eq!(parse_payload(&payload), Err(CardError::TrailingBytes));
    }

    #[test]
    fn card_of_unknown_version_is_refused() {
        let mut payload = payload_of(&typical());
        for v in [0, 2, 255] {
            payload[0] = v;
            assert_eq!(parse_payload(&payload), Err(CardError::UnknownVersion));
        }
    }

    #[test]
    fn card_with_weak_or_invalid_identity_key_is_refused() {
        let mut payload = payload_of(&typical());
        let mut weak = [0u8; 32];
        weak[0] = 1;
        payload[1..33].copy_from_slice(&weak);
        assert_eq!(
            parse_payload(&payload),
            Err(CardError::InvalidIdentity(IdentityError::WeakIdentityKey))
        );
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        payload[1..33].copy_from_slice(&non_canonical);
        assert!(matches!(parse_payload(&payload), Err(CardError::InvalidIdentity(_))));
    }

    #[test]
    fn card_with_empty_name_is_refused() {
        assert_eq!(parse_payload(&crafted(b"", &[alice_cert()], &[])), Err(CardError::EmptyName));
        let a = alice();
        assert_eq!(ContactCard::issue(&a, "", &[cert(&a, 1)], &[]), Err(CardError::EmptyName));
    }

    #[test]
    fn card_with_name_longer_than_64_bytes_is_refused() {
        let long = [b'x'; MAX_NAME_LEN + 1];
        assert_eq!(
            parse_payload(&crafted(&long, &[alice_cert()], &[])),
            Err(CardError::NameTooLong)
        );
        let a = alice();
        // 33 two-byte characters: 33 characters, 66 bytes.
        let name = "é".repeat(33);
        assert_eq!(ContactCard::issue(&a, &name, &[cert(&a, 1)], &[]), Err(CardError::NameTooLong));
        let ok = "é".repeat(32);
        assert!(ContactCard::issue(&a, &ok, &[cert(&a, 1)], &[]).is_ok());
    }

    #[test]
    fn card_with_name_not_utf8_is_refused() {
        for name in [&b"\xff"[..], b"Al\xc3", b"\xed\xa0\x80"] {
            assert_eq!(
                parse_payload(&crafted(name, &[alice_cert()], &[])),
                Err(CardError::NameNotUtf8)
            );
        }
    }

    #[test]
    fn card_with_control_character_in_name_is_refused() {
        let a = alice();
        for name in
            ["a\nb", "\0", "tab\t", "del\x7f", "c1\u{85}", "\u{202E}evilA", "x\u{2066}", "\u{200F}"]
        {
            assert_eq!(
                parse_payload(&crafted(name.as_bytes(), &[alice_cert()], &[])),
                Err(CardError::NameHasControlCharacter),
                "{name:?}"
            );
            assert_eq!(
                ContactCard::issue(&a, name, &[cert(&a, 1)], &[]),
                Err(CardError::NameHasControlCharacter)
            );
        }
    }

    #[test]
    fn card_without_certificate_is_refused() {
        assert_eq!(parse_payload(&crafted(b"Alice", &[], &[])), Err(CardError::NoCertificate));
        assert_eq!(ContactCard::issue(&alice(), "Alice", &[], &[]), Err(CardError::NoCertificate));
    }

    #[test]
    fn card_with_more_than_four_certificates_is_refused() {
        let a = alice();
        let certs: Vec<Certificate> = (1..=5).map(|e| cert(&a, e)).collect();
        // Five whole certificates do not fit in the largest card's text, so
        // the count byte says five and four follow.
        let raw: Vec<[u8; CERT_LEN]> = certs[..4].iter().map(Certificate::encode).collect();
        let mut payload = crafted(b"Alice", &raw, &[]);
        let count_at = 1 + 32 + 1 + 5;
        assert_eq!(payload[count_at], 4);
        payload[count_at] = 5;
        assert_eq!(parse_payload(&payload), Err(CardError::TooManyCertificates));
        // Five do not fit at all: the text is too long.
        let raw: Vec<[u8; CERT_LEN]> = certs.iter().map(Certificate::encode).collect();
        assert_eq!(parse_payload(&crafted(b"Alice", &raw, &[])), Err(CardError::TooLong));
        assert_eq!(
            ContactCard::issue(&a, "Alice", &certs, &[]),
            Err(CardError::TooManyCertificates)
        );
    }

    #[test]
    fn card_with_invalid_certificate_is_refused() {
        let mut raw = alice_cert();
        raw[CERT_LEN - 1] ^= 1;
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[raw], &[])),
            Err(CardError::BadCertificate(IdentityError::BadSignature))
        );
        let mut raw = alice_cert();
        raw[0] = 9;
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[raw], &[])),
            Err(CardError::BadCertificate(IdentityError::UnknownVersion))
        );
        // `Certificate::issue` certifies any key; `ContactCard::issue` checks.
        let a = alice();
        let small_order = Certificate::issue(&a, &[0; 32], EndpointId(1), 1);
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[small_order], &[]),
            Err(CardError::BadCertificate(IdentityError::InvalidStaticKey))
        );
    }

    #[test]
    fn card_with_certificate_of_another_identity_is_refused() {
        let bobs = cert(&bob(), 1);
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[alice_cert(), bobs.encode()], &[])),
            Err(CardError::CertificateForAnotherIdentity)
        );
        let a = alice();
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[cert(&a, 1), bobs], &[]),
            Err(CardError::CertificateForAnotherIdentity)
        );
    }

    #[test]
    fn card_with_two_certificates_for_one_endpoint_is_refused() {
        let a = alice();
        let first = cert_with(&a, 5, 1);
        let second = cert_with(&a, 5, 2);
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[first.encode(), second.encode()], &[])),
            Err(CardError::DuplicateEndpoint)
        );
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[first, second], &[]),
            Err(CardError::DuplicateEndpoint)
        );
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[first, first], &[]),
            Err(CardError::DuplicateEndpoint)
        );
    }

    #[test]
    fn card_with_more_than_four_addresses_is_refused() {
        let entry: [&[u8]; 5] = [
            &[4, 192, 0, 2, 1, 0, 1],
            &[4, 192, 0, 2, 1, 0, 2],
            &[4, 192, 0, 2, 1, 0, 3],
            &[4, 192, 0, 2, 1, 0, 4],
            &[4, 192, 0, 2, 1, 0, 5],
        ];
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[alice_cert()], &entry)),
            Err(CardError::TooManyAddresses)
        );
        let a = alice();
        let addrs: Vec<SocketAddr> = (1..=5).map(|p| v4([192, 0, 2, 1], p)).collect();
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[cert(&a, 1)], &addrs),
            Err(CardError::TooManyAddresses)
        );
    }

    #[test]
    fn card_with_unknown_address_family_is_refused() {
        for family in [0u8, 5, 46, 255] {
            let entry: [&[u8]; 1] = [&[family, 192, 0, 2, 1, 0, 1]];
            assert_eq!(
                parse_payload(&crafted(b"Alice", &[alice_cert()], &entry)),
                Err(CardError::BadAddressFamily)
            );
        }
    }

    #[test]
    fn card_with_port_zero_is_refused() {
        let entry: [&[u8]; 1] = [&[4, 192, 0, 2, 1, 0, 0]];
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[alice_cert()], &entry)),
            Err(CardError::ZeroPort)
        );
        let a = alice();
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[cert(&a, 1)], &[v6(1, 0)]),
            Err(CardError::ZeroPort)
        );
    }

    #[test]
    fn card_with_unspecified_address_is_refused() {
        let mut v6_entry = [0u8; V6_ENTRY_LEN];
        v6_entry[0] = 6;
        v6_entry[18] = 80;
        let entry: [&[u8]; 1] = [&v6_entry];
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[alice_cert()], &entry)),
            Err(CardError::UnspecifiedAddress)
        );
        let a = alice();
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[cert(&a, 1)], &[v4([0; 4], 80)]),
            Err(CardError::UnspecifiedAddress)
        );
    }

    #[test]
    fn card_with_the_same_address_twice_is_refused() {
        let entry: [&[u8]; 2] = [&[4, 192, 0, 2, 1, 0, 1], &[4, 192, 0, 2, 1, 0, 1]];
        assert_eq!(
            parse_payload(&crafted(b"Alice", &[alice_cert()], &entry)),
            Err(CardError::DuplicateAddress)
        );
        let a = alice();
        assert_eq!(
            ContactCard::issue(&a, "Alice", &[cert(&a, 1)], &[v6(1, 80), v6(1, 80)]),
            Err(CardError::DuplicateAddress)
        );
    }

    #[test]
    fn issuing_a_card_with_scoped_ipv6_address_is_refused() {
        let a = alice();
        let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        for addr in [SocketAddrV6::new(ip, 80, 0, 3), SocketAddrV6::new(ip, 80, 7, 0)] {
            assert_eq!(
                ContactCard::issue(&a, "Alice", &[cert(&a, 1)], &[SocketAddr::V6(addr)]),
                Err(CardError::ScopedAddress)
            );
        }
    }

    #[test]
    fn errors_display_a_message() {
        let e = CardError::BadCharacter { position: 17 };
        assert!(e.to_string().contains("17"));
        let e = CardError::BadCertificate(IdentityError::BadSignature);
        assert!(e.to_string().contains("certificate signature"), "{e}");
    }

    // ---- properties ----

    fn name_strategy() -> impl Strategy<Value = String> {
        "\\PC{1,64}".prop_map(|s| {
            let mut out = String::new();
            for c in s.chars() {
                if out.len() + c.len_utf8() > MAX_NAME_LEN {
                    break;
                }
                out.push(c);
            }
            out
        })
    }

    fn address_strategy() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), 1..=u16::MAX).prop_map(|(ip, port)| v4(ip, port)),
            (any::<[u8; 16]>(), 1..=u16::MAX)
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
        ]
        .prop_filter("specified", |a| !a.ip().is_unspecified())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_cards_round_trip(
            seed in any::<u64>(),
            name in name_strategy(),
            endpoints in proptest::collection::hash_set(any::<u32>(), 1..=MAX_CERTIFICATES),
            addresses in proptest::collection::hash_set(address_strategy(), 0..=MAX_ADDRESSES),
        ) {
            let id = secret(seed);
            let certs: Vec<Certificate> =
                endpoints.iter().map(|&e| cert_with(&id, e, seed ^ u64::from(e))).collect();
            let addresses: Vec<SocketAddr> = addresses.into_iter().collect();
            let card = ContactCard::issue(&id, &name, &certs, &addresses).unwrap();
            let text = card.to_string();
            prop_assert_eq!(text.len(), card.encoded_len());
            prop_assert!(text.len() <= MAX_CARD_TEXT_LEN);
            let parsed = ContactCard::parse(&text).unwrap();
            prop_assert_eq!(parsed.display_name(), name.as_str());
            prop_assert_eq!(parsed.certificates(), certs.as_slice());
            prop_assert_eq!(parsed.addresses(), addresses.as_slice());
            prop_assert_eq!(parsed, card);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let _ = ContactCard::parse(&s);
        }

        #[test]
        fn arbitrary_strings_after_the_prefix_never_panic(s in any::<String>()) {
            let text = format!("{CARD_PREFIX}{s}");
            prop_assert!(ContactCard::parse(&text).is_err());
        }

        #[test]
        fn arbitrary_base32_after_the_prefix_never_panics(s in "[0-9A-Za-z \\-\n]{0,1400}") {
            let text = format!("{CARD_PREFIX}{s}");
            prop_assert!(ContactCard::parse(&text).is_err());
        }

        #[test]
        fn arbitrary_bytes_with_valid_checksum_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_DECODED_LEN + 8),
        ) {
            prop_assert!(parse_payload(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD_LEN),
        ) {
            let mut payload = crafted(b"Alice", &[], &[]);
            payload.truncate(1 + 32 + 1 + 5);
            payload.extend_from_slice(&tail);
            prop_assert!(parse_payload(&payload).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn mutated_valid_payloads_never_panic_nor_verify(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let original = payload_of(&largest());
            let mut payload = original.clone();
            for (at, byte) in edits {
                let i = at.index(payload.len());
                payload[i] = byte;
            }
            if do_cut {
                payload.truncate(cut.index(payload.len()));
            }
            match parse_payload(&payload) {
                Ok(card) => {
                    prop_assert_eq!(&payload, &original);
                    prop_assert_eq!(card, largest());
                }
                Err(_) => prop_assert_ne!(&payload, &original),
            }
        }
    }
}
