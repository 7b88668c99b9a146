//! Owned copies of what the agent lends, for handing across tasks and
//! threads.

use std::net::SocketAddr;

use bytes::Bytes;
use peercollab_core::agent::{ContactId, IncomingId, IncomingView, Response, Trust};
use peercollab_core::identity::{Certificate, IdentityKey};
use peercollab_core::invite::{AppId, Outcome};
use peercollab_core::{Duration, Instant};

use crate::text::{Arena, Text};

/// What an invitation offers, owned (the agent's
/// [`InvitationRequest`](peercollab_core::agent::InvitationRequest)).
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// The application to start.
    pub app_id: AppId,
    /// Shown to the invitee: at most 255 characters and 1,020 UTF-8 bytes.
    pub message: String,
    /// Opaque application data, at most 16 KiB.
    pub data: Bytes,
}

impl Request {
    /// An invitation to `app_id` with no message and no data.
    #[must_use]
    pub fn new(app_id: AppId) -> Self {
        Request { app_id, message: String::new(), data: Bytes::new() }
    }

    /// With `message`.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// With `data`.
    #[must_use]
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// The agent's borrowed form.
    #[must_use]
    pub fn as_core(&self) -> peercollab_core::agent::InvitationRequest<'_> {
        peercollab_core::agent::InvitationRequest {
            app_id: self.app_id,
            message: &self.message,
            data: &self.data,
        }
    }
}

impl std::fmt::Debug for Request {
    /// Lengths only: the message and data are the users'.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("app_id", &self.app_id)
            .field("message_len", &self.message.len())
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// The outcome of an outgoing invitation and who decided it (Windows'
/// `PEER_INVITATION_RESPONSE`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// The combined outcome.
    pub outcome: Outcome,
    /// The authenticated certificate of the endpoint whose answer decided
    /// it, if an endpoint answered.
    pub answered_by: Option<Certificate>,
    /// The contact invited, or the contact the answerer turned out to be.
    pub contact: Option<ContactId>,
    /// The reason text that came with the deciding answer.
    pub reason: Text,
}

impl Answer {
    /// The authenticated identity of whoever decided the outcome.
    #[must_use]
    pub fn identity(&self) -> Option<IdentityKey> {
        self.answered_by.as_ref().map(|c| *c.identity())
    }
}

impl Answer {
    /// Copies a response, its reason cut from `arena` (no allocation in
    /// steady state).
    #[must_use]
    pub fn from_response(r: &Response<'_>, arena: &Arena) -> Self {
        Answer {
            outcome: r.outcome,
            answered_by: r.answered_by.copied(),
            contact: r.contact,
            reason: arena.text(r.reason),
        }
    }

    /// An outcome nobody answered (no certificate, no reason).
    #[must_use]
    pub fn unanswered(outcome: Outcome) -> Self {
        Answer { outcome, answered_by: None, contact: None, reason: Text::new() }
    }
}

impl From<Response<'_>> for Answer {
    /// Copies a response (its reason in a buffer of its own, if any).
    fn from(r: Response<'_>) -> Self {
        Answer {
            outcome: r.outcome,
            answered_by: r.answered_by.copied(),
            contact: r.contact,
            reason: Text::from(r.reason),
        }
    }
}

/// An outgoing invitation's status (Windows' `GetInvitationResponse`:
/// `PEER_E_INVITE_RESPONSE_NOT_AVAILABLE` or the response).
// A return value, made once per poll: boxing the answer would allocate on
// every poll of an answered invitation to save a copy of ~200 bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// No outcome yet.
    Pending {
        /// Some endpoint rings.
        ringing: bool,
    },
    /// The outcome is in.
    Answered(Answer),
}

/// An incoming invitation as presented, owned; also the launch information
/// of an accepted one (Windows' `PEER_APP_LAUNCH_INFO`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invitation {
    /// Its id, for answering it.
    pub id: IncomingId,
    /// The inviter's authenticated certificate.
    pub inviter: Certificate,
    /// The inviter's contact record, if it is a contact: id, name, trust.
    pub contact: Option<(ContactId, Text, Trust)>,
    /// Where it came from.
    pub address: SocketAddr,
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message: Text,
    /// The application data: the inviter's, so validate it.
    pub data: Bytes,
    /// When it expires, on the adapter's clock.
    pub expires_at: Instant,
}

impl Invitation {
    /// Copies a view, naming its contact (message, data and name in
    /// buffers of their own).
    #[must_use]
    pub fn from_view(
        id: IncomingId,
        view: &IncomingView<'_>,
        contact: Option<(String, Trust)>,
    ) -> Self {
        Invitation {
            id,
            inviter: *view.inviter,
            contact: view.contact.zip(contact).map(|(id, (name, trust))| (id, name.into(), trust)),
            address: view.address,
            app_id: view.app_id,
            message: Text::from(view.message),
            data: Bytes::copy_from_slice(view.data),
            expires_at: view.expires_at,
        }
    }

    /// Copies a view, naming its contact, with message, data and name cut
    /// from `arena` (no allocation in steady state).
    #[must_use]
    pub fn from_view_in(
        arena: &Arena,
        id: IncomingId,
        view: &IncomingView<'_>,
        contact: Option<(&str, Trust)>,
    ) -> Self {
        Invitation {
            id,
            inviter: *view.inviter,
            contact: view
                .contact
                .zip(contact)
                .map(|(id, (name, trust))| (id, arena.text(name), trust)),
            address: view.address,
            app_id: view.app_id,
            message: arena.text(view.message),
            data: arena.bytes(view.data),
            expires_at: view.expires_at,
        }
    }

    /// The inviter's identity.
    #[must_use]
    pub fn identity(&self) -> IdentityKey {
        *self.inviter.identity()
    }

    /// Time left to answer at `now`.
    #[must_use]
    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

impl std::fmt::Debug for Invitation {
    /// The message and data are the users': lengths only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("id", &self.id)
            .field("inviter", &self.inviter.identity().fingerprint())
            .field("contact", &self.contact)
            .field("address", &self.address)
            .field("app_id", &self.app_id)
            .field("message_len", &self.message.len())
            .field("data_len", &self.data.len())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
