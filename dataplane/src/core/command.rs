//! The commands the control plane sends a worker, and why a worker rejects one.
//!
//! Owns [`Command`], its identifiers ([`StreamId`], [`SubscriptionId`]), the stream [`SourcePolicy`],
//! the accepted clock rates ([`MAX_CLOCK_RATE_HZ`]) and [`CommandError`]. Plain data: it must never
//! hold a reference into a worker's tables.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::continuity::Numbering;
use super::interceptor::spec::{EgressSpec, IngressSpec};
use super::interceptor::{Metadata, Plugins};
use super::rewrite::Rewrite;

/// The highest RTP clock rate a stream may declare (`AddStream::clock_rate_hz` is `1..=` this).
pub const MAX_CLOCK_RATE_HZ: u32 = 1_000_000;

/// The destination of a subscription whose subscriber has no address yet (any address with port 0 is one):
/// see `Command::AddSubscription`.
pub const NO_DESTINATION: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// The control plane's identifier of a stream (unique per worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream#{}", self.0)
    }
}

/// The control plane's identifier of a subscription (unique per worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscription#{}", self.0)
    }
}

/// Which source address a stream accepts its packets from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePolicy {
    /// Only this address, from the start.
    Fixed(SocketAddr),
    /// The first address that sends RTP with the stream's SSRC within `window` of the stream's creation;
    /// after the window with no lock, only `fallback` (if any), else nothing. Once locked, RTP from another
    /// address re-latches it only after the locked address was silent for `window` (see `table`'s docs).
    Latch {
        /// How long after creation the stream may latch.
        window: Duration,
        /// The address accepted once the window has passed with no lock.
        fallback: Option<SocketAddr>,
    },
}

/// A change to a worker's tables. Applied between packets, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Adds a stream published with `ssrc` from `source`.
    AddStream {
        /// New stream id.
        id: StreamId,
        /// The publisher's SSRC.
        ssrc: u32,
        /// Accepted source address(es).
        source: SourcePolicy,
        /// The RTP timestamp clock rate, `1..=MAX_CLOCK_RATE_HZ` (90 000 for video, 48 000 for Opus).
        clock_rate_hz: u32,
        /// Its ingress interceptors (the default runs none).
        ingress: IngressSpec,
    },
    /// Removes a stream and all its subscriptions.
    RemoveStream {
        /// The stream.
        id: StreamId,
    },
    /// Forwards `stream` to `dest` through the worker's socket number `socket`.
    AddSubscription {
        /// New subscription id.
        id: SubscriptionId,
        /// The stream to forward.
        stream: StreamId,
        /// The subscriber's address. Port 0 ([`NO_DESTINATION`]): none yet (a latching subscriber that has not sent):
        /// the subscription is held, nothing goes to it (each copy counted as `not_sent_no_destination`) until a
        /// `SetDestination`.
        dest: SocketAddr,
        /// Index of the worker socket to send from (the driver's numbering).
        socket: usize,
        /// Header rewriting for this subscriber.
        rewrite: Rewrite,
        /// Starts paused: nothing is forwarded until a `SetPaused { paused: false }`.
        paused: bool,
        /// Its egress interceptors and RTX (the default runs none).
        egress: EgressSpec,
        /// Continue the numbering a subscriber saw before a restart: its first packet goes out as `seq + 1` with the
        /// timestamp advanced by the time since `at` (in the stream's clock), whatever `rewrite`'s offsets say, and
        /// its RTCP is withheld until then, as after a switch. `None`: numbering from `rewrite`'s offsets.
        continues: Option<Numbering>,
    },
    /// Stops forwarding to a subscription and forgets it.
    RemoveSubscription {
        /// The subscription.
        id: SubscriptionId,
    },
    /// Makes subscription `id` forward `stream` (on this worker) instead of its current stream, keeping
    /// its id, flow, destination, socket, payload-type map and paused state. The subscriber sees one
    /// continuous stream: the SSRC it saw so far (`out_ssrc` is pinned to the old stream's SSRC if it
    /// was `None`), and, if anything was sent, sequence numbers and timestamps rebased on the new
    /// stream's first RTP packet to continue from the last sent ones. Until that packet, the new
    /// stream's RTCP is withheld from the subscription (counted as `rebase_pending`). Switching to the
    /// current stream is a no-op.
    SwitchSubscription {
        /// The subscription.
        id: SubscriptionId,
        /// The stream it forwards from now on.
        stream: StreamId,
    },
    /// Pauses or resumes a subscription; a paused one receives nothing.
    SetPaused {
        /// The subscription.
        id: SubscriptionId,
        /// True to pause.
        paused: bool,
    },
    /// Replaces subscription `id`'s payload-type map and egress interceptors (and RTX) at once, between two
    /// packets: a re-negotiation (re-INVITE, renegotiated SDP). Its destination, SSRC, numbering and paused state
    /// stay. An unchanged interceptor spec keeps the bound chain; a changed one is bound anew, so the egress
    /// statistics restart (the old chain's last figures are published first).
    ReconfigureSubscription {
        /// The subscription.
        id: SubscriptionId,
        /// Outgoing payload type indexed by incoming payload type (every entry below 128).
        payload_type_map: [u8; 128],
        /// Its egress interceptors and RTX from now on.
        egress: EgressSpec,
    },
    /// Replaces stream `id`'s ingress interceptors, between two packets (a plugin attached or detached, a built-in
    /// added or removed). An unchanged spec keeps the bound chain; a changed one is bound anew, so the ingress
    /// statistics restart (the old chain's last figures are published first). Its subscriptions are untouched.
    ReconfigureStream {
        /// The stream.
        id: StreamId,
        /// Its ingress interceptors from now on.
        ingress: IngressSpec,
    },
    /// Gives stream `id`'s chains its metadata from now on, between two packets: a snapshot the control plane built of
    /// the stream's, its publisher's and its session's metadata ([`Metadata::from_objects`]), read by every member of
    /// the stream's ingress chain and of its subscriptions' egress chains ([`super::interceptor::Context::metadata`]).
    /// [`Metadata::none`] clears it. A stream starts with none (an `AddStream` clears what its slot held).
    SetStreamMetadata {
        /// The stream.
        id: StreamId,
        /// Its metadata from now on.
        metadata: Metadata,
    },
    /// Gives subscription `id`'s egress chain the metadata of the endpoint that receives it from now on, between two
    /// packets: a snapshot the control plane built ([`Metadata::of_subscriber`]), read through
    /// [`super::interceptor::Context::subscriber_metadata`]. [`Metadata::none`] clears it. A subscription starts with
    /// none (an `AddSubscription` clears what its slot held).
    SetSubscriptionMetadata {
        /// The subscription.
        id: SubscriptionId,
        /// Its subscriber's metadata from now on.
        metadata: Metadata,
    },
    /// Makes stream `id` take its packets with `ssrc` instead of its current SSRC, from the same source (a
    /// re-INVITE, a restarted user agent). Its subscribers see one continuous stream, as after a
    /// `SwitchSubscription`: the SSRC they saw so far (an unset `out_ssrc` is pinned to the old SSRC) and
    /// numbering rebased on the first RTP with the new SSRC. The stream's chains are bound anew for the new SSRC
    /// (their statistics restart). The stream stays on this worker whatever worker owns the new SSRC: when another
    /// one does, the control plane gives that worker an [`Command::AliasSsrc`] naming this one.
    ChangeStreamSsrc {
        /// The stream.
        id: StreamId,
        /// Its SSRC from now on.
        ssrc: u32,
    },
    /// Hands datagrams about `ssrc` to worker `owner`, which holds the stream that took `ssrc` in place (see
    /// `ChangeStreamSsrc`): RTP with `ssrc`, RTCP whose first SSRC it is, and a subscriber's feedback about it. Given
    /// only to the worker that owns `ssrc` (where the kernel steers it), naming another worker; an alias `ssrc`
    /// already has is replaced. Bounded by the worker's stream limit.
    AliasSsrc {
        /// The SSRC, owned by this worker.
        ssrc: u32,
        /// The worker holding the stream.
        owner: usize,
    },
    /// Removes the alias of `ssrc` (nothing changes if there is none): datagrams about it are this worker's again.
    RemoveSsrcAlias {
        /// The SSRC.
        ssrc: u32,
    },
    /// Sends subscription `id`'s copies to `dest` from socket `socket` from now on (its subscriber latched or
    /// re-latched to that address behind a NAT), and recognises its subscriber's RTCP there (its feedback key
    /// moves with it). Everything else of the subscription stays. Port 0 holds it again (see `AddSubscription`).
    SetDestination {
        /// The subscription.
        id: SubscriptionId,
        /// The subscriber's address from now on.
        dest: SocketAddr,
        /// Index of the worker socket to send from.
        socket: usize,
    },
    /// Takes stream `id`'s packets from `source` from now on (its publisher moved: a re-INVITE with a new port, or a
    /// relayed stream's new path). A fixed source is re-keyed at once, or with `overlap` (a relayed stream's new path,
    /// carrying the same packets as the old one) for `SOURCE_MOVE_OVERLAP` (200 ms) from the command the stream takes
    /// packets from its previous source too, each RTP sequence number once (a copy already taken from the other source
    /// is a `repeated` drop), so the move loses none and repeats none; then the previous source is `wrong_source`. A
    /// move back to the previous source during the overlap switches at once, and RTCP to the publisher goes to
    /// `source` from the command on (see "Moving a fixed source" in `table`). A latching stream still waiting gets `source` as its fallback; a
    /// latched one keeps following what it hears (see the latching rule in `table`). `SsrcInUse` if another stream
    /// is locked to `source` with the same SSRC.
    SetSource {
        /// The stream.
        id: StreamId,
        /// The publisher's address from now on.
        source: SocketAddr,
        /// Take packets from the previous source too for a moment, each sequence number once (see above).
        overlap: bool,
    },
    /// Accepts stream `id`'s RTCP (never its RTP) also from `source`, and sends its publisher's RTCP (RR, NACK,
    /// PLI/FIR, TWCC) there: a peer without rtcp-mux sends and expects RTCP on its RTP port + 1. `None`: RTCP is
    /// muxed on the stream's source again. The key `(source, ssrc)` follows an SSRC change.
    SetRtcpSource {
        /// The stream.
        id: StreamId,
        /// The publisher's RTCP address, or `None` for RTCP muxed with RTP.
        source: Option<SocketAddr>,
    },
    /// Sends subscription `id`'s RTCP (SRs, the publisher's forwarded RTCP, what its egress interceptors emit) to
    /// `dest` instead of its RTP destination, and recognises its subscriber's RTCP (RR, NACK, PLI) from there too.
    /// `None`: RTCP is muxed on its destination again.
    SetRtcpDestination {
        /// The subscription.
        id: SubscriptionId,
        /// The subscriber's RTCP address, or `None` for RTCP muxed with RTP.
        dest: Option<SocketAddr>,
    },
    /// Asks the publisher of subscription `id`'s stream for a keyframe on the subscriber's behalf: a
    /// subscriber that starts receiving a video stream mid-way (a new subscription, a switch, a resume)
    /// cannot decode its delta frames. The request takes the path of a PLI from the subscriber, through the
    /// stream's ingress chain (so the keyframe throttle merges it with other requests) and on to the
    /// publisher. Nothing is asked while the subscription is paused. It changes no state: the control plane
    /// plans it last, and its undo is a second, harmless request.
    RequestKeyframe {
        /// The subscription.
        id: SubscriptionId,
    },
    /// Sends a subscriber's RTCP about `out_ssrc` from `dest` on to worker `owner`, which holds subscription
    /// `id`. Given to the worker that owns `out_ssrc` (where the subscriber's feedback lands) when that is not
    /// the subscription's worker. A key another subscription holds stays with it.
    AddFeedbackRoute {
        /// The subscription (on worker `owner`).
        id: SubscriptionId,
        /// The subscriber's address.
        dest: SocketAddr,
        /// The SSRC the subscriber receives.
        out_ssrc: u32,
        /// The worker holding the subscription.
        owner: usize,
    },
    /// Removes subscription `id`'s route at (`dest`, `out_ssrc`) if it holds that key (when two subscriptions
    /// share a key the first keeps it, and the other's add and remove change nothing).
    RemoveFeedbackRoute {
        /// The subscription.
        id: SubscriptionId,
        /// The subscriber's address.
        dest: SocketAddr,
        /// The SSRC the subscriber receives.
        out_ssrc: u32,
    },
    /// Replaces the registry of plugins that streams and subscriptions bound from now on may name (a plugin was
    /// loaded or unloaded at run time). Chains already bound are untouched: the control plane unloads a plugin only
    /// once no chain names it. Each plugin the new registry no longer has is retired on this worker (its unload
    /// hook: a WebAssembly plugin's instance is dropped). Ids stay stable (see [`Plugins`]). Never refused.
    SetPlugins {
        /// The registry from now on (shared; the same value for every worker).
        plugins: Plugins,
    },
}

/// Why a worker rejected a [`Command`]. The tables are unchanged after an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `AddStream` with an id already in use.
    #[error("{id} already exists")]
    StreamExists {
        /// The id.
        id: StreamId,
    },
    /// A command naming a stream that does not exist.
    #[error("{id} not found")]
    StreamNotFound {
        /// The id.
        id: StreamId,
    },
    /// `AddSubscription` with an id already in use.
    #[error("{id} already exists")]
    SubscriptionExists {
        /// The id.
        id: SubscriptionId,
    },
    /// A command naming a subscription that does not exist.
    #[error("{id} not found")]
    SubscriptionNotFound {
        /// The id.
        id: SubscriptionId,
    },
    /// A table is at its configured bound.
    #[error("limit {limit} = {value} reached")]
    LimitReached {
        /// The limit's name, as in `ForwarderLimits`.
        limit: &'static str,
        /// Its configured value.
        value: u32,
    },
    /// Another stream already takes `ssrc` from `source_addr` (`None`: another stream waits to latch it).
    /// (Not named `source`: thiserror would take that for the underlying error.)
    #[error("ssrc {ssrc:#010x} already in use ({})", match .source_addr {
        Some(addr) => format!("from {addr}"),
        None => "by a stream waiting to latch".to_owned(),
    })]
    SsrcInUse {
        /// The SSRC.
        ssrc: u32,
        /// The source address it is locked to, if it is.
        source_addr: Option<SocketAddr>,
    },
    /// `AliasSsrc` given to a worker that does not own `ssrc`, or naming this worker or one that does not exist.
    #[error(
        "ssrc {ssrc:#010x} cannot be aliased on worker {worker} to worker {owner}: an alias lives on the worker that \
         owns its ssrc (ssrc % workers) and names another worker"
    )]
    MisplacedAlias {
        /// The SSRC.
        ssrc: u32,
        /// The worker the command was given to.
        worker: usize,
        /// The worker it named.
        owner: usize,
    },
    /// `AddFeedbackRoute` naming this worker or one that does not exist: a route hands feedback on to the worker
    /// holding the subscription, which is always another one.
    #[error(
        "feedback route of {id} for ssrc {out_ssrc:#010x} names worker {owner}, not another of the {workers} workers"
    )]
    MisplacedRoute {
        /// The subscription.
        id: SubscriptionId,
        /// The SSRC the subscriber receives.
        out_ssrc: u32,
        /// The worker it named.
        owner: usize,
        /// How many workers there are.
        workers: usize,
    },
    /// `AddStream` with a clock rate outside `1..=MAX_CLOCK_RATE_HZ`.
    #[error("clock_rate_hz = {clock_rate_hz} of {id} is not in 1..={max}", max = MAX_CLOCK_RATE_HZ)]
    ClockRateOutOfRange {
        /// The stream.
        id: StreamId,
        /// The refused clock rate.
        clock_rate_hz: u32,
    },
    /// The rewrite's payload-type map sends `from` to `to`, which is not a 7-bit payload type, or is one that reads
    /// as RTCP with the marker set (64..=95, RFC 5761).
    #[error("payload_type_map[{from}] = {to} is not a payload type ringfwd sends (0..=127, not 64..=95)")]
    PayloadTypeOutOfRange {
        /// Incoming payload type.
        from: u8,
        /// The invalid outgoing value.
        to: u8,
    },
    /// RTX with a payload type that is not 7-bit or reads as RTCP with the marker set (64..=95, RFC 5761).
    #[error("RTX payload type {payload_type} is not a payload type ringfwd sends (0..=127, not 64..=95)")]
    RtxPayloadType {
        /// The refused payload type.
        payload_type: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_key_and_value() {
        assert_eq!(CommandError::StreamExists { id: StreamId(7) }.to_string(), "stream#7 already exists");
        assert_eq!(
            CommandError::SubscriptionNotFound { id: SubscriptionId(3) }.to_string(),
            "subscription#3 not found"
        );
        assert_eq!(
            CommandError::LimitReached { limit: "max_streams", value: 4 }.to_string(),
            "limit max_streams = 4 reached"
        );
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            CommandError::SsrcInUse { ssrc: 0xab, source_addr: Some(addr) }.to_string(),
            "ssrc 0x000000ab already in use (from 127.0.0.1:5000)"
        );
        assert!(CommandError::SsrcInUse { ssrc: 1, source_addr: None }.to_string().contains("waiting to latch"));
        assert_eq!(
            CommandError::MisplacedAlias { ssrc: 3, worker: 0, owner: 1 }.to_string(),
            "ssrc 0x00000003 cannot be aliased on worker 0 to worker 1: an alias lives on the worker that owns its \
             ssrc (ssrc % workers) and names another worker"
        );
        assert_eq!(
            CommandError::MisplacedRoute { id: SubscriptionId(4), out_ssrc: 9, owner: 0, workers: 2 }.to_string(),
            "feedback route of subscription#4 for ssrc 0x00000009 names worker 0, not another of the 2 workers"
        );
        assert!(CommandError::PayloadTypeOutOfRange { from: 96, to: 200 }.to_string().contains("[96] = 200"));
        assert_eq!(
            CommandError::ClockRateOutOfRange { id: StreamId(2), clock_rate_hz: 0 }.to_string(),
            "clock_rate_hz = 0 of stream#2 is not in 1..=1000000"
        );
    }
}
