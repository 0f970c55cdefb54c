//! Following a latch: the data plane reports that a latching endpoint's stream locked (or re-latched) to the
//! address it really sends from, and the endpoint receives there from then on (symmetric RTP behind a NAT).
//!
//! Owns [`Registry::plan_latch`]: the commands that move every subscription the endpoint receives (and its
//! feedback route, if it has one) to the latched address, and the change that records the address on the
//! endpoint. An endpoint has one receiving address: when it publishes several streams from different ports,
//! the latest latch wins. Must never change the registry (only `commit` does) nor follow a report about an
//! endpoint that does not latch.

use std::net::SocketAddr;

use ringfwd_dataplane::control::{Command, StreamId, SubscriptionId, NO_DESTINATION};

use super::create::FeedbackRoute;
use super::error::RegistryError;
use super::model::{MediaKind, SessionRecord};
use super::plan::{Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

impl Registry {
    /// Plans what the data plane's report "stream `stream` now takes its packets from `source`" changes:
    /// `None` when there is nothing to do (the stream is gone, its publisher does not latch, or already
    /// receives at `source`, or the node has no media socket of `source`'s family). Otherwise, for each subscription
    /// the publisher receives and not yet sent to `source`, on its worker, a `SetDestination` (moving its feedback key
    /// with it), and where it has a feedback route on another worker, the old route removed and the new one added;
    /// last, for each unpaused video subscription that moves, a keyframe request (see [`Plan::request_keyframe`]): what
    /// was sent before the move did not reach the peer. The outcome is the endpoint with its latched address.
    pub fn plan_latch(&self, stream: StreamId, source: SocketAddr) -> Option<Plan> {
        let (session_id, session, record) = self.sessions.iter().find_map(|(session_id, session)| {
            let record = session.streams.values().find(|s| s.data_plane_id == stream)?;
            Some((session_id, session, record))
        })?;
        self.latch_endpoint(session_id, session, &record.endpoint_id, source)
    }

    /// Plans recording `address` as the latched address of endpoint `endpoint_id` of `session_id`, as it was before a
    /// restart (see `crate::state`): what [`Registry::plan_latch`] plans for a report of one of its streams, to be
    /// planned right after the endpoint is restored (before its streams and subscriptions, so it has nothing to move
    /// yet). `InvalidArgument` (field `latched_address`) when the endpoint does not latch or the node has no media
    /// socket of the address's family.
    pub fn plan_restore_latch(
        &self,
        session_id: &str,
        endpoint_id: &str,
        address: SocketAddr,
    ) -> Result<Plan, RegistryError> {
        let session = self.session(session_id)?;
        let endpoint =
            session.endpoints.get(endpoint_id).ok_or_else(|| RegistryError::not_found("endpoint", endpoint_id))?;
        let refused = |why: &str| RegistryError::invalid("latched_address", format!("{address}: {why}"));
        if !endpoint.latching {
            return Err(refused("the endpoint does not latch"));
        }
        if endpoint.latched_address == Some(address) {
            let view = View::Endpoint(endpoint.view(session_id, endpoint_id));
            return Ok(Plan::local(ChangeKind::Nothing, Outcome::Existing(view)));
        }
        self.latch_endpoint(session_id, session, endpoint_id, address)
            .ok_or_else(|| refused("the node has no media address of its family"))
    }

    /// The plan of endpoint `endpoint_id` of `session` latching to `source` (see [`Registry::plan_latch`]).
    fn latch_endpoint(
        &self,
        session_id: &str,
        session: &SessionRecord,
        endpoint_id: &str,
        source: SocketAddr,
    ) -> Option<Plan> {
        let endpoint = session.endpoints.get(endpoint_id)?;
        if !endpoint.latching || endpoint.latched_address == Some(source) {
            return None;
        }
        let socket = validate::socket_for(source, &self.media)?;
        let mut moves = self.move_subscriptions(session, endpoint_id, source, socket);
        let mut latched = endpoint.clone();
        latched.latched_address = Some(source);
        // RTCP at port + 1 follows the latched address.
        let (rtcp, rtcp_undo) =
            super::rtcp::moves(session, endpoint_id, endpoint.rtcp_address(), latched.rtcp_address());
        moves.commands.extend(rtcp);
        moves.undo.extend(rtcp_undo);
        let mut plan = Plan {
            commands: moves.commands,
            undo: moves.undo,
            outcome: Outcome::Updated(View::Endpoint(latched.view(session_id, endpoint_id))),
            change: Change(ChangeKind::Latch {
                session_id: session_id.to_owned(),
                endpoint_id: endpoint_id.to_owned(),
                address: source,
                socket,
            }),
        };
        for (worker, id, kind) in moves.starting {
            plan.request_keyframe(worker, id, kind);
        }
        Some(plan)
    }

    /// The commands that send every subscription endpoint `endpoint_id` of `session` receives, and not yet sent to
    /// `dest`, to `dest` from `socket` (on its worker, a `SetDestination`, which moves its feedback key; where it
    /// has a feedback route on another worker, the old route removed and the new one added), their undo, and the
    /// unpaused ones that start receiving there (for keyframe requests). Shared by latching and `UpdateEndpoint`.
    pub(super) fn move_subscriptions(
        &self,
        session: &SessionRecord,
        endpoint_id: &str,
        dest: SocketAddr,
        socket: usize,
    ) -> Moves {
        let workers = self.loads.len();
        let mut moves = Moves::default();
        // A moved subscription starts receiving mid-way at its new address: held until now, sent to a signalled
        // address the peer does not listen at, or to an old NAT binding that no longer reaches it. Video needs a
        // keyframe then.
        let moving = session.subscriptions.values().filter(|s| s.endpoint_id == endpoint_id);
        for sub in moving.filter(|s| s.destination != Some(dest)) {
            let id = sub.data_plane_id;
            if !sub.paused {
                let kind = session.streams.get(&sub.stream_id).map(|stream| stream.kind);
                moves.starting.extend(kind.map(|kind| (sub.worker, id, kind)));
            }
            moves.commands.push((sub.worker, Command::SetDestination { id, dest, socket }));
            let back = sub.destination.unwrap_or(NO_DESTINATION);
            moves.undo.push((sub.worker, Command::SetDestination { id, dest: back, socket: sub.socket }));
            let Some(route) = FeedbackRoute::of(sub, workers) else {
                continue;
            };
            if let (Some(remove), Some(add)) = (route.remove(), route.add()) {
                moves.commands.push((route.worker, remove));
                moves.undo.push((route.worker, add));
            }
            let mut moved = sub.clone();
            moved.destination = Some(dest);
            let moved_route = FeedbackRoute::of(&moved, workers);
            if let Some((add, remove)) = moved_route.and_then(|r| Some((r.add()?, r.remove()?))) {
                moves.commands.push((route.worker, add));
                moves.undo.push((route.worker, remove));
            }
        }
        moves
    }
}

impl Registry {
    /// Holds every subscription `endpoint_id` receives that has a destination (`SetDestination` to
    /// [`NO_DESTINATION`], socket 0: sent nothing), taking its feedback route away (a route needs the subscriber's
    /// address): a latching endpoint whose address was removed before it latched. Its latching sets them up again.
    pub(super) fn hold_subscriptions(&self, session: &SessionRecord, endpoint_id: &str) -> Moves {
        let workers = self.loads.len();
        let mut moves = Moves::default();
        let held = session.subscriptions.values().filter(|s| s.endpoint_id == endpoint_id && s.destination.is_some());
        for sub in held {
            let (id, back) = (sub.data_plane_id, sub.destination.unwrap_or(NO_DESTINATION));
            moves.commands.push((sub.worker, Command::SetDestination { id, dest: NO_DESTINATION, socket: 0 }));
            moves.undo.push((sub.worker, Command::SetDestination { id, dest: back, socket: sub.socket }));
            let route = FeedbackRoute::of(sub, workers);
            if let Some((route, remove, add)) = route.and_then(|r| Some((r.worker, r.remove()?, r.add()?))) {
                moves.commands.push((route, remove));
                moves.undo.push((route, add));
            }
        }
        moves
    }
}

/// What moving an endpoint's subscriptions to a new address takes (see [`Registry::move_subscriptions`]).
#[derive(Debug, Default)]
pub(super) struct Moves {
    /// The commands, in order.
    pub(super) commands: Vec<(usize, Command)>,
    /// Their undo, `undo[i]` for `commands[i]`.
    pub(super) undo: Vec<(usize, Command)>,
    /// `(worker, subscription, kind)` of each unpaused subscription that moves.
    pub(super) starting: Vec<(usize, SubscriptionId, MediaKind)>,
}
