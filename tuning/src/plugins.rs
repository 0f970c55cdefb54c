//! The `[[plugins]]` sections: WebAssembly plugins the daemon loads at start-up.
//!
//! Owns [`PluginConfig`] (one plugin: its name in chains, its module file, the chains it may join, its failure path,
//! its fuel and memory limits, its parameters) and their check ([`validate_plugins`]; one plugin's:
//! [`check_plugin`] and [`check_plugin_path`], which the API's `LoadPlugin` runs too), which applies the data
//! plane's own rules (the registry's name rule, [`ringfwd_dataplane::wasm::check_limits`], the ABI's parameter
//! rule) and names the key. Values come from [`crate::defaults`]. Must never read the module file (the daemon
//! does, at start-up, and refuses a module that does not load with the key `plugins[N].path`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ringfwd_dataplane::control::{check_plugin_name, MAX_PLUGINS};
use ringfwd_dataplane::wasm::{
    abi, check_async, check_limits, AsyncPass, AsyncSettings, FailurePath, LimitError, PluginMode,
};
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::ConfigError;
use crate::interceptors::ChainSide;

/// A chain a plugin may join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginChain {
    /// Streams' ingress chains.
    Ingress,
    /// Subscriptions' egress chains.
    Egress,
}

impl PluginChain {
    /// The chain side.
    pub fn side(self) -> ChainSide {
        match self {
            PluginChain::Ingress => ChainSide::Ingress,
            PluginChain::Egress => ChainSide::Egress,
        }
    }
}

/// What a packet does once the plugin's instance on its worker is disabled (a trap, out of fuel, a bad verdict).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// It passes the plugin untouched (fail-open).
    #[default]
    Forward,
    /// It is dropped (fail-closed), counted under the reason `plugin`.
    Drop,
}

impl From<OnFailure> for FailurePath {
    fn from(on_failure: OnFailure) -> FailurePath {
        match on_failure {
            OnFailure::Forward => FailurePath::Forward,
            OnFailure::Drop => FailurePath::Drop,
        }
    }
}

/// How a plugin runs: `mode = "sync"` (the default) or `"async"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Inline on each worker, in the chain: its verdict decides the packet's fate, it may rewrite the packet.
    #[default]
    Sync,
    /// One instance on its own thread, off the worker cores: the chain hands it copies through a bounded queue per
    /// worker and goes on; what it emits comes back to the worker later.
    Async,
}

/// What an async plugin's chain does with a packet once its copy is queued: `async_pass = "forward"` (the default)
/// or `"consume"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsyncPassMode {
    /// The packet goes on through the chain; the plugin watches and may add packets later.
    #[default]
    Forward,
    /// The packet stops at the plugin, which re-emits what it means to; a full queue drops it (reason `plugin`).
    Consume,
}

impl From<AsyncPassMode> for AsyncPass {
    fn from(pass: AsyncPassMode) -> AsyncPass {
        match pass {
            AsyncPassMode::Forward => AsyncPass::Forward,
            AsyncPassMode::Consume => AsyncPass::Consume,
        }
    }
}

/// `[[plugins]]`: one WebAssembly plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Its name in `[interceptors]` and the API's `interceptors.names`: 1 to 32 bytes of a-z, 0-9 and `_`, starting
    /// with a letter, not a built-in's.
    pub name: String,
    /// The module: a WebAssembly binary (`.wasm`) or WAT text, by absolute path.
    pub path: PathBuf,
    /// The chains it may join (default both).
    pub chains: Vec<PluginChain>,
    /// What packets do once its instance on a worker is disabled.
    pub on_failure: OnFailure,
    /// Fuel per call (about one unit per WebAssembly instruction); a call that runs out is a fault.
    pub fuel_per_call: u64,
    /// Each instance's memory limit, in bytes.
    pub memory_max_bytes: u64,
    /// Parameters handed to its `ringfwd_init` as `key=value` lines.
    pub params: BTreeMap<String, String>,
    /// Inline on the workers (`sync`) or on its own thread (`async`).
    pub mode: RunMode,
    /// Async only: packets each of its queues holds per worker (default
    /// [`ringfwd_dataplane::wasm::DEFAULT_ASYNC_QUEUE_PACKETS`]).
    pub async_queue_packets: Option<u32>,
    /// Async only: what the chain does with a packet once its copy is queued (default `forward`).
    pub async_pass: Option<AsyncPassMode>,
    /// Async only: microseconds its thread waits, once a worker woke it, before it takes the copies, so one wake-up
    /// serves them all (default 0: at once; at most [`ringfwd_dataplane::wasm::MAX_ASYNC_WAKE_DELAY_US`]).
    pub async_wake_delay_us: Option<u32>,
}

impl Default for PluginConfig {
    fn default() -> PluginConfig {
        PluginConfig {
            name: String::new(),
            path: PathBuf::new(),
            chains: vec![PluginChain::Ingress, PluginChain::Egress],
            on_failure: OnFailure::default(),
            fuel_per_call: defaults::PLUGIN_FUEL_PER_CALL,
            memory_max_bytes: defaults::PLUGIN_MEMORY_MAX_BYTES,
            params: BTreeMap::new(),
            mode: RunMode::default(),
            async_queue_packets: None,
            async_pass: None,
            async_wake_delay_us: None,
        }
    }
}

impl PluginConfig {
    /// True if it may join chains of `side`.
    pub fn runs_on(&self, side: ChainSide) -> bool {
        self.chains.iter().any(|chain| chain.side() == side)
    }

    /// How it runs, as the data plane takes it (the async keys' defaults filled in).
    pub fn plugin_mode(&self) -> PluginMode {
        match self.mode {
            RunMode::Sync => PluginMode::Sync,
            RunMode::Async => {
                let defaults = AsyncSettings::default();
                PluginMode::Async(AsyncSettings {
                    queue_packets: self.async_queue_packets.unwrap_or(defaults.queue_packets),
                    pass: self.async_pass.map_or(defaults.pass, AsyncPass::from),
                    wake_delay_us: self.async_wake_delay_us.unwrap_or(defaults.wake_delay_us),
                })
            }
        }
    }
}

/// At most [`MAX_PLUGINS`] plugins, each name valid and used once, each path absolute, each chain named once,
/// each limit in range, the parameters within the ABI's bounds.
pub fn validate_plugins(plugins: &[PluginConfig]) -> Result<(), ConfigError> {
    if plugins.len() > MAX_PLUGINS {
        return Err(ConfigError::invalid("plugins", plugins.len(), format!("at most {MAX_PLUGINS} plugins")));
    }
    for (index, plugin) in plugins.iter().enumerate() {
        let key = |field: &str| format!("plugins[{index}].{field}");
        check_plugin(plugin, &key)?;
        if let Some(first) = plugins[..index].iter().position(|other| other.name == plugin.name) {
            return Err(ConfigError::invalid(key("name"), &plugin.name, format!("plugins[{first}] has this name too")));
        }
        check_plugin_path(&plugin.path, &key)?;
    }
    Ok(())
}

/// One plugin's settings, the rules every plugin passes wherever it comes from (the config's `[[plugins]]`, the API's
/// `LoadPlugin`): its name valid, each chain named once, each limit in range, the parameters within the ABI's bounds,
/// the async keys only with `mode = "async"` and its queue size in range. `key` names a field (`name`, `chains`, ...)
/// as the error reports it. The module (`path`) is not checked here: see [`check_plugin_path`].
pub fn check_plugin(plugin: &PluginConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    check_plugin_name(&plugin.name).map_err(|e| ConfigError::invalid(key("name"), &plugin.name, e.to_string()))?;
    let chains = &plugin.chains;
    if chains.is_empty() || (chains.len() == 2 && chains[0] == chains[1]) || chains.len() > 2 {
        let reason = "must name ingress, egress or both, each once";
        return Err(ConfigError::invalid(key("chains"), format!("{chains:?}"), reason));
    }
    check_limits(plugin.fuel_per_call, plugin.memory_max_bytes).map_err(|e| limit_refused(key, &e))?;
    abi::params_text(&plugin.params)
        .map_err(|e| ConfigError::invalid(key("params"), format!("{:?}", plugin.params), e.to_string()))?;
    match plugin.plugin_mode() {
        PluginMode::Sync => {
            let reason = "only for a plugin with mode = \"async\"";
            if let Some(value) = plugin.async_queue_packets {
                return Err(ConfigError::invalid(key("async_queue_packets"), value, reason));
            }
            if let Some(value) = plugin.async_pass {
                return Err(ConfigError::invalid(key("async_pass"), format!("{value:?}").to_lowercase(), reason));
            }
            if let Some(value) = plugin.async_wake_delay_us {
                return Err(ConfigError::invalid(key("async_wake_delay_us"), value, reason));
            }
        }
        PluginMode::Async(settings) => check_async(&settings).map_err(|e| limit_refused(key, &e))?,
    }
    Ok(())
}

/// A limit the data plane refused, naming its key.
fn limit_refused(key: &dyn Fn(&str) -> String, e: &LimitError) -> ConfigError {
    let (field, value) = match *e {
        LimitError::Fuel(value) => ("fuel_per_call", value),
        LimitError::Memory(value) => ("memory_max_bytes", value),
        LimitError::AsyncQueue(value) => ("async_queue_packets", u64::from(value)),
        LimitError::AsyncWakeDelay(value) => ("async_wake_delay_us", u64::from(value)),
    };
    ConfigError::invalid(key(field), value, e.to_string())
}

/// A module path: absolute (the daemon reads it, whatever its working directory).
pub fn check_plugin_path(path: &std::path::Path, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if !path.is_absolute() {
        let reason = "must be an absolute path to a .wasm or .wat file";
        return Err(ConfigError::invalid(key("path"), path.display(), reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str) -> PluginConfig {
        PluginConfig { name: name.into(), path: "/opt/p.wasm".into(), ..PluginConfig::default() }
    }

    #[test]
    fn each_rule_names_its_key() {
        assert!(validate_plugins(&[plugin("throttle"), plugin("red")]).is_ok());
        let key = |plugins: &[PluginConfig]| validate_plugins(plugins).expect_err("refused").key().map(str::to_owned);
        assert_eq!(key(&[plugin("Bad")]).as_deref(), Some("plugins[0].name"));
        assert_eq!(key(&[plugin("stats")]).as_deref(), Some("plugins[0].name"), "a built-in's name");
        assert_eq!(key(&[plugin("a"), plugin("a")]).as_deref(), Some("plugins[1].name"));
        let relative = PluginConfig { path: "p.wasm".into(), ..plugin("a") };
        assert_eq!(key(&[relative]).as_deref(), Some("plugins[0].path"));
        let no_chain = PluginConfig { chains: vec![], ..plugin("a") };
        assert_eq!(key(&[no_chain]).as_deref(), Some("plugins[0].chains"));
        let twice = PluginConfig { chains: vec![PluginChain::Egress, PluginChain::Egress], ..plugin("a") };
        assert_eq!(key(&[twice]).as_deref(), Some("plugins[0].chains"));
        let fuel = PluginConfig { fuel_per_call: 0, ..plugin("a") };
        assert_eq!(key(&[fuel]).as_deref(), Some("plugins[0].fuel_per_call"));
        let memory = PluginConfig { memory_max_bytes: 1, ..plugin("a") };
        assert_eq!(key(&[memory]).as_deref(), Some("plugins[0].memory_max_bytes"));
        let params = PluginConfig { params: [("a b".to_owned(), String::new())].into(), ..plugin("a") };
        assert_eq!(key(&[params]).as_deref(), Some("plugins[0].params"));
        let sync_queue = PluginConfig { async_queue_packets: Some(8), ..plugin("a") };
        assert_eq!(key(&[sync_queue]).as_deref(), Some("plugins[0].async_queue_packets"), "an async key, sync mode");
        let sync_pass = PluginConfig { async_pass: Some(AsyncPassMode::Consume), ..plugin("a") };
        assert_eq!(key(&[sync_pass]).as_deref(), Some("plugins[0].async_pass"), "an async key, sync mode");
        let empty = PluginConfig { mode: RunMode::Async, async_queue_packets: Some(0), ..plugin("a") };
        assert_eq!(key(&[empty]).as_deref(), Some("plugins[0].async_queue_packets"));
        let huge = PluginConfig { mode: RunMode::Async, async_queue_packets: Some(1 << 20), ..plugin("a") };
        assert_eq!(key(&[huge]).as_deref(), Some("plugins[0].async_queue_packets"));
        let sync_delay = PluginConfig { async_wake_delay_us: Some(100), ..plugin("a") };
        assert_eq!(key(&[sync_delay]).as_deref(), Some("plugins[0].async_wake_delay_us"), "an async key, sync mode");
        let late = PluginConfig { mode: RunMode::Async, async_wake_delay_us: Some(1_000_000), ..plugin("a") };
        assert_eq!(key(&[late]).as_deref(), Some("plugins[0].async_wake_delay_us"));
    }

    #[test]
    fn the_async_keys_fill_in_their_defaults() {
        assert_eq!(plugin("a").plugin_mode(), PluginMode::Sync);
        let text = "name = \"jitter\"\npath = \"/p.wasm\"\nmode = \"async\"\nasync_pass = \"consume\"\n";
        let parsed: PluginConfig = toml::from_str(text).expect("parses");
        let settings = AsyncSettings { pass: AsyncPass::Consume, ..AsyncSettings::default() };
        assert_eq!(parsed.plugin_mode(), PluginMode::Async(settings));
        assert!(validate_plugins(&[parsed]).is_ok());
        let queued = PluginConfig { mode: RunMode::Async, async_queue_packets: Some(16), ..plugin("a") };
        let settings = AsyncSettings { queue_packets: 16, pass: AsyncPass::Forward, wake_delay_us: 0 };
        assert_eq!(queued.plugin_mode(), PluginMode::Async(settings));
        let delayed = PluginConfig { mode: RunMode::Async, async_wake_delay_us: Some(2000), ..plugin("a") };
        let settings = AsyncSettings { wake_delay_us: 2000, ..AsyncSettings::default() };
        assert_eq!(delayed.plugin_mode(), PluginMode::Async(settings));
        assert!(toml::from_str::<PluginConfig>("name = \"a\"\nmode = \"later\"\n").is_err(), "unknown mode");
    }

    #[test]
    fn a_plugin_reads_from_toml_with_defaults() {
        let text = "name = \"throttle\"\npath = \"/p.wasm\"\nchains = [\"ingress\"]\non_failure = \"drop\"\n\
                    [params]\nmax_pps = \"50\"\n";
        let parsed: PluginConfig = toml::from_str(text).expect("parses");
        assert_eq!(parsed.chains, [PluginChain::Ingress]);
        assert_eq!(parsed.on_failure, OnFailure::Drop);
        assert_eq!(parsed.fuel_per_call, defaults::PLUGIN_FUEL_PER_CALL);
        assert_eq!(parsed.params.get("max_pps").map(String::as_str), Some("50"));
        assert!(parsed.runs_on(ChainSide::Ingress) && !parsed.runs_on(ChainSide::Egress));
        assert!(toml::from_str::<PluginConfig>("name = \"a\"\nfuel = 3\n").is_err(), "unknown keys are refused");
    }
}
