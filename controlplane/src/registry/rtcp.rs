//! Following an endpoint's RTCP address: a peer without rtcp-mux sends its RTCP from, and expects ringfwd's at,
//! an address of its own (its RTP port + 1, or an explicit `a=rtcp:` address).
//!
//! Owns [`moves`]: the commands that make every stream an endpoint publishes accept its RTCP there
//! (`SetRtcpSource`) and every subscription it receives send its RTCP there (`SetRtcpDestination`), with their
//! undo. Shared by `UpdateEndpoint` and latching (port + 1 follows the latched address). Must never change the
//! registry. Cross-worker feedback routes (an `out_ssrc` owned by another worker) follow the RTP address only.

use std::net::SocketAddr;

use ringfwd_dataplane::control::Command;

use super::model::SessionRecord;

/// Commands and the workers they go to, in order.
type Commands = Vec<(usize, Command)>;

/// The commands (and `undo[i]` for `commands[i]`) that move endpoint `endpoint_id`'s RTCP address from
/// `before` to `after` (`None`: muxed). Nothing when it does not change.
pub(super) fn moves(
    session: &SessionRecord,
    endpoint_id: &str,
    before: Option<SocketAddr>,
    after: Option<SocketAddr>,
) -> (Commands, Commands) {
    let (mut commands, mut undo) = (Vec::new(), Vec::new());
    if before == after {
        return (commands, undo);
    }
    for stream in session.streams.values().filter(|s| s.endpoint_id == endpoint_id) {
        let id = stream.data_plane_id;
        commands.push((stream.worker, Command::SetRtcpSource { id, source: after }));
        undo.push((stream.worker, Command::SetRtcpSource { id, source: before }));
    }
    for sub in session.subscriptions.values().filter(|s| s.endpoint_id == endpoint_id) {
        let id = sub.data_plane_id;
        commands.push((sub.worker, Command::SetRtcpDestination { id, dest: after }));
        undo.push((sub.worker, Command::SetRtcpDestination { id, dest: before }));
    }
    (commands, undo)
}
