//! The plugins a daemon runs: the native ones the program registered, the config's WebAssembly plugins
//! (`[[plugins]]`), read, compiled, checked against the ABI and registered at start-up, and those the API loads
//! while it runs (`LoadPlugin`, see `api::plugins`).
//!
//! Owns [`Loaded`] and [`load`] (the daemon's start and `--check-config` / `--print-config` both load through it,
//! so a module the daemon would refuse is refused by the check too), [`compile`] (the one way a WebAssembly plugin
//! is loaded, from the config or the API), [`LivePlugins`] (the control plane's current view, replaced under the
//! API's registry lock when the API loads or unloads a plugin) and [`PluginMetrics`] (the WebAssembly plugins'
//! counters as Prometheus families, read from the current view). Must never run on a worker; a worker never takes
//! the [`LivePlugins`] lock (it gets the registry by value in a command).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use ringfwd_dataplane::control::Plugins;
use ringfwd_dataplane::wasm::{
    self, AsyncPass, AsyncSettings, Engine, FailurePath, LoadError, PluginMode, WasmPlugin, WasmPluginSpec,
    WasmPluginStats,
};
use ringfwd_proto::v1;
use ringfwd_tuning::{ChainSide, Config, ConfigError, PluginConfig};

use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::ExportMetrics;

/// The registry chains are checked against, and the WebAssembly plugins in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Native and WebAssembly plugins, by name.
    pub registry: Plugins,
    /// The WebAssembly plugins: the config's in its order, then those the API loaded, in load order.
    pub wasm: Vec<WasmPlugin>,
    /// The names of those the API loaded (the only ones it may unload).
    pub from_api: BTreeSet<String>,
    /// The compiler, made with the first WebAssembly plugin.
    pub engine: Option<Engine>,
}

/// The control plane's current [`Loaded`]: read by node info and metrics, replaced by the API (under its registry
/// lock) when it loads or unloads a plugin. Held only for a copy or a swap, never across an `.await`.
pub type LivePlugins = Arc<RwLock<Loaded>>;

/// `loaded` as the daemon's live view.
pub fn live(loaded: Loaded) -> LivePlugins {
    Arc::new(RwLock::new(loaded))
}

/// A copy of the current view (cheap: shared handles).
pub fn current(live: &LivePlugins) -> Loaded {
    live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Loads `plugin` from `module` (its bytes; `origin` says where they came from, for messages) with `engine`: the
/// module compiled, checked against the ABI and instantiated once. The config's `[[plugins]]` and the API's
/// `LoadPlugin` both load through here, after the same settings check ([`ringfwd_tuning::check_plugin`]).
pub fn compile(
    engine: &Engine,
    plugin: &PluginConfig,
    module: Vec<u8>,
    origin: String,
) -> Result<WasmPlugin, LoadError> {
    engine.load(spec(plugin, module, origin))
}

/// `native` plus every `[[plugins]]` entry of `config`: each module read from its path, compiled, checked against
/// the ABI and instantiated once. A plugin that cannot be loaded is an error naming `plugins[N].path` (or `.name`
/// when its name is a native plugin's).
pub fn load(config: &Config, native: Plugins) -> Result<Loaded, ConfigError> {
    if config.plugins.is_empty() {
        return Ok(Loaded { registry: native, wasm: Vec::new(), from_api: BTreeSet::new(), engine: None });
    }
    let engine = Engine::new().map_err(|e| ConfigError::invalid("plugins", config.plugins.len(), e))?;
    let mut registry = native;
    let mut loaded = Vec::with_capacity(config.plugins.len());
    for (index, plugin) in config.plugins.iter().enumerate() {
        let path_error =
            |reason: String| ConfigError::invalid(format!("plugins[{index}].path"), plugin.path.display(), reason);
        let module = std::fs::read(&plugin.path).map_err(|e| path_error(format!("cannot read it: {e}")))?;
        let origin = plugin.path.display().to_string();
        let wasm = compile(&engine, plugin, module, origin).map_err(|e| path_error(e.to_string()))?;
        registry = wasm::register(registry, &wasm)
            .map_err(|e| ConfigError::invalid(format!("plugins[{index}].name"), &plugin.name, e.to_string()))?;
        tracing::info!(plugin = %plugin.name, path = %plugin.path.display(), "WebAssembly plugin loaded");
        loaded.push(wasm);
    }
    Ok(Loaded { registry, wasm: loaded, from_api: BTreeSet::new(), engine: Some(engine) })
}

impl Loaded {
    /// Every plugin as the API describes it: the native ones (names only), then the WebAssembly ones with their
    /// settings and counters.
    pub fn describe(&self) -> Vec<v1::Plugin> {
        let native = self.describe_native();
        native.into_iter().chain(self.wasm.iter().map(|plugin| self.describe_wasm(plugin))).collect()
    }

    /// The WebAssembly plugin called `name`, if loaded.
    pub fn wasm(&self, name: &str) -> Option<&WasmPlugin> {
        self.wasm.iter().find(|plugin| plugin.name() == name)
    }

    fn describe_native(&self) -> Vec<v1::Plugin> {
        let registry = &self.registry;
        let native = registry.names().filter(|name| self.wasm(name).is_none()).map(|name| {
            let id = registry.find(name);
            let on = |side: fn(&Plugins, ringfwd_dataplane::control::PluginId) -> bool| {
                id.is_some_and(|id| side(registry, id))
            };
            v1::Plugin {
                name: name.to_owned(),
                kind: "native".into(),
                chains: chain_names(on(Plugins::runs_on_ingress), on(Plugins::runs_on_egress)),
                source: "native".into(),
                ..v1::Plugin::default()
            }
        });
        native.collect()
    }

    /// `plugin` as the API describes it: its settings and its counters.
    pub fn describe_wasm(&self, plugin: &WasmPlugin) -> v1::Plugin {
        let (ingress, egress) = plugin.chains();
        let (fuel_per_call, memory_max_bytes) = plugin.limits();
        let source = if self.from_api.contains(plugin.name()) { "api" } else { "config" };
        let stats = plugin.stats();
        v1::Plugin {
            name: plugin.name().to_owned(),
            kind: "wasm".into(),
            chains: chain_names(ingress, egress),
            path: plugin.origin().to_owned(),
            on_failure: match plugin.on_failure() {
                FailurePath::Forward => "forward".into(),
                FailurePath::Drop => "drop".into(),
            },
            fuel_per_call,
            memory_max_bytes,
            counters: stats.named().iter().map(|(name, value)| (name.to_string(), *value)).collect(),
            ns_per_call: stats.ns_per_call().unwrap_or(0),
            source: source.into(),
            mode: match plugin.mode() {
                PluginMode::Sync => "sync".into(),
                PluginMode::Async(_) => "async".into(),
            },
            async_queue_packets: match plugin.mode() {
                PluginMode::Sync => 0,
                PluginMode::Async(settings) => settings.queue_packets,
            },
            async_wake_delay_us: match plugin.mode() {
                PluginMode::Sync => 0,
                PluginMode::Async(settings) => settings.wake_delay_us,
            },
            async_pass: match plugin.mode() {
                PluginMode::Sync => String::new(),
                PluginMode::Async(AsyncSettings { pass: AsyncPass::Forward, .. }) => "forward".into(),
                PluginMode::Async(AsyncSettings { pass: AsyncPass::Consume, .. }) => "consume".into(),
            },
        }
    }
}

/// The chains a plugin may join, by name.
fn chain_names(ingress: bool, egress: bool) -> Vec<String> {
    [("ingress", ingress), ("egress", egress)].iter().filter(|(_, on)| *on).map(|(c, _)| c.to_string()).collect()
}

fn spec(plugin: &PluginConfig, module: Vec<u8>, origin: String) -> WasmPluginSpec {
    WasmPluginSpec {
        name: plugin.name.clone(),
        module,
        origin,
        ingress: plugin.runs_on(ChainSide::Ingress),
        egress: plugin.runs_on(ChainSide::Egress),
        on_failure: plugin.on_failure.into(),
        fuel_per_call: plugin.fuel_per_call,
        memory_max_bytes: plugin.memory_max_bytes,
        params: plugin.params.clone(),
        mode: plugin.plugin_mode(),
    }
}

/// The WebAssembly plugins' counters, per plugin, summed over the workers' instances.
pub struct PluginMetrics {
    /// The loaded plugins, as they are when a scrape reads them (an unloaded plugin's families go with it).
    pub plugins: LivePlugins,
}

/// One family: name, help, the value it reads.
type Family = (&'static str, &'static str, fn(&WasmPluginStats) -> u64);

const FAMILIES: [Family; 16] = [
    ("ringfwd_plugin_calls_total", "WebAssembly plugin calls (on_rtp, on_rtcp, on_timer).", |s| s.calls),
    ("ringfwd_plugin_timed_calls_total", "Calls that were timed (one in 64 per instance).", |s| s.timed_calls),
    ("ringfwd_plugin_drops_total", "Calls that answered drop.", |s| s.drops),
    ("ringfwd_plugin_consumed_total", "Calls that answered consumed.", |s| s.consumed),
    ("ringfwd_plugin_fuel_total", "Fuel the calls used (about one unit per WebAssembly instruction).", |s| s.fuel),
    ("ringfwd_plugin_failure_path_total", "Packets that took the failure path of a disabled instance.", |s| {
        s.failure_path
    }),
    ("ringfwd_plugin_oversize_total", "Packets longer than the packet buffer, passed without a call.", |s| s.oversize),
    ("ringfwd_plugin_instances_disabled_total", "Instances disabled by a fault or not instantiated.", |s| s.disabled),
    ("ringfwd_plugin_emitted_total", "Packets the plugins emitted that went out.", |s| s.emitted),
    ("ringfwd_plugin_emits_refused_total", "Packets the plugins emitted that were refused.", |s| s.emits_refused),
    ("ringfwd_plugin_rewrites_total", "Packets the plugins rewrote (passed on rewritten).", |s| s.rewrites),
    ("ringfwd_plugin_injected_total", "Packets the plugins injected into their stream.", |s| s.injected),
    ("ringfwd_plugin_async_queued_total", "Copies the workers queued for an async plugin's thread.", |s| {
        s.async_queued
    }),
    ("ringfwd_plugin_async_queue_full_total", "Copies an async plugin's full queue refused (dropped).", |s| {
        s.async_queue_full
    }),
    ("ringfwd_plugin_async_wakeups_total", "Times an async plugin's thread woke from sleep.", |s| s.async_wakeups),
    (
        "ringfwd_plugin_async_returns_dropped_total",
        "Packets an async plugin emitted that found its return queue full.",
        |s| s.async_returns_dropped,
    ),
];

impl ExportMetrics for PluginMetrics {
    fn export(&self, out: &mut Exposition) {
        let plugins = current(&self.plugins).wasm;
        if plugins.is_empty() {
            return;
        }
        let stats: Vec<(&str, WasmPluginStats)> = plugins.iter().map(|p| (p.name(), p.stats())).collect();
        for (name, help, value) in FAMILIES {
            out.family(name, Kind::Counter, help);
            for (plugin, stats) in &stats {
                out.sample(name, &[("plugin", plugin)], value(stats));
            }
        }
        let seconds = "ringfwd_plugin_call_seconds_total";
        out.family(seconds, Kind::Counter, "Time the timed calls took (divide by ringfwd_plugin_timed_calls_total).");
        for (plugin, stats) in &stats {
            out.sample(seconds, &[("plugin", plugin)], stats.timed_ns as f64 / 1e9);
        }
        let faults = "ringfwd_plugin_faults_total";
        out.family(faults, Kind::Counter, "Calls that faulted, by kind; each disables its instance.");
        for (plugin, stats) in &stats {
            for (kind, value) in [
                ("trap", stats.traps),
                ("out_of_fuel", stats.out_of_fuel),
                ("bad_verdict", stats.bad_verdicts),
                ("bad_rewrite", stats.bad_rewrites),
                ("instantiation", stats.instantiation_failures),
            ] {
                out.sample(faults, &[("plugin", plugin), ("kind", kind)], value);
            }
        }
        let instances = "ringfwd_plugin_instances";
        out.family(instances, Kind::Gauge, "Instances the workers made (one per plugin per worker).");
        for (plugin, stats) in &stats {
            out.sample(instances, &[("plugin", plugin)], stats.instances);
        }
    }
}

/// The exporter for the WebAssembly plugins of `live`, as they are at each scrape.
pub fn metrics(live: &LivePlugins) -> Arc<dyn ExportMetrics> {
    Arc::new(PluginMetrics { plugins: Arc::clone(live) })
}
