//! The scenario file format (TOML, `bench/scenarios/*.toml`): schema, defaults, validation and the
//! built-in files.
//!
//! Owns [`ScenarioFile`] (what a file says: a topology, the tracks every publisher sends, optional
//! impairment on the way in, optional NACKs from the sink, optional churn), its parsing with serde
//! (unknown keys are errors) and its validation, whose errors name the file, the key and the value
//! ([`ScenarioFileError`]). The files in `bench/scenarios/` are compiled into the binary
//! ([`BUILTIN`]), so it runs from any directory; `--scenario-file PATH` loads others.
//!
//! Must never touch a socket or expand the topology (that is [`crate::scenario`]).

use std::path::Path;

use serde::Deserialize;

/// The scenario files shipped in `bench/scenarios/`, by name.
pub const BUILTIN: [(&str, &str); 11] = [
    ("flat", include_str!("../scenarios/flat.toml")),
    ("flat-fanout4", include_str!("../scenarios/flat-fanout4.toml")),
    ("conference", include_str!("../scenarios/conference.toml")),
    ("broadcast", include_str!("../scenarios/broadcast.toml")),
    ("audio-calls", include_str!("../scenarios/audio-calls.toml")),
    ("loss-repair", include_str!("../scenarios/loss-repair.toml")),
    ("churn", include_str!("../scenarios/churn.toml")),
    ("screen-share", include_str!("../scenarios/screen-share.toml")),
    ("impaired", include_str!("../scenarios/impaired.toml")),
    ("capacity-audio", include_str!("../scenarios/capacity-audio.toml")),
    ("capacity-video", include_str!("../scenarios/capacity-video.toml")),
];

/// Largest RTP payload of one packet a file may ask for (video is split into at most this).
pub const MAX_PAYLOAD_BYTES: usize = 1200;
/// Largest frame or burst a track may send (64 packets of [`MAX_PAYLOAD_BYTES`]).
pub const MAX_FRAME_BYTES: usize = 64 * MAX_PAYLOAD_BYTES;
/// Most impairment, in percent, of each kind.
pub const MAX_IMPAIRMENT_PERCENT: f64 = 50.0;

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name (letters, digits, `-`): used in ids, file names and reports.
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// Seed of the traffic models and the impairment (same seed, same packets).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Who publishes to whom.
    pub topology: Topology,
    /// What every publisher sends (one stream per track).
    pub tracks: Vec<Track>,
    /// Loss, reordering and duplication on the way in (publisher → forwarder).
    #[serde(default)]
    pub impairment: Impairment,
    /// The sink asks for lost packets with generic NACKs.
    #[serde(default)]
    pub nack: Option<Nack>,
    /// Subscriptions added and removed through the API during load (`ringfwd-bench churn`).
    #[serde(default)]
    pub churn: Option<Churn>,
}

fn one() -> usize {
    1
}

fn default_seed() -> u64 {
    1
}

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Topology {
    /// `pairs` publishers, each received by `fanout` subscribers of its own (1:1 when 1).
    Pairs {
        /// Publishers (each with its own subscribers).
        pairs: usize,
        /// Subscribers of each publisher (default 1).
        #[serde(default = "one")]
        fanout: usize,
    },
    /// One room: every participant publishes and receives every other participant (N to N−1).
    Conference {
        /// Participants.
        participants: usize,
    },
    /// One publisher received by `subscribers` subscribers (1 → N).
    Broadcast {
        /// Subscribers.
        subscribers: usize,
    },
    /// `calls` independent rooms of `parties` participants each (1:1 calls when 2).
    Calls {
        /// Rooms.
        calls: usize,
        /// Participants per room.
        parties: usize,
    },
}

impl Topology {
    /// The size the capacity search varies: pairs, participants, subscribers or calls.
    pub fn size(&self) -> usize {
        match *self {
            Topology::Pairs { pairs, .. } => pairs,
            Topology::Conference { participants } => participants,
            Topology::Broadcast { subscribers } => subscribers,
            Topology::Calls { calls, .. } => calls,
        }
    }

    /// The same topology with its size set to `size`.
    pub fn with_size(self, size: usize) -> Topology {
        match self {
            Topology::Pairs { fanout, .. } => Topology::Pairs { pairs: size, fanout },
            Topology::Conference { .. } => Topology::Conference { participants: size },
            Topology::Broadcast { .. } => Topology::Broadcast { subscribers: size },
            Topology::Calls { parties, .. } => Topology::Calls { calls: size, parties },
        }
    }

    /// The key naming the size in a file.
    pub fn size_key(&self) -> &'static str {
        match self {
            Topology::Pairs { .. } => "topology.pairs",
            Topology::Conference { .. } => "topology.participants",
            Topology::Broadcast { .. } => "topology.subscribers",
            Topology::Calls { .. } => "topology.calls",
        }
    }
}

/// One track every publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Track {
    /// Constant bit rate audio: one packet every `ptime_ms`.
    Audio {
        /// Packet interval, ms (20 for most codecs).
        ptime_ms: f64,
        /// RTP payload bytes of every packet.
        payload_bytes: usize,
    },
    /// Video: frames at a frame rate, sizes drawn around a mean, a keyframe every
    /// `keyframe_interval_frames`, each frame split into packets of at most `max_payload_bytes`
    /// sent back to back.
    Video {
        /// Frames per second.
        frames_per_s: f64,
        /// Mean payload bytes of a delta frame.
        frame_bytes: usize,
        /// Payload bytes of a keyframe (mean).
        keyframe_bytes: usize,
        /// Frames from one keyframe to the next (1: every frame is one).
        keyframe_interval_frames: u32,
        /// Sizes are drawn uniformly within ± this share of their mean (0 ..< 1).
        #[serde(default)]
        size_jitter: f64,
        /// Most RTP payload bytes per packet.
        #[serde(default = "default_max_payload")]
        max_payload_bytes: usize,
    },
    /// Screen share: small frames at a low rate, and with probability `burst_probability` per
    /// frame a large one (a slide change) sent as one burst.
    Screen {
        /// Frames per second.
        frames_per_s: f64,
        /// Payload bytes of an idle frame.
        idle_frame_bytes: usize,
        /// Payload bytes of a burst frame.
        burst_bytes: usize,
        /// Probability that a frame is a burst (0..=1); the first frame always is.
        burst_probability: f64,
        /// Most RTP payload bytes per packet.
        #[serde(default = "default_max_payload")]
        max_payload_bytes: usize,
    },
}

fn default_max_payload() -> usize {
    MAX_PAYLOAD_BYTES
}

/// Loss, reordering and duplication applied by the generator before packets reach the forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// Packets not sent, percent.
    #[serde(default)]
    pub loss_percent: f64,
    /// Packets held back and sent after later ones, percent.
    #[serde(default)]
    pub reorder_percent: f64,
    /// A held packet goes out after this many later packets of its stream (at least 1)...
    #[serde(default = "default_reorder_distance")]
    pub reorder_distance_packets: u32,
    /// ... or this long after it was due, whichever comes first (the bound on its delay).
    #[serde(default = "default_reorder_delay")]
    pub reorder_max_delay_ms: f64,
    /// Packets sent twice, percent.
    #[serde(default)]
    pub duplicate_percent: f64,
}

fn default_reorder_distance() -> u32 {
    3
}

fn default_reorder_delay() -> f64 {
    50.0
}

impl Default for Impairment {
    fn default() -> Impairment {
        Impairment {
            loss_percent: 0.0,
            reorder_percent: 0.0,
            reorder_distance_packets: default_reorder_distance(),
            reorder_max_delay_ms: default_reorder_delay(),
            duplicate_percent: 0.0,
        }
    }
}

impl Impairment {
    /// Whether any packet is touched.
    pub fn is_active(&self) -> bool {
        self.loss_percent > 0.0 || self.reorder_percent > 0.0 || self.duplicate_percent > 0.0
    }
}

/// How the sink asks for lost packets.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nack {
    /// A gap is NACKed this long after it was seen (room for reordering).
    #[serde(default = "default_nack_delay")]
    pub delay_ms: f64,
    /// A NACK is repeated after this long without the packet.
    #[serde(default = "default_nack_retry")]
    pub retry_interval_ms: f64,
    /// NACKs per missing packet at most.
    #[serde(default = "default_nack_retries")]
    pub max_retries: u32,
    /// Missing packets tracked per subscription at most (older ones are given up).
    #[serde(default = "default_nack_pending")]
    pub max_pending_per_flow: usize,
    /// Loss on the last mile, percent: the sink discards this share of the first copies it receives
    /// (seeded, per subscription), as a lossy link between the forwarder and the subscriber would, so the
    /// forwarder's retransmission cache is what repairs it.
    #[serde(default)]
    pub last_mile_loss_percent: f64,
}

fn default_nack_delay() -> f64 {
    5.0
}
fn default_nack_retry() -> f64 {
    30.0
}
fn default_nack_retries() -> u32 {
    3
}
fn default_nack_pending() -> usize {
    256
}

/// Subscriptions churned through the API during load.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Concurrent API clients (1..=64).
    pub concurrency: usize,
    /// Churn window, s (at most 120).
    pub seconds: f64,
    /// Offered output rate of the scenario meanwhile, copies/s.
    pub out_pps: f64,
}

/// A scenario file that cannot be used: which file, which key, which value, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioFileError {
    /// The file could not be read.
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// Not TOML, or not this schema (unknown or missing key, wrong type).
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The TOML parser's message (it names the key and the line).
        message: String,
    },
    /// A value out of range.
    #[error("{file}: {key} = {value}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// No built-in scenario of that name.
    #[error("no scenario named {name:?}: built-in are {known} (or give --scenario-file PATH)")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The built-in names.
        known: String,
    },
}

impl ScenarioFile {
    /// Parses and validates `text`; errors name `file`.
    pub fn parse(file: &str, text: &str) -> Result<ScenarioFile, ScenarioFileError> {
        let parsed: ScenarioFile =
            toml::from_str(text).map_err(|e| ScenarioFileError::Parse { file: file.into(), message: e.to_string() })?;
        parsed.validate(file)?;
        Ok(parsed)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<ScenarioFile, ScenarioFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioFileError::Read { file: file.clone(), message: e.to_string() })?;
        ScenarioFile::parse(&file, &text)
    }

    /// The built-in scenario `name`.
    pub fn builtin(name: &str) -> Result<ScenarioFile, ScenarioFileError> {
        let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
            let known = BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            return Err(ScenarioFileError::Unknown { name: name.into(), known });
        };
        ScenarioFile::parse(&format!("bench/scenarios/{name}.toml"), text)
    }

    /// Checks every value; the first bad one is the error.
    pub fn validate(&self, file: &str) -> Result<(), ScenarioFileError> {
        let bad = |key: &str, value: &dyn std::fmt::Display, reason: &str| ScenarioFileError::Invalid {
            file: file.into(),
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 40
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !name_ok {
            return Err(bad("name", &format!("{:?}", self.name), "1 to 40 letters, digits or '-'"));
        }
        let size = self.topology.size();
        let size_range = match self.topology {
            Topology::Conference { .. } | Topology::Calls { .. } => 2..=2000,
            _ => 1..=16_000,
        };
        if !size_range.contains(&size) {
            let reason = format!("must be {}..={}", size_range.start(), size_range.end());
            return Err(bad(self.topology.size_key(), &size, &reason));
        }
        if let Topology::Pairs { fanout, .. } = self.topology {
            if !(1..=64).contains(&fanout) {
                return Err(bad("topology.fanout", &fanout, "must be 1..=64"));
            }
        }
        if let Topology::Calls { parties, .. } = self.topology {
            if !(2..=16).contains(&parties) {
                return Err(bad("topology.parties", &parties, "must be 2..=16"));
            }
        }
        if self.tracks.is_empty() || self.tracks.len() > 4 {
            return Err(bad("tracks", &self.tracks.len(), "1 to 4 [[tracks]] per publisher"));
        }
        for (i, track) in self.tracks.iter().enumerate() {
            validate_track(track, &|key, value, reason| bad(&format!("tracks[{i}].{key}"), value, reason))?;
        }
        let i = &self.impairment;
        for (key, value) in [
            ("impairment.loss_percent", i.loss_percent),
            ("impairment.reorder_percent", i.reorder_percent),
            ("impairment.duplicate_percent", i.duplicate_percent),
        ] {
            if !(0.0..=MAX_IMPAIRMENT_PERCENT).contains(&value) {
                return Err(bad(key, &value, &format!("must be 0..={MAX_IMPAIRMENT_PERCENT}")));
            }
        }
        if i.loss_percent + i.reorder_percent + i.duplicate_percent > 100.0 {
            return Err(bad("impairment.loss_percent", &i.loss_percent, "loss + reorder + duplicate must be <= 100"));
        }
        if !(1..=32).contains(&i.reorder_distance_packets) {
            return Err(bad("impairment.reorder_distance_packets", &i.reorder_distance_packets, "must be 1..=32"));
        }
        if !(i.reorder_max_delay_ms > 0.0 && i.reorder_max_delay_ms <= 1000.0) {
            return Err(bad("impairment.reorder_max_delay_ms", &i.reorder_max_delay_ms, "must be > 0 and <= 1000"));
        }
        if let Some(n) = &self.nack {
            for (key, value) in [("nack.delay_ms", n.delay_ms), ("nack.retry_interval_ms", n.retry_interval_ms)] {
                if !(value > 0.0 && value <= 1000.0) {
                    return Err(bad(key, &value, "must be > 0 and <= 1000"));
                }
            }
            if !(1..=10).contains(&n.max_retries) {
                return Err(bad("nack.max_retries", &n.max_retries, "must be 1..=10"));
            }
            if !(1..=4096).contains(&n.max_pending_per_flow) {
                return Err(bad("nack.max_pending_per_flow", &n.max_pending_per_flow, "must be 1..=4096"));
            }
        }
        if let Some(c) = &self.churn {
            if !(1..=64).contains(&c.concurrency) {
                return Err(bad("churn.concurrency", &c.concurrency, "must be 1..=64"));
            }
            if !(c.seconds > 0.0 && c.seconds <= 120.0) {
                return Err(bad("churn.seconds", &c.seconds, "must be > 0 and <= 120"));
            }
            if !(c.out_pps.is_finite() && c.out_pps > 0.0) {
                return Err(bad("churn.out_pps", &c.out_pps, "must be > 0"));
            }
        }
        Ok(())
    }
}

fn validate_track(
    track: &Track,
    bad: &dyn Fn(&str, &dyn std::fmt::Display, &str) -> ScenarioFileError,
) -> Result<(), ScenarioFileError> {
    let rate = |key: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v <= 1000.0 {
            Ok(())
        } else {
            Err(bad(key, &v, "must be > 0 and <= 1000"))
        }
    };
    let bytes = |key: &str, v: usize, max: usize| {
        if (1..=max).contains(&v) {
            Ok(())
        } else {
            Err(bad(key, &v, &format!("must be 1..={max}")))
        }
    };
    match *track {
        Track::Audio { ptime_ms, payload_bytes } => {
            if !(1.0..=1000.0).contains(&ptime_ms) {
                return Err(bad("ptime_ms", &ptime_ms, "must be 1..=1000"));
            }
            bytes("payload_bytes", payload_bytes, MAX_PAYLOAD_BYTES)
        }
        Track::Video {
            frames_per_s,
            frame_bytes,
            keyframe_bytes,
            keyframe_interval_frames,
            size_jitter,
            max_payload_bytes,
        } => {
            rate("frames_per_s", frames_per_s)?;
            bytes("max_payload_bytes", max_payload_bytes, MAX_PAYLOAD_BYTES)?;
            if !(0.0..1.0).contains(&size_jitter) {
                return Err(bad("size_jitter", &size_jitter, "must be 0 ..< 1"));
            }
            let most = (MAX_FRAME_BYTES as f64 / (1.0 + size_jitter)) as usize;
            bytes("frame_bytes", frame_bytes, most)?;
            bytes("keyframe_bytes", keyframe_bytes, most)?;
            if keyframe_interval_frames == 0 {
                return Err(bad("keyframe_interval_frames", &keyframe_interval_frames, "must be >= 1"));
            }
            Ok(())
        }
        Track::Screen { frames_per_s, idle_frame_bytes, burst_bytes, burst_probability, max_payload_bytes } => {
            rate("frames_per_s", frames_per_s)?;
            bytes("max_payload_bytes", max_payload_bytes, MAX_PAYLOAD_BYTES)?;
            bytes("idle_frame_bytes", idle_frame_bytes, MAX_FRAME_BYTES)?;
            bytes("burst_bytes", burst_bytes, MAX_FRAME_BYTES)?;
            if !(0.0..=1.0).contains(&burst_probability) {
                return Err(bad("burst_probability", &burst_probability, "must be 0..=1"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_file_parses_and_is_named_after_itself() {
        for (name, _) in BUILTIN {
            let file = ScenarioFile::builtin(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(file.name, name);
        }
        let err = ScenarioFile::builtin("mesh").unwrap_err().to_string();
        assert!(err.contains("\"mesh\"") && err.contains("conference"), "{err}");
    }

    const GOOD: &str = r#"
name = "t"
description = "test"
topology = { kind = "broadcast", subscribers = 10 }
[[tracks]]
model = "audio"
ptime_ms = 20
payload_bytes = 160
"#;

    fn error_of(text: &str) -> String {
        ScenarioFile::parse("x.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn values_out_of_range_name_file_key_and_value() {
        assert!(ScenarioFile::parse("x.toml", GOOD).is_ok());
        let e = error_of(&GOOD.replace("subscribers = 10", "subscribers = 0"));
        assert_eq!(e, "x.toml: topology.subscribers = 0: must be 1..=16000");
        let e = error_of(&GOOD.replace("ptime_ms = 20", "ptime_ms = 0.5"));
        assert_eq!(e, "x.toml: tracks[0].ptime_ms = 0.5: must be 1..=1000");
        let e = error_of(&format!("{GOOD}[impairment]\nloss_percent = 70\n"));
        assert_eq!(e, "x.toml: impairment.loss_percent = 70: must be 0..=50");
        let e = error_of(&format!("{GOOD}[nack]\nmax_retries = 0\n"));
        assert_eq!(e, "x.toml: nack.max_retries = 0: must be 1..=10");
        let e = error_of(&GOOD.replace("name = \"t\"", "name = \"a b\""));
        assert!(e.starts_with("x.toml: name = \"a b\":"), "{e}");
        let video = GOOD.replace(
            "model = \"audio\"\nptime_ms = 20\npayload_bytes = 160",
            "model = \"video\"\nframes_per_s = 30\nframe_bytes = 6000\nkeyframe_bytes = 90000\nkeyframe_interval_frames = 60",
        );
        let e = error_of(&video);
        assert_eq!(e, "x.toml: tracks[0].keyframe_bytes = 90000: must be 1..=76800");
    }

    #[test]
    fn unknown_keys_and_models_are_parse_errors_naming_them() {
        let e = error_of(&GOOD.replace("payload_bytes", "payload_byte"));
        assert!(e.starts_with("x.toml: ") && e.contains("payload_byte"), "{e}");
        let e = error_of(&GOOD.replace("\"audio\"", "\"midi\""));
        assert!(e.contains("midi"), "{e}");
        let e = error_of(&GOOD.replace("broadcast", "mesh"));
        assert!(e.contains("mesh"), "{e}");
    }

    #[test]
    fn topology_sizes_can_be_changed() {
        let t = Topology::Calls { calls: 5, parties: 3 };
        assert_eq!((t.size(), t.with_size(9)), (5, Topology::Calls { calls: 9, parties: 3 }));
        assert_eq!(Topology::Broadcast { subscribers: 2 }.with_size(7).size(), 7);
    }
}
