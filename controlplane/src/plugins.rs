//! The plugins a daemon runs: the native ones the program registered, plus the config's WebAssembly plugins
//! (`[[plugins]]`), read, compiled, checked against the ABI and registered at start-up.
//!
//! Owns [`Loaded`] and [`load`] (the daemon's start and `--check-config` / `--print-config` both load through it,
//! so a module the daemon would refuse is refused by the check too), and [`PluginMetrics`] (the WebAssembly
//! plugins' counters as Prometheus families). Must never run on a worker, and never load anything after start-up.

use std::sync::Arc;

use ringfwd_dataplane::control::Plugins;
use ringfwd_dataplane::wasm::{self, Engine, FailurePath, WasmPlugin, WasmPluginSpec, WasmPluginStats};
use ringfwd_proto::v1;
use ringfwd_tuning::{ChainSide, Config, ConfigError, PluginConfig};

use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::ExportMetrics;

/// The registry chains are checked against, and the WebAssembly plugins in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Native and WebAssembly plugins, by name.
    pub registry: Plugins,
    /// The WebAssembly plugins, in the config's order.
    pub wasm: Vec<WasmPlugin>,
}

/// `native` plus every `[[plugins]]` entry of `config`: each module read from its path, compiled, checked against
/// the ABI and instantiated once. A plugin that cannot be loaded is an error naming `plugins[N].path` (or `.name`
/// when its name is a native plugin's).
pub fn load(config: &Config, native: Plugins) -> Result<Loaded, ConfigError> {
    if config.plugins.is_empty() {
        return Ok(Loaded { registry: native, wasm: Vec::new() });
    }
    let engine = Engine::new().map_err(|e| ConfigError::invalid("plugins", config.plugins.len(), e))?;
    let mut registry = native;
    let mut loaded = Vec::with_capacity(config.plugins.len());
    for (index, plugin) in config.plugins.iter().enumerate() {
        let path_error =
            |reason: String| ConfigError::invalid(format!("plugins[{index}].path"), plugin.path.display(), reason);
        let module = std::fs::read(&plugin.path).map_err(|e| path_error(format!("cannot read it: {e}")))?;
        let wasm = engine.load(spec(plugin, module)).map_err(|e| path_error(e.to_string()))?;
        registry = wasm::register(registry, &wasm)
            .map_err(|e| ConfigError::invalid(format!("plugins[{index}].name"), &plugin.name, e.to_string()))?;
        tracing::info!(plugin = %plugin.name, path = %plugin.path.display(), "WebAssembly plugin loaded");
        loaded.push(wasm);
    }
    Ok(Loaded { registry, wasm: loaded })
}

impl Loaded {
    /// Every plugin as the API describes it: the native ones (names only), then the WebAssembly ones with their
    /// settings and counters.
    pub fn describe(&self) -> Vec<v1::Plugin> {
        let chains = |ingress: bool, egress: bool| {
            [("ingress", ingress), ("egress", egress)]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(c, _)| c.to_string())
                .collect()
        };
        let registry = &self.registry;
        let native = registry.names().filter(|name| !self.wasm.iter().any(|w| w.name() == *name)).map(|name| {
            let id = registry.find(name);
            let on = |side: fn(&Plugins, ringfwd_dataplane::control::PluginId) -> bool| {
                id.is_some_and(|id| side(registry, id))
            };
            v1::Plugin {
                name: name.to_owned(),
                kind: "native".into(),
                chains: chains(on(Plugins::runs_on_ingress), on(Plugins::runs_on_egress)),
                ..v1::Plugin::default()
            }
        });
        let wasm = self.wasm.iter().map(|plugin| {
            let (ingress, egress) = plugin.chains();
            let (fuel_per_call, memory_max_bytes) = plugin.limits();
            v1::Plugin {
                name: plugin.name().to_owned(),
                kind: "wasm".into(),
                chains: chains(ingress, egress),
                path: plugin.origin().to_owned(),
                on_failure: match plugin.on_failure() {
                    FailurePath::Forward => "forward".into(),
                    FailurePath::Drop => "drop".into(),
                },
                fuel_per_call,
                memory_max_bytes,
                counters: plugin.stats().named().iter().map(|(name, value)| (name.to_string(), *value)).collect(),
            }
        });
        native.chain(wasm).collect()
    }
}

fn spec(plugin: &PluginConfig, module: Vec<u8>) -> WasmPluginSpec {
    WasmPluginSpec {
        name: plugin.name.clone(),
        module,
        origin: plugin.path.display().to_string(),
        ingress: plugin.runs_on(ChainSide::Ingress),
        egress: plugin.runs_on(ChainSide::Egress),
        on_failure: plugin.on_failure.into(),
        fuel_per_call: plugin.fuel_per_call,
        memory_max_bytes: plugin.memory_max_bytes,
        params: plugin.params.clone(),
    }
}

/// The WebAssembly plugins' counters, per plugin, summed over the workers' instances.
pub struct PluginMetrics {
    /// The loaded plugins.
    pub plugins: Vec<WasmPlugin>,
}

/// One family: name, help, the value it reads.
type Family = (&'static str, &'static str, fn(&WasmPluginStats) -> u64);

const FAMILIES: [Family; 10] = [
    ("ringfwd_plugin_calls_total", "WebAssembly plugin calls (on_rtp, on_rtcp).", |s| s.calls),
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
];

impl ExportMetrics for PluginMetrics {
    fn export(&self, out: &mut Exposition) {
        if self.plugins.is_empty() {
            return;
        }
        let stats: Vec<(&str, WasmPluginStats)> = self.plugins.iter().map(|p| (p.name(), p.stats())).collect();
        for (name, help, value) in FAMILIES {
            out.family(name, Kind::Counter, help);
            for (plugin, stats) in &stats {
                out.sample(name, &[("plugin", plugin)], value(stats));
            }
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

/// The exporter for `loaded`'s WebAssembly plugins.
pub fn metrics(loaded: &Loaded) -> Arc<dyn ExportMetrics> {
    Arc::new(PluginMetrics { plugins: loaded.wasm.clone() })
}
