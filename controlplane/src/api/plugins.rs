//! `LoadPlugin` and `UnloadPlugin`: WebAssembly plugins loaded and unloaded while the node runs.
//!
//! Owns the translation of a `LoadPluginRequest` into the config's own [`PluginConfig`] (checked by the config's
//! rules, [`ringfwd_tuning::check_plugin`] and [`ringfwd_tuning::check_plugin_path`], then loaded by the one loader,
//! [`crate::plugins::compile`]), and the two changes of the registry of plugins: each makes a new registry, hands
//! it to every worker (`Command::SetPlugins`, each acknowledged; undone on the workers that had it when one fails),
//! then replaces the registry's and the node's view, then keeps it in the state store, all under the registry lock,
//! so no chain is checked against a registry the workers do not have yet. Reading and compiling a module happens
//! before the lock, on a blocking thread.
//!
//! Rules: a name a plugin has (native, of the config, loaded before) is ALREADY_EXISTS; a built-in's name is
//! INVALID_ARGUMENT (the name rule of the config). Only plugins the API loaded can be unloaded (native and config
//! plugins are FAILED_PRECONDITION: their source is the binary or the config file), and only when no stream's or
//! subscription's chain names them (FAILED_PRECONDITION listing each). Must never run on a worker, and never hold
//! the node's plugin view lock across an `.await`.

use ringfwd_dataplane::control::{Command, PluginError, Plugins};
use ringfwd_dataplane::wasm::{self, Engine, WasmPlugin};
use ringfwd_proto::v1;
use ringfwd_tuning::{
    check_plugin, check_plugin_path, AsyncPassMode, ConfigError, OnFailure, PluginChain, PluginConfig, RunMode,
};
use tonic::Status;

use super::{status, Api};
use crate::commands::ExecError;
use crate::state::KeptPlugin;

/// The largest module `LoadPlugin` takes, as `module_bytes` or from a `path`.
pub const MAX_MODULE_BYTES: usize = 16 << 20;

/// The largest request the API decodes: a module of [`MAX_MODULE_BYTES`] and the rest of its request.
pub const MAX_REQUEST_BYTES: usize = MAX_MODULE_BYTES + (64 << 10);

impl Api {
    /// `LoadPlugin`: the request checked as a `[[plugins]]` entry, then loaded (see the module docs).
    pub(super) async fn load_plugin_rpc(&self, request: v1::LoadPluginRequest) -> Result<v1::Plugin, Status> {
        self.load_plugin(from_wire(request)?).await
    }

    /// Loads `plugin` (its settings checked already), hands it to every worker and keeps it (when a store is
    /// attached); the restore loads the kept plugins through here too.
    pub async fn load_plugin(&self, plugin: KeptPlugin) -> Result<v1::Plugin, Status> {
        // Said before the module is read and compiled (and checked again under the lock, below).
        taken(self.registry.lock().await.plugins(), &plugin.settings.name)?;
        let engine = self.plugin_engine()?;
        let settings = plugin.settings.clone();
        let inline = plugin.module_bytes.clone();
        let compiled = tokio::task::spawn_blocking(move || -> Result<WasmPlugin, Status> {
            let (module, origin, field) = match inline {
                Some(bytes) => {
                    let origin = format!("<module_bytes: {} bytes>", bytes.len());
                    (bytes, origin, "module_bytes")
                }
                None => {
                    let path = &settings.path;
                    let unreadable =
                        |e: std::io::Error| status::invalid("path", format!("{}: cannot read it: {e}", path.display()));
                    let length = std::fs::metadata(path).map_err(unreadable)?.len();
                    if length > MAX_MODULE_BYTES as u64 {
                        let reason = format!("{}: {length} bytes, more than {MAX_MODULE_BYTES}", path.display());
                        return Err(status::invalid("path", reason));
                    }
                    let bytes = std::fs::read(path).map_err(unreadable)?;
                    (bytes, path.display().to_string(), "path")
                }
            };
            crate::plugins::compile(&engine, &settings, module, origin.clone())
                .map_err(|e| status::invalid(field, format!("{origin}: {e}")))
        })
        .await
        .map_err(|e| Status::internal(format!("loading the plugin failed: {e}")))??;

        let name = plugin.settings.name.as_str();
        let mut registry = self.registry.lock().await;
        let old = registry.plugins().clone();
        taken(&old, name)?;
        let new = wasm::register(old.clone(), &compiled).map_err(|e| registration(name, e))?;
        self.set_worker_plugins(&old, &new).await?;
        registry.set_plugins(new.clone());
        let described = {
            let mut live = self.node.plugins.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            live.registry = new;
            live.wasm.push(compiled.clone());
            live.from_api.insert(name.to_owned());
            live.describe_wasm(&compiled)
        };
        tracing::info!(plugin = name, origin = compiled.origin(), "WebAssembly plugin loaded through the API");
        if let Some(store) = self.state.get() {
            store.save_plugin(&plugin).map_err(|error| {
                tracing::error!(%error, plugin = name, "a plugin is loaded but could not be kept");
                Status::internal(format!("the plugin is loaded but could not be kept across a restart: {error}"))
            })?;
        }
        Ok(described)
    }

    /// `UnloadPlugin`: see the module docs.
    pub(super) async fn unload_plugin_rpc(&self, name: &str) -> Result<v1::UnloadPluginResponse, Status> {
        let mut registry = self.registry.lock().await;
        let old = registry.plugins().clone();
        if old.find(name).is_none() {
            return Err(Status::not_found(format!("no plugin {name:?} is loaded")));
        }
        let from_api = crate::plugins::current(&self.node.plugins).from_api.contains(name);
        if !from_api {
            return Err(Status::failed_precondition(format!(
                "plugin {name:?} is native or comes from the config file ([[plugins]]): only plugins loaded through \
                 the API can be unloaded"
            )));
        }
        let naming = registry.chains_naming(name);
        if !naming.is_empty() {
            return Err(status::failed_precondition(format!(
                "plugin {name:?} is still named by {}: detach it first (UpdateStream / UpdateSubscription)",
                naming.join(", ")
            )));
        }
        let new = old.clone().without(name).map_err(|e| Status::not_found(e.to_string()))?;
        self.set_worker_plugins(&old, &new).await?;
        registry.set_plugins(new.clone());
        let last = {
            let mut live = self.node.plugins.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            live.registry = new;
            let index = live.wasm.iter().position(|plugin| plugin.name() == name);
            let last = index.map(|index| live.wasm.remove(index));
            let described = last.as_ref().map(|plugin| live.describe_wasm(plugin));
            live.from_api.remove(name);
            described
        };
        tracing::info!(plugin = name, "WebAssembly plugin unloaded through the API");
        if let Some(store) = self.state.get() {
            store.delete_plugin(name).map_err(|error| {
                tracing::error!(%error, plugin = name, "a plugin is unloaded but could still come back at a restart");
                Status::internal(format!("the plugin is unloaded but could not be forgotten by the store: {error}"))
            })?;
        }
        Ok(v1::UnloadPluginResponse { plugin: last })
    }

    /// The process's WebAssembly engine, made on first use.
    fn plugin_engine(&self) -> Result<Engine, Status> {
        let mut live = self.node.plugins.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(engine) = &live.engine {
            return Ok(engine.clone());
        }
        let engine = Engine::new().map_err(|e| Status::internal(format!("no WebAssembly engine on this host: {e}")))?;
        live.engine = Some(engine.clone());
        Ok(engine)
    }

    /// Hands `new` to every worker, each acknowledging before the next; when one does not, the workers that may
    /// have it get `old` back, and the call answers the failure.
    async fn set_worker_plugins(&self, old: &Plugins, new: &Plugins) -> Result<(), Status> {
        for worker in 0..self.node.workers.len() {
            let command = Command::SetPlugins { plugins: new.clone() };
            if let Err(e) = self.client.execute(worker, command).await {
                // A timed-out command is still queued to its worker and applied late: that worker is undone too.
                let reached = if matches!(e, ExecError::Timeout { .. }) { worker + 1 } else { worker };
                for undo in 0..reached {
                    let command = Command::SetPlugins { plugins: old.clone() };
                    if let Err(e) = self.client.execute(undo, command).await {
                        tracing::warn!(worker = undo, error = %e, "could not give a worker its plugins back");
                    }
                }
                return Err(status::exec(e));
            }
        }
        Ok(())
    }
}

/// ALREADY_EXISTS when a plugin in `plugins` is called `name`.
fn taken(plugins: &Plugins, name: &str) -> Result<(), Status> {
    match plugins.find(name) {
        Some(_) => Err(Status::already_exists(format!("plugin {name:?} exists already (unload it first)"))),
        None => Ok(()),
    }
}

/// A registration the registry refused.
fn registration(name: &str, e: PluginError) -> Status {
    match e {
        PluginError::BadName(_) | PluginError::BuiltinName(_) => status::invalid("name", e),
        PluginError::Duplicate { .. } => Status::already_exists(format!("plugin {name:?} exists already: {e}")),
        PluginError::TooMany | PluginError::SlotsUsed => Status::resource_exhausted(e.to_string()),
        PluginError::NotFound(_) => Status::internal(e.to_string()),
    }
}

/// The request as a `[[plugins]]` entry, checked by the config's rules (a field the request leaves at its zero value
/// takes the config's default), with its module bytes when given inline.
pub fn from_wire(request: v1::LoadPluginRequest) -> Result<KeptPlugin, Status> {
    use v1::load_plugin_request::Module;
    let mut settings = PluginConfig { name: request.name, ..PluginConfig::default() };
    if !request.chains.is_empty() {
        settings.chains = request
            .chains
            .iter()
            .map(|chain| match chain.as_str() {
                "ingress" => Ok(PluginChain::Ingress),
                "egress" => Ok(PluginChain::Egress),
                other => Err(status::invalid("chains", format!("{other:?} is not ingress or egress"))),
            })
            .collect::<Result<_, _>>()?;
    }
    settings.on_failure = match request.on_failure.as_str() {
        "" | "forward" => OnFailure::Forward,
        "drop" => OnFailure::Drop,
        other => return Err(status::invalid("on_failure", format!("{other:?} is not forward or drop"))),
    };
    if request.fuel_per_call != 0 {
        settings.fuel_per_call = request.fuel_per_call;
    }
    if request.memory_max_bytes != 0 {
        settings.memory_max_bytes = request.memory_max_bytes;
    }
    settings.params = request.params.into_iter().collect();
    settings.mode = match request.mode.as_str() {
        "" | "sync" => RunMode::Sync,
        "async" => RunMode::Async,
        other => return Err(status::invalid("mode", format!("{other:?} is not sync or async"))),
    };
    if request.async_queue_packets != 0 {
        settings.async_queue_packets = Some(request.async_queue_packets);
    }
    if request.async_wake_delay_us != 0 {
        settings.async_wake_delay_us = Some(request.async_wake_delay_us);
    }
    settings.async_pass = match request.async_pass.as_str() {
        "" => None,
        "forward" => Some(AsyncPassMode::Forward),
        "consume" => Some(AsyncPassMode::Consume),
        other => return Err(status::invalid("async_pass", format!("{other:?} is not forward or consume"))),
    };
    let field = |field: &str| field.to_owned();
    check_plugin(&settings, &field).map_err(refused)?;
    let module_bytes = match request.module {
        Some(Module::Path(path)) => {
            settings.path = path.into();
            check_plugin_path(&settings.path, &field).map_err(refused)?;
            None
        }
        Some(Module::ModuleBytes(bytes)) if bytes.is_empty() => {
            return Err(status::invalid("module_bytes", "empty: give a WebAssembly binary or WAT text"));
        }
        Some(Module::ModuleBytes(bytes)) if bytes.len() > MAX_MODULE_BYTES => {
            let reason = format!("{} bytes, more than the {MAX_MODULE_BYTES} a module may have", bytes.len());
            return Err(status::invalid("module_bytes", reason));
        }
        Some(Module::ModuleBytes(bytes)) => Some(bytes),
        None => return Err(status::invalid("module", "give path or module_bytes")),
    };
    Ok(KeptPlugin { settings, module_bytes })
}

/// A settings check that failed, as INVALID_ARGUMENT naming the field.
fn refused(e: ConfigError) -> Status {
    match e {
        ConfigError::Invalid { key, value, reason } => status::invalid(&key, format!("{value}: {reason}")),
        other => Status::invalid_argument(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn request(name: &str) -> v1::LoadPluginRequest {
        v1::LoadPluginRequest {
            name: name.into(),
            module: Some(v1::load_plugin_request::Module::Path("/opt/p.wasm".into())),
            ..Default::default()
        }
    }

    fn refusal(request: v1::LoadPluginRequest) -> (Code, String) {
        let status = from_wire(request).expect_err("refused");
        (status.code(), status.message().to_owned())
    }

    #[test]
    fn a_request_takes_the_config_defaults_and_rules() {
        let kept = from_wire(request("good")).expect("a good request");
        assert_eq!(
            kept.settings,
            PluginConfig { name: "good".into(), path: "/opt/p.wasm".into(), ..Default::default() }
        );
        assert_eq!(kept.module_bytes, None);
        let asynced = v1::LoadPluginRequest {
            mode: "async".into(),
            async_queue_packets: 64,
            async_pass: "consume".into(),
            ..request("late")
        };
        let kept = from_wire(asynced).expect("an async request");
        assert_eq!(
            (kept.settings.mode, kept.settings.async_queue_packets, kept.settings.async_pass),
            (RunMode::Async, Some(64), Some(AsyncPassMode::Consume))
        );
        for (bad, field) in [
            (request("Bad"), "invalid name"),
            (request("stats"), "invalid name"),
            (
                v1::LoadPluginRequest {
                    module: Some(v1::load_plugin_request::Module::Path("p.wasm".into())),
                    ..request("a")
                },
                "invalid path",
            ),
            (v1::LoadPluginRequest { module: None, ..request("a") }, "invalid module"),
            (
                v1::LoadPluginRequest {
                    module: Some(v1::load_plugin_request::Module::ModuleBytes(Vec::new())),
                    ..request("a")
                },
                "invalid module_bytes",
            ),
            (v1::LoadPluginRequest { chains: vec!["sideways".into()], ..request("a") }, "invalid chains"),
            (
                v1::LoadPluginRequest { chains: vec!["egress".into(), "egress".into()], ..request("a") },
                "invalid chains",
            ),
            (v1::LoadPluginRequest { on_failure: "explode".into(), ..request("a") }, "invalid on_failure"),
            (v1::LoadPluginRequest { fuel_per_call: u64::MAX, ..request("a") }, "invalid fuel_per_call"),
            (v1::LoadPluginRequest { memory_max_bytes: 1, ..request("a") }, "invalid memory_max_bytes"),
            (v1::LoadPluginRequest { mode: "later".into(), ..request("a") }, "invalid mode"),
            (v1::LoadPluginRequest { async_pass: "consume".into(), ..request("a") }, "invalid async_pass"),
            (v1::LoadPluginRequest { async_queue_packets: 8, ..request("a") }, "invalid async_queue_packets"),
            (v1::LoadPluginRequest { async_wake_delay_us: 8, ..request("a") }, "invalid async_wake_delay_us"),
            (
                v1::LoadPluginRequest { mode: "async".into(), async_wake_delay_us: 1 << 20, ..request("a") },
                "invalid async_wake_delay_us",
            ),
            (
                v1::LoadPluginRequest { mode: "async".into(), async_queue_packets: 1 << 20, ..request("a") },
                "invalid async_queue_packets",
            ),
            (
                v1::LoadPluginRequest { mode: "async".into(), async_pass: "hold".into(), ..request("a") },
                "invalid async_pass",
            ),
            (
                v1::LoadPluginRequest { params: [("a b".into(), String::new())].into(), ..request("a") },
                "invalid params",
            ),
        ] {
            let (code, message) = refusal(bad);
            assert_eq!(code, Code::InvalidArgument, "{message}");
            assert!(message.starts_with(field), "{message:?} does not name {field:?}");
        }
    }
}
