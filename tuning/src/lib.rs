//! ringfwd's typed configuration, and its conversion into the data plane's settings.
//!
//! This crate owns the config schema ([`Config`] and its sections, serde + TOML), every default
//! value ([`defaults`], one place), the validation rules ([`validate`]) with errors that name the
//! dotted key and the value ([`ConfigError`]), the effective config as the daemon runs it
//! ([`Config::to_effective_toml`]), the data plane's settings and interceptor specs converted from it
//! ([`Config::dataplane_settings`], [`specs`]), core placement ([`Placement`], resolved against the host's
//! NUMA [`Topology`]), the shape of static sessions ([`SessionSpec`] and friends: parsed here,
//! judged by the control plane's registry, never here), the control API's sections
//! ([`Api`], [`Auth`], [`Admission`]), the state directory and the default paths under it
//! ([`State`], [`default_state_directory`]), the rule that says where the development token
//! lives ([`dev_token`]) and the example configs in `examples/` (`dev-2core.toml` is the
//! commented reference of every key). It never touches sockets or threads, and never changes
//! the host: callers pass in what they learned (e.g. the available cores). The readers of the
//! host are [`host`], which reads `/proc` and `/sys` for `ringfwd tune check` and judges them
//! sans-IO, and [`read_topology`], which reads the NUMA topology from `/sys` for placement.

#![forbid(unsafe_code)]

mod api;
mod cluster;
mod dataplane;
pub mod defaults;
pub mod dev_token;
mod effective;
mod error;
mod events;
pub mod host;
mod interceptors;
mod metrics;
mod placement;
mod plugins;
mod schema;
mod sizes;
mod state;
mod telemetry;
pub mod validate;
mod webhooks;

use std::path::Path;

pub use api::{Admission, Api, ApiTls, Auth, AuthKey};
pub use cluster::{Cluster, DirectoryBackend};
pub use dataplane::specs;
pub use dev_token::{DevTokenLocation, DevTokenSource, RuntimeEnv};
pub use error::ConfigError;
pub use events::Events;
pub use interceptors::{
    chain_order, resolve_chain, ChainError, ChainName, ChainSide, InterceptorName, Interceptors,
    KeyframeThrottleConfig, NackCacheConfig, NackGeneratorConfig, RateLimitConfig, ReportsConfig, StatsConfig,
    TapConfig, TwccConfig,
};
pub use metrics::Metrics;
pub use placement::{check_pool_fits, read_topology, Placement, Topology, WorkerCores};
pub use plugins::{
    check_plugin, check_plugin_path, validate_plugins, AsyncPassMode, OnFailure, PluginChain, PluginConfig, RunMode,
};
pub use schema::{
    Config, Control, Driver, EndpointSpec, Idle, IdleStrategy, Limits, Media, MediaKind, Pool, SessionSpec, StreamSpec,
    SubscriptionSpec,
};
pub use sizes::{Load, Sizes, MIN_DERIVED_SOCKET_BUFFER_BYTES};
pub use state::{default_state_directory, State, StateEnv};
pub use telemetry::Telemetry;
pub use validate::MAX_ID_BYTES;
pub use webhooks::Webhooks;

impl Config {
    /// Parses TOML text and validates it. Missing keys take their defaults.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse { message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Config::from_toml_str(&text)
    }

    /// Writes the config as TOML that [`Config::from_toml_str`] reads back to an equal value
    /// (`ringfwd --print-config` prints [`Config::to_effective_toml`] instead, with what the host
    /// and `[load]` resolve and derive).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize { message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
    }

    #[test]
    fn every_example_parses_and_validates() {
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(examples_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Err(e) = Config::from_file(&path) {
                    panic!("{}: {e}", path.display());
                }
                seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        seen.sort();
        assert_eq!(seen, ["dev-2core.toml", "host-16core.toml", "host-2socket.toml", "static-conference.toml"]);
    }

    #[test]
    fn dev_2core_equals_the_default_config() {
        let file = Config::from_file(&examples_dir().join("dev-2core.toml")).unwrap();
        let default = Config::default();
        // Section by section first, so a mismatch points at the section.
        assert_eq!(file.placement, default.placement);
        assert_eq!(file.media, default.media);
        assert_eq!(file.pool, default.pool);
        assert_eq!(file.limits, default.limits);
        assert_eq!(file.idle, default.idle);
        assert_eq!(file.control, default.control);
        assert_eq!(file.api, default.api);
        assert_eq!(file.auth, default.auth);
        assert_eq!(file.admission, default.admission);
        assert_eq!(file, default);
    }

    #[test]
    fn static_conference_has_the_documented_shape() {
        let config = Config::from_file(&examples_dir().join("static-conference.toml")).unwrap();
        let [session] = config.sessions.as_slice() else {
            panic!("expected one session, got {}", config.sessions.len());
        };
        assert_eq!(session.endpoints.len(), 3);
        assert!(session.streams.iter().all(|s| s.endpoint == "alice"));
        assert_eq!(session.streams.len(), 2);
        let subs = &session.subscriptions;
        assert_eq!(subs.len(), 4);
        assert!(subs.iter().all(|s| s.out_ssrc.is_some() && s.seq_offset != 0));
        assert!(subs.iter().any(|s| !s.payload_type_map.is_empty()));
    }

    /// A session with every kind of part, for the serde tests.
    fn a_session() -> SessionSpec {
        SessionSpec {
            id: "room-1".into(),
            endpoints: vec![
                EndpointSpec { id: "alice".into(), address: Some("127.0.0.1:50000".parse().unwrap()), latching: false },
                EndpointSpec { id: "dave".into(), address: None, latching: true },
            ],
            streams: vec![StreamSpec {
                id: "a".into(),
                endpoint: "alice".into(),
                ssrc: 1,
                kind: MediaKind::Video,
                clock_rate_hz: Some(8000),
            }],
            subscriptions: vec![SubscriptionSpec {
                stream: "a".into(),
                endpoint: "dave".into(),
                out_ssrc: Some(11),
                seq_offset: 1,
                ts_offset: 2,
                payload_type_map: vec![[96, 100]],
            }],
        }
    }

    #[test]
    fn sessions_round_trip_through_toml() {
        let config = Config { sessions: vec![a_session()], ..Config::default() };
        let text = config.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), config);
    }

    #[test]
    fn stream_clock_rate_defaults_by_kind() {
        let parsed: StreamSpec = toml::from_str("id = \"v\"\nendpoint = \"e\"\nssrc = 1\nkind = \"video\"").unwrap();
        assert_eq!((parsed.kind, parsed.clock_rate_hz), (MediaKind::Video, None));
        assert_eq!(parsed.clock_rate_hz(), 90_000);
        let audio = StreamSpec { kind: MediaKind::Audio, ..parsed.clone() };
        assert_eq!(audio.clock_rate_hz(), 48_000);
        assert_eq!(StreamSpec { clock_rate_hz: Some(8000), ..parsed }.clock_rate_hz(), 8000);
    }

    #[test]
    fn session_parse_errors_name_the_key() {
        let missing = "[[sessions]]\nid = \"r\"\n[[sessions.streams]]\nid = \"s\"\nendpoint = \"e\"\n";
        let err = Config::from_toml_str(missing).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }) && err.to_string().contains("ssrc"), "{err}");
        let unknown = "[[sessions]]\nid = \"r\"\n[[sessions.endpoints]]\nid = \"e\"\nadress = \"127.0.0.1:1\"\n";
        let err = Config::from_toml_str(unknown).unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
        let wrong_type = "[[sessions]]\nid = \"r\"\n[[sessions.streams]]\nid = \"s\"\nendpoint = \"e\"\nssrc = \"1\"\n";
        let err = Config::from_toml_str(wrong_type).unwrap_err();
        assert!(err.to_string().contains("ssrc"), "{err}");
        let pt_over_255 = "[[sessions]]\nid = \"r\"\n[[sessions.subscriptions]]\nstream = \"s\"\nendpoint = \"e\"\n\
                           payload_type_map = [[96, 256]]\n";
        let err = Config::from_toml_str(pt_over_255).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        let kind =
            "[[sessions]]\nid = \"r\"\n[[sessions.streams]]\nid = \"s\"\nendpoint = \"e\"\nssrc = 1\nkind = \"data\"\n";
        assert!(Config::from_toml_str(kind).unwrap_err().to_string().contains("data"));
    }

    /// What a static session means is the registry's to judge (`ringfwd --check-config` runs it): the config's
    /// own validation takes any session that parses, however wrong.
    #[test]
    fn validation_leaves_sessions_to_the_registry() {
        let mut dangling = a_session();
        dangling.streams[0].endpoint = "nobody".into();
        dangling.subscriptions.push(dangling.subscriptions[0].clone());
        let config = Config { sessions: vec![dangling.clone(), dangling], ..Config::default() };
        if let Err(e) = config.validate() {
            panic!("a session mistake was judged by Config::validate: {e}");
        }
    }

    #[test]
    fn host_examples_place_workers_as_their_comments_say() {
        let config = Config::from_file(&examples_dir().join("host-16core.toml")).unwrap();
        let host = Topology::single_node(&(0..16).collect::<Vec<_>>());
        assert_eq!(config.resolve_placement(&host).unwrap(), (2..16).collect::<Vec<_>>());
        assert_eq!(config.placement.control_cores, [0]);

        let config = Config::from_file(&examples_dir().join("host-2socket.toml")).unwrap();
        let host = Topology::from_nodes([(0, (0..16).collect()), (1, (16..32).collect())]);
        assert_eq!(config.resolve_placement(&host).unwrap(), (1..16).collect::<Vec<_>>());
        let one_socket = Topology::single_node(&[0, 1]);
        assert_eq!(config.resolve_placement(&one_socket).unwrap(), [1], "node 0 exists on any host");
        let err = config.resolve_placement(&Topology::from_nodes([(1, vec![0, 1])])).unwrap_err();
        assert_eq!(err.key(), Some("placement.numa_node"));
    }

    #[test]
    fn default_round_trips_through_toml() {
        let text = Config::default().to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), Config::default());
    }

    #[test]
    fn control_api_sections_round_trip_through_toml() {
        let mut config = Config::default();
        config.api.listen = "0.0.0.0:0".parse().unwrap();
        config.api.advertise_addresses = vec!["203.0.113.7:40000".parse().unwrap()];
        config.auth.keys =
            vec![AuthKey { id: "ops".into(), secret_base64: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into() }];
        config.admission.max_sessions = 7;
        config.api.tls = Some(ApiTls {
            cert_file: Some("/etc/ringfwd/api.pem".into()),
            key_file: Some("/etc/ringfwd/api.key".into()),
            client_ca_file: Some("/etc/ringfwd/ca.pem".into()),
        });
        let text = config.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), config);
    }

    #[test]
    fn empty_text_is_the_default_config() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml_str("[pool]\nbufer_bytes = 4096\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("bufer_bytes"), "{err}");
        let err = Config::from_toml_str("[pools]\n").unwrap_err();
        assert!(err.to_string().contains("pools"), "{err}");
        let text = "[[auth.keys]]\nid = \"a\"\nsecret_base64 = \"\"\nsecret = \"x\"\n";
        let err = Config::from_toml_str(text).unwrap_err();
        assert!(err.to_string().contains("`secret`"), "{err}");
        let err = Config::from_toml_str("[admission]\nmax_session = 1\n").unwrap_err();
        assert!(err.to_string().contains("max_session"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::from_toml_str("[pool]\nrecv_batch = \"64\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("recv_batch"), "{err}");
        let err = Config::from_toml_str("[idle]\nstrategy = \"nap\"\n").unwrap_err();
        assert!(err.to_string().contains("strategy"), "{err}");
    }

    #[test]
    fn negative_value_is_a_parse_error_not_a_panic() {
        let err = Config::from_toml_str("[media]\nmax_packet_bytes = -1\n").unwrap_err();
        assert!(err.to_string().contains("max_packet_bytes"), "{err}");
    }

    #[test]
    fn validation_runs_on_load() {
        let err = Config::from_toml_str("[pool]\nbuffers_per_worker = 1000\n").unwrap_err();
        assert_eq!(err.key(), Some("pool.buffers_per_worker"));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let path = examples_dir().join("does-not-exist.toml");
        let err = Config::from_file(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("does-not-exist.toml"), "{err}");
    }
}

/// Test support: a fake filesystem root for the readers of /proc and /sys.
#[cfg(test)]
mod fake_root {
    use std::path::Path;

    /// Writes `text` to `path` under `root`, creating its folders.
    pub(crate) fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
