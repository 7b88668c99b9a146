//! `spec/agent.md` against the Windows reference: its mapping table names
//! every function of the Windows invitation API (reference §1) and every
//! error and status code (§3) with the peercollab call, outcome or error
//! that replaces it. (The names of the Windows surface are copied here from
//! `../shared/anchors/windows-peercollab.md`, which is not part of the
//! repository.) That the spec names every `AgentError`, `Dropped` and
//! `Event` of the code is checked by the core's unit test
//! `agent::tests::spec_names_every_error_drop_reason_and_event`.

const SPEC: &str = include_str!("../../spec/agent.md");

/// Every function of the reference's §1 (1a–1d).
const WINDOWS_FUNCTIONS: [&str; 38] = [
    "PeerCollabInviteContact",
    "PeerCollabInviteEndpoint",
    "PeerCollabAsyncInviteContact",
    "PeerCollabAsyncInviteEndpoint",
    "PeerCollabGetInvitationResponse",
    "PeerCollabCancelInvitation",
    "PeerCollabCloseHandle",
    "PeerCollabGetAppLaunchInfo",
    "PeerCollabRegisterApplication",
    "PeerCollabUnregisterApplication",
    "PeerCollabGetApplicationRegistrationInfo",
    "PeerCollabEnumApplicationRegistrationInfo",
    "PeerCollabAddContact",
    "PeerCollabDeleteContact",
    "PeerCollabGetContact",
    "PeerCollabUpdateContact",
    "PeerCollabEnumContacts",
    "PeerCollabExportContact",
    "PeerCollabParseContact",
    "PeerCollabQueryContactData",
    "PeerCollabEnumEndpoints",
    "PeerCollabEnumApplications",
    "PeerCollabStartup",
    "PeerCollabShutdown",
    "PeerCollabSignin",
    "PeerCollabSignout",
    "PeerCollabGetSigninOptions",
    "PeerCollabGetEndpointName",
    "PeerCollabSetEndpointName",
    "PeerCollabRegisterEvent",
    "PeerCollabGetEventData",
    "PeerCollabUnregisterEvent",
    "PeerCollabRefreshEndpointData",
    "PeerCollabSubscribeEndpointData",
    "PeerFreeData",
    "PeerGetItemCount",
    "PeerGetNextItem",
    "PeerEndEnumeration",
];

/// Every error and status code of the reference's §3, and the response
/// types of `PEER_INVITATION_RESPONSE_TYPE`.
const WINDOWS_CODES: [&str; 31] = [
    "S_OK",
    "E_OUTOFMEMORY",
    "E_INVALIDARG",
    "E_NOTIMPL",
    "E_HANDLE",
    "PEER_E_TIMEOUT",
    "PEER_E_INVITE_CANCELLED",
    "PEER_E_INVITE_RESPONSE_NOT_AVAILABLE",
    "PEER_E_CONNECTION_FAILED",
    "PEER_E_NOT_FOUND",
    "PEER_E_NOT_INITIALIZED",
    "PEER_E_NOT_SIGNED_IN",
    "PEER_E_SERVICE_NOT_AVAILABLE",
    "PEER_E_UNSUPPORTED_VERSION",
    "PEER_E_CONTACT_NOT_FOUND",
    "PEER_E_INVALID_PEER_NAME",
    "PEER_E_ALREADY_EXISTS",
    "PEER_E_PRIVACY_DECLINED",
    "PEER_E_INVALID_ADDRESS",
    "PEER_E_FW_EXCEPTION_DISABLED",
    "PEER_E_FW_BLOCKED_BY_POLICY",
    "PEER_E_FW_BLOCKED_BY_SHIELDS_UP",
    "PEER_E_FW_DECLINED",
    "PEER_E_INVITATION_NOT_TRUSTED",
    "PEER_S_NO_EVENT_DATA",
    "PEER_S_NO_CONNECTIVITY",
    "PEER_S_SUBSCRIPTION_EXISTS",
    "PEER_INVITATION_RESPONSE_DECLINED",
    "PEER_INVITATION_RESPONSE_ACCEPTED",
    "PEER_INVITATION_RESPONSE_EXPIRED",
    "PEER_INVITATION_RESPONSE_ERROR",
];

/// The rows of the mapping section (§5): table rows whose first cell is a
/// Windows name.
fn mapping_rows() -> Vec<&'static str> {
    let start = SPEC.find("\n## 5.").expect("spec/agent.md has a §5 (Windows mapping)");
    let end = SPEC[start + 1..].find("\n## ").map_or(SPEC.len(), |e| start + 1 + e);
    SPEC[start..end].lines().filter(|l| l.starts_with('|')).collect()
}

/// A row maps `name` if its first cell names it and some later cell says
/// what replaces it (or why nothing is needed).
fn mapped(name: &str) -> bool {
    mapping_rows().iter().any(|row| {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        cells.len() >= 4
            && cells[1].contains(name)
            && cells[2..].iter().any(|c| c.chars().filter(|c| c.is_alphanumeric()).count() > 3)
    })
}

#[test]
fn every_windows_function_is_mapped() {
    let missing: Vec<_> = WINDOWS_FUNCTIONS.iter().filter(|f| !mapped(f)).collect();
    assert!(missing.is_empty(), "spec/agent.md §5 does not map {missing:?}");
}

#[test]
fn every_windows_error_code_and_response_type_is_mapped() {
    let missing: Vec<_> = WINDOWS_CODES
        .iter()
        .filter(|c| {
            // Response types may be written by their short names
            // (`DECLINED`) in a row about `PEER_INVITATION_RESPONSE_TYPE`.
            let short = c.strip_prefix("PEER_INVITATION_RESPONSE_");
            !mapped(c) && !short.is_some_and(mapped)
        })
        .collect();
    assert!(missing.is_empty(), "spec/agent.md §5 does not map {missing:?}");
}
