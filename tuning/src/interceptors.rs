//! The `[interceptors]` section: which built-in interceptors run by default, and their parameters.
//!
//! Owns [`Interceptors`], [`InterceptorName`], [`ChainName`] (a built-in or a registered plugin, by name), the
//! chain order of a list of names ([`chain_order`]), the one check of a chain's names against the registered
//! plugins ([`resolve_chain`], used for the config's default chains at start-up and for every API request), and
//! one parameter struct per built-in. These are the defaults of every stream (ingress) and subscription (egress);
//! the control API may override them per stream or subscription. Values come from [`crate::defaults`]; ranges
//! are checked in [`crate::validate`]. This module must never hold a literal default nor check a range.

use std::path::PathBuf;

use ringfwd_dataplane::control::{parse_attachment, Plugins, MAX_PLUGINS_PER_CHAIN};
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::ConfigError;

/// A built-in interceptor, by its config and API name (`nack_cache`, ...): the data plane's own list of built-ins,
/// in chain order, serialized by name.
pub use ringfwd_dataplane::control::InterceptorKind as InterceptorName;

/// One member a chain names: a built-in, or a plugin (native or WebAssembly). Read and written as its name; a name
/// that is no built-in's reads as a plugin's, which [`resolve_chain`] then checks against the registry. A plugin's
/// name may carry the chain's options for it, `NAME:KEY=VALUE[:KEY=VALUE...]` (the data plane's
/// [`ringfwd_dataplane::control::parse_attachment`]): `on_failure`, `mode`, `async_pass`; [`resolve_chain`] keeps
/// them in their canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ChainName {
    /// A built-in.
    Builtin(InterceptorName),
    /// A registered plugin, by name, with the chain's options for it (`jitter`, `jitter:mode=async`).
    Plugin(String),
}

impl ChainName {
    /// The built-in called `name`, else the plugin called `name` (unchecked).
    pub fn parse(name: &str) -> ChainName {
        InterceptorName::parse(name).map_or_else(|| ChainName::Plugin(name.to_owned()), ChainName::Builtin)
    }

    /// Its name (a plugin's with its options, as spelled).
    pub fn as_str(&self) -> &str {
        match self {
            ChainName::Builtin(kind) => kind.as_str(),
            ChainName::Plugin(name) => name,
        }
    }

    /// A plugin's name without its options; `None` for a built-in.
    pub fn plugin_name(&self) -> Option<&str> {
        match self {
            ChainName::Builtin(_) => None,
            ChainName::Plugin(spelled) => Some(spelled.split(':').next().unwrap_or_default()),
        }
    }
}

impl From<String> for ChainName {
    fn from(name: String) -> ChainName {
        ChainName::parse(&name)
    }
}

impl From<ChainName> for String {
    fn from(name: ChainName) -> String {
        name.as_str().to_owned()
    }
}

impl From<InterceptorName> for ChainName {
    fn from(kind: InterceptorName) -> ChainName {
        ChainName::Builtin(kind)
    }
}

/// Which chain a list of names is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainSide {
    /// A stream's ingress chain.
    Ingress,
    /// A subscription's egress chain.
    Egress,
}

impl ChainSide {
    /// True if the built-in `kind` runs on this side.
    pub fn runs(self, kind: InterceptorName) -> bool {
        match self {
            ChainSide::Ingress => kind.is_ingress(),
            ChainSide::Egress => kind.is_egress(),
        }
    }

    /// The built-in the plugins run just before (the data plane's documented position).
    fn plugins_before(self) -> InterceptorName {
        match self {
            ChainSide::Ingress => InterceptorName::NackCache,
            ChainSide::Egress => InterceptorName::Stats,
        }
    }
}

/// Puts `names` in the order the data plane runs them: built-ins in their fixed order, plugins at their position on
/// `side`, in the order they were listed.
pub fn chain_order(names: &mut [ChainName], side: ChainSide) {
    let rank = |name: &ChainName| match name {
        ChainName::Builtin(kind) => 2 * InterceptorName::ALL.iter().position(|k| k == kind).unwrap_or(0),
        ChainName::Plugin(_) => {
            let before = side.plugins_before();
            2 * InterceptorName::ALL.iter().position(|k| *k == before).unwrap_or(0) - 1
        }
    };
    names.sort_by_key(rank);
}

/// Why a chain's names were refused: the position of the first wrong name, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    /// Its index in the list.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks a chain's `names` for `side` against the built-ins and the registered `plugins`: each exists, runs on this
/// side and is named once, a plugin's options parse and the plugin takes them, and at most [`MAX_PLUGINS_PER_CHAIN`]
/// plugins. Returned in chain order, plugins' options in their canonical spelling. The config's default chains and
/// every API request are checked by this one function: when the config is read, before any registry exists, with
/// `plugins` `None` (a name that is no built-in's is taken as a plugin's, its registration checked at start-up, where
/// the daemon checks the default chains again with its registry).
pub fn resolve_chain<'a>(
    names: impl IntoIterator<Item = &'a str>,
    side: ChainSide,
    plugins: Option<&Plugins>,
) -> Result<Vec<ChainName>, ChainError> {
    let mut chain: Vec<ChainName> = Vec::new();
    let mut plugin_count = 0;
    for (index, name) in names.into_iter().enumerate() {
        let refuse = |reason: String| Err(ChainError { index, reason });
        let mut parsed = ChainName::parse(name);
        match &parsed {
            ChainName::Builtin(kind) if !side.runs(*kind) => {
                return refuse(format!("{name} does not run on this chain"))
            }
            ChainName::Builtin(_) => {}
            ChainName::Plugin(_) => {
                let (name, attach) = match parse_attachment(name) {
                    Ok(parsed) => parsed,
                    Err(error) => return refuse(format!("{name}: {error}")),
                };
                if InterceptorName::parse(name).is_some() {
                    return refuse(format!("{name} is a built-in: options after its name are for plugins only"));
                }
                if let Some(plugins) = plugins {
                    let Some(id) = plugins.find(name) else {
                        let known: Vec<&str> =
                            InterceptorName::ALL.iter().map(|n| n.as_str()).chain(plugins.names()).collect();
                        return refuse(format!("unknown interceptor {name:?} (known: {})", known.join(", ")));
                    };
                    let registered = match side {
                        ChainSide::Ingress => plugins.runs_on_ingress(id),
                        ChainSide::Egress => plugins.runs_on_egress(id),
                    };
                    if !registered {
                        return refuse(format!("plugin {name} is not registered for this chain"));
                    }
                    if let Err(reason) = plugins.check_attach(id, &attach) {
                        return refuse(reason);
                    }
                }
                plugin_count += 1;
                if plugin_count > MAX_PLUGINS_PER_CHAIN {
                    return refuse(format!("more than {MAX_PLUGINS_PER_CHAIN} plugins on one chain"));
                }
                if chain.iter().any(|listed| listed.plugin_name() == Some(name)) {
                    return refuse(format!("plugin {name} is listed twice"));
                }
                parsed = ChainName::Plugin(attach.spell(name));
            }
        }
        if chain.contains(&parsed) {
            return refuse(format!("{name} is listed twice"));
        }
        chain.push(parsed);
    }
    chain_order(&mut chain, side);
    Ok(chain)
}

/// `[interceptors]`: the default chains and every built-in's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Interceptors {
    /// Built-ins and plugins on every stream's ingress chain (built-ins always run in the documented order,
    /// whatever the order here; plugins at their documented position, in the order listed here).
    pub ingress: Vec<ChainName>,
    /// Built-ins and plugins on every subscription's egress chain.
    pub egress: Vec<ChainName>,
    /// `stats`.
    pub stats: StatsConfig,
    /// `nack_cache`.
    pub nack_cache: NackCacheConfig,
    /// `nack_generator`.
    pub nack_generator: NackGeneratorConfig,
    /// `receiver_reports` and `sender_reports`.
    pub reports: ReportsConfig,
    /// `keyframe_throttle`.
    pub keyframe_throttle: KeyframeThrottleConfig,
    /// `rate_limit`.
    pub rate_limit: RateLimitConfig,
    /// `twcc`.
    pub twcc: TwccConfig,
    /// `tap`.
    pub tap: TapConfig,
}

impl Interceptors {
    /// The default chains checked by [`resolve_chain`] against `plugins` (`None`: plugin names unchecked), in chain
    /// order; an error names the key (`interceptors.ingress[2]`) and the value.
    pub fn resolve_defaults(&self, plugins: Option<&Plugins>) -> Result<(Vec<ChainName>, Vec<ChainName>), ConfigError> {
        let resolve = |key: &str, list: &[ChainName], side| {
            resolve_chain(list.iter().map(ChainName::as_str), side, plugins).map_err(|e| {
                let value = list.get(e.index).map_or("", ChainName::as_str);
                ConfigError::invalid(format!("{key}[{}]", e.index), value, e.reason)
            })
        };
        Ok((
            resolve("interceptors.ingress", &self.ingress, ChainSide::Ingress)?,
            resolve("interceptors.egress", &self.egress, ChainSide::Egress)?,
        ))
    }
}

impl Default for Interceptors {
    fn default() -> Interceptors {
        let names = |list: &[&str]| list.iter().map(|name| ChainName::parse(name)).collect();
        Interceptors {
            ingress: names(defaults::INTERCEPTORS_INGRESS),
            egress: names(defaults::INTERCEPTORS_EGRESS),
            stats: StatsConfig::default(),
            nack_cache: NackCacheConfig::default(),
            nack_generator: NackGeneratorConfig::default(),
            reports: ReportsConfig::default(),
            keyframe_throttle: KeyframeThrottleConfig::default(),
            rate_limit: RateLimitConfig::default(),
            twcc: TwccConfig::default(),
            tap: TapConfig::default(),
        }
    }
}

/// `[interceptors.stats]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Window the bit rate is measured over, in milliseconds.
    pub bitrate_window_ms: u32,
}

impl Default for StatsConfig {
    fn default() -> StatsConfig {
        StatsConfig { bitrate_window_ms: defaults::STATS_BITRATE_WINDOW_MS }
    }
}

/// `[interceptors.nack_cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NackCacheConfig {
    /// Packets kept per stream (a power of two); each slot is `media.max_packet_bytes` long.
    pub max_packets: u16,
    /// A packet older than this is not retransmitted, in milliseconds.
    pub max_age_ms: u32,
    /// Retransmissions of one packet at most; also how often one packet the cache never received is asked for
    /// from the publisher on the subscribers' behalf.
    pub max_retransmits_per_packet: u8,
    /// Least wait between two requests to the publisher for one packet the cache never received, in
    /// milliseconds: subscribers' NACKs for it within this interval are merged into the request already sent.
    pub upstream_retry_interval_ms: u32,
}

impl Default for NackCacheConfig {
    fn default() -> NackCacheConfig {
        NackCacheConfig {
            max_packets: defaults::NACK_CACHE_MAX_PACKETS,
            max_age_ms: defaults::NACK_CACHE_MAX_AGE_MS,
            max_retransmits_per_packet: defaults::NACK_CACHE_MAX_RETRANSMITS_PER_PACKET,
            upstream_retry_interval_ms: defaults::NACK_CACHE_UPSTREAM_RETRY_INTERVAL_MS,
        }
    }
}

/// `[interceptors.nack_generator]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NackGeneratorConfig {
    /// Times one missing packet is asked for.
    pub max_retries: u8,
    /// Least wait between two requests for one packet (the wait while no RTT is known), in milliseconds.
    pub min_retry_interval_ms: u32,
    /// A missing packet older than this is given up, in milliseconds.
    pub max_age_ms: u32,
    /// Missing packets tracked at once per stream.
    pub max_missing: u16,
}

impl Default for NackGeneratorConfig {
    fn default() -> NackGeneratorConfig {
        NackGeneratorConfig {
            max_retries: defaults::NACK_GENERATOR_MAX_RETRIES,
            min_retry_interval_ms: defaults::NACK_GENERATOR_MIN_RETRY_INTERVAL_MS,
            max_age_ms: defaults::NACK_GENERATOR_MAX_AGE_MS,
            max_missing: defaults::NACK_GENERATOR_MAX_MISSING,
        }
    }
}

/// `[interceptors.reports]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Mean interval between two reports, in milliseconds (each is sent at 0.5–1.5 × it).
    pub interval_ms: u32,
}

impl Default for ReportsConfig {
    fn default() -> ReportsConfig {
        ReportsConfig { interval_ms: defaults::REPORT_INTERVAL_MS }
    }
}

/// `[interceptors.keyframe_throttle]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyframeThrottleConfig {
    /// At most one PLI/FIR per this interval goes to a publisher, in milliseconds.
    pub min_interval_ms: u32,
}

impl Default for KeyframeThrottleConfig {
    fn default() -> KeyframeThrottleConfig {
        KeyframeThrottleConfig { min_interval_ms: defaults::KEYFRAME_MIN_INTERVAL_MS }
    }
}

/// `[interceptors.rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Packets per second one source may send (0: unlimited).
    pub max_packets_per_second: u32,
    /// Bits per second one source may send, whole datagrams (0: unlimited).
    pub max_bits_per_second: u64,
}

/// `[interceptors.twcc]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwccConfig {
    /// The negotiated one-byte header extension id of the transport-wide sequence number (1..=14).
    pub extension_id: u8,
    /// Feedback interval, in milliseconds.
    pub feedback_interval_ms: u32,
}

impl Default for TwccConfig {
    fn default() -> TwccConfig {
        TwccConfig {
            extension_id: defaults::TWCC_EXTENSION_ID,
            feedback_interval_ms: defaults::TWCC_FEEDBACK_INTERVAL_MS,
        }
    }
}

/// `[interceptors.tap]`: what the recording tap keeps and where the pcap recorder writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TapConfig {
    /// Bytes of each packet kept (pcap snaplen); also the size of each tap ring slot.
    pub snap_bytes: u16,
    /// Where the recorder writes `ringfwd-<ssrc as 8 hex>-<unix seconds>.pcap` files (created, mode 0750, when
    /// the first file is). A relative path is under the state directory (`state.directory`), never the
    /// working directory: see [`Config::tap_directory`](crate::Config::tap_directory).
    pub directory: PathBuf,
    /// Packets each worker's tap ring holds for the recorder; a full ring drops and counts
    /// (`tap_dropped`). Memory: `ring_packets × snap_bytes` per worker. 0 disables recording: no rings,
    /// no recorder thread, and streams naming `tap` record nothing.
    pub ring_packets: u32,
    /// A recording file is closed and a new one started before it would exceed this, in bytes.
    pub max_file_bytes: u64,
    /// Recording files open at once; opening one more closes the least recently written.
    pub max_open_files: u32,
}

impl Default for TapConfig {
    fn default() -> TapConfig {
        TapConfig {
            snap_bytes: defaults::TAP_SNAP_BYTES,
            directory: PathBuf::from(defaults::TAP_DIRECTORY),
            ring_packets: defaults::TAP_RING_PACKETS,
            max_file_bytes: defaults::TAP_MAX_FILE_BYTES,
            max_open_files: defaults::TAP_MAX_OPEN_FILES,
        }
    }
}

#[cfg(test)]
mod tests {
    use ringfwd_dataplane::plugin::{Interceptor, StreamInfo, SubscriptionInfo};

    use super::*;

    #[derive(Debug)]
    struct Pass;
    impl Interceptor for Pass {}

    fn registry() -> Plugins {
        Plugins::none()
            .with_ingress("gate", |_: &StreamInfo| Box::new(Pass))
            .and_then(|p| p.with_ingress("mark", |_: &StreamInfo| Box::new(Pass)))
            .and_then(|p| p.with_egress("mark", |_: &SubscriptionInfo| Box::new(Pass)))
            .expect("registered")
    }

    fn names(chain: &[ChainName]) -> Vec<&str> {
        chain.iter().map(ChainName::as_str).collect()
    }

    #[test]
    fn a_chain_is_put_in_run_order_with_plugins_at_their_position_in_listed_order() {
        let plugins = registry();
        let ingress = ["receiver_reports", "mark", "nack_cache", "stats", "gate", "rate_limit"];
        let chain = resolve_chain(ingress, ChainSide::Ingress, Some(&plugins)).expect("valid");
        assert_eq!(names(&chain), ["rate_limit", "stats", "mark", "gate", "nack_cache", "receiver_reports"]);
        let egress = ["sender_reports", "stats", "mark", "payload_type_filter"];
        let chain = resolve_chain(egress, ChainSide::Egress, Some(&plugins)).expect("valid");
        assert_eq!(names(&chain), ["payload_type_filter", "mark", "stats", "sender_reports"]);
    }

    #[test]
    fn every_wrong_name_is_refused_at_its_position() {
        let plugins = registry();
        let refused =
            |list: &[&str], side| resolve_chain(list.iter().copied(), side, Some(&plugins)).expect_err("refused");
        let unknown = refused(&["stats", "jitter_buffer"], ChainSide::Ingress);
        assert_eq!(unknown.index, 1);
        assert!(unknown.reason.contains("unknown interceptor \"jitter_buffer\"") && unknown.reason.contains("gate"));
        assert_eq!(refused(&["gate"], ChainSide::Egress).reason, "plugin gate is not registered for this chain");
        assert_eq!(refused(&["mark", "mark"], ChainSide::Ingress).index, 1);
        assert_eq!(
            refused(&["sender_reports"], ChainSide::Ingress).reason,
            "sender_reports does not run on this chain"
        );
        let unchecked = resolve_chain(["jitter_buffer"], ChainSide::Ingress, None).expect("taken on trust");
        assert_eq!(unchecked, [ChainName::Plugin("jitter_buffer".into())]);
    }

    #[test]
    fn a_plugins_options_are_checked_and_kept_in_their_canonical_spelling() {
        let plugins = registry();
        let chain = resolve_chain(["stats", "gate:on_failure=drop"], ChainSide::Ingress, Some(&plugins)).expect("ok");
        assert_eq!(names(&chain), ["stats", "gate:on_failure=drop"]);
        assert_eq!(chain[1].plugin_name(), Some("gate"));
        let refused =
            |list: &[&str], side| resolve_chain(list.iter().copied(), side, Some(&plugins)).expect_err("refused");
        let bad = refused(&["stats", "gate:on_failure=explode"], ChainSide::Ingress);
        assert_eq!(
            (bad.index, bad.reason.as_str()),
            (1, "gate:on_failure=explode: on_failure=\"explode\" is not one of forward, drop")
        );
        let native = refused(&["gate:mode=async"], ChainSide::Ingress);
        assert_eq!(native.reason, "plugin gate is native: it takes on_failure only, not mode");
        let twice = refused(&["gate", "gate:on_failure=drop"], ChainSide::Ingress);
        assert_eq!((twice.index, twice.reason.as_str()), (1, "plugin gate is listed twice"));
        let builtin = refused(&["stats:on_failure=drop"], ChainSide::Ingress);
        assert_eq!(builtin.reason, "stats is a built-in: options after its name are for plugins only");
        // Read before any registry exists: the syntax is checked, what the plugin takes is not yet.
        let spelled = resolve_chain(["jitter:async_pass=consume:mode=async"], ChainSide::Ingress, None).expect("ok");
        assert_eq!(names(&spelled), ["jitter:mode=async:async_pass=consume"]);
        assert!(resolve_chain(["jitter:mode=later"], ChainSide::Ingress, None).is_err());
    }

    #[test]
    fn the_default_chains_are_checked_with_the_key_and_value() {
        let mut config = Interceptors::default();
        config.egress.push(ChainName::parse("gate"));
        let error = config.resolve_defaults(Some(&registry())).expect_err("gate is ingress only");
        assert_eq!(error.key(), Some("interceptors.egress[2]"));
        assert!(error.to_string().contains("= gate: plugin gate is not registered"), "{error}");
        assert!(config.resolve_defaults(None).is_ok(), "without a registry plugin names are not checked");
    }
}
