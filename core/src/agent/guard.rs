//! The responder's defences against unauthenticated senders, all applied to
//! a new initiation after its mac1 and before any Diffie-Hellman
//! (`spec/wire.md` §4, §8; `spec/agent.md` "Defences"):
//!
//! - a **replay cache** of recently accepted initiations (by their
//!   ephemeral key): a replayed first message costs no Diffie-Hellman, long
//!   after the invitation it started has ended;
//! - a **per-source rate limit**: a token bucket per IPv4 address or IPv6
//!   /64, in a fixed table;
//! - **cookies**: under load an initiation must carry a mac2 keyed by a
//!   cookie bound to its source address and a secret that rotates every
//!   [`COOKIE_SECRET_MAX_AGE`]; without it, it gets a (smaller) cookie reply
//!   and leaves no state.
//!
//! Every table is fixed-size; nothing here allocates or grows.

use core::net::{IpAddr, SocketAddr};

use crate::entropy::Entropy;
use crate::mac::MacKey;
use crate::noise::{DH_LEN, hmac};
use crate::util::ct_eq;
use crate::wire::{COOKIE_LEN, MAC_LEN};
use crate::{Duration, Instant};

/// Initiations a source may start per second, sustained (WireGuard's
/// `INITIATIONS_PER_SECOND`): far above what a person or an application
/// invites, far below what costs a responder noticeable CPU.
pub const RATE_PER_SECOND: u32 = 20;
/// Initiations a source may start at once after being quiet (WireGuard's
/// `INITIATIONS_BURSTABLE`): one contact invitation reaches at most four
/// endpoints, plus one retransmission.
pub const RATE_BURST: u32 = 5;
/// Sources whose buckets are kept. When full, the bucket idle longest is
/// reused: a source forgotten that way starts again with a full burst, so a
/// flood from more sources than this is stopped by cookies, not by the
/// rate limit.
pub const RATE_SOURCES: usize = 32;
/// How long a cookie secret is used (WireGuard's `COOKIE_SECRET_MAX_AGE`);
/// the previous secret is still accepted, so a cookie lives 120 to 240 s.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// Unconfirmed handshakes one contact may hold at once: a replay flood of
/// one contact's old first messages can evict only that contact's own
/// unconfirmed handshakes, never another's, never an established one.
pub const HALF_OPEN_PER_CONTACT: usize = 2;

/// Milli-tokens per token: buckets count in thousandths so that refills
/// are exact integers per millisecond.
const MILLI: u32 = 1000;

/// Whom a bucket belongs to: an IPv4 address, or an IPv6 /64 (one
/// subscriber's allocation: per address would let one host use 2^64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    fn of(address: &SocketAddr) -> Self {
        match address.ip() {
            IpAddr::V4(ip) => Source::V4(ip.octets()),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&ip.octets()[..8]);
                    Source::V6(prefix)
                }
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    source: Source,
    milli_tokens: u32,
    refilled: Instant,
}

/// The defences' state. See the module documentation.
pub(crate) struct Guard<const SEEN: usize> {
    buckets: heapless::Vec<Bucket, RATE_SOURCES>,
    /// The cookie secret and when it was drawn; drawn at the first need, so
    /// an agent never under load draws no entropy for it.
    secret: Option<([u8; 32], Instant)>,
    /// The secret before it, still accepted.
    previous: Option<[u8; 32]>,
    /// Ephemeral keys of accepted initiations, sorted, with the order in
    /// which they were remembered (the oldest is forgotten first).
    seen: heapless::Vec<([u8; DH_LEN], u32), SEEN>,
    seen_seq: u32,
}

impl<const SEEN: usize> Guard<SEEN> {
    pub(crate) const fn new() -> Self {
        Guard {
            buckets: heapless::Vec::new(),
            secret: None,
            previous: None,
            seen: heapless::Vec::new(),
            seen_seq: 0,
        }
    }

    /// Whether an initiation with this ephemeral key was accepted before.
    pub(crate) fn seen(&self, ephemeral: &[u8; DH_LEN]) -> bool {
        self.seen.binary_search_by(|(e, _)| e.cmp(ephemeral)).is_ok()
    }

    /// Remembers an accepted initiation's ephemeral key, forgetting the
    /// oldest when the table is full.
    pub(crate) fn remember(&mut self, ephemeral: [u8; DH_LEN]) {
        if SEEN == 0 || self.seen(&ephemeral) {
            return;
        }
        if self.seen.is_full()
            && let Some(oldest) = (0..self.seen.len()).min_by_key(|&i| {
                self.seen.get(i).map_or(u32::MAX, |(_, seq)| seq.wrapping_sub(self.seen_seq))
            })
        {
            self.seen.remove(oldest);
        }
        let at = self.seen.binary_search_by(|(e, _)| e.cmp(&ephemeral)).unwrap_or_else(|at| at);
        let _ = self.seen.insert(at, (ephemeral, self.seen_seq));
        self.seen_seq = self.seen_seq.wrapping_add(1);
    }

    /// Takes a token from `from`'s bucket; `false` if it is empty.
    pub(crate) fn allow(&mut self, now: Instant, from: &SocketAddr) -> bool {
        let source = Source::of(from);
        let full = RATE_BURST * MILLI;
        let at = match self.buckets.iter().position(|b| b.source == source) {
            Some(at) => at,
            None => {
                let fresh = Bucket { source, milli_tokens: full, refilled: now };
                if self.buckets.push(fresh).is_ok() {
                    self.buckets.len() - 1
                } else {
                    // Reuse the bucket idle longest.
                    let idle = (0..self.buckets.len())
                        .min_by_key(|&i| self.buckets.get(i).map_or(Instant::MAX, |b| b.refilled));
                    let Some(at) = idle else { return false };
                    if let Some(b) = self.buckets.get_mut(at) {
                        *b = fresh;
                    }
                    at
                }
            }
        };
        let Some(bucket) = self.buckets.get_mut(at) else { return false };
        let elapsed = now.saturating_duration_since(bucket.refilled).as_millis();
        let refill =
            u32::try_from(elapsed.saturating_mul(u64::from(RATE_PER_SECOND))).unwrap_or(u32::MAX);
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(full);
        bucket.refilled = now;
        if bucket.milli_tokens < MILLI {
            return false;
        }
        bucket.milli_tokens -= MILLI;
        true
    }

    /// The current secret, drawn anew when it is older than
    /// [`COOKIE_SECRET_MAX_AGE`] (or was never drawn).
    fn rotate(&mut self, now: Instant, rng: &mut impl Entropy) -> [u8; 32] {
        match self.secret {
            Some((secret, born)) if now.saturating_duration_since(born) < COOKIE_SECRET_MAX_AGE => {
                secret
            }
            old => {
                // A secret two periods old is no longer accepted.
                self.previous = old
                    .filter(|(_, born)| {
                        now.saturating_duration_since(*born)
                            < COOKIE_SECRET_MAX_AGE.saturating_mul(2)
                    })
                    .map(|(s, _)| s);
                let mut secret = [0u8; 32];
                rng.fill_bytes(&mut secret);
                self.secret = Some((secret, now));
                secret
            }
        }
    }

    fn cookie_with(secret: &[u8; 32], from: &SocketAddr) -> [u8; COOKIE_LEN] {
        let mut address = [0u8; 18];
        let len = match from.ip() {
            IpAddr::V4(ip) => {
                address[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                address[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        address[len..len + 2].copy_from_slice(&from.port().to_be_bytes());
        let full = hmac(secret, &[&address[..len + 2]]);
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&full[..COOKIE_LEN]);
        cookie
    }

    /// The cookie for `from` now.
    pub(crate) fn cookie(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        rng: &mut impl Entropy,
    ) -> [u8; COOKIE_LEN] {
        let secret = self.rotate(now, rng);
        Self::cookie_with(&secret, from)
    }

    /// Whether `datagram` (an initiation) carries a mac2 made with `from`'s
    /// cookie under the current or the previous secret. Constant time in
    /// the MAC comparison.
    pub(crate) fn mac2_ok(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        datagram: &[u8],
        mac2: &[u8; MAC_LEN],
        rng: &mut impl Entropy,
    ) -> bool {
        let secret = self.rotate(now, rng);
        let Some(covered) = datagram.len().checked_sub(MAC_LEN).and_then(|n| datagram.get(..n))
        else {
            return false;
        };
        let mut ok = false;
        for secret in [Some(secret), self.previous].into_iter().flatten() {
            let key = MacKey::from_cookie(&Self::cookie_with(&secret, from));
            ok |= ct_eq(&key.mac(covered), mac2);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashDrbg;
    use std::format;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_twenty_a_second() {
        let mut g = Guard::<4>::new();
        let a = addr("192.0.2.1:4000");
        let t0 = Instant::from_millis(1_000);
        for _ in 0..RATE_BURST {
            assert!(g.allow(t0, &a));
        }
        assert!(!g.allow(t0, &a), "the burst is spent");
        // 1000 / 20 = 50 ms per token.
        assert!(!g.allow(t0 + Duration::from_millis(49), &a));
        assert!(g.allow(t0 + Duration::from_millis(50), &a));
        // Another port of the same address shares the bucket; another
        // address does not.
        assert!(!g.allow(t0 + Duration::from_millis(50), &addr("192.0.2.1:4001")));
        assert!(g.allow(t0 + Duration::from_millis(50), &addr("192.0.2.2:4000")));
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let mut g = Guard::<4>::new();
        let now = Instant::from_millis(5);
        for i in 0..RATE_BURST {
            assert!(g.allow(now, &addr(&format!("[2001:db8:1:2::{i}]:9"))));
        }
        assert!(!g.allow(now, &addr("[2001:db8:1:2:ffff::1]:9")));
        assert!(g.allow(now, &addr("[2001:db8:1:3::1]:9")));
    }

    #[test]
    fn a_full_bucket_table_reuses_the_bucket_idle_longest() {
        let mut g = Guard::<4>::new();
        let now = Instant::from_millis(10);
        let first = addr("10.0.0.1:1");
        for _ in 0..RATE_BURST {
            assert!(g.allow(now, &first));
        }
        for i in 2..=RATE_SOURCES + 1 {
            assert!(g.allow(
                now + Duration::from_millis(i as u64),
                &addr(&format!("10.0.{}.{}:1", i / 200, i % 200))
            ));
        }
        assert_eq!(g.buckets.len(), RATE_SOURCES);
        // `first` was idle longest: forgotten, it starts with a full burst.
        assert!(g.allow(now + Duration::from_millis(100), &first));
    }

    #[test]
    fn mac2_holds_only_with_the_cookie_of_that_address_under_a_live_secret() {
        let mut rng = HashDrbg::from_u64(7);
        let mut g = Guard::<4>::new();
        let a = addr("198.51.100.7:5000");
        let t0 = Instant::from_millis(1);
        let cookie = g.cookie(t0, &a, &mut rng);
        let mut datagram = [7u8; 100];
        let mac2 = MacKey::from_cookie(&cookie).mac(&datagram[..100 - MAC_LEN]);
        assert!(g.mac2_ok(t0, &a, &datagram, &mac2, &mut rng));
        assert!(!g.mac2_ok(t0, &addr("198.51.100.7:5001"), &datagram, &mac2, &mut rng));
        datagram[0] ^= 1;
        assert!(!g.mac2_ok(t0, &a, &datagram, &mac2, &mut rng));
        datagram[0] ^= 1;
        // One rotation later the cookie still holds; two, it does not.
        let t1 = t0 + COOKIE_SECRET_MAX_AGE;
        assert!(g.mac2_ok(t1, &a, &datagram, &mac2, &mut rng));
        let t2 = t1 + COOKIE_SECRET_MAX_AGE;
        assert!(!g.mac2_ok(t2, &a, &datagram, &mac2, &mut rng));
    }

    #[test]
    fn the_replay_cache_forgets_the_oldest_first() {
        let mut g = Guard::<3>::new();
        for k in [5u8, 1, 9] {
            g.remember([k; 32]);
        }
        assert!(g.seen(&[1; 32]) && g.seen(&[5; 32]) && g.seen(&[9; 32]));
        g.remember([3; 32]);
        assert!(!g.seen(&[5; 32]), "the first remembered is forgotten first");
        assert!(g.seen(&[1; 32]) && g.seen(&[9; 32]) && g.seen(&[3; 32]));
        g.remember([1; 32]);
        assert_eq!(g.seen.len(), 3);
    }
}
