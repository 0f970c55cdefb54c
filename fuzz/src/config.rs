//! Target `config`: the config file, from TOML text to a running registry's static sessions.
//!
//! [`Config::from_toml_str`] (parse and validate) on any text. A config it accepts writes back as TOML that reads
//! back to the same config ([`Config::to_toml_string`]); its effective form (`--print-config`) reads back too;
//! and its static sessions go through the registry's dry run (`ringfwd --check-config`), whose refusals name the
//! session entry. A config it refuses is refused with a message that names where: toml's own (line and key) or
//! a dotted key of the schema (its first segment a section of the config or of the text) with the value.

use ringfwd_dataplane::control::Plugins;
use ringfwd_tuning::{Config, ConfigError, WorkerCores};

/// Runs one text (bytes that are not UTF-8 are not a config file; they are skipped).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => accepted(&config),
        Err(error) => refused(text, &error),
    }
}

fn accepted(config: &Config) {
    let written = config.to_toml_string().expect("a valid config serializes");
    let again = Config::from_toml_str(&written).unwrap_or_else(|e| panic!("written config refused: {e}\n{written}"));
    assert_eq!(&again, config, "written and read back:\n{written}");
    // The worker cores placement resolves: the listed ones, or for "auto" a core the control plane does not take.
    let cores = match &config.placement.worker_cores {
        WorkerCores::List(cores) => cores.clone(),
        WorkerCores::Auto => (0..).find(|c| !config.placement.control_cores.contains(c)).into_iter().collect(),
    };
    if let Ok(effective) = config.to_effective_toml(&cores) {
        if let Err(e) = Config::from_toml_str(&effective) {
            panic!("effective config refused: {e}\n{effective}");
        }
    }
    // Plugin names are checked against the plugins the binary registers: none here.
    let chains = match ringfwd::registry::Chains::new(config.interceptors.clone(), Plugins::none()) {
        Ok(chains) => chains,
        Err(e) => {
            assert!(e.to_string().contains("interceptors."), "a refused chain names its key: {e}");
            return;
        }
    };
    if let Err(e) = ringfwd::routes::check(config, 2, &chains) {
        assert!(e.origin.starts_with("sessions["), "a static session's refusal names its entry: {e}");
    }
}

fn refused(text: &str, error: &ConfigError) {
    let message = error.to_string();
    match error {
        ConfigError::Parse { message: toml_message } => assert!(!toml_message.is_empty(), "{message}"),
        ConfigError::Invalid { key, value: _, reason } => {
            assert!(!reason.is_empty(), "{message}");
            let first = key.split(['.', '[']).next().unwrap_or_default();
            let sections = sections_of(&Config::default()).chain(top_level_keys(text));
            let known: Vec<String> = sections.collect();
            assert!(known.iter().any(|k| k == first), "error names no key of the config: {message}");
        }
        ConfigError::Serialize { .. } | ConfigError::Io { .. } | ConfigError::Environment { .. } => {
            panic!("parsing text cannot fail so: {message}")
        }
    }
}

/// The top-level keys of the default config as written.
fn sections_of(config: &Config) -> impl Iterator<Item = String> {
    let written = config.to_toml_string().unwrap_or_default();
    top_level_keys(&written).collect::<Vec<_>>().into_iter().chain(["sessions".to_owned()])
}

fn top_level_keys(text: &str) -> impl Iterator<Item = String> {
    let table: toml::Table = text.parse().unwrap_or_default();
    table.into_iter().map(|(key, _)| key)
}
