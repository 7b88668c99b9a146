//! Two peers on loopback, one tokio current-thread runtime: Bob registers
//! an application and accepts what arrives; Alice, Bob's contact, invites
//! him and waits for the answer; Bob reads the launch information; both
//! shut down gracefully.
//!
//! ```text
//! cargo run -p peercollab-tokio --example tokio_two_peers
//! ```

use peercollab_tokio::{
    AppId, Endpoint, EndpointId, Error, InviteOptions, Request, Trust, generate_identity,
};

const APP: AppId = AppId(*b"two-peers-exampl");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let any = "127.0.0.1:0".parse().expect("a literal address");
    let (alice, _) = Endpoint::builder(generate_identity(EndpointId(1))?).bind(&[any]).await?;
    let (bob, mut invitations) =
        Endpoint::builder(generate_identity(EndpointId(1))?).bind(&[any]).await?;
    bob.register_application(APP, "two peers", None)?;
    let bob_card = bob.my_card("bob", &[])?;
    let alice_card = alice.my_card("alice", &[])?;
    let bob_contact = alice.add_contact(&bob_card, Trust::Trusted)?;
    bob.add_contact(&alice_card, Trust::Trusted)?;

    let serving = tokio::spawn(async move {
        let mut invitation = invitations.next().await.ok_or(Error::Closed)?;
        println!(
            "bob: {} invites: {:?}",
            invitation.info().contact.as_ref().map_or("a stranger", |c| c.1.as_str()),
            invitation.info().message
        );
        invitation.accept()?;
        let outcome = invitation.ended().await?;
        let launch = invitation.launch_info()?;
        println!("bob: {outcome:?}; launch data {:?}", String::from_utf8_lossy(&launch.data));
        Ok::<_, Error>(())
    });
    let request = Request::new(APP).message("join me").data(&b"port=4000"[..]);
    let answer = alice.invite_contact(bob_contact, request, InviteOptions::default()).await?;
    println!(
        "alice: {:?}, answered by {}",
        answer.outcome,
        answer.identity().map_or("nobody".into(), |i| i.fingerprint().to_string())
    );
    serving.await.map_err(|e| Error::Io(std::io::Error::other(e)))??;
    for (name, endpoint) in [("alice", alice), ("bob", bob)] {
        let report = endpoint.shutdown(std::time::Duration::from_secs(1)).await;
        println!("{name}: shut down, {report:?}");
    }
    Ok(())
}
