//! Invitation parties for the virtual [`Network`](crate::Network): each
//! party is a node with an identity, contacts, a body-buffer pool and any
//! number of invitations, in either role, with scripted users.
//!
//! A party routes datagrams the way an agent does: an initiation that is
//! not a duplicate of one it answered starts a new invitee invitation; every
//! other datagram goes to the invitation whose session index it names. The
//! user is a script: how the invitee screens ([`Party::screen`]), how it
//! answers once an invitation is presented ([`Party::reaction`]), and
//! commands at set times ([`Party::schedule`]).

use std::collections::BTreeMap;

use peercollab_core::identity::{Certificate, EndpointId, IdentityKey, LocalIdentity};
use peercollab_core::invite::{
    Admission, Answer, AppId, BufferPool, CancelEffect, CancelReason, DataPool, Dropped,
    Invitation, InvitationEvent, InviteError, InviteId, InviteeConfig, Offer, Outcome,
};
use peercollab_core::session::{Incoming, PinnedPeer, Session, StatementForm};
use peercollab_core::wire::{FrameType, MAX_DATAGRAM, peek_type};
use peercollab_core::{Duration, Entropy, HashDrbg, Instant};

use crate::{Node, NodeId};

/// What a scripted invitee does once an invitation is presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Answer after a delay, with a reason text.
    Answer {
        /// Time from presentation to answer.
        after: Duration,
        /// The answer.
        answer: Answer,
        /// The reason text.
        reason: String,
    },
    /// Never answer (let it expire).
    Ignore,
}

/// A command a party's user gives at a set time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Cancel the invitation in this slot.
    Cancel {
        /// The slot.
        slot: usize,
        /// The reason.
        reason: CancelReason,
    },
    /// Answer the invitation in this slot.
    Respond {
        /// The slot.
        slot: usize,
        /// The answer.
        answer: Answer,
        /// The reason text.
        reason: String,
    },
}

/// An owned offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferSpec {
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message: String,
    /// The application data.
    pub data: Vec<u8>,
    /// The expiry.
    pub expires_in: Duration,
}

impl OfferSpec {
    /// An offer of `app` with a short message, no data and the default
    /// expiry.
    #[must_use]
    pub fn simple(app: AppId) -> Self {
        OfferSpec {
            app_id: app,
            message: "join me".into(),
            data: Vec::new(),
            expires_in: peercollab_core::invite::DEFAULT_EXPIRY,
        }
    }
}

/// One invitation of a party and what happened to it.
#[derive(Debug)]
pub struct Slot {
    /// The other party.
    pub peer: NodeId,
    /// The invitation.
    pub invitation: Invitation,
    /// Its events, with the time they were polled.
    pub events: Vec<(Instant, InvitationEvent)>,
    /// Datagrams it dropped.
    pub dropped: Vec<Dropped>,
    /// Results of commands given to it.
    pub command_results: Vec<Result<Option<CancelEffect>, InviteError>>,
    /// Datagrams it sent, with their time.
    pub sent: Vec<(Instant, usize)>,
    /// What the invitee saw when it was presented: message and data.
    pub presented: Option<(String, Vec<u8>)>,
    /// When the invitation was first seen closed.
    pub closed_at: Option<Instant>,
}

impl Slot {
    fn new(peer: NodeId, invitation: Invitation) -> Self {
        Slot {
            peer,
            invitation,
            events: Vec::new(),
            dropped: Vec::new(),
            command_results: Vec::new(),
            sent: Vec::new(),
            presented: None,
            closed_at: None,
        }
    }

    /// The outcome, if one was reported.
    #[must_use]
    pub fn outcome(&self) -> Option<Outcome> {
        self.events.iter().find_map(|(_, e)| match e {
            InvitationEvent::Ended(o) => Some(*o),
            _ => None,
        })
    }

    /// How many `Ended` events were reported.
    #[must_use]
    pub fn outcomes(&self) -> usize {
        self.events.iter().filter(|(_, e)| matches!(e, InvitationEvent::Ended(_))).count()
    }

    /// How many times an event was reported.
    #[must_use]
    pub fn count(&self, event: InvitationEvent) -> usize {
        self.events.iter().filter(|(_, e)| *e == event).count()
    }

    /// When the event was first reported.
    #[must_use]
    pub fn when(&self, event: InvitationEvent) -> Option<Instant> {
        self.events.iter().find(|(_, e)| *e == event).map(|(t, _)| *t)
    }
}

type ScreenFn = Box<dyn FnMut(&Certificate, AppId) -> Admission>;

/// A peer that invites and is invited.
pub struct Party {
    /// Its identity.
    pub local: LocalIdentity,
    /// Its contacts (IK responders find initiators here).
    pub contacts: Vec<PinnedPeer>,
    /// The body-buffer pool shared by all its invitations.
    pub pool: Box<dyn BufferPool>,
    /// Its invitations, in creation order.
    pub slots: Vec<Slot>,
    /// How incoming invitations are screened.
    pub screen: ScreenFn,
    /// What the user does once an invitation is presented.
    pub reaction: Reaction,
    /// Invitee settings.
    pub config: InviteeConfig,
    /// Datagrams no invitation would take, with the reason.
    pub unrouted: Vec<String>,
    commands: BTreeMap<(Instant, u64), Command>,
    command_seq: u64,
    rng: HashDrbg,
}

impl Party {
    /// A party with a fresh identity from `seed`, a pool of `buffers` body
    /// buffers, admitting every invitation and accepting at once.
    #[must_use]
    pub fn new(seed: u64, buffers: usize) -> Self {
        let mut rng = HashDrbg::from_u64(seed);
        let local = LocalIdentity::generate(&mut rng, EndpointId(seed as u32));
        let pool: Box<dyn BufferPool> = match buffers {
            0 => Box::new(DataPool::<0>::new()),
            1 => Box::new(DataPool::<1>::new()),
            2 => Box::new(DataPool::<2>::new()),
            _ => Box::new(DataPool::<4>::new()),
        };
        Party {
            local,
            contacts: Vec::new(),
            pool,
            slots: Vec::new(),
            screen: Box::new(|_, _| Admission::Present),
            reaction: Reaction::Answer {
                after: Duration::ZERO,
                answer: Answer::Accept,
                reason: String::new(),
            },
            config: InviteeConfig::default(),
            unrouted: Vec::new(),
            commands: BTreeMap::new(),
            command_seq: 0,
            rng,
        }
    }

    /// Pins `cert` as a contact.
    pub fn add_contact(&mut self, cert: Certificate) {
        let pinned = PinnedPeer::new(&self.local, cert).expect("pin contact");
        self.contacts.push(pinned);
    }

    /// Invites the contact `cert` at node `to` (IK); returns the slot.
    pub fn invite_contact(
        &mut self,
        now: Instant,
        to: NodeId,
        cert: Certificate,
        offer: &OfferSpec,
    ) -> Result<usize, InviteError> {
        let pinned = PinnedPeer::new(&self.local, cert).expect("pin invitee");
        let index = self.rng.next_u32();
        let session = Session::initiate_contact(
            &self.local,
            &pinned,
            index,
            StatementForm::Certificate,
            now,
            &mut self.rng,
        )
        .expect("initiate");
        self.start(now, to, session, offer)
    }

    /// Invites whoever answers at node `to` (XX), or only `expected`;
    /// returns the slot.
    pub fn invite_endpoint(
        &mut self,
        now: Instant,
        to: NodeId,
        expected: Option<IdentityKey>,
        offer: &OfferSpec,
    ) -> Result<usize, InviteError> {
        let index = self.rng.next_u32();
        let session = Session::initiate_endpoint(&self.local, expected, index, now, &mut self.rng)
            .expect("initiate");
        self.start(now, to, session, offer)
    }

    fn start(
        &mut self,
        now: Instant,
        to: NodeId,
        session: Session,
        offer: &OfferSpec,
    ) -> Result<usize, InviteError> {
        let offer = Offer {
            id: InviteId::random(&mut self.rng),
            app_id: offer.app_id,
            message: &offer.message,
            data: &offer.data,
            expires_in: offer.expires_in,
        };
        let invitation = Invitation::invite(session, &offer, now, &mut *self.pool)?;
        self.slots.push(Slot::new(to, invitation));
        Ok(self.slots.len() - 1)
    }

    /// Gives `command` at `at`.
    pub fn schedule(&mut self, at: Instant, command: Command) {
        self.command_seq += 1;
        self.commands.insert((at, self.command_seq), command);
    }

    /// The slots whose peer is `node`.
    pub fn slots_with(&self, node: NodeId) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(move |s| s.peer == node)
    }

    fn run_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Cancel { slot, reason } => {
                let Some(s) = self.slots.get_mut(slot) else { return };
                let r = s.invitation.cancel(now, reason, "", &mut *self.pool).map(Some);
                s.command_results.push(r);
            }
            Command::Respond { slot, answer, reason } => {
                let Some(s) = self.slots.get_mut(slot) else { return };
                let r = s.invitation.respond(now, answer, &reason).map(|()| None);
                s.command_results.push(r);
            }
        }
        self.drain(now, None);
    }

    /// Polls events of every slot (or one), reacting to presentations.
    fn drain(&mut self, now: Instant, only: Option<usize>) {
        for i in 0..self.slots.len() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            if self.slots[i].closed_at.is_none() && self.slots[i].invitation.is_closed() {
                self.slots[i].closed_at = Some(now);
            }
            while let Some(e) = self.slots[i].invitation.poll_event() {
                self.slots[i].events.push((now, e));
                if e == InvitationEvent::Invited {
                    let inv = &self.slots[i].invitation;
                    let message = inv.message(&*self.pool).unwrap_or_default().to_owned();
                    let data = inv.data(&*self.pool).unwrap_or_default().to_vec();
                    self.slots[i].presented = Some((message, data));
                    match self.reaction.clone() {
                        Reaction::Answer { after, answer, reason } if after == Duration::ZERO => {
                            let r = self.slots[i].invitation.respond(now, answer, &reason);
                            self.slots[i].command_results.push(r.map(|()| None));
                        }
                        Reaction::Answer { after, answer, reason } => {
                            self.schedule(
                                now + after,
                                Command::Respond { slot: i, answer, reason },
                            );
                        }
                        Reaction::Ignore => {}
                    }
                }
            }
        }
    }

    fn route(&self, from: NodeId, bytes: &[u8]) -> Result<Option<usize>, String> {
        let ty = peek_type(bytes).map_err(|e| format!("{e}"))?;
        let index_at = |at: usize| -> Option<u32> {
            bytes.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        };
        let found = match ty {
            // A duplicate of an initiation already answered goes to its
            // session (which answers from cache); others start a new one.
            FrameType::Initiation => {
                let sender = index_at(4);
                self.slots
                    .iter()
                    .position(|s| s.peer == from && s.invitation.session().remote_index() == sender)
            }
            FrameType::Response => {
                let receiver = index_at(8);
                self.slots.iter().position(|s| {
                    s.peer == from && Some(s.invitation.session().local_index()) == receiver
                })
            }
            _ => {
                let receiver = index_at(4);
                self.slots.iter().position(|s| {
                    s.peer == from && Some(s.invitation.session().local_index()) == receiver
                })
            }
        };
        match (ty, found) {
            (_, Some(i)) => Ok(Some(i)),
            (FrameType::Initiation, None) => Ok(None),
            _ => Err("no session for this index".into()),
        }
    }
}

impl Node for Party {
    fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        match self.route(from, bytes) {
            Ok(Some(i)) => {
                let slot = &mut self.slots[i];
                let r = slot.invitation.handle_datagram(
                    now,
                    bytes,
                    &mut *self.pool,
                    &mut self.screen,
                    &mut self.rng,
                );
                if let Err(d) = r {
                    slot.dropped.push(d);
                }
                self.drain(now, Some(i));
            }
            Ok(None) => {
                let incoming = match Incoming::read(&self.local, self.contacts.as_slice(), bytes) {
                    Ok(incoming) => incoming,
                    Err(d) => {
                        self.unrouted.push(format!("initiation: {d:?}"));
                        return;
                    }
                };
                let index = self.rng.next_u32();
                let session = match incoming.accept(&self.local, index, now, &mut self.rng) {
                    Ok(s) => s,
                    Err(e) => {
                        self.unrouted.push(format!("accept: {e:?}"));
                        return;
                    }
                };
                let invitation =
                    Invitation::invitee(session, self.config, now).expect("responder session");
                self.slots.push(Slot::new(from, invitation));
            }
            Err(why) => self.unrouted.push(why),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i].invitation.poll_timeout().is_some_and(|t| t <= now) {
                self.slots[i].invitation.handle_timeout(now, &mut *self.pool, &mut self.rng);
                let next = self.slots[i].invitation.poll_timeout();
                assert!(
                    next.is_none_or(|t| t > now),
                    "after handle_timeout({now:?}) poll_timeout is {next:?}"
                );
            }
        }
        self.drain(now, None);
        while let Some((&(at, seq), _)) = self.commands.iter().next() {
            if at > now {
                break;
            }
            let command = self.commands.remove(&(at, seq)).expect("present");
            self.run_command(now, command);
        }
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_DATAGRAM],
    ) -> Option<(NodeId, usize)> {
        for slot in &mut self.slots {
            if let Some(n) = slot.invitation.poll_transmit(now, &*self.pool, buf) {
                slot.sent.push((now, n));
                return Some((slot.peer, n));
            }
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let slots = self.slots.iter().filter_map(|s| s.invitation.poll_timeout()).min();
        let commands = self.commands.keys().next().map(|k| k.0);
        [slots, commands].into_iter().flatten().min()
    }
}
