//! Typed per-packet attributes handed to every interceptor with an RTP packet.
//!
//! Owns [`RtpAttrs`]: the values every interceptor would otherwise parse again (the fixed header
//! fields, the extended sequence number, the arrival time). Plain data, computed once per packet by
//! the forwarder; never a string map, never allocated.

use std::net::SocketAddr;
use std::time::Instant;

use crate::core::packet::RtpView;
use crate::core::wire::{RtpTimestamp, SeqNo, Ssrc};

/// The attributes of one RTP packet as the chain sees it.
///
/// In an ingress chain these are the publisher's values. In an egress chain `ssrc`, `seq`, `ext_seq`,
/// `timestamp` and `payload_type` are the rewritten values the subscriber receives, and
/// `source_payload_type` is the publisher's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpAttrs {
    /// When the worker received the datagram.
    pub arrival: Instant,
    /// The publisher's address the datagram came from.
    pub src: SocketAddr,
    /// Synchronization source.
    pub ssrc: Ssrc,
    /// Sequence number.
    pub seq: SeqNo,
    /// Extended (64-bit, monotonic across wraps) sequence number, per [`crate::core::SeqUnwrapper`].
    pub ext_seq: u64,
    /// RTP timestamp.
    pub timestamp: RtpTimestamp,
    /// Payload type.
    pub payload_type: u8,
    /// The publisher's payload type (equal to `payload_type` in an ingress chain).
    pub source_payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Length of the whole datagram, in bytes.
    pub len_bytes: usize,
    /// Length of the RTP payload (after header, CSRCs, extension, and without padding), in bytes.
    pub payload_bytes: usize,
    /// Offset of the header extension block (the 4-byte profile/length word) in the datagram, if the
    /// packet has one.
    pub extension_offset: Option<usize>,
}

impl RtpAttrs {
    /// The attributes of `view`, received at `arrival` from `src` (the extended sequence number left 0 for the caller
    /// to fill in, from the stream's unwrapper).
    pub fn of(view: &RtpView<'_>, arrival: Instant, src: SocketAddr) -> RtpAttrs {
        let bytes = view.bytes();
        let first = bytes.first().copied().unwrap_or(0);
        let extension_offset = (first & 0x10 != 0).then(|| 12 + 4 * usize::from(first & 0x0f));
        RtpAttrs {
            arrival,
            src,
            ssrc: view.ssrc(),
            seq: view.seq(),
            ext_seq: 0,
            timestamp: view.timestamp(),
            payload_type: view.payload_type(),
            source_payload_type: view.payload_type(),
            marker: view.marker(),
            len_bytes: bytes.len(),
            payload_bytes: view.payload().len(),
            extension_offset,
        }
    }

    /// These attributes after a chain member rewrote the packet into `view`: read again from it, with the arrival,
    /// the source and the extended sequence number kept (moved by as much as the member moved the sequence
    /// number). In an ingress chain (`ingress`) the publisher's payload type is the new one; in an egress chain it
    /// stays the publisher's.
    pub fn rewritten(&self, view: &RtpView<'_>, ingress: bool) -> RtpAttrs {
        let mut attrs = RtpAttrs::of(view, self.arrival, self.src);
        let moved = i64::from(attrs.seq.0.wrapping_sub(self.seq.0) as i16);
        attrs.ext_seq = self.ext_seq.saturating_add_signed(moved);
        if !ingress {
            attrs.source_payload_type = self.source_payload_type;
        }
        attrs
    }
}
