//! The benchmark topologies, the forwarder config they run under, and the session that routes them.
//!
//! Owns the three scenarios — `flat` (64 streams 1:1, 200-byte packets), `conference` (11
//! participants each publishing audio at 50 pps of 160-byte payloads and 30 fps video in
//! bursts of 1200-byte packets, every other participant subscribing: fanout 10) and `broadcast`
//! (one video stream to 200 subscribers) — as generator streams plus subscriptions. It turns them
//! into a [`Config`] without routes ([`Scenario::config`]: placement, media and control API) and
//! into the [`SessionSpec`] that routes them ([`Scenario::session`]): ringfwd gets that session
//! through its control API ([`crate::control`]), the baselines as static `[[sessions]]` in their
//! config file ([`crate::launch`]). Subscriber `k` is `127.0.0.(2+k):PORT`, all received by one
//! sink socket on that port; every subscription has its own outgoing SSRC, every other one a
//! payload-type rewrite, and the static routes also planned sequence and timestamp offsets, so the
//! sink can check each copy. Load is scaled by multiplying every stream's packet or frame rate;
//! sizes and burst shapes stay.
//!
//! Must never produce an address outside 127.0.0.0/8.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use ringfwd_tuning::{
    Config, EndpointSpec, IdleStrategy, MediaKind, SessionSpec, StreamSpec, SubscriptionSpec, WorkerCores,
};

use crate::account::FlowSpec;
use crate::gen::StreamConfig;
use crate::pace::Shape;

/// Payload bytes of one video packet.
pub const VIDEO_PACKET_PAYLOAD_BYTES: usize = 1200;
/// Payload bytes of one video frame at scale 1 (five full packets).
pub const VIDEO_FRAME_BYTES: usize = 6000;
/// Most subscribers a scenario may have (addresses 127.0.0.2 ..= 127.0.0.254).
pub const MAX_SUBSCRIBERS: usize = 253;

/// Which topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// 64 streams 1:1, 200-byte packets.
    Flat,
    /// 11 participants, audio + video, fanout 10.
    Conference,
    /// One video stream to 200 subscribers.
    Broadcast,
}

impl ScenarioKind {
    /// Every scenario, in report order.
    pub const ALL: [ScenarioKind; 3] = [ScenarioKind::Flat, ScenarioKind::Conference, ScenarioKind::Broadcast];
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScenarioKind::Flat => "flat",
            ScenarioKind::Conference => "conference",
            ScenarioKind::Broadcast => "broadcast",
        })
    }
}

impl FromStr for ScenarioKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| format!("unknown scenario {s:?}: expected flat, conference or broadcast"))
    }
}

/// One subscription: which subscriber receives it, and what it looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPlan {
    /// Subscriber index (address `127.0.0.(2+k)`).
    pub subscriber: usize,
    /// The expected rewriting, keyed by outgoing SSRC; its sequence and timestamp offsets are the
    /// ones static routes use (the control API chooses its own).
    pub spec: FlowSpec,
}

/// A topology: publishers with their streams, subscribers with their subscriptions.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Which one.
    pub kind: ScenarioKind,
    /// Publisher count (one socket each).
    pub publishers: usize,
    /// Subscriber count.
    pub subscribers: usize,
    /// Streams at scale 1.
    pub streams: Vec<StreamConfig>,
    /// Subscriptions.
    pub flows: Vec<FlowPlan>,
}

fn video(ssrc: u32, publisher: usize, phase: f64) -> StreamConfig {
    let shape = Shape::Frames {
        frames_per_s: 30.0,
        frame_bytes: VIDEO_FRAME_BYTES,
        max_payload_bytes: VIDEO_PACKET_PAYLOAD_BYTES,
    };
    StreamConfig { ssrc, payload_type: 96, clock_rate_hz: 90_000, shape, publisher, phase }
}

fn audio(ssrc: u32, publisher: usize, phase: f64) -> StreamConfig {
    let shape = Shape::Constant { packets_per_s: 50.0, packet_bytes: 12 + 160 };
    StreamConfig { ssrc, payload_type: 111, clock_rate_hz: 48_000, shape, publisher, phase }
}

impl Scenario {
    /// The scenario `kind`.
    pub fn new(kind: ScenarioKind) -> Scenario {
        let mut streams = Vec::new();
        let mut pairs = Vec::new(); // (stream, subscriber)
        let (publishers, subscribers) = match kind {
            ScenarioKind::Flat => {
                for i in 0..64 {
                    let shape = Shape::Constant { packets_per_s: 100.0, packet_bytes: 200 };
                    let phase = i as f64 / 64.0;
                    let ssrc = 0x1000_0000 + i as u32;
                    streams.push(StreamConfig {
                        ssrc,
                        payload_type: 96,
                        clock_rate_hz: 90_000,
                        shape,
                        publisher: i,
                        phase,
                    });
                    pairs.push((i, i));
                }
                (64, 64)
            }
            ScenarioKind::Conference => {
                for p in 0..11 {
                    let phase = p as f64 / 11.0;
                    streams.push(audio(0x2000_0000 + 2 * p as u32, p, phase));
                    streams.push(video(0x2000_0001 + 2 * p as u32, p, phase));
                    for q in (0..11).filter(|&q| q != p) {
                        pairs.push((2 * p, q));
                        pairs.push((2 * p + 1, q));
                    }
                }
                (11, 11)
            }
            ScenarioKind::Broadcast => {
                streams.push(video(0x3000_0000, 0, 0.0));
                pairs.extend((0..200).map(|k| (0, k)));
                (1, 200)
            }
        };
        let flows = pairs
            .into_iter()
            .enumerate()
            .map(|(f, (stream, subscriber))| {
                let pt = streams[stream].payload_type;
                let spec = FlowSpec {
                    out_ssrc: 0x5000_0000 + f as u32,
                    stream,
                    seq_offset: (f as u32).wrapping_mul(7919) as u16,
                    ts_offset: (f as u32).wrapping_mul(104_729),
                    payload_type_map: if f % 2 == 1 { vec![[pt, pt + 1]] } else { Vec::new() },
                };
                FlowPlan { subscriber, spec }
            })
            .collect();
        Scenario { kind, publishers, subscribers, streams, flows }
    }

    /// One line saying what it is.
    pub fn describe(&self) -> String {
        match self.kind {
            ScenarioKind::Flat => "64 streams 1:1, 200-byte packets".into(),
            ScenarioKind::Conference => {
                "11 participants, audio 50 pps x 160 B + video 30 fps x 5 x 1200 B, fanout 10".into()
            }
            ScenarioKind::Broadcast => "1 video stream (30 fps x 5 x 1200 B) to 200 subscribers".into(),
        }
    }

    /// Packets per second the publishers send at scale 1.
    pub fn base_in_pps(&self) -> f64 {
        self.streams.iter().map(|s| s.shape.packets_per_s()).sum()
    }

    /// Packets per second the subscribers receive at scale 1.
    pub fn base_out_pps(&self) -> f64 {
        self.flows.iter().map(|f| self.streams[f.spec.stream].shape.packets_per_s()).sum()
    }

    /// The address of subscriber `k` on the sink's `port`.
    pub fn subscriber_addr(k: usize, port: u16) -> SocketAddr {
        let host = u8::try_from(2 + k.min(MAX_SUBSCRIBERS - 1)).unwrap_or(254);
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), port))
    }

    /// The sink's expectations, in flow order.
    pub fn flow_specs(&self) -> Vec<FlowSpec> {
        self.flows.iter().map(|f| f.spec.clone()).collect()
    }

    /// The id of the scenario's session.
    pub fn session_id(&self) -> String {
        format!("bench-{}", self.kind)
    }

    /// The id of subscription `flow` (an index into [`Scenario::flows`]) in the control API.
    pub fn subscription_id(flow: usize) -> String {
        format!("f-{flow}")
    }

    /// The session that routes this scenario: publishers at `publisher_addrs`, subscribers on
    /// `sink_port`; its subscriptions are in flow order.
    pub fn session(&self, publisher_addrs: &[SocketAddr], sink_port: u16) -> SessionSpec {
        let mut endpoints: Vec<EndpointSpec> = publisher_addrs
            .iter()
            .enumerate()
            .map(|(p, &address)| EndpointSpec { id: format!("pub-{p}"), address: Some(address), latching: false })
            .collect();
        endpoints.extend((0..self.subscribers).map(|k| EndpointSpec {
            id: format!("sub-{k}"),
            address: Some(Scenario::subscriber_addr(k, sink_port)),
            latching: false,
        }));
        let streams = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamSpec {
                id: format!("s-{i}"),
                endpoint: format!("pub-{}", s.publisher),
                ssrc: s.ssrc,
                kind: match s.shape {
                    Shape::Constant { .. } => MediaKind::Audio,
                    Shape::Frames { .. } => MediaKind::Video,
                },
                clock_rate_hz: Some(s.clock_rate_hz),
            })
            .collect();
        let subscriptions = self
            .flows
            .iter()
            .map(|f| SubscriptionSpec {
                stream: format!("s-{}", f.spec.stream),
                endpoint: format!("sub-{}", f.subscriber),
                out_ssrc: Some(f.spec.out_ssrc),
                seq_offset: f.spec.seq_offset,
                ts_offset: f.spec.ts_offset,
                payload_type_map: f.spec.payload_type_map.clone(),
            })
            .collect();
        SessionSpec { id: self.session_id(), endpoints, streams, subscriptions }
    }

    /// The forwarder config of this scenario, without routes: media on `media`, one worker on
    /// `worker_core`, the control plane on `control_cores`, the control API on a free loopback
    /// port and its development token written to `dev_token_file`.
    pub fn config(
        &self,
        media: SocketAddr,
        worker_core: usize,
        control_cores: Vec<usize>,
        idle: IdleStrategy,
        dev_token_file: &Path,
    ) -> Config {
        let mut config = Config::default();
        config.media.addresses = vec![media];
        config.placement.worker_cores = WorkerCores::List(vec![worker_core]);
        config.placement.control_cores = control_cores;
        config.idle.strategy = idle;
        // A free loopback port and a token beside the other bench files: a bench run never collides with a
        // ringfwd the operator runs.
        config.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.auth.dev_token_file = dev_token_file.to_path_buf();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_brief() {
        let flat = Scenario::new(ScenarioKind::Flat);
        assert_eq!((flat.streams.len(), flat.flows.len()), (64, 64));
        assert_eq!(flat.streams[0].shape.burst().payload_bytes + 12, 200);
        let conf = Scenario::new(ScenarioKind::Conference);
        assert_eq!((conf.streams.len(), conf.flows.len()), (22, 220));
        for (i, s) in conf.streams.iter().enumerate() {
            let fanout = conf.flows.iter().filter(|f| f.spec.stream == i).count();
            assert_eq!(fanout, 10, "stream {i}");
            // Nobody receives their own streams.
            assert!(conf.flows.iter().filter(|f| f.spec.stream == i).all(|f| f.subscriber != s.publisher));
        }
        let bc = Scenario::new(ScenarioKind::Broadcast);
        assert_eq!((bc.streams.len(), bc.flows.len(), bc.subscribers), (1, 200, 200));
        assert_eq!(bc.base_in_pps(), 150.0);
        assert_eq!(bc.base_out_pps(), 30_000.0);
        assert_eq!(conf.base_out_pps(), 22_000.0);
    }

    #[test]
    fn every_subscription_is_distinguishable() {
        for kind in ScenarioKind::ALL {
            let s = Scenario::new(kind);
            let mut ssrcs: Vec<u32> = s.flows.iter().map(|f| f.spec.out_ssrc).collect();
            ssrcs.sort_unstable();
            ssrcs.dedup();
            assert_eq!(ssrcs.len(), s.flows.len(), "{kind}");
            assert!(s.flows.iter().any(|f| !f.spec.payload_type_map.is_empty()));
        }
    }

    #[test]
    fn subscriber_addresses_stay_on_loopback() {
        assert_eq!(Scenario::subscriber_addr(0, 7000), "127.0.0.2:7000".parse().unwrap());
        assert_eq!(Scenario::subscriber_addr(199, 7000), "127.0.0.201:7000".parse().unwrap());
        assert!(Scenario::subscriber_addr(10_000, 1).ip().is_loopback());
    }

    #[test]
    fn generated_configs_validate_and_round_trip() {
        let token = Path::new("/tmp/ringfwd-bench-test-token");
        for kind in ScenarioKind::ALL {
            let s = Scenario::new(kind);
            let publishers: Vec<SocketAddr> =
                (0..s.publishers).map(|p| SocketAddr::from(([127, 0, 0, 1], 20_000 + p as u16))).collect();
            let media = "127.0.0.1:0".parse().unwrap();
            // Without routes (ringfwd), and with the scenario as static routes (the baselines).
            let mut config = s.config(media, 1, vec![0], IdleStrategy::Sleep, token);
            assert!(config.sessions.is_empty());
            assert!(config.api.listen.ip().is_loopback() && config.api.listen.port() == 0);
            assert_eq!(config.auth.dev_token_file, token);
            config.sessions = vec![s.session(&publishers, 30_000)];
            let text = config.to_toml_string().unwrap();
            let back = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(back, config);
            assert_eq!(back.sessions[0].id, s.session_id());
            assert_eq!(back.sessions[0].subscriptions.len(), s.flows.len());
            assert_eq!(back.sessions[0].streams.len(), s.streams.len());
            assert_eq!(back.sessions[0].endpoints.len(), s.publishers + s.subscribers);
        }
    }

    #[test]
    fn sessions_follow_the_flows_in_order() {
        let s = Scenario::new(ScenarioKind::Conference);
        let session = s.session(&[SocketAddr::from(([127, 0, 0, 1], 9)); 11], 7000);
        for (f, sub) in s.flows.iter().zip(&session.subscriptions) {
            assert_eq!(sub.stream, format!("s-{}", f.spec.stream));
            assert_eq!(sub.endpoint, format!("sub-{}", f.subscriber));
            assert_eq!(sub.out_ssrc, Some(f.spec.out_ssrc));
            assert_eq!(sub.payload_type_map, f.spec.payload_type_map);
        }
        // Audio streams are audio at 48 kHz, video streams video at 90 kHz.
        assert_eq!((session.streams[0].kind, session.streams[0].clock_rate_hz), (MediaKind::Audio, Some(48_000)));
        assert_eq!((session.streams[1].kind, session.streams[1].clock_rate_hz), (MediaKind::Video, Some(90_000)));
        assert_eq!(Scenario::subscription_id(12), "f-12");
    }

    #[test]
    fn names_parse() {
        for kind in ScenarioKind::ALL {
            assert_eq!(kind.to_string().parse::<ScenarioKind>(), Ok(kind));
        }
        assert!("mesh".parse::<ScenarioKind>().is_err());
    }
}
