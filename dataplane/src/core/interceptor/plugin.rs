//! Native plugins: interceptors a program that links ringfwd as a library registers by name, next to the
//! built-ins.
//!
//! Owns [`Plugins`] (the registry: each plugin's name, the functions that bind an instance to a stream or a
//! subscription, and which attachment options it takes: [`Plugins::check_attach`]), [`PluginId`] (its index there)
//! and [`PluginList`] (the plugins one chain runs, in order, each with the chain's [`super::attach::Attach`], as
//! plain data a command can carry). A registry value is immutable: every worker holds the same shared copy, so
//! binding needs no lock and a packet touches none of this. Loading or unloading a plugin at run time makes a new
//! value (copy on write) that the control plane hands every worker in a command (`Command::SetPlugins`), applied
//! between packets. An unloaded plugin leaves a tombstone: [`Plugins::find`] no longer finds it, its slot is never
//! handed out again (so every [`PluginId`] a chain holds keeps naming the plugin it was bound to), at most
//! [`MAX_PLUGINS`] plugins are live and at most [`MAX_PLUGIN_SLOTS`] slots (live or tombstones) exist in a
//! process's life. Must never know the config or the API: names are checked here (syntax, clashes with the
//! built-ins), what a chain may name is checked by the control plane through [`Plugins::find`].
//!
//! # Where a plugin runs
//! Plugins take one documented position in each chain, after the built-ins that must see what the peer
//! actually sent and before those that must see exactly what goes out; several plugins on one chain run in the
//! order the chain names them:
//! - ingress: after `keyframe_throttle`, before `nack_cache` (so statistics, NACK generation and transport-wide
//!   feedback describe what the publisher sent, and the retransmission cache, the receiver reports and the tap
//!   see only what the plugins let through);
//! - egress: after `payload_type_filter`, before `stats` (so the subscriber's statistics and sender reports
//!   count only what the plugins let through).
//!
//! A plugin instance that panics is disabled: its packets pass it untouched from then on (fail-open), or are
//! dropped when the chain's attachment says `on_failure=drop` ([`super::attach`]), and the worker counts the failure
//! (`plugin_failures`). Nothing else in the worker is affected.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::attach::{Attach, Attachment};
use super::spec::{StreamInfo, SubscriptionInfo};
use super::{Interceptor, InterceptorKind};

/// The most plugins one chain may run.
pub const MAX_PLUGINS_PER_CHAIN: usize = 4;
/// The most plugins one registry may hold at once (live, tombstones not counted).
pub const MAX_PLUGINS: usize = 64;
/// The most slots one registry hands out in its life, tombstones of unloaded plugins included (ids are never
/// reused, so a daemon that loaded this many plugins refuses more until it restarts).
pub const MAX_PLUGIN_SLOTS: usize = 1024;
/// The longest plugin name, in bytes.
pub const MAX_PLUGIN_NAME_BYTES: usize = 32;

/// Binds a plugin's instance to one stream (its ingress chain), with that chain's options for it.
pub type IngressBinder = dyn Fn(&StreamInfo, &Attach) -> Box<dyn Interceptor> + Send + Sync;
/// Binds a plugin's instance to one subscription (its egress chain), with that chain's options for it.
pub type EgressBinder = dyn Fn(&SubscriptionInfo, &Attach) -> Box<dyn Interceptor> + Send + Sync;
/// Run on each worker thread when a registry without the plugin replaces one with it (it was unloaded): frees what
/// the plugin keeps per thread (a WebAssembly plugin's instance).
pub type UnloadHook = dyn Fn() + Send + Sync;

/// A registered plugin, by its index in the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(pub u16);

/// Why a plugin could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The name is empty, too long, or not lowercase ASCII letters, digits and `_` starting with a letter.
    #[error("plugin name {0:?} is not 1..={MAX_PLUGIN_NAME_BYTES} bytes of a-z, 0-9 and _ starting with a letter")]
    BadName(String),
    /// The name is a built-in's.
    #[error("plugin name {0:?} is a built-in interceptor's")]
    BuiltinName(String),
    /// The name is registered already for this chain.
    #[error("plugin {name:?} is registered twice for the {side} chain")]
    Duplicate {
        /// The name.
        name: String,
        /// `ingress` or `egress`.
        side: &'static str,
    },
    /// The registry is full.
    #[error("more than {MAX_PLUGINS} plugins registered")]
    TooMany,
    /// Every slot was handed out once (tombstones of unloaded plugins included).
    #[error("{MAX_PLUGIN_SLOTS} plugins were registered in this process's life (unloaded ones included): restart to load more")]
    SlotsUsed,
    /// No live plugin has the name.
    #[error("no plugin {0:?} is registered")]
    NotFound(String),
}

#[derive(Clone)]
struct Registered {
    name: String,
    ingress: Option<Arc<IngressBinder>>,
    egress: Option<Arc<EgressBinder>>,
    unload: Option<Arc<UnloadHook>>,
    /// It takes an attachment's `mode` and `async_pass` (a WebAssembly plugin); a native plugin takes only
    /// `on_failure`.
    offloads: bool,
    /// Unloaded: its slot stays so that ids are stable; nothing finds or binds it.
    tombstone: bool,
}

/// The registry of native plugins: cheap to clone (shared), immutable once the data plane starts.
#[derive(Clone, Default)]
pub struct Plugins {
    list: Arc<Vec<Registered>>,
}

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PartialEq for Plugins {
    fn eq(&self, other: &Plugins) -> bool {
        Arc::ptr_eq(&self.list, &other.list) || (self.list.is_empty() && other.list.is_empty())
    }
}

impl Eq for Plugins {}

impl Plugins {
    /// No plugins: only the built-ins.
    pub fn none() -> Plugins {
        Plugins::default()
    }

    /// Registers `bind` as plugin `name` on streams' ingress chains: each stream whose chain names it gets the
    /// instance `bind` returns for it (called when the stream is added, on the worker that owns it).
    pub fn with_ingress(
        self,
        name: &str,
        bind: impl Fn(&StreamInfo) -> Box<dyn Interceptor> + Send + Sync + 'static,
    ) -> Result<Plugins, PluginError> {
        let bind: Arc<IngressBinder> = Arc::new(move |info: &StreamInfo, _: &Attach| bind(info));
        self.register(name, "ingress", |entry| &mut entry.ingress, bind)
    }

    /// [`Plugins::with_ingress`] for a plugin that reads its attachments' options itself and takes `mode` and
    /// `async_pass` (a WebAssembly plugin).
    pub(crate) fn with_ingress_attached(
        self,
        name: &str,
        bind: impl Fn(&StreamInfo, &Attach) -> Box<dyn Interceptor> + Send + Sync + 'static,
    ) -> Result<Plugins, PluginError> {
        let bind: Arc<IngressBinder> = Arc::new(bind);
        self.register(name, "ingress", |entry| &mut entry.ingress, bind).and_then(|p| p.offloading(name))
    }

    /// [`Plugins::with_egress`] for a plugin that reads its attachments' options itself (see
    /// [`Plugins::with_ingress_attached`]).
    pub(crate) fn with_egress_attached(
        self,
        name: &str,
        bind: impl Fn(&SubscriptionInfo, &Attach) -> Box<dyn Interceptor> + Send + Sync + 'static,
    ) -> Result<Plugins, PluginError> {
        let bind: Arc<EgressBinder> = Arc::new(bind);
        self.register(name, "egress", |entry| &mut entry.egress, bind).and_then(|p| p.offloading(name))
    }

    fn offloading(mut self, name: &str) -> Result<Plugins, PluginError> {
        let id = self.find(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        Arc::make_mut(&mut self.list)[usize::from(id.0)].offloads = true;
        Ok(self)
    }

    /// Registers `bind` as plugin `name` on subscriptions' egress chains (the same name may also be registered for
    /// ingress).
    pub fn with_egress(
        self,
        name: &str,
        bind: impl Fn(&SubscriptionInfo) -> Box<dyn Interceptor> + Send + Sync + 'static,
    ) -> Result<Plugins, PluginError> {
        let bind: Arc<EgressBinder> = Arc::new(move |info: &SubscriptionInfo, _: &Attach| bind(info));
        self.register(name, "egress", |entry| &mut entry.egress, bind)
    }

    fn register<B: ?Sized>(
        mut self,
        name: &str,
        side: &'static str,
        slot: impl Fn(&mut Registered) -> &mut Option<Arc<B>>,
        bind: Arc<B>,
    ) -> Result<Plugins, PluginError> {
        check_name(name)?;
        let index = match self.find(name) {
            Some(id) => usize::from(id.0),
            None if self.live() == MAX_PLUGINS => return Err(PluginError::TooMany),
            None if self.list.len() == MAX_PLUGIN_SLOTS => return Err(PluginError::SlotsUsed),
            None => {
                let list = Arc::make_mut(&mut self.list);
                list.push(Registered {
                    name: name.to_owned(),
                    ingress: None,
                    egress: None,
                    unload: None,
                    offloads: false,
                    tombstone: false,
                });
                list.len() - 1
            }
        };
        let list = Arc::make_mut(&mut self.list);
        let binder = slot(&mut list[index]);
        if binder.is_some() {
            return Err(PluginError::Duplicate { name: name.to_owned(), side });
        }
        *binder = Some(bind);
        Ok(self)
    }

    /// Sets what each worker thread runs when plugin `name` is unloaded (see [`UnloadHook`]).
    pub fn with_unload_hook(
        mut self,
        name: &str,
        hook: impl Fn() + Send + Sync + 'static,
    ) -> Result<Plugins, PluginError> {
        let id = self.find(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        Arc::make_mut(&mut self.list)[usize::from(id.0)].unload = Some(Arc::new(hook));
        Ok(self)
    }

    /// The same registry without plugin `name`: its slot becomes a tombstone (its id is never handed out again,
    /// [`Plugins::name`] still answers its name for late reports). The caller makes sure no chain names it.
    pub fn without(mut self, name: &str) -> Result<Plugins, PluginError> {
        let id = self.find(name).ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        let entry = &mut Arc::make_mut(&mut self.list)[usize::from(id.0)];
        (entry.ingress, entry.egress, entry.tombstone) = (None, None, true);
        Ok(self)
    }

    /// On a worker thread, after `next` replaced this registry: runs the unload hook of every plugin live here and
    /// not in `next` (off the hot path: a command).
    pub fn retire_missing(&self, next: &Plugins) {
        for (index, entry) in self.list.iter().enumerate() {
            let gone = next.list.get(index).is_none_or(|now| now.tombstone);
            if !entry.tombstone && gone {
                if let Some(hook) = &entry.unload {
                    hook();
                }
            }
        }
    }

    /// The id the next new name gets.
    pub fn next_id(&self) -> PluginId {
        PluginId(self.list.len() as u16)
    }

    /// How many plugins are live (tombstones not counted).
    pub fn live(&self) -> usize {
        self.list.iter().filter(|entry| !entry.tombstone).count()
    }

    /// The live plugin called `name`, if registered.
    pub fn find(&self, name: &str) -> Option<PluginId> {
        let index = self.list.iter().position(|entry| !entry.tombstone && entry.name == name)?;
        u16::try_from(index).ok().map(PluginId)
    }

    /// Its name (empty for an id this registry did not hand out; an unloaded plugin's name for its tombstone).
    pub fn name(&self, id: PluginId) -> &str {
        self.list.get(usize::from(id.0)).map_or("", |entry| entry.name.as_str())
    }

    /// True if it is registered for ingress chains.
    pub fn runs_on_ingress(&self, id: PluginId) -> bool {
        self.list.get(usize::from(id.0)).is_some_and(|entry| entry.ingress.is_some())
    }

    /// True if it is registered for egress chains.
    pub fn runs_on_egress(&self, id: PluginId) -> bool {
        self.list.get(usize::from(id.0)).is_some_and(|entry| entry.egress.is_some())
    }

    /// Checks a chain's options for plugin `id`: a native plugin takes only `on_failure`. The reason, when refused.
    pub fn check_attach(&self, id: PluginId, attach: &Attach) -> Result<(), String> {
        let offloads = self.list.get(usize::from(id.0)).is_some_and(|entry| entry.offloads);
        if !offloads && (attach.mode.is_some() || attach.async_pass.is_some()) {
            let key = if attach.mode.is_some() { "mode" } else { "async_pass" };
            return Err(format!("plugin {} is native: it takes on_failure only, not {key}", self.name(id)));
        }
        Ok(())
    }

    /// Every live plugin's name, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().filter(|entry| !entry.tombstone).map(|entry| entry.name.as_str())
    }

    /// True when no plugin is live.
    pub fn is_empty(&self) -> bool {
        self.live() == 0
    }

    /// A new instance of the attachment's plugin bound to `info`.
    pub(crate) fn bind_ingress(&self, plugin: &Attachment, info: &StreamInfo) -> Bound {
        match self.list.get(usize::from(plugin.id.0)).and_then(|entry| entry.ingress.as_ref()) {
            Some(bind) => Bound::guarded(|| bind(info, &plugin.attach)),
            None => Bound::Unregistered,
        }
    }

    /// A new instance of the attachment's plugin bound to `info`.
    pub(crate) fn bind_egress(&self, plugin: &Attachment, info: &SubscriptionInfo) -> Bound {
        match self.list.get(usize::from(plugin.id.0)).and_then(|entry| entry.egress.as_ref()) {
            Some(bind) => Bound::guarded(|| bind(info, &plugin.attach)),
            None => Bound::Unregistered,
        }
    }
}

/// What binding a plugin to a stream or a subscription gave.
pub(crate) enum Bound {
    /// Its instance.
    Ready(Box<dyn Interceptor>),
    /// Its constructor panicked: the chain holds it as failed (packets pass it), and the worker counts it.
    Panicked,
    /// Not registered for that chain (the control plane lets no such chain through).
    Unregistered,
}

impl Bound {
    /// Runs a plugin's constructor under `catch_unwind`.
    fn guarded(bind: impl FnOnce() -> Box<dyn Interceptor>) -> Bound {
        match catch_unwind(AssertUnwindSafe(bind)) {
            Ok(member) => Bound::Ready(member),
            Err(_) => Bound::Panicked,
        }
    }
}

/// Stands in a chain for a plugin whose constructor panicked: does nothing.
#[derive(Debug)]
pub(crate) struct Unbound;

impl Interceptor for Unbound {}

/// Checks a plugin name's syntax and that it is no built-in's (the registry's rule, which the config's
/// `[[plugins]]` names are checked by too).
pub fn check_name(name: &str) -> Result<(), PluginError> {
    let well_formed = (1..=MAX_PLUGIN_NAME_BYTES).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(PluginError::BadName(name.to_owned()));
    }
    if InterceptorKind::parse(name).is_some() {
        return Err(PluginError::BuiltinName(name.to_owned()));
    }
    Ok(())
}

/// The plugins one chain runs, in order, each with the chain's options for it: plain data, so a command carries it
/// by value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginList {
    plugins: [Attachment; MAX_PLUGINS_PER_CHAIN],
    len: u8,
}

/// A chain may not run more than [`MAX_PLUGINS_PER_CHAIN`] plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginListFull;

impl PluginList {
    /// Appends `id` with the plugin's own settings; refused when the list is full.
    pub fn push(&mut self, id: PluginId) -> Result<(), PluginListFull> {
        self.attach(Attachment { id, attach: Attach::default() })
    }

    /// Appends `plugin` with its options; refused when the list is full.
    pub fn attach(&mut self, plugin: Attachment) -> Result<(), PluginListFull> {
        let slot = self.plugins.get_mut(usize::from(self.len)).ok_or(PluginListFull)?;
        *slot = plugin;
        self.len += 1;
        Ok(())
    }

    /// The plugins, in order.
    pub fn iter(&self) -> impl Iterator<Item = PluginId> + '_ {
        self.attachments().map(|plugin| plugin.id)
    }

    /// The plugins with their options, in order.
    pub fn attachments(&self) -> impl Iterator<Item = Attachment> + '_ {
        self.plugins[..usize::from(self.len)].iter().copied()
    }

    /// True when the chain runs no plugin.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Pass;
    impl Interceptor for Pass {}

    fn pass(_: &StreamInfo) -> Box<dyn Interceptor> {
        Box::new(Pass)
    }

    #[test]
    fn names_are_checked_and_each_side_registers_once() {
        let plugins = Plugins::none().with_ingress("max_pps", pass).expect("a good name");
        let id = plugins.find("max_pps").expect("registered");
        assert!(plugins.runs_on_ingress(id) && !plugins.runs_on_egress(id));
        let plugins = plugins.with_egress("max_pps", |_: &SubscriptionInfo| Box::new(Pass)).expect("the other side");
        assert!(plugins.runs_on_egress(id), "the same id on both sides");
        assert_eq!(plugins.names().collect::<Vec<_>>(), ["max_pps"]);
        let twice = plugins.clone().with_ingress("max_pps", pass);
        assert_eq!(twice.err(), Some(PluginError::Duplicate { name: "max_pps".into(), side: "ingress" }));
        for bad in ["", "Max", "9lives", "a-b", &"x".repeat(MAX_PLUGIN_NAME_BYTES + 1)] {
            assert_eq!(plugins.clone().with_ingress(bad, pass).err(), Some(PluginError::BadName(bad.into())));
        }
        assert_eq!(plugins.with_ingress("stats", pass).err(), Some(PluginError::BuiltinName("stats".into())));
    }

    #[test]
    fn a_native_plugin_takes_only_on_failure_from_an_attachment() {
        use super::super::attach::{AsyncPass, AttachMode, FailurePath};
        let plugins = Plugins::none().with_ingress("max_pps", pass).expect("registered");
        let id = plugins.find("max_pps").expect("found");
        let fail_closed = Attach { on_failure: Some(FailurePath::Drop), ..Attach::default() };
        assert_eq!(plugins.check_attach(id, &fail_closed), Ok(()));
        let offloaded = Attach { mode: Some(AttachMode::Async), ..Attach::default() };
        let refused = plugins.check_attach(id, &offloaded).expect_err("native plugins run inline");
        assert_eq!(refused, "plugin max_pps is native: it takes on_failure only, not mode");
        let consumed = Attach { async_pass: Some(AsyncPass::Consume), ..Attach::default() };
        assert!(plugins.check_attach(id, &consumed).is_err_and(|why| why.ends_with("not async_pass")));
    }

    #[test]
    fn a_registry_holds_at_most_max_plugins() {
        let mut plugins = Plugins::none();
        for i in 0..MAX_PLUGINS {
            plugins = plugins.with_ingress(&format!("p{i}"), pass).expect("room");
        }
        assert_eq!(plugins.with_ingress("one_more", pass).err(), Some(PluginError::TooMany));
    }

    #[test]
    fn an_unloaded_plugin_leaves_a_tombstone_and_ids_stay_stable() {
        let plugins = Plugins::none().with_ingress("a", pass).and_then(|p| p.with_ingress("b", pass)).expect("two");
        let (a, b) = (plugins.find("a").expect("a"), plugins.find("b").expect("b"));
        let without = plugins.clone().without("a").expect("a is registered");
        assert_eq!(without.find("a"), None, "an unloaded plugin is not found");
        assert_eq!(without.find("b"), Some(b), "the others keep their ids");
        assert!(!without.runs_on_ingress(a), "nothing binds a tombstone");
        assert_eq!(without.name(a), "a", "a late report still names it");
        assert_eq!((without.names().collect::<Vec<_>>(), without.live()), (vec!["b"], 1));
        assert_eq!(plugins.find("a"), Some(a), "the registry it was made from is unchanged");
        assert_eq!(without.clone().without("a").err(), Some(PluginError::NotFound("a".into())));
        let again = without.with_ingress("a", pass).expect("the name is free again");
        let new = again.find("a").expect("loaded again");
        assert!(new != a && new != b, "a new id: {new:?}, never the tombstone's");
        assert_eq!(again.next_id(), PluginId(3));
    }

    #[test]
    fn tombstones_do_not_count_as_live_but_slots_are_bounded() {
        let mut plugins = Plugins::none();
        for i in 0..MAX_PLUGIN_SLOTS {
            plugins =
                plugins.with_ingress(&format!("p{i}"), pass).expect("room").without(&format!("p{i}")).expect("in");
        }
        assert_eq!(plugins.live(), 0);
        assert!(plugins.is_empty());
        assert_eq!(plugins.with_ingress("one_more", pass).err(), Some(PluginError::SlotsUsed));
    }

    #[test]
    fn retiring_runs_the_unload_hook_of_each_plugin_gone() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let plugins = Plugins::none()
            .with_ingress("a", pass)
            .and_then(|p| {
                p.with_unload_hook("a", move || {
                    counted.fetch_add(1, Ordering::Relaxed);
                })
            })
            .and_then(|p| p.with_ingress("b", pass))
            .expect("registered");
        let same = plugins.clone().with_ingress("c", pass).expect("c");
        plugins.retire_missing(&same);
        assert_eq!(runs.load(Ordering::Relaxed), 0, "nothing was unloaded");
        let without = same.clone().without("a").expect("a");
        same.retire_missing(&without);
        assert_eq!(runs.load(Ordering::Relaxed), 1, "a's hook ran once");
        without.retire_missing(&without.clone().without("b").expect("b"));
        assert_eq!(runs.load(Ordering::Relaxed), 1, "a tombstone's hook never runs again");
    }

    #[test]
    fn a_plugin_list_keeps_order_and_its_bound() {
        let mut list = PluginList::default();
        assert!(list.is_empty());
        for i in (0..MAX_PLUGINS_PER_CHAIN as u16).rev() {
            list.push(PluginId(i)).expect("room");
        }
        assert_eq!(list.push(PluginId(9)), Err(PluginListFull));
        let order: Vec<u16> = list.iter().map(|id| id.0).collect();
        assert_eq!(order, [3, 2, 1, 0]);
    }
}
