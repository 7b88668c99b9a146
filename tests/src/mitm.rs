//! A man-in-the-middle on the virtual [`Network`]: an attacker on the path
//! between nodes that sees every datagram of the links it intercepts and
//! decides, datagram by datagram, what arrives: the datagram as sent,
//! nothing, a later copy, several copies, another order, the datagram sent
//! back to its sender, or other bytes altogether. It can also send
//! anything, from any source, at any time (spoofing, replay).
//!
//! The attacker works on top of an ordinary [`Network`] (the agent driver's
//! nodes need no change): intercepted links are cut, so the network loses
//! what their ends send; the attacker reads each lost datagram from the
//! network's trace after every step and injects what its script returns.
//! Its own sends bypass the cut. Delayed datagrams wait in the attacker,
//! which advances the network's clock to them when nothing comes earlier.
//!
//! ```ignore
//! let mut m = Mitm::new(net);
//! m.intercept(a, b);
//! m.script(|d| if d.index == 0 { vec![Action::Drop] } else { vec![Action::Forward] });
//! m.settle(60);
//! ```

use std::collections::BTreeMap;

use peercollab_core::wire::{FrameType, MAX_DATAGRAM, peek_type};
use peercollab_core::{Duration, Instant};

use crate::{Livelock, Network, Node, NodeId, TraceEntry};

/// A datagram the attacker intercepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Its position among every datagram intercepted (0, 1, …).
    pub seq: usize,
    /// Its position among the datagrams intercepted on its link, in its
    /// direction.
    pub index: usize,
    /// When it was sent.
    pub at: Instant,
    /// Its sender.
    pub from: NodeId,
    /// Whom it was for.
    pub to: NodeId,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Captured {
    /// Its frame type, if its header names one.
    #[must_use]
    pub fn frame_type(&self) -> Option<FrameType> {
        peek_type(&self.bytes).ok()
    }

    /// Whether it is a frame of type `t`.
    #[must_use]
    pub fn is(&self, t: FrameType) -> bool {
        self.frame_type() == Some(t)
    }
}

/// What the attacker does with one intercepted datagram. A script returns
/// a list of actions: none drops the datagram; several act on it several
/// times (`[Forward, Forward]` duplicates it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Deliver it, unchanged, now.
    Forward,
    /// Deliver it, unchanged, after this delay.
    Delay(Duration),
    /// Deliver these bytes instead, now, from its sender to its receiver.
    Rewrite(Vec<u8>),
    /// Send it back to its sender, as if from its receiver.
    Reflect,
    /// Keep it and deliver it right after the next datagram forwarded on
    /// its link in its direction (reordering), or at
    /// [`Mitm::release_held`].
    Hold,
    /// Send these bytes from `from` to `to` after `after` (any source:
    /// spoofing; any destination).
    Send {
        /// The source the receiver sees.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The bytes.
        bytes: Vec<u8>,
        /// The delay.
        after: Duration,
    },
}

/// The attacker's decision for each intercepted datagram.
pub type Script = Box<dyn FnMut(&Captured) -> Vec<Action>>;

/// The attacker, with the network it sits in.
pub struct Mitm {
    /// The network. Its nodes, time and trace are the tests' to read.
    pub net: Network,
    /// Every datagram intercepted, in order.
    pub captured: Vec<Captured>,
    /// Datagrams the attacker sent (forwarded, rewritten, injected …).
    pub sent: usize,
    links: Vec<(NodeId, NodeId)>,
    per_link: BTreeMap<(NodeId, NodeId), usize>,
    script: Script,
    cursor: usize,
    later: BTreeMap<(Instant, u64), (NodeId, NodeId, Vec<u8>)>,
    held: Vec<(NodeId, NodeId, Vec<u8>)>,
    seq: u64,
}

impl Mitm {
    /// An attacker in `net` that intercepts nothing yet and forwards
    /// everything it intercepts.
    #[must_use]
    pub fn new(net: Network) -> Self {
        let cursor = net.trace.len();
        Mitm {
            net,
            captured: Vec::new(),
            sent: 0,
            links: Vec::new(),
            per_link: BTreeMap::new(),
            script: Box::new(|_| vec![Action::Forward]),
            cursor,
            later: BTreeMap::new(),
            held: Vec::new(),
            seq: 0,
        }
    }

    /// Intercepts every datagram between `a` and `b`, both ways.
    pub fn intercept(&mut self, a: NodeId, b: NodeId) {
        for link in [(a, b), (b, a)] {
            if !self.links.contains(&link) {
                self.links.push(link);
                self.net.cut.push(link);
            }
        }
    }

    /// Replaces the script.
    pub fn script(&mut self, script: impl FnMut(&Captured) -> Vec<Action> + 'static) {
        self.script = Box::new(script);
    }

    /// Sends `bytes` to `to` now, as if from `from` (which may be any node
    /// id: a spoofed source). Bypasses interception.
    pub fn send(&mut self, from: NodeId, to: NodeId, bytes: &[u8]) {
        let cut = self.net.cut.iter().position(|l| *l == (from, to));
        if let Some(at) = cut {
            self.net.cut.remove(at);
        }
        self.net.inject(from, to, bytes);
        if cut.is_some() {
            self.net.cut.push((from, to));
        }
        self.sent += 1;
        self.cursor = self.net.trace.len();
    }

    /// Sends `bytes` to `to` as if from `from`, `after` from now.
    pub fn send_after(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>, after: Duration) {
        if after == Duration::ZERO {
            self.send(from, to, &bytes);
            return;
        }
        self.seq += 1;
        self.later.insert((self.net.now + after, self.seq), (from, to, bytes));
    }

    /// Sends captured datagram `seq` again, to its receiver, from its
    /// sender.
    pub fn replay(&mut self, seq: usize) {
        let c = self.captured[seq].clone();
        self.send(c.from, c.to, &c.bytes);
    }

    /// Delivers every held datagram now.
    pub fn release_held(&mut self) {
        for (from, to, bytes) in std::mem::take(&mut self.held) {
            self.send(from, to, &bytes);
        }
    }

    /// Captured datagrams of type `t`.
    pub fn of_type(&self, t: FrameType) -> impl Iterator<Item = &Captured> {
        self.captured.iter().filter(move |c| c.is(t))
    }

    /// Reads what the network lost on intercepted links since the last
    /// call, and acts on it.
    fn intercepted(&mut self) {
        let fresh: Vec<(Instant, NodeId, NodeId, Vec<u8>)> = self.net.trace[self.cursor..]
            .iter()
            .filter_map(|e| match e {
                TraceEntry::Sent { at, from, to, bytes } if self.links.contains(&(*from, *to)) => {
                    Some((*at, *from, *to, bytes.clone()))
                }
                _ => None,
            })
            .collect();
        self.cursor = self.net.trace.len();
        for (at, from, to, bytes) in fresh {
            let index = self.per_link.entry((from, to)).or_insert(0);
            let c = Captured { seq: self.captured.len(), index: *index, at, from, to, bytes };
            *index += 1;
            let actions = (self.script)(&c);
            self.captured.push(c.clone());
            for action in actions {
                match action {
                    Action::Forward => {
                        self.send(from, to, &c.bytes);
                        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                            .into_iter()
                            .partition(|(f, t, _)| (*f, *t) == (from, to));
                        self.held = others;
                        for (f, t, b) in mine {
                            self.send(f, t, &b);
                        }
                    }
                    Action::Delay(d) => self.send_after(from, to, c.bytes.clone(), d),
                    Action::Rewrite(bytes) => self.send(from, to, &bytes),
                    Action::Reflect => self.send(to, from, &c.bytes),
                    Action::Hold => self.held.push((from, to, c.bytes.clone())),
                    Action::Send { from, to, bytes, after } => {
                        self.send_after(from, to, bytes, after)
                    }
                }
            }
        }
    }

    /// One step: the attacker's next delayed datagram, or the network's next
    /// delivery or deadline, whichever comes first. `false` when nothing is
    /// left to do.
    pub fn step(&mut self) -> bool {
        self.net.flush();
        self.intercepted();
        let mine = self.later.keys().next().map(|k| k.0);
        let theirs = self.net.next_event_time();
        if let Some(t) = mine
            && theirs.is_none_or(|n| t <= n)
        {
            if t > self.net.now {
                self.net.now = t;
            }
            let due: Vec<(Instant, u64)> =
                self.later.range(..=(self.net.now, u64::MAX)).map(|(k, _)| *k).collect();
            for k in due {
                if let Some((from, to, bytes)) = self.later.remove(&k) {
                    self.send(from, to, &bytes);
                }
            }
            return true;
        }
        let more = self.net.step();
        self.intercepted();
        more
    }

    /// Steps until nothing is left, `until` holds, or virtual time passes
    /// `deadline`; more than `max_steps` steps is a livelock.
    pub fn run(
        &mut self,
        max_steps: u64,
        deadline: Instant,
        mut until: impl FnMut(&Network) -> bool,
    ) -> Result<u64, Livelock> {
        for steps in 0..max_steps {
            if until(&self.net) || self.net.now > deadline || !self.step() {
                return Ok(steps);
            }
        }
        Err(Livelock { steps: max_steps, at: self.net.now })
    }

    /// Runs until nothing is left to do, at most `secs` of virtual time.
    pub fn settle(&mut self, secs: u64) {
        let deadline = self.net.now + Duration::from_secs(secs);
        self.run(1_000_000, deadline, |_| false).expect("no livelock");
    }
}

/// A node that only listens: it records every datagram it receives (an
/// attacker's own address, or a victim of reflected traffic).
#[derive(Default)]
pub struct Sink {
    /// Datagrams received: time, claimed source, bytes.
    pub received: Vec<(Instant, NodeId, Vec<u8>)>,
}

impl Sink {
    /// Bytes received in all.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.received.iter().map(|(_, _, b)| b.len()).sum()
    }
}

impl Node for Sink {
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        self.received.push((now, from, bytes.to_vec()));
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8; MAX_DATAGRAM]) -> Option<(NodeId, usize)> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

// ----- rewriting ---------------------------------------------------------------

/// `bytes` with bit `bit` (0 = the lowest bit of byte 0) flipped.
#[must_use]
pub fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[bit / 8] ^= 1 << (bit % 8);
    b
}

/// The first `len` bytes of `bytes`.
#[must_use]
pub fn truncate(bytes: &[u8], len: usize) -> Vec<u8> {
    bytes[..len.min(bytes.len())].to_vec()
}

/// The first `at` bytes of `head` followed by `tail` from `at` on.
#[must_use]
pub fn splice(head: &[u8], tail: &[u8], at: usize) -> Vec<u8> {
    let mut b = head[..at.min(head.len())].to_vec();
    b.extend_from_slice(tail.get(at..).unwrap_or(&[]));
    b
}

/// `bytes` with byte `offset` set to `value` (a header field: 0 version,
/// 1 type, 2 mode, 3 reserved).
#[must_use]
pub fn set_byte(bytes: &[u8], offset: usize, value: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset] = value;
    b
}

/// `bytes` with the big-endian 32-bit field at `offset` (an index) set to
/// `value`.
#[must_use]
pub fn set_u32(bytes: &[u8], offset: usize, value: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
    b
}

/// The length of the cleartext header of a frame of type `t`: the common
/// header and the fields before the Noise message or ciphertext (indices,
/// and a transport's counter).
#[must_use]
pub fn cleartext_header_len(t: FrameType) -> usize {
    match t {
        FrameType::Initiation | FrameType::HandshakeFinal | FrameType::CookieReply => 8,
        FrameType::Response => 12,
        FrameType::Transport => 16,
    }
}

// ----- forging -----------------------------------------------------------------

/// Frames an attacker builds by hand, with the core's public primitives,
/// where no honest session would send them.
pub mod forge {
    use peercollab_core::HashDrbg;
    use peercollab_core::identity::Certificate;
    use peercollab_core::invite::message::{
        AppId, InviteFragment, InviteId, Message, chunk_range, fragment_count,
    };
    use peercollab_core::mac::{MacKey, XX_MAC1_KEY_MATERIAL};
    use peercollab_core::noise::{CipherState, DH_LEN, KeyPair, SymmetricState, TAG_LEN, dh};
    use peercollab_core::session::prologue;
    use peercollab_core::wire::{Frame, FrameType, MAC_LEN, MIN_XX_INITIATION_LEN, Mode, VERSION};

    /// The Noise protocol name of IK.
    pub const IK_NAME: &[u8] = b"Noise_IK_25519_ChaChaPoly_SHA256";

    /// An IK initiation (handshake message 1, framed, mac1 set, mac2 zero)
    /// to the holder of `responder_static`, built token by token:
    /// `e` is `ephemeral`, `s` is `initiator_static` (any public key: it is
    /// only encrypted), and `ss` is the given value, so whoever knows
    /// `DH(s_i, s_r)` by either private key can build one (key-compromise
    /// impersonation). The payload states `statement` (a certificate's 141
    /// bytes, whatever they say) and pins `pinned_hash`.
    #[must_use]
    pub fn ik_initiation(
        responder_static: &[u8; DH_LEN],
        ephemeral: &KeyPair,
        initiator_static: &[u8; DH_LEN],
        ss: &[u8; DH_LEN],
        statement: &[u8],
        pinned_hash: &[u8; 32],
        sender_index: u32,
    ) -> Vec<u8> {
        ik_initiation_keeping_state(
            responder_static,
            ephemeral,
            initiator_static,
            ss,
            statement,
            pinned_hash,
            sender_index,
        )
        .0
    }

    /// [`ik_initiation`], also returning the forger's symmetric state after
    /// message 1 (`ck`, `k` and `h` as the responder has them once it read
    /// the message): what an attacker goes on with to read message 2
    /// ([`ik_read_response_without_se`]).
    #[must_use]
    pub fn ik_initiation_keeping_state(
        responder_static: &[u8; DH_LEN],
        ephemeral: &KeyPair,
        initiator_static: &[u8; DH_LEN],
        ss: &[u8; DH_LEN],
        statement: &[u8],
        pinned_hash: &[u8; 32],
        sender_index: u32,
    ) -> (Vec<u8>, SymmetricState) {
        let mut sym = SymmetricState::initialize(IK_NAME);
        sym.mix_hash(&prologue(Mode::Ik));
        sym.mix_hash(responder_static);
        let mut noise = Vec::new();
        noise.extend_from_slice(ephemeral.public());
        sym.mix_hash(ephemeral.public());
        // A low-order responder key makes `es` fail; the forger then
        // mixes zeros, and the responder's checks must catch the rest.
        sym.mix_key(&dh(ephemeral, responder_static).unwrap_or([0; DH_LEN]));
        let mut buf = [0u8; 1200];
        let n = sym.encrypt_and_hash(initiator_static, &mut buf).expect("encrypt s");
        noise.extend_from_slice(&buf[..n]);
        sym.mix_key(ss);
        let mut payload = vec![0x01, 0x00, u8::try_from(statement.len()).expect("short")];
        payload.extend_from_slice(statement);
        payload.extend_from_slice(&[0x03, 0x00, 0x20]);
        payload.extend_from_slice(pinned_hash);
        let n = sym.encrypt_and_hash(&payload, &mut buf).expect("encrypt payload");
        noise.extend_from_slice(&buf[..n]);
        (frame_initiation(Mode::Ik, sender_index, &noise, responder_static), sym)
    }

    /// The transport keys an impersonator derived from a responder's IK
    /// message 2.
    pub struct ForgedKeys {
        /// The initiator's sending key (the first of `Split()`).
        pub send: CipherState,
        /// The initiator's receiving key.
        pub recv: CipherState,
        /// The responder's index, to address transport datagrams to its
        /// session.
        pub receiver_index: u32,
        /// The decrypted payload of message 2.
        pub payload: Vec<u8>,
    }

    /// What an attacker who forged IK message 1 (`sym`, `ephemeral`, from
    /// [`ik_initiation_keeping_state`]) but holds no private key of the
    /// initiator it claims to be can compute of the responder's message 2
    /// (`response`, the framed datagram): `e` (read `re`, mix it into `h`),
    /// `ee` = DH(e, re) — and then, **not** knowing `se` = DH(s_i, re), it
    /// tries to decrypt the payload directly. Against IK (`e, ee, se`) that
    /// fails: `None`. It succeeds only if the responder left `se` out (the
    /// mutation `ik-se`); then the split transport keys come back, and the
    /// attacker can send anything as the claimed initiator.
    #[must_use]
    pub fn ik_read_response_without_se(
        mut sym: SymmetricState,
        ephemeral: &KeyPair,
        response: &[u8],
    ) -> Option<ForgedKeys> {
        let Ok(Frame::Response(r)) = Frame::parse(response) else { return None };
        let re: [u8; DH_LEN] = r.noise.get(..DH_LEN)?.try_into().ok()?;
        sym.mix_hash(&re);
        sym.mix_key(&dh(ephemeral, &re).ok()?);
        // `se` would go here; the attacker cannot compute it.
        let mut buf = [0u8; 1200];
        let n = sym.decrypt_and_hash(&r.noise[DH_LEN..], &mut buf).ok()?;
        let (send, recv) = sym.split();
        Some(ForgedKeys { send, recv, receiver_index: r.sender_index, payload: buf[..n].to_vec() })
    }

    /// A transport datagram to the session `receiver_index`, at `counter`,
    /// sealing `plaintext` under `send` exactly as `Session::seal` does: the
    /// 16-byte header (version, type, mode 0, reserved 0, receiver index,
    /// counter; all big-endian) is the associated data and the counter the
    /// nonce.
    #[must_use]
    pub fn transport(
        send: &CipherState,
        receiver_index: u32,
        counter: u64,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let mut d = vec![VERSION, FrameType::Transport as u8, 0, 0];
        d.extend_from_slice(&receiver_index.to_be_bytes());
        d.extend_from_slice(&counter.to_be_bytes());
        let mut body = vec![0u8; plaintext.len() + TAG_LEN];
        let n = send.encrypt_with_nonce(counter, &d, plaintext, &mut body).expect("seal");
        d.extend_from_slice(&body[..n]);
        d
    }

    /// The Invite fragments of an invitation (the invitation messages the
    /// core's codec emits, one per transport payload): `id`, to `app_id`,
    /// `message` and `data`, expiring in `remaining_ms`.
    #[must_use]
    pub fn invite_fragments(
        id: InviteId,
        app_id: AppId,
        message: &str,
        data: &[u8],
        remaining_ms: u32,
    ) -> Vec<Vec<u8>> {
        let mut body = message.as_bytes().to_vec();
        body.extend_from_slice(data);
        (0..fragment_count(body.len()))
            .map(|i| {
                let range = chunk_range(body.len(), i).expect("a short body");
                let m = Message::Invite(InviteFragment {
                    id,
                    app_id,
                    remaining_ms,
                    message_len: u16::try_from(message.len()).expect("short"),
                    data_len: u16::try_from(data.len()).expect("short"),
                    index: u8::try_from(i).expect("few fragments"),
                    chunk: &body[range],
                });
                let mut buf = vec![0u8; m.buffer_len()];
                let n = m.emit(&mut buf).expect("emit");
                buf.truncate(n);
                buf
            })
            .collect()
    }

    /// An honest-looking IK initiation from the holder of `initiator` (its
    /// key pair and certificate) to `responder_static`, pinning
    /// `pinned_hash`.
    #[must_use]
    pub fn ik_initiation_from(
        initiator: &KeyPair,
        certificate: &Certificate,
        responder_static: &[u8; DH_LEN],
        pinned_hash: &[u8; 32],
        seed: u64,
    ) -> Vec<u8> {
        let e = KeyPair::generate(&mut HashDrbg::from_u64(seed));
        let ss = dh(initiator, responder_static).expect("contributory");
        ik_initiation(
            responder_static,
            &e,
            initiator.public(),
            &ss,
            &certificate.encode(),
            pinned_hash,
            u32::try_from(seed & 0xFFFF_FFFF).unwrap_or(0),
        )
    }

    /// An XX initiation with ephemeral key `e` (any 32 bytes) and a zero
    /// payload of `payload_len` bytes, mac1 set.
    #[must_use]
    pub fn xx_initiation(e: &[u8; DH_LEN], payload_len: usize, sender_index: u32) -> Vec<u8> {
        let mut noise = e.to_vec();
        noise.resize(DH_LEN + payload_len, 0);
        frame_initiation(Mode::Xx, sender_index, &noise, &XX_MAC1_KEY_MATERIAL)
    }

    /// The payload length of the smallest XX initiation a responder takes.
    pub const XX_PADDING: usize = MIN_XX_INITIATION_LEN - 8 - DH_LEN - 2 * MAC_LEN;

    /// Frames a Noise message 1: header, sender index, the message, mac1
    /// keyed by `mac1_material`, mac2 zero.
    #[must_use]
    pub fn frame_initiation(
        mode: Mode,
        sender_index: u32,
        noise: &[u8],
        mac1_material: &[u8; DH_LEN],
    ) -> Vec<u8> {
        let mode_byte = match mode {
            Mode::Ik => 1,
            Mode::Xx => 2,
        };
        let mut d = vec![1, 1, mode_byte, 0];
        d.extend_from_slice(&sender_index.to_be_bytes());
        d.extend_from_slice(noise);
        let mac1 = MacKey::mac1(mac1_material).mac(&d);
        d.extend_from_slice(&mac1);
        d.extend_from_slice(&[0; MAC_LEN]);
        d
    }

    /// Sets the mac1 of an initiation again after its bytes were changed
    /// (an attacker who knows the responder's key can).
    #[must_use]
    pub fn remac_initiation(datagram: &[u8], mac1_material: &[u8; DH_LEN]) -> Vec<u8> {
        let mut d = datagram.to_vec();
        let n = d.len() - 2 * MAC_LEN;
        let mac1 = MacKey::mac1(mac1_material).mac(&d[..n]);
        d[n..n + MAC_LEN].copy_from_slice(&mac1);
        d
    }

    /// Sets the mac1 of a response again (keyed by the initiator's
    /// ephemeral, which an on-path attacker saw in the initiation).
    #[must_use]
    pub fn remac_response(datagram: &[u8], initiator_ephemeral: &[u8; DH_LEN]) -> Vec<u8> {
        let mut d = datagram.to_vec();
        let n = d.len() - MAC_LEN;
        let mac1 = MacKey::mac1(initiator_ephemeral).mac(&d[..n]);
        d[n..].copy_from_slice(&mac1);
        d
    }

    /// The seven low-order points of Curve25519 in their canonical
    /// encodings, and the non-canonical encodings of two of them
    /// (`p` and `p + 1`), as x25519 public keys.
    pub const LOW_ORDER_POINTS: [[u8; 32]; 7] = [
        [0; 32],
        {
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        },
        [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ],
        [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0x57,
        ],
        {
            // p - 1
            let mut p = [0xffu8; 32];
            p[0] = 0xec;
            p[31] = 0x7f;
            p
        },
        {
            // p
            let mut p = [0xffu8; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        },
        {
            // p + 1
            let mut p = [0xffu8; 32];
            p[0] = 0xee;
            p[31] = 0x7f;
            p
        },
    ];

    /// A weak (small-order) ed25519 public key: the identity point.
    pub const WEAK_ED25519_KEY: [u8; 32] = {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    };

    /// A signature that plain (non-strict) Ed25519 verification accepts for
    /// [`WEAK_ED25519_KEY`] and **any** message: `R` = the identity point,
    /// `S` = 0. `verify_strict` refuses the key.
    pub const WEAK_SIGNATURE: [u8; 64] = {
        let mut s = [0u8; 64];
        s[0] = 1;
        s
    };

    /// `certificate`'s bytes with the identity key replaced by the weak key
    /// and the signature by [`WEAK_SIGNATURE`].
    #[must_use]
    pub fn weak_certificate(certificate: &Certificate) -> Vec<u8> {
        let mut c = certificate.encode().to_vec();
        c[1..33].copy_from_slice(&WEAK_ED25519_KEY);
        let n = c.len();
        c[n - 64..].copy_from_slice(&WEAK_SIGNATURE);
        c
    }
}

/// A and B (agents seeded `agent_seed` and the next) on a clean network
/// seeded `seed`, each the other's trusted contact, B running
/// [`APP`](crate::agents::APP), and the attacker between them.
#[must_use]
pub fn trusted_pair(seed: u64, agent_seed: u64) -> (Mitm, NodeId, NodeId) {
    use crate::agents::{APP, befriend, clean_network, register};
    use peercollab_core::agent::Trust;
    let (mut net, _, ids) = clean_network(seed, 2, agent_seed);
    let (a, b) = (ids[0], ids[1]);
    befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    let mut m = Mitm::new(net);
    m.intercept(a, b);
    (m, a, b)
}

/// Adds a [`Sink`] to `net` at its default address in `book`: the
/// attacker's own address, where answers to it arrive.
pub fn add_sink(net: &mut Network, book: &crate::agents::AddressBook) -> NodeId {
    let id = net.add(Box::new(Sink::default()));
    book.set(id, crate::agents::AddressBook::default_address(id));
    id
}
