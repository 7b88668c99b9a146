//! Property tests of the wire format: every frame round-trips, every parse
//! is canonical, and arbitrary bytes never panic.

use peercollab_core::wire::{
    CookieReply, Frame, HandshakeFinal, Initiation, MAX_DATAGRAM, Mode, Response, Transport,
    peek_type, tlv,
};
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Ik), Just(Mode::Xx)]
}

/// An owned description of a frame, from which a borrowed `Frame` is built.
#[derive(Debug, Clone)]
enum Owned {
    Initiation(Mode, u32, Vec<u8>, [u8; 16], [u8; 16]),
    Response(Mode, u32, u32, Vec<u8>, [u8; 16]),
    Final(u32, Vec<u8>),
    Cookie(Mode, u32, [u8; 24], [u8; 32]),
    Transport(u32, u64, Vec<u8>),
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        match self {
            Owned::Initiation(mode, s, n, m1, m2) => Frame::Initiation(Initiation {
                mode: *mode,
                sender_index: *s,
                noise: n,
                mac1: *m1,
                mac2: *m2,
            }),
            Owned::Response(mode, s, r, n, m1) => Frame::Response(Response {
                mode: *mode,
                sender_index: *s,
                receiver_index: *r,
                noise: n,
                mac1: *m1,
            }),
            Owned::Final(r, n) => {
                Frame::HandshakeFinal(HandshakeFinal { receiver_index: *r, noise: n })
            }
            Owned::Cookie(mode, r, nonce, c) => Frame::CookieReply(CookieReply {
                mode: *mode,
                receiver_index: *r,
                nonce: *nonce,
                sealed_cookie: *c,
            }),
            Owned::Transport(r, c, ct) => {
                Frame::Transport(Transport { receiver_index: *r, counter: *c, ciphertext: ct })
            }
        }
    }
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), min..=max)
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (mode(), any::<u32>(), bytes(96, 1160), any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(
            |(m, s, n, a, b)| {
                // Initiations are padded to their mode's minimum length.
                let mut n = n;
                let min = if m == Mode::Xx { 260 } else { 180 };
                if n.len() < min {
                    n.resize(min, 0);
                }
                Owned::Initiation(m, s, n, a, b)
            }
        ),
        (mode(), any::<u32>(), any::<u32>(), bytes(96, 1172), any::<[u8; 16]>())
            .prop_map(|(m, s, r, n, a)| Owned::Response(m, s, r, n, a)),
        (any::<u32>(), bytes(64, 1192)).prop_map(|(r, n)| Owned::Final(r, n)),
        (mode(), any::<u32>(), any::<[u8; 24]>(), any::<[u8; 32]>())
            .prop_map(|(m, r, n, c)| Owned::Cookie(m, r, n, c)),
        (any::<u32>(), any::<u64>(), bytes(16, 1184))
            .prop_map(|(r, c, ct)| Owned::Transport(r, c, ct)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_of_emit_is_the_identity(o in owned()) {
        let f = o.frame();
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = f.emit(&mut buf).expect("valid frame emits");
        prop_assert_eq!(n, f.buffer_len());
        prop_assert!(n <= MAX_DATAGRAM);
        prop_assert_eq!(Frame::parse(&buf[..n]), Ok(f));
    }

    /// Arbitrary bytes never panic; whatever parses re-emits to the very same
    /// bytes (one encoding per frame), and a too-small output buffer is an
    /// error, not a panic.
    #[test]
    fn arbitrary_bytes_parse_canonically_or_are_refused(data in bytes(0, 1300)) {
        let _ = peek_type(&data);
        if let Ok(f) = Frame::parse(&data) {
            let mut buf = [0u8; MAX_DATAGRAM];
            let n = f.emit(&mut buf).expect("a parsed frame emits");
            prop_assert_eq!(&buf[..n], &data[..]);
            let mut small = vec![0u8; n - 1];
            prop_assert!(f.emit(&mut small).is_err());
        }
    }

    /// Arbitrary headers on valid-length bodies: every byte of the header is
    /// checked (version, type, mode, reserved).
    #[test]
    fn only_exact_headers_parse(o in owned(), header in any::<[u8; 4]>()) {
        let f = o.frame();
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = f.emit(&mut buf).unwrap();
        let original: [u8; 4] = buf[..4].try_into().unwrap();
        buf[..4].copy_from_slice(&header);
        if let Ok(g) = Frame::parse(&buf[..n]) {
            // Only a header that still names a valid type and mode parses.
            prop_assert_eq!(header[0], original[0]);
            prop_assert_eq!(header[3], 0);
            let mut out = [0u8; MAX_DATAGRAM];
            let m = g.emit(&mut out).unwrap();
            prop_assert_eq!(&out[..m], &buf[..n]);
        }
    }

    #[test]
    fn tlv_fields_never_panic_and_round_trip(fields in proptest::collection::vec((1u8..=255, bytes(0, 40)), 0..8), pad in 0usize..32, junk in bytes(0, 64)) {
        let mut buf = [0u8; 1024];
        let mut w = tlv::Writer::new(&mut buf);
        for (ty, v) in &fields {
            w.field(*ty, v).unwrap();
        }
        let unpadded = w.len();
        w.pad_to(unpadded + pad).unwrap();
        let n = w.len();
        let got: Vec<_> = tlv::fields(&buf[..n]).collect::<Result<_, _>>().unwrap();
        let want: Vec<_> = fields.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        prop_assert_eq!(got, want);
        for f in tlv::fields(&junk) {
            let _ = f;
        }
    }
}
