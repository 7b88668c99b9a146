//! snow doing what one of our invitations does on the wire: the same Noise
//! pattern, handshake messages of the same lengths, then one transport
//! message per remaining datagram, same direction and length — and, for XX,
//! the same certificate signature checks (as libp2p-noise does around snow).

use std::hint::black_box;

use peercollab_core::identity::{CERT_LEN, Certificate};
use peercollab_core::noise::KeyPair;

use peercollab_tests::bench::pair::Dir;

const TAG: usize = 16;
const KEY: usize = 32;

/// One datagram of a trace: direction and length.
pub(crate) type Step = (Dir, usize);

/// A snow replay of a trace.
pub(crate) struct SnowReplay {
    params: snow::params::NoiseParams,
    ik: bool,
    initiator_key: [u8; 32],
    responder_key: [u8; 32],
    responder_pub: [u8; 32],
    handshake: Vec<usize>,
    transport: Vec<Step>,
    certificates: Vec<[u8; CERT_LEN]>,
}

impl SnowReplay {
    /// Replays `trace` (our datagrams of one invitation) with `pattern`
    /// ("IK" or "XX"); `certificates` are parsed (signature checked) once
    /// each per run.
    pub(crate) fn new(pattern: &str, trace: &[Step], certificates: Vec<[u8; CERT_LEN]>) -> Self {
        let ik = pattern == "IK";
        let name = format!("Noise_{pattern}_25519_ChaChaPoly_SHA256");
        let params = name.parse().expect("a pattern snow knows");
        // Noise overhead of each handshake message beyond its payload.
        let overheads: &[usize] = if ik {
            &[KEY + KEY + TAG + TAG, KEY + TAG]
        } else {
            &[KEY, KEY + KEY + TAG + TAG, KEY + TAG + TAG]
        };
        let handshake =
            trace.iter().zip(overheads).map(|((_, len), o)| len.saturating_sub(*o)).collect();
        let transport = trace
            .iter()
            .skip(overheads.len())
            .map(|(d, len)| (*d, len.saturating_sub(TAG)))
            .collect();
        let initiator_key = [0x11; 32];
        let responder_key = [0x22; 32];
        let responder_pub = *KeyPair::from_secret_bytes(responder_key).public();
        SnowReplay {
            params,
            ik,
            initiator_key,
            responder_key,
            responder_pub,
            handshake,
            transport,
            certificates,
        }
    }

    /// One run.
    pub(crate) fn run(&self) {
        let mut ib = snow::Builder::new(self.params.clone())
            .local_private_key(&self.initiator_key)
            .expect("key");
        if self.ik {
            ib = ib.remote_public_key(&self.responder_pub).expect("key");
        }
        let mut i = ib.build_initiator().expect("builds");
        let mut r = snow::Builder::new(self.params.clone())
            .local_private_key(&self.responder_key)
            .expect("key")
            .build_responder()
            .expect("builds");
        let payload = [0u8; 1200];
        let (mut m, mut p) = ([0u8; 1300], [0u8; 1300]);
        for (turn, len) in self.handshake.iter().enumerate() {
            let (w, rd) = if turn % 2 == 0 { (&mut i, &mut r) } else { (&mut r, &mut i) };
            let n = w.write_message(&payload[..*len], &mut m).expect("fits");
            rd.read_message(&m[..n], &mut p).expect("authentic");
        }
        for cert in &self.certificates {
            black_box(Certificate::parse(cert).expect("valid certificate"));
        }
        let mut ti = i.into_transport_mode().expect("finished");
        let mut tr = r.into_transport_mode().expect("finished");
        for (dir, len) in &self.transport {
            let (w, rd) = match dir {
                Dir::Out => (&mut ti, &mut tr),
                Dir::Back => (&mut tr, &mut ti),
            };
            let n = w.write_message(&payload[..*len], &mut m).expect("fits");
            black_box(rd.read_message(&m[..n], &mut p).expect("authentic"));
        }
    }
}
