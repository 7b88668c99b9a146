//! HandshakeState (Noise §5.3), driven by a [`HandshakePattern`] table.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;
use super::cipher::TransportState;
use super::pattern::{HandshakePattern, MAX_PROTOCOL_NAME, Token};
use super::primitives::{DH_LEN, KeyPair, MAX_MESSAGE_LEN, TAG_LEN, dh};
use super::symmetric::SymmetricState;
use crate::Entropy;

/// Which side of the handshake this party plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the first message.
    Initiator,
    /// Receives the first message.
    Responder,
}

/// A source of precomputed static-static DH results, looked up by the peer's
/// static key when a message's `ss` token is read (an IK responder learns the
/// initiator's static key only from message 1).
pub trait StaticDhCache {
    /// `DH(local static, remote_static)` if it was computed before.
    fn static_dh(&self, remote_static: &[u8; DH_LEN]) -> Option<[u8; DH_LEN]>;
}

impl StaticDhCache for () {
    fn static_dh(&self, _: &[u8; DH_LEN]) -> Option<[u8; DH_LEN]> {
        None
    }
}

/// The costly operations a message read performed, counted also when it
/// failed part-way: a responder that refuses an initiation silently pads
/// its work up to a constant with this (`spec/agent.md` §4.1, uniform
/// rejection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Diffie-Hellman operations computed (a precomputed `ss` is none).
    pub dh: u8,
    /// AEAD decryptions attempted, authentic or not.
    pub aead_open: u8,
    /// Ed25519 signature checks (counted by the caller that makes them).
    pub verify: u8,
}

/// The state of one handshake in progress.
///
/// Every `write_message` and `read_message` works on a copy and commits it
/// only on success, so a failed call changes nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HandshakeState {
    symmetric: SymmetricState,
    #[zeroize(skip)]
    pattern: HandshakePattern,
    #[zeroize(skip)]
    role: Role,
    // KeyPair secrets zeroize themselves when dropped.
    #[zeroize(skip)]
    s: Option<KeyPair>,
    #[zeroize(skip)]
    e: Option<KeyPair>,
    rs: Option<[u8; DH_LEN]>,
    re: Option<[u8; DH_LEN]>,
    psk: Option<[u8; 32]>,
    precomputed_ss: Option<[u8; DH_LEN]>,
    next_message: usize,
}

impl HandshakeState {
    /// Starts a handshake.
    ///
    /// `s` is this party's static key pair, `rs` the peer's static key where the
    /// pattern has it as a pre-message, `psk` the pre-shared key for psk
    /// patterns. A key the pattern's pre-messages need but that is missing is
    /// [`Error::MissingKey`].
    pub fn new(
        pattern: HandshakePattern,
        role: Role,
        prologue: &[u8],
        s: Option<KeyPair>,
        rs: Option<[u8; DH_LEN]>,
        psk: Option<[u8; 32]>,
    ) -> Result<Self, Error> {
        let mut name = [0u8; MAX_PROTOCOL_NAME];
        let len = pattern.protocol_name(&mut name);
        let mut symmetric = SymmetricState::initialize(&name[..len]);
        symmetric.mix_hash(prologue);
        let (mine, theirs) = match role {
            Role::Initiator => (pattern.base().pre_initiator, pattern.base().pre_responder),
            Role::Responder => (pattern.base().pre_responder, pattern.base().pre_initiator),
        };
        // Pre-messages are hashed initiator first, whichever side we are.
        let pre_key = |tokens: &[Token], own: bool| -> Result<Option<[u8; DH_LEN]>, Error> {
            match tokens {
                [] => Ok(None),
                [Token::S] if own => s.as_ref().map(|k| Some(*k.public())).ok_or(Error::MissingKey),
                [Token::S] => rs.map(Some).ok_or(Error::MissingKey),
                _ => Err(Error::MissingKey),
            }
        };
        let mine_key = pre_key(mine, true)?;
        let theirs_key = pre_key(theirs, false)?;
        let (first, second) = match role {
            Role::Initiator => (mine_key, theirs_key),
            Role::Responder => (theirs_key, mine_key),
        };
        for k in [first, second].into_iter().flatten() {
            symmetric.mix_hash(&k);
        }
        if pattern.has_psk() && psk.is_none() {
            return Err(Error::MissingKey);
        }
        Ok(HandshakeState {
            symmetric,
            pattern,
            role,
            s,
            e: None,
            rs,
            re: None,
            psk,
            precomputed_ss: None,
            next_message: 0,
        })
    }

    /// Supplies `DH(s, rs)` computed earlier, so the `ss` token costs no DH.
    /// The caller guarantees it matches this state's `s` and `rs`.
    #[must_use]
    pub fn with_precomputed_ss(mut self, ss: [u8; DH_LEN]) -> Self {
        self.precomputed_ss = Some(ss);
        self
    }

    /// This party's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The pattern being run.
    #[must_use]
    pub fn pattern(&self) -> HandshakePattern {
        self.pattern
    }

    /// Whether every handshake message has been written or read.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.next_message >= self.pattern.message_count()
    }

    /// Whether the next message is ours to write.
    #[must_use]
    pub fn is_my_turn(&self) -> bool {
        !self.is_finished() && self.writer_of(self.next_message) == self.role
    }

    /// Index of the next handshake message.
    #[must_use]
    pub fn message_index(&self) -> usize {
        self.next_message
    }

    /// The peer's static public key, once known.
    #[must_use]
    pub fn remote_static(&self) -> Option<&[u8; DH_LEN]> {
        self.rs.as_ref()
    }

    /// This party's ephemeral public key, once generated.
    #[must_use]
    pub fn local_ephemeral(&self) -> Option<&[u8; DH_LEN]> {
        self.e.as_ref().map(KeyPair::public)
    }

    /// The peer's ephemeral public key, once received.
    #[must_use]
    pub fn remote_ephemeral(&self) -> Option<&[u8; DH_LEN]> {
        self.re.as_ref()
    }

    /// The running handshake hash `h`.
    #[must_use]
    pub fn handshake_hash(&self) -> &[u8; 32] {
        self.symmetric.handshake_hash()
    }

    fn writer_of(&self, index: usize) -> Role {
        if index.is_multiple_of(2) { Role::Initiator } else { Role::Responder }
    }

    /// Exact length of the next message for a payload of `payload_len` bytes.
    #[must_use]
    pub fn next_message_len(&self, payload_len: usize) -> usize {
        let mut has_key = self.symmetric.has_key();
        let mut len = 0;
        for t in self.pattern.tokens(self.next_message) {
            match t {
                Token::E => {
                    len += DH_LEN;
                    has_key |= self.pattern.has_psk();
                }
                Token::S => len += DH_LEN + if has_key { TAG_LEN } else { 0 },
                Token::Ee | Token::Es | Token::Se | Token::Ss | Token::Psk => has_key = true,
            }
        }
        len + payload_len + if has_key { TAG_LEN } else { 0 }
    }

    /// Writes the next handshake message carrying `payload` into `out`; returns
    /// its length. Ephemeral keys are drawn from `rng`.
    pub fn write_message(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut impl Entropy,
    ) -> Result<usize, Error> {
        if !self.is_my_turn() {
            return Err(Error::WrongTurn);
        }
        if self.next_message_len(payload.len()) > MAX_MESSAGE_LEN {
            return Err(Error::BadLength);
        }
        let mut next = self.clone();
        let len = next.write_tokens(payload, out, rng)?;
        *self = next;
        Ok(len)
    }

    fn write_tokens(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
        rng: &mut impl Entropy,
    ) -> Result<usize, Error> {
        let mut pos = 0;
        for t in self.pattern.tokens(self.next_message) {
            match t {
                Token::E => {
                    let e = KeyPair::generate(rng);
                    let dst = out.get_mut(pos..pos + DH_LEN).ok_or(Error::BufferTooSmall)?;
                    dst.copy_from_slice(e.public());
                    self.symmetric.mix_hash(e.public());
                    if self.pattern.has_psk() {
                        self.symmetric.mix_key(e.public());
                    }
                    self.e = Some(e);
                    pos += DH_LEN;
                }
                Token::S => {
                    let s = *self.s.as_ref().ok_or(Error::MissingKey)?.public();
                    let dst = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
                    pos += self.symmetric.encrypt_and_hash(&s, dst)?;
                }
                Token::Psk => self.mix_psk()?,
                dh_token => self.mix_dh(dh_token, &(), &mut Work::default())?,
            }
        }
        let dst = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
        pos += self.symmetric.encrypt_and_hash(payload, dst)?;
        self.next_message += 1;
        Ok(pos)
    }

    /// Reads the next handshake message into `payload_out`; returns the payload
    /// length. On error nothing changes.
    pub fn read_message(&mut self, message: &[u8], payload_out: &mut [u8]) -> Result<usize, Error> {
        self.read_message_with(message, payload_out, &())
    }

    /// [`read_message`](Self::read_message), taking the `ss` result from
    /// `cache` when it has one for the peer's static key.
    pub fn read_message_with(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
        cache: &impl StaticDhCache,
    ) -> Result<usize, Error> {
        self.read_message_counted(message, payload_out, cache, &mut Work::default())
    }

    /// [`read_message_with`](Self::read_message_with), adding to `work`
    /// the Diffie-Hellman and AEAD operations it performed, whether it
    /// succeeds or not.
    pub fn read_message_counted(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
        cache: &impl StaticDhCache,
        work: &mut Work,
    ) -> Result<usize, Error> {
        if self.is_finished() || self.is_my_turn() {
            return Err(Error::WrongTurn);
        }
        if message.len() > MAX_MESSAGE_LEN {
            return Err(Error::BadLength);
        }
        let mut next = self.clone();
        let len = next.read_tokens(message, payload_out, cache, work)?;
        *self = next;
        Ok(len)
    }

    fn read_tokens(
        &mut self,
        message: &[u8],
        payload_out: &mut [u8],
        cache: &impl StaticDhCache,
        work: &mut Work,
    ) -> Result<usize, Error> {
        let mut pos = 0;
        for t in self.pattern.tokens(self.next_message) {
            match t {
                Token::E => {
                    let re: [u8; DH_LEN] = message
                        .get(pos..pos + DH_LEN)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(Error::BadLength)?;
                    self.symmetric.mix_hash(&re);
                    if self.pattern.has_psk() {
                        self.symmetric.mix_key(&re);
                    }
                    self.re = Some(re);
                    pos += DH_LEN;
                }
                Token::S => {
                    let len = DH_LEN + if self.symmetric.has_key() { TAG_LEN } else { 0 };
                    let ct = message.get(pos..pos + len).ok_or(Error::BadLength)?;
                    let mut rs = [0u8; DH_LEN];
                    work.aead_open =
                        work.aead_open.saturating_add(u8::from(self.symmetric.has_key()));
                    self.symmetric.decrypt_and_hash(ct, &mut rs)?;
                    self.rs = Some(rs);
                    pos += len;
                }
                Token::Psk => self.mix_psk()?,
                dh_token => self.mix_dh(dh_token, cache, work)?,
            }
        }
        let rest = message.get(pos..).ok_or(Error::BadLength)?;
        work.aead_open = work.aead_open.saturating_add(u8::from(self.symmetric.has_key()));
        let n = self.symmetric.decrypt_and_hash(rest, payload_out)?;
        self.next_message += 1;
        Ok(n)
    }

    fn mix_psk(&mut self) -> Result<(), Error> {
        let psk = self.psk.ok_or(Error::MissingKey)?;
        self.symmetric.mix_key_and_hash(&psk);
        Ok(())
    }

    fn mix_dh(
        &mut self,
        token: Token,
        cache: &impl StaticDhCache,
        work: &mut Work,
    ) -> Result<(), Error> {
        let initiator = self.role == Role::Initiator;
        // (local key, remote key) per token and role, Noise §5.3.
        let (local_static, remote_static) = match (token, initiator) {
            (Token::Ee, _) => (false, false),
            (Token::Es, true) | (Token::Se, false) => (false, true),
            (Token::Es, false) | (Token::Se, true) => (true, false),
            _ => (true, true),
        };
        let remote = if remote_static { self.rs } else { self.re }.ok_or(Error::MissingKey)?;
        let mut shared = if local_static && remote_static {
            match self.precomputed_ss.or_else(|| cache.static_dh(&remote)) {
                Some(ss) => ss,
                None => {
                    let s = self.s.as_ref().ok_or(Error::MissingKey)?;
                    work.dh = work.dh.saturating_add(1);
                    dh(s, &remote)?
                }
            }
        } else {
            let local = if local_static { &self.s } else { &self.e };
            let local = local.as_ref().ok_or(Error::MissingKey)?;
            work.dh = work.dh.saturating_add(1);
            dh(local, &remote)?
        };
        self.symmetric.mix_key(&shared);
        shared.zeroize();
        Ok(())
    }

    /// Ends the handshake: `Split()` into a transport state (the initiator sends
    /// with the first CipherState, the responder with the second).
    pub fn into_transport(self) -> Result<TransportState, Error> {
        if !self.is_finished() {
            return Err(Error::NotFinished);
        }
        let (c1, c2) = self.symmetric.split();
        let (send, recv) = match self.role {
            Role::Initiator => (c1, c2),
            Role::Responder => (c2, c1),
        };
        Ok(TransportState::new(send, recv, *self.symmetric.handshake_hash(), self.rs))
    }
}

impl core::fmt::Debug for HandshakeState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeState")
            .field("pattern", &self.pattern.base().name)
            .field("role", &self.role)
            .field("next_message", &self.next_message)
            .field("symmetric", &self.symmetric)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashDrbg;

    fn ik_pair(rng: &mut HashDrbg) -> (HandshakeState, HandshakeState) {
        let si = KeyPair::generate(rng);
        let sr = KeyPair::generate(rng);
        let rs = *sr.public();
        let i = HandshakeState::new(
            HandshakePattern::IK,
            Role::Initiator,
            b"p",
            Some(si),
            Some(rs),
            None,
        )
        .unwrap();
        let r =
            HandshakeState::new(HandshakePattern::IK, Role::Responder, b"p", Some(sr), None, None)
                .unwrap();
        (i, r)
    }

    #[test]
    fn ik_handshake_completes_and_transport_works_both_ways() {
        let mut rng = HashDrbg::from_u64(1);
        let (mut i, mut r) = ik_pair(&mut rng);
        let mut m = [0u8; 256];
        let mut p = [0u8; 256];
        let n = i.write_message(b"hi", &mut m, &mut rng).unwrap();
        assert_eq!(n, 32 + 48 + 2 + 16);
        assert_eq!(r.read_message(&m[..n], &mut p).unwrap(), 2);
        assert_eq!(&p[..2], b"hi");
        let n = r.write_message(b"", &mut m, &mut rng).unwrap();
        assert_eq!(n, 48);
        assert_eq!(i.read_message(&m[..n], &mut p).unwrap(), 0);
        assert!(i.is_finished() && r.is_finished());
        assert_eq!(i.handshake_hash(), r.handshake_hash());
        let mut ti = i.into_transport().unwrap();
        let mut tr = r.into_transport().unwrap();
        let n = ti.write_message(b"ping", &mut m).unwrap();
        assert_eq!(tr.read_message(&m[..n], &mut p).unwrap(), 4);
        let n = tr.write_message(b"pong", &mut m).unwrap();
        assert_eq!(ti.read_message(&m[..n], &mut p).unwrap(), 4);
        assert_eq!(&p[..4], b"pong");
    }

    #[test]
    fn a_failed_read_changes_nothing_and_the_real_message_still_works() {
        let mut rng = HashDrbg::from_u64(2);
        let (mut i, mut r) = ik_pair(&mut rng);
        let mut m = [0u8; 256];
        let mut p = [0u8; 256];
        let n = i.write_message(b"payload", &mut m, &mut rng).unwrap();
        let before = *r.handshake_hash();
        for bit in [0usize, 8 * 40, 8 * (n - 1)] {
            let mut bad = m;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(r.read_message(&bad[..n], &mut p).is_err());
            assert_eq!(r.handshake_hash(), &before);
            assert_eq!(r.message_index(), 0);
        }
        assert_eq!(r.read_message(&m[..n - 1], &mut p), Err(Error::Decrypt));
        assert_eq!(r.read_message(&m[..10], &mut p), Err(Error::BadLength));
        assert_eq!(r.read_message(&m[..n], &mut p), Ok(7));
    }

    #[test]
    fn writing_or_reading_out_of_turn_is_refused() {
        let mut rng = HashDrbg::from_u64(3);
        let (mut i, mut r) = ik_pair(&mut rng);
        let mut m = [0u8; 256];
        let mut p = [0u8; 256];
        assert_eq!(r.write_message(b"", &mut m, &mut rng), Err(Error::WrongTurn));
        assert_eq!(i.read_message(&m[..96], &mut p), Err(Error::WrongTurn));
        assert_eq!(i.write_message(b"", &mut m[..50], &mut rng), Err(Error::BufferTooSmall));
        assert_eq!(i.message_index(), 0);
        assert!(i.clone().into_transport().is_err());
    }

    #[test]
    fn precomputed_static_dh_gives_the_same_handshake() {
        let mut rng = HashDrbg::from_u64(4);
        let si = KeyPair::generate(&mut rng);
        let sr = KeyPair::generate(&mut rng);
        let ss = dh(&si, sr.public()).unwrap();
        struct Cache([u8; 32], [u8; 32]);
        impl StaticDhCache for Cache {
            fn static_dh(&self, rs: &[u8; 32]) -> Option<[u8; 32]> {
                (rs == &self.0).then_some(self.1)
            }
        }
        let cache = Cache(*si.public(), ss);
        let mut m = [0u8; 256];
        let mut p = [0u8; 256];
        let mut hashes = [[0u8; 32]; 2];
        for (k, pre) in [false, true].into_iter().enumerate() {
            let mut rng = HashDrbg::from_u64(9);
            let mut i = HandshakeState::new(
                HandshakePattern::IK,
                Role::Initiator,
                b"",
                Some(si.clone()),
                Some(*sr.public()),
                None,
            )
            .unwrap();
            if pre {
                i = i.with_precomputed_ss(ss);
            }
            let mut r = HandshakeState::new(
                HandshakePattern::IK,
                Role::Responder,
                b"",
                Some(sr.clone()),
                None,
                None,
            )
            .unwrap();
            let n = i.write_message(b"", &mut m, &mut rng).unwrap();
            if pre {
                r.read_message_with(&m[..n], &mut p, &cache).unwrap();
            } else {
                r.read_message(&m[..n], &mut p).unwrap();
            }
            hashes[k] = *r.handshake_hash();
        }
        assert_eq!(hashes[0], hashes[1]);
    }

    #[test]
    fn debug_prints_no_key_material() {
        let mut rng = HashDrbg::from_u64(5);
        let sk = [0x42u8; 32];
        let kp = KeyPair::from_secret_bytes(sk);
        let hs =
            HandshakeState::new(HandshakePattern::XX, Role::Initiator, b"", Some(kp), None, None)
                .unwrap();
        let _ = &mut rng;
        let mut s = heapless::String::<1024>::new();
        core::fmt::write(&mut s, format_args!("{hs:?}")).unwrap();
        assert!(!s.contains("4242"), "{s}");
    }
}
