//! Commands that bind chains anew for a stream or subscription that lives on: a stream's new SSRC
//! (`ChangeStreamSsrc`), a stream's new ingress interceptors (`ReconfigureStream`) and a subscription's
//! renegotiation (`ReconfigureSubscription`).
//!
//! Owns the forwarder's side of both: what is re-keyed in the tables (that is `table`'s), which chains are bound
//! again and with what identity, and keeping the last figures of a chain that is replaced. Runs when a command is
//! applied, never per packet: it may allocate (binding a chain does).

use std::time::Instant;

use super::{stream_info, Forwarder, StatsKey};
use crate::core::command::{CommandError, StreamId, SubscriptionId};
use crate::core::interceptor::spec::{EgressSpec, IngressSpec, SubscriptionInfo};
use crate::core::rewrite::Rewrite;
use crate::core::table::Table;
use crate::core::wire::Ssrc;

impl Forwarder {
    /// Runs `Command::ChangeStreamSsrc`: re-keys the stream, then binds its ingress chain and its subscriptions'
    /// egress chains anew for the new SSRC (after keeping their last figures).
    pub(super) fn change_stream_ssrc(&mut self, now: Instant, id: StreamId, ssrc: u32) -> Result<(), CommandError> {
        let Some(idx) = self.table.stream_index(id) else {
            return Err(CommandError::StreamNotFound { id });
        };
        if self.table.streams[idx as usize].ssrc == ssrc {
            return Ok(());
        }
        self.keep_final_snapshots(StatsKey::Stream(id));
        let idx = self.table.change_stream_ssrc(id, ssrc)?;
        let factory = self.factory(now);
        let Table { streams, subscriptions, .. } = &mut self.table;
        let stream = &mut streams[idx as usize];
        let info = stream_info(id, ssrc, stream.clock_rate_hz, factory.epoch);
        stream.ingress = factory.ingress(&stream.ingress_spec, &info);
        for &flow in &stream.subscriptions {
            let sub = &mut subscriptions[flow as usize];
            let info = SubscriptionInfo {
                flow,
                source_ssrc: Ssrc(ssrc),
                out_ssrc: Ssrc(sub.rewrite.out_ssrc.unwrap_or(ssrc)),
                clock_rate_hz: stream.clock_rate_hz,
                epoch: factory.epoch,
            };
            sub.egress = factory.egress(&sub.egress_spec, &info);
        }
        self.counters.plugin_failures += factory.bind_failures();
        Ok(())
    }

    /// Runs `Command::ReconfigureStream`: binds a new ingress chain only when the spec changed (after keeping the old
    /// chain's last figures) and swaps it in.
    pub(super) fn reconfigure_stream(
        &mut self,
        now: Instant,
        id: StreamId,
        ingress: IngressSpec,
    ) -> Result<(), CommandError> {
        let Some(idx) = self.table.stream_index(id) else {
            return Err(CommandError::StreamNotFound { id });
        };
        if self.table.streams[idx as usize].ingress_spec == ingress {
            return Ok(());
        }
        self.keep_final_snapshots(StatsKey::Stream(id));
        let factory = self.factory(now);
        let stream = &mut self.table.streams[idx as usize];
        let info = stream_info(id, stream.ssrc, stream.clock_rate_hz, factory.epoch);
        stream.ingress = factory.ingress(&ingress, &info);
        stream.ingress_spec = ingress;
        self.counters.plugin_failures += factory.bind_failures();
        Ok(())
    }

    /// Runs `Command::ReconfigureSubscription`: checks the map, binds a new egress chain only when the chain's
    /// spec changed (after keeping the old chain's last figures), then swaps map, RTX and chain in at once.
    pub(super) fn reconfigure_subscription(
        &mut self,
        now: Instant,
        id: SubscriptionId,
        payload_type_map: [u8; 128],
        egress: EgressSpec,
    ) -> Result<(), CommandError> {
        if let Some((from, to)) = (Rewrite { payload_type_map, ..Rewrite::default() }).invalid_payload_type() {
            return Err(CommandError::PayloadTypeOutOfRange { from, to });
        }
        egress.check_rtx()?;
        let Some((current, flow, source_ssrc, out_ssrc, clock_rate_hz)) = self.table.egress_binding(id) else {
            return Err(CommandError::SubscriptionNotFound { id });
        };
        // RTX is applied by the forwarder, not by the chain: a change of RTX alone keeps the chain.
        let chain = if (EgressSpec { rtx: None, ..*current }) != (EgressSpec { rtx: None, ..egress }) {
            let factory = self.factory(now);
            let info = SubscriptionInfo {
                flow,
                source_ssrc: Ssrc(source_ssrc),
                out_ssrc: Ssrc(out_ssrc),
                clock_rate_hz,
                epoch: factory.epoch,
            };
            self.keep_final_snapshots(StatsKey::Subscription(id));
            let chain = factory.egress(&egress, &info);
            self.counters.plugin_failures += factory.bind_failures();
            Some(chain)
        } else {
            None
        };
        self.table.reconfigure_subscription(id, payload_type_map, egress, chain)
    }
}
