//! Planning `UpdateEndpoint`: a peer's media address changes in place (a re-INVITE that moves its port), so its
//! streams and subscriptions live on.
//!
//! Owns the rules of an endpoint update and its commands: `SetSource` for each stream the endpoint publishes (a
//! fixed source is re-keyed; a latching stream still waiting takes the address as its fallback), then the moves of
//! every subscription it receives to the new address (shared with latching, see [`Registry::move_subscriptions`]),
//! unless it latched: a latched endpoint keeps receiving where it really is; a latching endpoint whose address is
//! removed before it latched has what it receives held until it does. Must never change the registry (only
//! `commit` does). The endpoint's RTCP address is replaced with the update's (an update without one makes RTCP muxed),
//! its streams and subscriptions following it (see `rtcp`).

use std::net::SocketAddr;

use ringfwd_dataplane::control::Command;

use super::error::RegistryError;
use super::model::RtcpSpec;
use super::plan::{Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

impl Registry {
    /// Plans `UpdateEndpoint` to `media_address`, validated as `CreateEndpoint` validates it (required unless the
    /// endpoint latches; a family the node has a media socket for). An unchanged address plans no command.
    pub fn plan_update_endpoint(
        &self,
        session_id: &str,
        endpoint_id: &str,
        media_address: Option<SocketAddr>,
        rtcp: RtcpSpec,
    ) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("endpoint_id", endpoint_id)?;
        let session = self.session(session_id)?;
        let current =
            session.endpoints.get(endpoint_id).ok_or_else(|| RegistryError::not_found("endpoint", endpoint_id))?;
        validate::media_address(media_address, current.latching, &self.media)?;
        validate::rtcp(rtcp, media_address, &self.media)?;
        let mut updated = current.clone();
        updated.media_address = media_address;
        updated.rtcp = rtcp;
        let outcome = Outcome::Updated(View::Endpoint(updated.view(session_id, endpoint_id)));
        let change = |socket| {
            Change(ChangeKind::UpdateEndpoint {
                session_id: session_id.to_owned(),
                endpoint_id: endpoint_id.to_owned(),
                media_address,
                rtcp,
                socket,
            })
        };
        let (mut commands, mut undo) =
            super::rtcp::moves(session, endpoint_id, current.rtcp_address(), updated.rtcp_address());
        let Some(address) = media_address.filter(|&address| Some(address) != current.media_address) else {
            // A latching endpoint whose address goes before it latched: what it receives is held (sent nothing) until
            // it latches, as when it is created without one.
            if media_address.is_none() && current.media_address.is_some() && current.latched_address.is_none() {
                let holds = self.hold_subscriptions(session, endpoint_id);
                commands.extend(holds.commands);
                undo.extend(holds.undo);
            }
            return Ok(Plan { commands, undo, change: change(None), outcome });
        };
        for stream in session.streams.values().filter(|s| s.endpoint_id == endpoint_id) {
            let id = stream.data_plane_id;
            commands.push((stream.worker, Command::SetSource { id, source: address, overlap: false }));
            // A stream without a source before (a latching endpoint without an address) keeps the new fallback on
            // undo: it only matters until it latches.
            let back = current.media_address.unwrap_or(address);
            undo.push((stream.worker, Command::SetSource { id, source: back, overlap: false }));
        }
        let mut starting = Vec::new();
        let mut socket = None;
        if current.latched_address.is_none() {
            let to = validate::socket_for(address, &self.media)
                .ok_or_else(|| RegistryError::invalid("media_address", format!("no media socket for {address}")))?;
            let moves = self.move_subscriptions(session, endpoint_id, address, to);
            commands.extend(moves.commands);
            undo.extend(moves.undo);
            starting = moves.starting;
            socket = Some(to);
        }
        let mut plan = Plan { commands, undo, change: change(socket), outcome };
        for (worker, id, kind) in starting {
            plan.request_keyframe(worker, id, kind);
        }
        Ok(plan)
    }
}
