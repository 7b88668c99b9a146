//! Handshake patterns (Noise §7, §9, §10) as data.
//!
//! A [`HandshakePattern`] is a base pattern (pre-messages and message token
//! lists) plus the positions of its `psk` modifiers, so `IKpsk2` costs one
//! byte more than `IK` and every pattern shares the one engine.

/// A token of a handshake message (Noise §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// Send or receive an ephemeral public key.
    E,
    /// Send or receive a static public key (encrypted once a key is set).
    S,
    /// DH between both ephemerals.
    Ee,
    /// DH between the initiator's ephemeral and the responder's static.
    Es,
    /// DH between the initiator's static and the responder's ephemeral.
    Se,
    /// DH between both statics.
    Ss,
    /// Mix in the pre-shared key.
    Psk,
}

/// A pattern without modifiers: who knows which static key beforehand, and the
/// tokens of each message. Message `i` is sent by the initiator when `i` is even.
#[derive(Debug, PartialEq, Eq)]
pub struct BasePattern {
    /// The pattern's name in a protocol name, e.g. `"IK"`.
    pub name: &'static str,
    /// Pre-message tokens of the initiator (only [`Token::S`] is used).
    pub pre_initiator: &'static [Token],
    /// Pre-message tokens of the responder (only [`Token::S`] is used).
    pub pre_responder: &'static [Token],
    /// The token list of each handshake message, in order.
    pub messages: &'static [&'static [Token]],
}

/// A base pattern plus `psk` modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakePattern {
    base: &'static BasePattern,
    /// Bit `i` set: modifier `psk{i}` (psk0 at the start of message 0,
    /// psk{i} for i ≥ 1 at the end of message i - 1).
    psk_mask: u8,
}

use Token::{E, Ee, Es, S, Se, Ss};

macro_rules! patterns {
    ($( $(#[$doc:meta])* $id:ident = $name:literal, pre_i [$($pi:ident),*], pre_r [$($pr:ident),*], [$([$($t:ident),*]),+ $(,)?]; )+) => {
        $(
            $(#[$doc])*
            pub static $id: BasePattern = BasePattern {
                name: $name,
                pre_initiator: &[$($pi),*],
                pre_responder: &[$($pr),*],
                messages: &[$(&[$($t),*]),+],
            };
        )+
        /// Every base pattern the engine supports.
        pub static ALL_BASE: &[&BasePattern] = &[$(&$id),+];
    };
}

patterns! {
    // One-way patterns (§7.4).
    /// `N`: `<- s; ... -> e, es` (one-way).
    N = "N", pre_i [], pre_r [S], [[E, Es]];
    /// `K`: `-> s; <- s; ... -> e, es, ss` (one-way).
    K = "K", pre_i [S], pre_r [S], [[E, Es, Ss]];
    /// `X`: `<- s; ... -> e, es, s, ss` (one-way).
    X = "X", pre_i [], pre_r [S], [[E, Es, S, Ss]];
    // Fundamental interactive patterns (§7.5).
    /// `NN`: `-> e; <- e, ee`.
    NN = "NN", pre_i [], pre_r [], [[E], [E, Ee]];
    /// `NK`: `<- s; ... -> e, es; <- e, ee`.
    NK = "NK", pre_i [], pre_r [S], [[E, Es], [E, Ee]];
    /// `NX`: `-> e; <- e, ee, s, es`.
    NX = "NX", pre_i [], pre_r [], [[E], [E, Ee, S, Es]];
    /// `XN`: `-> e; <- e, ee; -> s, se`.
    XN = "XN", pre_i [], pre_r [], [[E], [E, Ee], [S, Se]];
    /// `XK`: `<- s; ... -> e, es; <- e, ee; -> s, se`.
    XK = "XK", pre_i [], pre_r [S], [[E, Es], [E, Ee], [S, Se]];
    /// `XX`: `-> e; <- e, ee, s, es; -> s, se` (endpoint invitations).
    XX = "XX", pre_i [], pre_r [], [[E], [E, Ee, S, Es], [S, Se]];
    /// `KN`: `-> s; ... -> e; <- e, ee, se`.
    KN = "KN", pre_i [S], pre_r [], [[E], [E, Ee, Se]];
    /// `KK`: `-> s; <- s; ... -> e, es, ss; <- e, ee, se`.
    KK = "KK", pre_i [S], pre_r [S], [[E, Es, Ss], [E, Ee, Se]];
    /// `KX`: `-> s; ... -> e; <- e, ee, se, s, es`.
    KX = "KX", pre_i [S], pre_r [], [[E], [E, Ee, Se, S, Es]];
    /// `IN`: `-> e, s; <- e, ee, se`.
    IN = "IN", pre_i [], pre_r [], [[E, S], [E, Ee, Se]];
    /// `IK`: `<- s; ... -> e, es, s, ss; <- e, ee, se` (contact invitations).
    IK = "IK", pre_i [], pre_r [S], [[E, Es, S, Ss], [E, Ee, Se]];
    /// `IX`: `-> e, s; <- e, ee, se, s, es`.
    IX = "IX", pre_i [], pre_r [], [[E, S], [E, Ee, Se, S, Es]];
    // Deferred patterns (§18.1).
    /// `NK1`: `<- s; ... -> e; <- e, ee, es`.
    NK1 = "NK1", pre_i [], pre_r [S], [[E], [E, Ee, Es]];
    /// `NX1`: `-> e; <- e, ee, s; -> es`.
    NX1 = "NX1", pre_i [], pre_r [], [[E], [E, Ee, S], [Es]];
    /// `X1N`: `-> e; <- e, ee; -> s; <- se`.
    X1N = "X1N", pre_i [], pre_r [], [[E], [E, Ee], [S], [Se]];
    /// `X1K`: `<- s; ... -> e, es; <- e, ee; -> s; <- se`.
    X1K = "X1K", pre_i [], pre_r [S], [[E, Es], [E, Ee], [S], [Se]];
    /// `XK1`: `<- s; ... -> e; <- e, ee, es; -> s, se`.
    XK1 = "XK1", pre_i [], pre_r [S], [[E], [E, Ee, Es], [S, Se]];
    /// `X1K1`: `<- s; ... -> e; <- e, ee, es; -> s; <- se`.
    X1K1 = "X1K1", pre_i [], pre_r [S], [[E], [E, Ee, Es], [S], [Se]];
    /// `X1X`: `-> e; <- e, ee, s, es; -> s; <- se`.
    X1X = "X1X", pre_i [], pre_r [], [[E], [E, Ee, S, Es], [S], [Se]];
    /// `XX1`: `-> e; <- e, ee, s; -> es, s, se`.
    XX1 = "XX1", pre_i [], pre_r [], [[E], [E, Ee, S], [Es, S, Se]];
    /// `X1X1`: `-> e; <- e, ee, s; -> es, s; <- se`.
    X1X1 = "X1X1", pre_i [], pre_r [], [[E], [E, Ee, S], [Es, S], [Se]];
    /// `K1N`: `-> s; ... -> e; <- e, ee; -> se`.
    K1N = "K1N", pre_i [S], pre_r [], [[E], [E, Ee], [Se]];
    /// `K1K`: `-> s; <- s; ... -> e, es; <- e, ee; -> se`.
    K1K = "K1K", pre_i [S], pre_r [S], [[E, Es], [E, Ee], [Se]];
    /// `KK1`: `-> s; <- s; ... -> e; <- e, ee, se, es`.
    KK1 = "KK1", pre_i [S], pre_r [S], [[E], [E, Ee, Se, Es]];
    /// `K1K1`: `-> s; <- s; ... -> e; <- e, ee, es; -> se`.
    K1K1 = "K1K1", pre_i [S], pre_r [S], [[E], [E, Ee, Es], [Se]];
    /// `K1X`: `-> s; ... -> e; <- e, ee, s, es; -> se`.
    K1X = "K1X", pre_i [S], pre_r [], [[E], [E, Ee, S, Es], [Se]];
    /// `KX1`: `-> s; ... -> e; <- e, ee, se, s; -> es`.
    KX1 = "KX1", pre_i [S], pre_r [], [[E], [E, Ee, Se, S], [Es]];
    /// `K1X1`: `-> s; ... -> e; <- e, ee, s; -> se, es`.
    K1X1 = "K1X1", pre_i [S], pre_r [], [[E], [E, Ee, S], [Se, Es]];
    /// `I1N`: `-> e, s; <- e, ee; -> se`.
    I1N = "I1N", pre_i [], pre_r [], [[E, S], [E, Ee], [Se]];
    /// `I1K`: `<- s; ... -> e, es, s; <- e, ee; -> se`.
    I1K = "I1K", pre_i [], pre_r [S], [[E, Es, S], [E, Ee], [Se]];
    /// `IK1`: `<- s; ... -> e, s; <- e, ee, se, es`.
    IK1 = "IK1", pre_i [], pre_r [S], [[E, S], [E, Ee, Se, Es]];
    /// `I1K1`: `<- s; ... -> e, s; <- e, ee, es; -> se`.
    I1K1 = "I1K1", pre_i [], pre_r [S], [[E, S], [E, Ee, Es], [Se]];
    /// `I1X`: `-> e, s; <- e, ee, s, es; -> se`.
    I1X = "I1X", pre_i [], pre_r [], [[E, S], [E, Ee, S, Es], [Se]];
    /// `IX1`: `-> e, s; <- e, ee, se, s; -> es`.
    IX1 = "IX1", pre_i [], pre_r [], [[E, S], [E, Ee, Se, S], [Es]];
    /// `I1X1`: `-> e, s; <- e, ee, s; -> se, es`.
    I1X1 = "I1X1", pre_i [], pre_r [], [[E, S], [E, Ee, S], [Se, Es]];
}

impl HandshakePattern {
    /// `base` without modifiers.
    #[must_use]
    pub const fn new(base: &'static BasePattern) -> Self {
        HandshakePattern { base, psk_mask: 0 }
    }

    /// `IK`, the contact-invitation pattern.
    pub const IK: HandshakePattern = HandshakePattern::new(&IK);
    /// `XX`, the endpoint-invitation pattern.
    pub const XX: HandshakePattern = HandshakePattern::new(&XX);

    /// Adds the modifier `psk{position}`; `None` if the position does not fit
    /// the pattern (psk0 up to psk{number of messages}).
    #[must_use]
    pub fn with_psk(self, position: u8) -> Option<Self> {
        if usize::from(position) > self.base.messages.len() || position >= 8 {
            return None;
        }
        Some(HandshakePattern { base: self.base, psk_mask: self.psk_mask | (1 << position) })
    }

    /// Parses a pattern name such as `"XX"`, `"IKpsk2"` or `"NNpsk0+psk2"`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let (base_name, mods) = match name.find("psk") {
            Some(i) => (&name[..i], Some(&name[i..])),
            None => (name, None),
        };
        let base = ALL_BASE.iter().find(|b| b.name == base_name)?;
        let mut p = HandshakePattern::new(base);
        if let Some(mods) = mods {
            for m in mods.split('+') {
                let digits = m.strip_prefix("psk")?;
                let pos: u8 = digits.parse().ok()?;
                if digits.len() != 1 {
                    return None;
                }
                p = p.with_psk(pos)?;
            }
        }
        Some(p)
    }

    /// The base pattern.
    #[must_use]
    pub fn base(&self) -> &'static BasePattern {
        self.base
    }

    /// Whether any psk modifier is present (then `e` tokens also `MixKey`).
    #[must_use]
    pub fn has_psk(&self) -> bool {
        self.psk_mask != 0
    }

    /// Number of handshake messages.
    #[must_use]
    pub fn message_count(&self) -> usize {
        self.base.messages.len()
    }

    /// The tokens of message `index`, psk modifiers included.
    pub fn tokens(self, index: usize) -> impl Iterator<Item = Token> + 'static {
        let base: &'static [Token] = self.base.messages.get(index).copied().unwrap_or(&[]);
        // Mutation builds only: IK's message 2 without `se`.
        let kci = crate::mutation::enabled(crate::mutation::Defence::IkSe);
        let base = match base {
            [Token::E, Token::Ee, Token::Se] if !kci && self.base.name == "IK" => &base[..2],
            _ => base,
        };
        let lead = index == 0 && self.psk_mask & 1 != 0;
        let trail = index < 7 && self.psk_mask & (1 << (index + 1)) != 0;
        lead.then_some(Token::Psk)
            .into_iter()
            .chain(base.iter().copied())
            .chain(trail.then_some(Token::Psk))
    }

    /// Writes `Noise_<pattern>_25519_ChaChaPoly_SHA256` into `buf`; returns its length.
    pub fn protocol_name(&self, buf: &mut [u8; MAX_PROTOCOL_NAME]) -> usize {
        let mut w = Writer { buf, len: 0 };
        w.push(b"Noise_");
        w.push(self.base.name.as_bytes());
        let mut first = true;
        for pos in 0..8u8 {
            if self.psk_mask & (1 << pos) != 0 {
                if !first {
                    w.push(b"+");
                }
                w.push(b"psk");
                w.push(&[b'0' + pos]);
                first = false;
            }
        }
        w.push(b"_25519_ChaChaPoly_SHA256");
        w.len
    }
}

/// Longest protocol name this module can produce.
pub const MAX_PROTOCOL_NAME: usize = 96;

struct Writer<'a> {
    buf: &'a mut [u8; MAX_PROTOCOL_NAME],
    len: usize,
}

impl Writer<'_> {
    fn push(&mut self, s: &[u8]) {
        let end = (self.len + s.len()).min(MAX_PROTOCOL_NAME);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&s[..n]);
        self.len = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_parser() {
        for name in ["IK", "XX", "NN", "IKpsk2", "NNpsk0+psk2"] {
            let p = HandshakePattern::from_name(name).unwrap();
            let mut buf = [0u8; MAX_PROTOCOL_NAME];
            let n = p.protocol_name(&mut buf);
            let full = core::str::from_utf8(&buf[..n]).unwrap();
            assert_eq!(
                full.strip_prefix("Noise_")
                    .unwrap()
                    .strip_suffix("_25519_ChaChaPoly_SHA256")
                    .unwrap(),
                name
            );
        }
        assert_eq!(HandshakePattern::from_name("ZZ"), None);
        assert_eq!(HandshakePattern::from_name("IKpsk9"), None);
        assert_eq!(HandshakePattern::from_name("IKpsk"), None);
    }

    #[test]
    fn every_base_pattern_is_found_by_its_own_name() {
        assert_eq!(ALL_BASE.len(), 38);
        for (i, b) in ALL_BASE.iter().enumerate() {
            let p = HandshakePattern::from_name(b.name).unwrap();
            assert!(core::ptr::eq(p.base(), *b), "{}", b.name);
            assert!(ALL_BASE[..i].iter().all(|other| other.name != b.name), "{} twice", b.name);
            for pre in [b.pre_initiator, b.pre_responder] {
                assert!(pre.is_empty() || pre == [S], "{}: only `s` pre-messages", b.name);
            }
        }
        assert_eq!(HandshakePattern::from_name("Xpsk1").map(|p| p.message_count()), Some(1));
        assert_eq!(HandshakePattern::from_name("Xpsk2"), None);
    }

    #[test]
    fn psk_tokens_sit_where_the_spec_puts_them() {
        let p = HandshakePattern::from_name("NNpsk0+psk2").unwrap();
        assert_eq!(p.tokens(0).collect::<heapless::Vec<_, 8>>().as_slice(), &[Token::Psk, E]);
        assert_eq!(p.tokens(1).collect::<heapless::Vec<_, 8>>().as_slice(), &[E, Ee, Token::Psk]);
    }
}
