//! A scenario expanded from its file: generator streams, subscriptions, the forwarder config they
//! run under, and the session that routes them.
//!
//! Owns turning a [`ScenarioFile`] (see [`crate::scenario_file`]: `flat`, `conference`,
//! `broadcast`, `audio-calls`, `loss-repair`, `churn`, `screen-share`, ... in `bench/scenarios/`)
//! into publishers, streams (one per track per publisher, with their traffic model, seed and
//! impairment) and flows (subscriptions), into a [`Config`] without routes ([`Scenario::config`]:
//! placement, media and control API) and into the [`SessionSpec`] that routes them
//! ([`Scenario::session`]): ringfwd gets that session through its control API
//! ([`crate::control`]), the baselines as static `[[sessions]]` in their config file
//! ([`crate::launch`]). Subscriber `k` is `127.0.(k / 253).(2 + k % 253):PORT`, all received by one
//! sink socket on that port; every subscription has its own outgoing SSRC, every other one a
//! payload-type rewrite, and the static routes also planned sequence and timestamp offsets, so the
//! sink can check each copy. Load is scaled by multiplying every stream's packet or frame rate;
//! sizes and burst shapes stay.
//!
//! Must never produce an address outside 127.0.0.0/8.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use ringfwd_tuning::{
    Config, EndpointSpec, IdleStrategy, MediaKind, SessionSpec, StreamSpec, SubscriptionSpec, WorkerCores,
};

use crate::account::FlowSpec;
use crate::gen::StreamConfig;
use crate::pace::Shape;
use crate::scenario_file::{Nack, ScenarioFile, ScenarioFileError, Topology, Track};
use crate::traffic::FrameSizes;

/// Subscriber addresses per `127.0.X.0/24` block (`.2` to `.254`).
const HOSTS_PER_BLOCK: usize = 253;
/// Most subscribers a scenario may have (64 blocks of 253 addresses).
pub const MAX_SUBSCRIBERS: usize = 64 * HOSTS_PER_BLOCK;

/// One subscription: which subscriber receives it, and what it looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPlan {
    /// Subscriber index (address [`Scenario::subscriber_addr`]).
    pub subscriber: usize,
    /// The expected rewriting, keyed by outgoing SSRC; its sequence and timestamp offsets are the
    /// ones static routes use (the control API chooses its own).
    pub spec: FlowSpec,
}

/// A topology: publishers with their streams, subscribers with their subscriptions.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (the file's).
    pub name: String,
    /// The file it was expanded from.
    pub file: ScenarioFile,
    /// Publisher count (one socket each).
    pub publishers: usize,
    /// Subscriber count.
    pub subscribers: usize,
    /// Streams at scale 1.
    pub streams: Vec<StreamConfig>,
    /// Subscriptions.
    pub flows: Vec<FlowPlan>,
}

/// The generator stream of `track` for `publisher`.
fn stream_of(track: &Track, ssrc: u32, publisher: usize, phase: f64, file: &ScenarioFile) -> StreamConfig {
    let (shape, payload_type, clock_rate_hz) = match *track {
        Track::Audio { ptime_ms, payload_bytes } => {
            (Shape::Constant { packets_per_s: 1000.0 / ptime_ms, packet_bytes: 12 + payload_bytes }, 111, 48_000)
        }
        Track::Video {
            frames_per_s,
            frame_bytes,
            keyframe_bytes,
            keyframe_interval_frames,
            size_jitter,
            max_payload_bytes,
        } => {
            let sizes = if keyframe_bytes == frame_bytes && size_jitter == 0.0 {
                FrameSizes::Fixed { bytes: frame_bytes }
            } else {
                FrameSizes::Video {
                    delta_bytes: frame_bytes,
                    keyframe_bytes,
                    keyframe_interval: keyframe_interval_frames,
                    jitter: size_jitter,
                }
            };
            (Shape::Frames { frames_per_s, sizes, max_payload_bytes }, 96, 90_000)
        }
        Track::Screen { frames_per_s, idle_frame_bytes, burst_bytes, burst_probability, max_payload_bytes } => {
            let sizes = FrameSizes::Screen { idle_bytes: idle_frame_bytes, burst_bytes, burst_probability };
            (Shape::Frames { frames_per_s, sizes, max_payload_bytes }, 98, 90_000)
        }
    };
    StreamConfig {
        ssrc,
        payload_type,
        clock_rate_hz,
        shape,
        publisher,
        phase,
        seed: file.seed ^ u64::from(ssrc).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        impairment: file.impairment,
    }
}

/// Publisher count, subscriber count, and the subscribers of each publisher.
fn expand(topology: Topology) -> (usize, usize, Vec<Vec<usize>>) {
    match topology {
        Topology::Pairs { pairs, fanout } => {
            (pairs, pairs * fanout, (0..pairs).map(|p| (p * fanout..(p + 1) * fanout).collect()).collect())
        }
        Topology::Conference { participants: n } => {
            (n, n, (0..n).map(|p| (0..n).filter(|&q| q != p).collect()).collect())
        }
        Topology::Broadcast { subscribers } => (1, subscribers, vec![(0..subscribers).collect()]),
        Topology::Calls { calls, parties } => {
            let n = calls * parties;
            let room = |p: usize| (p / parties) * parties..(p / parties + 1) * parties;
            (n, n, (0..n).map(|p| room(p).filter(|&q| q != p).collect()).collect())
        }
    }
}

impl Scenario {
    /// Expands `file`; fails when it has more subscribers than loopback addresses.
    pub fn from_file(file: ScenarioFile) -> Result<Scenario, ScenarioFileError> {
        let (publishers, subscribers, subscribers_of) = expand(file.topology);
        if subscribers > MAX_SUBSCRIBERS || publishers * file.tracks.len() > 0x00FF_FFFF {
            return Err(ScenarioFileError::Invalid {
                file: file.name.clone(),
                key: file.topology.size_key().into(),
                value: file.topology.size().to_string(),
                reason: format!("expands to {subscribers} subscribers; at most {MAX_SUBSCRIBERS}"),
            });
        }
        let mut streams = Vec::new();
        let mut pairs = Vec::new(); // (stream, subscriber)
        for (p, subs) in subscribers_of.iter().enumerate() {
            let phase = p as f64 / publishers as f64;
            for (t, track) in file.tracks.iter().enumerate() {
                let ssrc = 0x1000_0000 + (p * 4 + t) as u32;
                pairs.extend(subs.iter().map(|&q| (streams.len(), q)));
                streams.push(stream_of(track, ssrc, p, phase, &file));
            }
        }
        let flows = pairs
            .into_iter()
            .enumerate()
            .map(|(f, (stream, subscriber))| {
                let pt: u8 = streams[stream].payload_type;
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
        Ok(Scenario { name: file.name.clone(), file, publishers, subscribers, streams, flows })
    }

    /// The built-in scenario `name` (a file of `bench/scenarios/`).
    pub fn builtin(name: &str) -> Result<Scenario, ScenarioFileError> {
        Scenario::from_file(ScenarioFile::builtin(name)?)
    }

    /// A built-in scenario by name, or the file at a path (when `name_or_path` ends in `.toml`).
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioFileError> {
        if name_or_path.ends_with(".toml") {
            Scenario::from_file(ScenarioFile::load(Path::new(name_or_path))?)
        } else {
            Scenario::builtin(name_or_path)
        }
    }

    /// The same scenario with its topology's size (pairs, participants, subscribers or calls) set
    /// to `size`.
    pub fn with_size(&self, size: usize) -> Result<Scenario, ScenarioFileError> {
        let mut file = self.file.clone();
        file.topology = file.topology.with_size(size);
        file.validate(&format!("{} (size {size})", self.name))?;
        Scenario::from_file(file)
    }

    /// How the sink asks for lost packets, if it does.
    pub fn nack(&self) -> Option<Nack> {
        self.file.nack
    }

    /// One line saying what it is.
    pub fn describe(&self) -> String {
        self.file.description.clone()
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
        let k = k.min(MAX_SUBSCRIBERS - 1);
        let block = u8::try_from(k / HOSTS_PER_BLOCK).unwrap_or(63);
        let host = u8::try_from(2 + k % HOSTS_PER_BLOCK).unwrap_or(254);
        SocketAddr::from((Ipv4Addr::new(127, 0, block, host), port))
    }

    /// The sink's expectations, in flow order.
    pub fn flow_specs(&self) -> Vec<FlowSpec> {
        self.flows.iter().map(|f| f.spec.clone()).collect()
    }

    /// The id of the scenario's session.
    pub fn session_id(&self) -> String {
        format!("bench-{}", self.name)
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
    /// `worker_core`, the control plane on `control_cores`, the control API and the metrics endpoint on
    /// free loopback ports and its development token written to `dev_token_file`.
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
        // Free loopback ports and a token beside the other bench files: a bench run (and the bench's tests)
        // never collides with a ringfwd the operator runs on the default ports.
        config.api.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.metrics.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.auth.dev_token_file = Some(dev_token_file.to_path_buf());
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario_file::BUILTIN;

    fn builtin(name: &str) -> Scenario {
        Scenario::builtin(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_compare_scenarios_keep_their_shapes() {
        let flat = builtin("flat");
        assert_eq!((flat.streams.len(), flat.flows.len()), (64, 64));
        let fan = builtin("flat-fanout4");
        assert_eq!((fan.streams.len(), fan.flows.len(), fan.subscribers), (64, 256, 256));
        assert_eq!(fan.base_out_pps(), 4.0 * fan.base_in_pps());
        assert!(fan.flows.iter().all(|f| f.subscriber / 4 == f.spec.stream), "each stream to its own 4");
        assert_eq!(flat.streams[0].shape.burst().payload_bytes + 12, 200);
        assert_eq!(flat.base_out_pps(), 6400.0);
        let conf = builtin("conference");
        assert_eq!((conf.streams.len(), conf.flows.len()), (22, 220));
        for (i, s) in conf.streams.iter().enumerate() {
            let fanout = conf.flows.iter().filter(|f| f.spec.stream == i).count();
            assert_eq!(fanout, 10, "stream {i}");
            // Nobody receives their own streams.
            assert!(conf.flows.iter().filter(|f| f.spec.stream == i).all(|f| f.subscriber != s.publisher));
        }
        let bc = builtin("broadcast");
        assert_eq!((bc.streams.len(), bc.flows.len(), bc.subscribers), (1, 200, 200));
        assert_eq!(bc.base_in_pps(), 150.0);
        assert_eq!(bc.base_out_pps(), 30_000.0);
        assert_eq!(conf.base_out_pps(), 22_000.0);
        // Audio: one 160-byte payload every 20 ms.
        let audio = &conf.streams[0].shape;
        assert_eq!((audio.packets_per_s(), audio.burst().payload_bytes, audio.burst().packets), (50.0, 160, 1));
        // Video at 30 fps in bursts of five 1200-byte packets.
        let video = &conf.streams[1].shape;
        assert_eq!((video.events_per_s(), video.burst().packets, video.burst().payload_bytes), (30.0, 5, 1200));
    }

    #[test]
    fn calls_stay_within_their_rooms() {
        let calls = builtin("audio-calls");
        assert_eq!((calls.publishers, calls.subscribers, calls.flows.len()), (120, 120, 240));
        for f in &calls.flows {
            let publisher = calls.streams[f.spec.stream].publisher;
            assert_eq!(publisher / 3, f.subscriber / 3, "{f:?}");
            assert_ne!(publisher, f.subscriber);
        }
        let bigger = calls.with_size(50).unwrap();
        assert_eq!(bigger.flows.len(), 300);
        let err = calls.with_size(0).unwrap_err().to_string();
        assert!(err.contains("topology.calls = 0"), "{err}");
    }

    #[test]
    fn every_subscription_is_distinguishable() {
        for (name, _) in BUILTIN {
            let s = builtin(name);
            let mut ssrcs: Vec<u32> = s.flows.iter().map(|f| f.spec.out_ssrc).collect();
            ssrcs.sort_unstable();
            ssrcs.dedup();
            assert_eq!(ssrcs.len(), s.flows.len(), "{name}");
            let mut in_ssrcs: Vec<u32> = s.streams.iter().map(|st| st.ssrc).collect();
            in_ssrcs.sort_unstable();
            in_ssrcs.dedup();
            assert_eq!(in_ssrcs.len(), s.streams.len(), "{name}");
            assert!(s.flows.iter().any(|f| !f.spec.payload_type_map.is_empty()) || s.flows.len() < 2);
        }
    }

    #[test]
    fn subscriber_addresses_stay_on_loopback() {
        assert_eq!(Scenario::subscriber_addr(0, 7000), "127.0.0.2:7000".parse().unwrap());
        assert_eq!(Scenario::subscriber_addr(199, 7000), "127.0.0.201:7000".parse().unwrap());
        assert_eq!(Scenario::subscriber_addr(253, 7000), "127.0.1.2:7000".parse().unwrap());
        assert!(Scenario::subscriber_addr(10_000, 1).ip().is_loopback());
        let mut all: Vec<SocketAddr> = (0..MAX_SUBSCRIBERS).map(|k| Scenario::subscriber_addr(k, 1)).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), MAX_SUBSCRIBERS);
    }

    #[test]
    fn generated_configs_validate_and_round_trip() {
        let token = Path::new("/tmp/ringfwd-bench-test-token");
        for (name, _) in BUILTIN {
            let s = builtin(name);
            let publishers: Vec<SocketAddr> =
                (0..s.publishers).map(|p| SocketAddr::from(([127, 0, 0, 1], 20_000 + p as u16))).collect();
            let media = "127.0.0.1:0".parse().unwrap();
            // Without routes (ringfwd), and with the scenario as static routes (the baselines).
            let mut config = s.config(media, 1, vec![0], IdleStrategy::Sleep, token);
            assert!(config.sessions.is_empty());
            assert!(config.api.listen.ip().is_loopback() && config.api.listen.port() == 0);
            assert!(config.metrics.listen.ip().is_loopback() && config.metrics.listen.port() == 0);
            assert_eq!(config.auth.dev_token_file.as_deref(), Some(token));
            config.sessions = vec![s.session(&publishers, 30_000)];
            let text = config.to_toml_string().unwrap();
            let back = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, config);
            assert_eq!(back.sessions[0].id, s.session_id());
            assert_eq!(back.sessions[0].subscriptions.len(), s.flows.len());
            assert_eq!(back.sessions[0].streams.len(), s.streams.len());
            assert_eq!(back.sessions[0].endpoints.len(), s.publishers + s.subscribers);
        }
    }

    #[test]
    fn sessions_follow_the_flows_in_order() {
        let s = builtin("conference");
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
    fn names_or_paths_load() {
        assert_eq!(Scenario::load("broadcast").unwrap().name, "broadcast");
        let err = Scenario::load("/nonexistent/x.toml").unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/x.toml: "), "{err}");
        assert!(Scenario::load("mesh").is_err());
    }
}
