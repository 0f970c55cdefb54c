//! Typed per-packet attributes handed to every interceptor with an RTP packet.
//!
//! Owns [`RtpAttrs`]: the values every interceptor would otherwise parse again (the fixed header
//! fields, the extended sequence number, the arrival time). Plain data, computed once per packet by
//! the forwarder; never a string map, never allocated.

use std::net::SocketAddr;
use std::time::Instant;

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
