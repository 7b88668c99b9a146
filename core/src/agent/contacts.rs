//! The agent's contacts: identities it pinned from contact cards, each with
//! the certificates of its endpoints, where to reach it and whether it is
//! trusted.

use core::net::SocketAddr;

use crate::card::{ContactCard, MAX_ADDRESSES, MAX_CERTIFICATES, MAX_NAME_LEN};
use crate::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use crate::session::PinnedPeer;

use super::policy::Sender;

/// Whether invitations from a contact count as trusted (Windows' trusted
/// contacts; see [`Policy::TrustedOnly`](super::Policy::TrustedOnly)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    /// Trusted: accepted under every policy but Nobody.
    Trusted,
    /// Known (its identity is pinned and checked) but not trusted.
    Known,
}

/// What happened to a certificate an endpoint of a contact presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertCheck {
    /// It is the pinned one.
    Current,
    /// It supersedes the pinned one (or names a new endpoint): pin it.
    Newer,
    /// The endpoint was revoked, or the certificate is older than (or as old
    /// as, with another key) the pinned one: refuse it.
    Revoked,
}

/// One endpoint of a contact: the certificate pinned for it, or, once
/// revoked, only the serial below which certificates are refused.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) id: EndpointId,
    /// `None` once revoked, until a newer certificate arrives.
    pub(crate) pinned: Option<PinnedPeer>,
    /// Certificates with a serial below this are refused.
    pub(crate) min_serial: u64,
}

/// A contact: a pinned identity.
#[derive(Clone, Debug)]
pub struct Contact {
    identity: IdentityKey,
    name: heapless::String<MAX_NAME_LEN>,
    trust: Trust,
    pub(crate) endpoints: heapless::Vec<Endpoint, MAX_CERTIFICATES>,
    addresses: heapless::Vec<SocketAddr, MAX_ADDRESSES>,
}

impl Contact {
    pub(crate) fn from_card(
        local: &LocalIdentity,
        card: &ContactCard,
        trust: Trust,
    ) -> Result<Self, crate::noise::Error> {
        let mut endpoints = heapless::Vec::new();
        for cert in card.certificates() {
            let pinned = PinnedPeer::new(local, *cert)?;
            // A card holds at most MAX_CERTIFICATES, the capacity.
            let _ = endpoints.push(Endpoint {
                id: cert.endpoint(),
                pinned: Some(pinned),
                min_serial: cert.serial(),
            });
        }
        let mut name = heapless::String::new();
        let _ = name.push_str(card.display_name());
        let mut addresses = heapless::Vec::new();
        let _ = addresses.extend_from_slice(card.addresses());
        Ok(Contact { identity: *card.identity(), name, trust, endpoints, addresses })
    }

    /// The contact's identity (its peer name).
    #[must_use]
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// The display name (from the card, or as updated).
    #[must_use]
    pub fn display_name(&self) -> &str {
        &self.name
    }

    /// Trusted or only known.
    #[must_use]
    pub fn trust(&self) -> Trust {
        self.trust
    }

    /// The current certificate of each endpoint that is not revoked.
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.endpoints.iter().filter_map(|e| e.pinned.as_ref().map(PinnedPeer::certificate))
    }

    /// The endpoints this contact has or had, revoked ones included.
    pub fn endpoints(&self) -> impl Iterator<Item = EndpointId> + '_ {
        self.endpoints.iter().map(|e| e.id)
    }

    /// Whether `endpoint` is revoked (no certificate pinned for it).
    #[must_use]
    pub fn is_revoked(&self, endpoint: EndpointId) -> bool {
        self.endpoints.iter().any(|e| e.id == endpoint && e.pinned.is_none())
    }

    /// Where the contact may be reached.
    #[must_use]
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    pub(crate) fn sender(&self) -> Sender {
        match self.trust {
            Trust::Trusted => Sender::Trusted,
            Trust::Known => Sender::Known,
        }
    }

    pub(crate) fn set_trust(&mut self, trust: Trust) {
        self.trust = trust;
    }

    pub(crate) fn set_name(&mut self, name: &str) -> Result<(), ()> {
        let mut s = heapless::String::new();
        s.push_str(name).map_err(|_| ())?;
        self.name = s;
        Ok(())
    }

    pub(crate) fn set_addresses(&mut self, addresses: &[SocketAddr]) -> Result<(), ()> {
        let mut v = heapless::Vec::new();
        v.extend_from_slice(addresses).map_err(|_| ())?;
        self.addresses = v;
        Ok(())
    }

    pub(crate) fn pinned(&self, endpoint: EndpointId) -> Option<&PinnedPeer> {
        self.endpoints.iter().find(|e| e.id == endpoint)?.pinned.as_ref()
    }

    /// How `cert`, presented by this contact's identity, compares with what
    /// is pinned.
    pub(crate) fn check(&self, cert: &Certificate) -> CertCheck {
        let Some(e) = self.endpoints.iter().find(|e| e.id == cert.endpoint()) else {
            return CertCheck::Newer;
        };
        match &e.pinned {
            _ if cert.serial() < e.min_serial => CertCheck::Revoked,
            Some(p) if p.certificate() == cert => CertCheck::Current,
            Some(p) if cert.supersedes(p.certificate()) => CertCheck::Newer,
            Some(_) => CertCheck::Revoked,
            None => CertCheck::Newer,
        }
    }

    /// Pins `cert` (checked [`CertCheck::Newer`]): the old certificate of
    /// that endpoint, and every older one, are refused from now on. An
    /// endpoint beyond the card's capacity is not pinned (`Err`).
    pub(crate) fn pin(&mut self, local: &LocalIdentity, cert: Certificate) -> Result<(), ()> {
        let pinned = PinnedPeer::new(local, cert).map_err(|_| ())?;
        match self.endpoints.iter_mut().find(|e| e.id == cert.endpoint()) {
            Some(e) => {
                e.pinned = Some(pinned);
                e.min_serial = cert.serial();
                Ok(())
            }
            None => self
                .endpoints
                .push(Endpoint {
                    id: cert.endpoint(),
                    pinned: Some(pinned),
                    min_serial: cert.serial(),
                })
                .map_err(|_| ()),
        }
    }

    /// Revokes `endpoint`'s pinned certificate: it and every certificate
    /// with a serial up to its own are refused; a newer one is accepted.
    pub(crate) fn revoke(&mut self, endpoint: EndpointId) -> bool {
        match self.endpoints.iter_mut().find(|e| e.id == endpoint) {
            Some(e) => {
                if let Some(p) = e.pinned.take() {
                    e.min_serial = p.certificate().serial().saturating_add(1);
                }
                true
            }
            None => false,
        }
    }

    /// The pinned peer certified for `static_key`, if any.
    pub(crate) fn by_static_key(&self, static_key: &[u8; 32]) -> Option<&PinnedPeer> {
        self.endpoints
            .iter()
            .filter_map(|e| e.pinned.as_ref())
            .find(|p| crate::util::ct_eq(p.certificate().static_key(), static_key))
    }
}
