//! The crypto bound: one loop doing exactly the primitive operations one
//! contact invitation performs (counted by the core's `op-counters`, listed
//! in `spec/operations.md`), with the same primitives, fresh ephemeral keys
//! generated inside the loop. No implementation of the protocol on these
//! primitives can run invitations faster than this loop runs.

use std::hint::black_box;

use peercollab_core::HashDrbg;
use peercollab_core::identity::{IdentityKey, IdentitySecret};
use peercollab_core::noise::{CipherState, KeyPair, dh, hash, hmac};
use peercollab_core::ops::OpCounts;

/// Largest AEAD or hash input the loop uses: a datagram.
const MAX_INPUT: usize = 1200;

/// Averages `total` bytes over `n` operations, within a datagram.
fn average(total: u32, n: u32) -> usize {
    (total.checked_div(n).unwrap_or(0) as usize).min(MAX_INPUT)
}

/// The operations of one invitation, ready to replay.
pub(crate) struct CryptoBound {
    ops: OpCounts,
    aead_len: usize,
    sha_len: usize,
    hmac_len: usize,
    rng: HashDrbg,
    peer: KeyPair,
    signer: IdentitySecret,
    verifier: IdentityKey,
    /// What `signer` signed: a label and a certificate-sized body.
    signed: [u8; 147],
    signature: [u8; 64],
    data: Box<[u8; MAX_INPUT]>,
    out: Box<[u8; MAX_INPUT + 16]>,
    back: Box<[u8; MAX_INPUT + 16]>,
}

impl CryptoBound {
    pub(crate) fn new(ops: OpCounts) -> Self {
        let mut rng = HashDrbg::from_u64(99);
        let peer = KeyPair::generate(&mut rng);
        let signer = IdentitySecret::generate(&mut rng);
        // A certificate-sized message, as certificate checks verify.
        let mut signed = [0x5a; 147];
        signed[..6].copy_from_slice(b"bench\0");
        let signature = signer.sign_parts(b"bench\0", &signed[6..]);
        let seals = ops.aead_seal + ops.aead_open;
        CryptoBound {
            aead_len: average(ops.aead_bytes, seals),
            sha_len: average(ops.sha256_bytes, ops.sha256),
            hmac_len: average(ops.hmac_bytes, ops.hmac),
            verifier: signer.public(),
            ops,
            rng,
            peer,
            signer,
            signed,
            signature,
            data: Box::new([0x42; MAX_INPUT]),
            out: Box::new([0; MAX_INPUT + 16]),
            back: Box::new([0; MAX_INPUT + 16]),
        }
    }

    /// One invitation's worth of operations.
    pub(crate) fn run(&mut self) {
        let o = self.ops;
        let mut last = KeyPair::generate(&mut self.rng);
        for _ in 1..o.x25519_public {
            last = KeyPair::generate(&mut self.rng);
        }
        for _ in 0..o.x25519_dh {
            black_box(dh(&last, self.peer.public()).ok());
        }
        for _ in 0..o.ed25519_sign {
            black_box(self.signer.sign_parts(b"bench\0", &self.signed[6..]));
        }
        for _ in 0..o.ed25519_verify {
            black_box(self.verifier.verify(&self.signed, &self.signature).ok());
        }
        let key = hash(&[last.public()]);
        let mut seal = CipherState::new(key);
        let mut open = CipherState::new(key);
        let plain = &self.data[..self.aead_len];
        let mut sealed = 0;
        for k in 0..o.aead_seal.max(o.aead_open) {
            if k < o.aead_seal {
                sealed = seal.encrypt_with_ad(&[], plain, &mut self.out[..]).unwrap_or(0);
            }
            if k < o.aead_open {
                let ciphertext = &self.out[..sealed];
                black_box(open.decrypt_with_ad(&[], ciphertext, &mut self.back[..]).ok());
            }
        }
        for _ in 0..o.sha256 {
            black_box(hash(&[&self.data[..self.sha_len]]));
        }
        for _ in 0..o.hmac {
            black_box(hmac(&key, &[&self.data[..self.hmac_len]]));
        }
    }
}
