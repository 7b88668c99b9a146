//! The agent end to end, between agents on the virtual network: contacts,
//! handles, several endpoints, in-band certificate updates, revocation and
//! roaming. (Windows' behaviours: `agent_windows.rs`; the policy table:
//! `agent_policy.rs`; properties: `agent_props.rs`.)

use peercollab_core::Instant;
use peercollab_core::agent::{
    AgentConfig, InvitationRequest, InviteOptions, Status, Target, Trust,
};
use peercollab_core::invite::Outcome;
use peercollab_tests::agents::{
    APP, AddressBook, AgentNode, add_agents, befriend, register, settle,
};
use peercollab_tests::{Faults, Network};

fn request() -> InvitationRequest<'static> {
    InvitationRequest { app_id: APP, message: "join me", data: b"port=4000" }
}

#[test]
fn contact_invitation_is_accepted_end_to_end() {
    let book = AddressBook::default();
    let mut net = Network::new(1, Faults::clean(20));
    let ids = add_agents(&mut net, &book, 2, 100, AgentConfig::default());
    let (a, b) = (ids[0], ids[1]);
    let b_at_a = befriend(&mut net, a, b, Trust::Trusted);
    befriend(&mut net, b, a, Trust::Trusted);
    register(&mut net, b, APP);
    let target = Target {
        endpoint: net.node::<AgentNode>(b).agent.identity().certificate().endpoint(),
        address: net.node::<AgentNode>(b).address(),
    };
    let handle = net
        .node_mut::<AgentNode>(a)
        .agent
        .invite_contact(Instant::ZERO, b_at_a, &[target], &request(), InviteOptions::default())
        .expect("invite")
        .expect("handle");
    settle(&mut net, 120);
    let na = net.node::<AgentNode>(a);
    let nb = net.node::<AgentNode>(b);
    assert_eq!(na.responded(handle), vec![Outcome::Accepted]);
    let Status::Answered(r) = na.agent.response(handle).unwrap() else { panic!("pending") };
    assert_eq!(r.outcome, Outcome::Accepted);
    assert_eq!(r.answered_by.map(|c| *c.identity()), Some(nb.agent.identity().identity()));
    assert_eq!(r.contact, Some(b_at_a));
    let ended = nb.incoming_outcomes();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].1, Outcome::Accepted);
    let launch = nb.agent.launch_info(ended[0].0).expect("launch info");
    assert_eq!(launch.message, "join me");
    assert_eq!(launch.data, b"port=4000");
    assert_eq!(launch.app_id, APP);
    assert_eq!(*launch.inviter.identity(), na.agent.identity().identity());
    assert!(launch.contact.is_some());
}
