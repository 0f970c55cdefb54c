//! Following a latch: the data plane reports that a latching endpoint's stream locked (or re-latched) to the
//! address it really sends from, and the endpoint receives there from then on (symmetric RTP behind a NAT).
//!
//! Owns [`Registry::plan_latch`]: the commands that move every subscription the endpoint receives (and its
//! feedback route, if it has one) to the latched address, and the change that records the address on the
//! endpoint. An endpoint has one receiving address: when it publishes several streams from different ports,
//! the latest latch wins. Must never change the registry (only `commit` does) nor follow a report about an
//! endpoint that does not latch.

use std::net::SocketAddr;

use ringfwd_dataplane::core::{Command, StreamId, NO_DESTINATION};

use super::create::FeedbackRoute;
use super::plan::{Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

impl Registry {
    /// Plans what the data plane's report "stream `stream` now takes its packets from `source`" changes:
    /// `None` when there is nothing to do (the stream is gone, its publisher does not latch, or already
    /// receives at `source`, or the node has no media socket of `source`'s family). Otherwise, for each
    /// subscription the publisher receives and not yet sent to `source`, on its worker, a `SetDestination`
    /// (moving its feedback key with it), and where it has a feedback route on another worker, the old route
    /// removed and the new one added; last, for each unpaused video subscription that moves, a keyframe request
    /// (see [`Plan::request_keyframe`]): what was sent before the move did not reach the peer. The outcome is the endpoint with its
    /// latched address.
    pub fn plan_latch(&self, stream: StreamId, source: SocketAddr) -> Option<Plan> {
        let (session_id, session, record) = self.sessions.iter().find_map(|(session_id, session)| {
            let record = session.streams.values().find(|s| s.data_plane_id == stream)?;
            Some((session_id, session, record))
        })?;
        let endpoint_id = &record.endpoint_id;
        let endpoint = session.endpoints.get(endpoint_id)?;
        if !endpoint.latching || endpoint.latched_address == Some(source) {
            return None;
        }
        let socket = validate::socket_for(source, &self.media)?;
        let workers = self.loads.len();
        let (mut commands, mut undo) = (Vec::new(), Vec::new());
        // A moved subscription starts receiving mid-way at its new address: held until now, sent to a signalled
        // address the peer does not listen at, or to an old NAT binding that no longer reaches it. Video needs a
        // keyframe then.
        let mut starting = Vec::new();
        let moving = session.subscriptions.values().filter(|s| s.endpoint_id == *endpoint_id);
        for sub in moving.filter(|s| s.destination != Some(source)) {
            let id = sub.data_plane_id;
            if !sub.paused {
                let kind = session.streams.get(&sub.stream_id).map(|stream| stream.kind);
                starting.extend(kind.map(|kind| (sub.worker, id, kind)));
            }
            commands.push((sub.worker, Command::SetDestination { id, dest: source, socket }));
            let back = sub.destination.unwrap_or(NO_DESTINATION);
            undo.push((sub.worker, Command::SetDestination { id, dest: back, socket: sub.socket }));
            let Some(route) = FeedbackRoute::of(sub, workers) else {
                continue;
            };
            if let (Some(remove), Some(add)) = (route.remove(), route.add()) {
                commands.push((route.worker, remove));
                undo.push((route.worker, add));
            }
            let mut moved = sub.clone();
            moved.destination = Some(source);
            let moved_route = FeedbackRoute::of(&moved, workers);
            if let Some((add, remove)) = moved_route.and_then(|r| Some((r.add()?, r.remove()?))) {
                commands.push((route.worker, add));
                undo.push((route.worker, remove));
            }
        }
        let mut latched = endpoint.clone();
        latched.latched_address = Some(source);
        let mut plan = Plan {
            commands,
            undo,
            outcome: Outcome::Updated(View::Endpoint(latched.view(session_id, endpoint_id))),
            change: Change(ChangeKind::Latch {
                session_id: session_id.clone(),
                endpoint_id: endpoint_id.clone(),
                address: source,
                socket,
            }),
        };
        for (worker, id, kind) in starting {
            plan.request_keyframe(worker, id, kind);
        }
        Some(plan)
    }
}
