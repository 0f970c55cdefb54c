//! Planning `UpdateStream`: a new SSRC or new payload types for a published stream (a re-INVITE, a restarted
//! user agent), in place, so its subscriptions live on.
//!
//! Owns the rules of a stream update and its commands: `ChangeStreamSsrc` on the stream's worker (its subscribers
//! keep their SSRC and continuous numbering), then a `ReconfigureSubscription` for each subscription whose
//! payload-type filter follows the new payload types. Must never change the registry (only `commit` does) nor move
//! a stream to another worker: a new SSRC the kernel steers to another worker is refused, as a switch across
//! workers is.

use ringfwd_dataplane::core::{owner_of, Command};

use super::create::{egress_spec, payload_type_map};
use super::error::RegistryError;
use super::plan::{Change, ChangeKind, Outcome, Plan, View};
use super::validate;
use super::Registry;

/// What an `UpdateStream` changes; `None` leaves a property as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamUpdate {
    /// The publisher's SSRC from now on (unique on the node).
    pub ssrc: Option<u32>,
    /// The payload types it uses from now on (each `0..=127`, no duplicates; empty: any).
    pub payload_types: Option<Vec<u32>>,
}

impl Registry {
    /// Plans `UpdateStream`: `ChangeStreamSsrc` when the SSRC changes (refused with `FAILED_PRECONDITION` when the
    /// new SSRC belongs to another worker), then one `ReconfigureSubscription` per subscription whose egress spec
    /// changes with the payload types. A subscription with an unset out SSRC is pinned to the old SSRC, as the
    /// worker pins it, so the subscriber keeps seeing one stream. Unchanged values plan no command.
    pub fn plan_update_stream(
        &self,
        session_id: &str,
        stream_id: &str,
        update: &StreamUpdate,
    ) -> Result<Plan, RegistryError> {
        validate::id("session_id", session_id)?;
        validate::id("stream_id", stream_id)?;
        if let Some(types) = &update.payload_types {
            validate::payload_types(types)?;
        }
        if update.ssrc == Some(0) {
            return Err(RegistryError::invalid(
                "ssrc",
                "0 is not an SSRC here (a stream declared with 0 learns its own)",
            ));
        }
        let session = self.session(session_id)?;
        let current = session.streams.get(stream_id).ok_or_else(|| RegistryError::not_found("stream", stream_id))?;
        if let Some(ssrc) = update.ssrc.filter(|_| !current.ssrc_known) {
            // Nothing was sent for a stream that has not learned its SSRC yet: it is bound afresh where `ssrc` goes.
            if self.ssrcs.contains_key(&ssrc) {
                return Err(RegistryError::AlreadyExists { kind: "ssrc", id: ssrc.to_string() });
            }
            return self.plan_adopt(session_id, session, stream_id, ssrc, update.payload_types.clone());
        }
        let (id, worker) = (current.data_plane_id, current.worker);
        let mut updated = current.clone();
        let mut commands = Vec::new();
        let mut undo = Vec::new();
        let mut subscriptions = Vec::new();
        if let Some(ssrc) = update.ssrc.filter(|&ssrc| ssrc != current.ssrc) {
            if self.ssrcs.contains_key(&ssrc) {
                return Err(RegistryError::AlreadyExists { kind: "ssrc", id: ssrc.to_string() });
            }
            let owner = owner_of(ssrc, self.workers);
            if owner != worker {
                return Err(RegistryError::FailedPrecondition(format!(
                    "ssrc {ssrc} is steered to worker {owner}, stream {stream_id} lives on worker {worker}: moving a \
                     stream across workers is not supported yet (delete it and create it again)"
                )));
            }
            commands.push((worker, Command::ChangeStreamSsrc { id, ssrc }));
            undo.push((worker, Command::ChangeStreamSsrc { id, ssrc: current.ssrc }));
            updated.ssrc = ssrc;
        }
        if let Some(types) = &update.payload_types {
            updated.payload_types.clone_from(types);
        }
        for (subscription_id, sub) in session.subscriptions.iter().filter(|(_, s)| s.stream_id == stream_id) {
            let mut record = sub.clone();
            if updated.ssrc != current.ssrc && record.out_ssrc == 0 {
                record.out_ssrc = current.ssrc;
            }
            let (before, after) =
                (egress_spec(sub, current, &self.interceptors), egress_spec(&record, &updated, &self.interceptors));
            if before != after {
                let map = payload_type_map(sub);
                let reconfigure =
                    |egress| Command::ReconfigureSubscription { id: sub.data_plane_id, payload_type_map: map, egress };
                commands.push((sub.worker, reconfigure(after)));
                undo.push((sub.worker, reconfigure(before)));
            }
            if record != *sub {
                subscriptions.push((subscription_id.clone(), record));
            }
        }
        let view = updated.view(session_id, stream_id);
        Ok(Plan {
            commands,
            undo,
            change: Change(ChangeKind::UpdateStream {
                session_id: session_id.to_owned(),
                stream_id: stream_id.to_owned(),
                record: updated,
                subscriptions,
            }),
            outcome: Outcome::Updated(View::Stream(view)),
        })
    }
}
