//! The two adapters speak the same protocol: tokio ↔ mio over real UDP on
//! loopback, each way, contact and endpoint invitations, accepted and
//! declined. The mio endpoint runs its own poll loop on a thread, answering
//! as it is told; the tokio endpoint runs on a current-thread runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use peercollab_core::agent::{AgentConfig, AgentError, InviteOptions, Trust};
use peercollab_core::card::ContactCard;
use peercollab_core::identity::{EndpointId, IdentityKey};
use peercollab_core::invite::{Answer as Reply, AppId, Outcome};
use peercollab_driver::{Notice, Request, SystemClock, generate_identity};

const APP: AppId = AppId(*b"interop-test-app");
const BOUND: StdDuration = StdDuration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// What the mio side does with what it is invited to.
#[derive(Clone, Copy)]
enum Answering {
    Accept,
    Decline,
}

/// A mio endpoint on its own thread. It answers invitations as told, and
/// runs one invitation of its own on request.
struct MioPeer {
    card: ContactCard,
    identity: IdentityKey,
    address: SocketAddr,
    /// Cards to add as trusted contacts, then invitations to make to them.
    commands: mpsc::Sender<(ContactCard, Option<bool>)>,
    /// Outcomes: of invitations made (`true`) and received (`false`).
    outcomes: mpsc::Receiver<(bool, Outcome)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MioPeer {
    fn start(answering: Answering) -> MioPeer {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel::<(ContactCard, Option<bool>)>();
        let (outcome_tx, outcomes) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut poll = mio::Poll::new().unwrap();
            let mut events = mio::Events::with_capacity(64);
            let mut ep = peercollab_mio::Endpoint::bind(
                &[loopback()],
                generate_identity(EndpointId(1)).unwrap(),
                AgentConfig::default(),
                Arc::new(SystemClock::new()),
                poll.registry(),
                peercollab_mio::Tokens::new(mio::Token(0)),
            )
            .unwrap();
            ep.register_application(APP, "interop", None).unwrap();
            let card = ep.my_card("mio").unwrap();
            ready_tx.send((card, ep.identity().identity(), ep.local_addrs()[0])).unwrap();
            let mut mine = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                while let Ok((card, invite)) = command_rx.try_recv() {
                    let contact = match ep.add_contact(&card, Trust::Trusted) {
                        Ok(c) => c,
                        Err(peercollab_driver::Error::Agent(AgentError::AlreadyExists(c))) => c,
                        Err(e) => panic!("{e}"),
                    };
                    match invite {
                        Some(true) => mine.push(
                            ep.start_invite_contact(
                                contact,
                                &Request::new(APP),
                                InviteOptions::default(),
                            )
                            .unwrap(),
                        ),
                        Some(false) => mine.push(
                            ep.start_invite_endpoint(
                                card.addresses()[0],
                                &Request::new(APP),
                                InviteOptions::default(),
                            )
                            .unwrap(),
                        ),
                        None => {}
                    }
                }
                let timeout = ep
                    .next_timeout()
                    .map_or(StdDuration::from_millis(20), |t| t.min(StdDuration::from_millis(20)));
                poll.poll(&mut events, Some(timeout)).unwrap();
                for event in &events {
                    ep.handle_event(event);
                }
                ep.handle_timeout();
                while let Some(notice) = ep.poll_event() {
                    match notice {
                        Notice::Invited(inv) => match answering {
                            Answering::Accept => ep.respond(inv.id, Reply::Accept, "").unwrap(),
                            Answering::Decline => {
                                ep.respond(inv.id, Reply::Decline, "no thanks").unwrap()
                            }
                        },
                        Notice::IncomingEnded { outcome, .. } => {
                            outcome_tx.send((false, outcome)).unwrap()
                        }
                        Notice::Responded { handle, answer } if mine.contains(&handle) => {
                            outcome_tx.send((true, answer.outcome)).unwrap();
                        }
                        _ => {}
                    }
                }
            }
        });
        let (card, identity, address) = ready_rx.recv_timeout(BOUND).unwrap();
        MioPeer { card, identity, address, commands, outcomes, stop, thread: Some(thread) }
    }

    /// The next outcome of an invitation it made (`made`) or received.
    async fn outcome(&self, made: bool) -> Outcome {
        let deadline = StdInstant::now() + BOUND;
        while StdInstant::now() < deadline {
            match self.outcomes.try_recv() {
                Ok((m, o)) if m == made => return o,
                Ok(_) => {}
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(StdDuration::from_millis(5)).await
                }
                Err(e) => panic!("the mio peer is gone: {e}"),
            }
        }
        panic!("no outcome in time")
    }
}

impl Drop for MioPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn tokio_peer() -> (peercollab_tokio::Endpoint, peercollab_tokio::Incoming) {
    peercollab_tokio::Endpoint::builder(generate_identity(EndpointId(1)).unwrap())
        .bind(&[loopback()])
        .await
        .unwrap()
}

#[tokio::test]
async fn tokio_invites_a_mio_contact_and_is_accepted_then_declined() {
    for (answering, expected) in
        [(Answering::Accept, Outcome::Accepted), (Answering::Decline, Outcome::Declined)]
    {
        let mio = MioPeer::start(answering);
        let (tk, _incoming) = tokio_peer().await;
        mio.commands.send((tk.my_card("tokio", &[]).unwrap(), None)).unwrap();
        let contact = tk.add_contact(&mio.card, Trust::Trusted).unwrap();
        let answer = tokio::time::timeout(
            BOUND,
            tk.invite_contact(contact, Request::new(APP), InviteOptions::default()),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(answer.outcome, expected);
        assert_eq!(answer.identity(), Some(mio.identity));
        assert_eq!(mio.outcome(false).await, expected);
    }
}

#[tokio::test]
async fn tokio_invites_a_mio_endpoint_and_learns_its_identity() {
    let mio = MioPeer::start(Answering::Accept);
    let (tk, _incoming) = tokio_peer().await;
    let answer = tokio::time::timeout(
        BOUND,
        tk.invite_endpoint(mio.address, Request::new(APP), InviteOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((answer.outcome, answer.identity()), (Outcome::Accepted, Some(mio.identity)));
}

#[tokio::test]
async fn mio_invites_a_tokio_contact_and_endpoint_and_both_are_accepted() {
    let mio = MioPeer::start(Answering::Accept);
    let (tk, mut incoming) = tokio_peer().await;
    tk.register_application(APP, "interop", None).unwrap();
    tk.add_contact(&mio.card, Trust::Trusted).unwrap();
    let accepting = tokio::spawn(async move {
        let mut ended = Vec::new();
        for _ in 0..2 {
            let mut inv = tokio::time::timeout(BOUND, incoming.next()).await.unwrap().unwrap();
            inv.accept().unwrap();
            ended.push(tokio::time::timeout(BOUND, inv.ended()).await.unwrap().unwrap());
        }
        ended
    });
    let card = tk.my_card("tokio", &[]).unwrap();
    mio.commands.send((card.clone(), Some(true))).unwrap();
    assert_eq!(mio.outcome(true).await, Outcome::Accepted, "mio's contact invitation");
    mio.commands.send((card, Some(false))).unwrap();
    assert_eq!(mio.outcome(true).await, Outcome::Accepted, "mio's endpoint invitation");
    assert_eq!(accepting.await.unwrap(), vec![Outcome::Accepted, Outcome::Accepted]);
}
