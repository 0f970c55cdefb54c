//! The state store: one redb file of kept sessions and numbering.
//!
//! Owns [`StateStore`], what it keeps of a session ([`KeptSession`]: the registry's [`SessionState`] and its objects'
//! metadata) and the file's layout: table `sessions` (session id → JSON [`KeptSession`]), table
//! `numbering` (`<session>\0<subscription>` → JSON [`Kept`], so that a session's rows are one key range), table
//! `plugins` (plugin name → JSON [`KeptPlugin`] settings), table `plugin_modules` (plugin name → the module's bytes,
//! for a plugin the API loaded from bytes; at most [`crate::api::MAX_MODULE_BYTES`] each, so at most
//! `MAX_PLUGINS` × that in all) and table `meta` (`format` → [`FORMAT`]). Every write is one transaction committed durably (fsync) before it returns. Must
//! never hold a session of the config (those are skipped) nor interpret what it stores.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use serde::{Deserialize, Serialize};

use ringfwd_tuning::PluginConfig;

use super::numbering::Kept;
use crate::metadata::{Entry, Member, Version};
use crate::registry::SessionState;

/// A session as kept: its objects, and the metadata of those that have some.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptSession {
    /// The session and everything in it.
    pub session: SessionState,
    /// The metadata of the session and its members.
    pub metadata: Vec<KeptMetadata>,
}

/// One object's metadata, as [`crate::metadata::MetadataStore::export`] gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptMetadata {
    /// Which member of the session.
    pub member: Member,
    /// Its version.
    pub version: Version,
    /// Its entries, tombstones included.
    pub entries: Vec<Entry>,
}

/// A WebAssembly plugin the API loaded (`LoadPlugin`), as kept: loaded again at the next start, before the sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptPlugin {
    /// Its settings as checked (`path` is the module's path when `module_bytes` is `None`).
    pub settings: PluginConfig,
    /// The module, when it was given as bytes (else it is read from `settings.path` again).
    pub module_bytes: Option<Vec<u8>>,
}

/// What the `plugins` table holds of a [`KeptPlugin`] (its bytes are in `plugin_modules`).
#[derive(Serialize, Deserialize)]
struct PluginRow {
    settings: PluginConfig,
    inline: bool,
}

/// The store's file name in the state directory.
pub const STATE_FILE: &str = "state.redb";

/// The layout version this build writes and reads.
const FORMAT: u64 = 1;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const NUMBERING: TableDefinition<&str, &[u8]> = TableDefinition::new("numbering");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
const PLUGIN_MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_modules");

/// The state store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error("state store {}: {source}", path.display())]
    Store {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<redb::Error>,
    },
    /// The state directory could not be created.
    #[error("state directory {}: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be decoded, or the file is of another format.
    #[error("state store {}: {what}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the record.
        what: String,
    },
    /// A kept object could not be restored: the registry or a worker refused it.
    #[error("restoring {object} from {}: {message} (the config no longer admits it: fix the config, or set state.persist = false, or move the file away to start empty)", path.display())]
    Restore {
        /// The file.
        path: PathBuf,
        /// `session S`, `subscription S/X`, ...
        object: String,
        /// The status message the API would answer.
        message: String,
    },
}

/// What the store held at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every kept session, by id.
    pub sessions: Vec<KeptSession>,
    /// What each subscription last sent, by `(session, subscription)`.
    pub numbering: BTreeMap<(String, String), Kept>,
    /// The plugins the API loaded, by name.
    pub plugins: Vec<KeptPlugin>,
}

/// The open store. See the module docs.
#[derive(Debug)]
pub struct StateStore {
    /// `None` once closed (handed over to a process taking over).
    db: std::sync::Mutex<Option<Database>>,
    path: PathBuf,
    /// The config's sessions: never kept.
    config_sessions: BTreeSet<String>,
}

impl StateStore {
    /// Opens (creating it and the directory when missing) the store in `directory`, keeping no session of
    /// `config_sessions`. Fails when another process has it open.
    pub fn open(directory: &Path, config_sessions: BTreeSet<String>) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(directory)
            .map_err(|source| StateError::Directory { path: directory.to_owned(), source })?;
        let path = directory.join(STATE_FILE);
        let db = Database::create(&path).map_err(|e| store_error(&path, e))?;
        let store = StateStore { db: std::sync::Mutex::new(Some(db)), path, config_sessions };
        store.check_format()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> Result<(), StateError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            let found = meta.get("format").map_err(|e| self.error(e))?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("format", FORMAT).map_err(|e| self.error(e))?;
                }
                Some(FORMAT) => {}
                Some(other) => {
                    return Err(self.format(format!("format {other}, this ringfwd reads format {FORMAT}")));
                }
            }
            txn.open_table(SESSIONS).map_err(|e| self.error(e))?;
            txn.open_table(NUMBERING).map_err(|e| self.error(e))?;
            txn.open_table(PLUGINS).map_err(|e| self.error(e))?;
            txn.open_table(PLUGIN_MODULES).map_err(|e| self.error(e))?;
            Ok(())
        })
    }

    /// Everything kept, for the restore (the config's sessions left out; numbering rows of subscriptions no kept
    /// session has are read too, and ignored by the restore).
    pub fn load(&self) -> Result<Loaded, StateError> {
        let db = self.db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_read().map_err(|e| self.error(e))?;
        let sessions_table = txn.open_table(SESSIONS).map_err(|e| self.error(e))?;
        let mut loaded = Loaded::default();
        for row in sessions_table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            let kept: KeptSession = serde_json::from_slice(value.value())
                .map_err(|e| self.format(format!("session {}: {e}", key.value())))?;
            if !self.config_sessions.contains(&kept.session.session_id) {
                loaded.sessions.push(kept);
            }
        }
        let numbering_table = txn.open_table(NUMBERING).map_err(|e| self.error(e))?;
        for row in numbering_table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            let Some((session, subscription)) = key.value().split_once('\0') else {
                continue;
            };
            let kept: Kept = serde_json::from_slice(value.value())
                .map_err(|e| self.format(format!("numbering of {session}/{subscription}: {e}")))?;
            loaded.numbering.insert((session.to_owned(), subscription.to_owned()), kept);
        }
        let plugins_table = txn.open_table(PLUGINS).map_err(|e| self.error(e))?;
        let modules_table = txn.open_table(PLUGIN_MODULES).map_err(|e| self.error(e))?;
        for row in plugins_table.iter().map_err(|e| self.error(e))? {
            let (key, value) = row.map_err(|e| self.error(e))?;
            let name = key.value();
            let row: PluginRow =
                serde_json::from_slice(value.value()).map_err(|e| self.format(format!("plugin {name}: {e}")))?;
            let module_bytes = match row.inline {
                true => Some(
                    modules_table
                        .get(name)
                        .map_err(|e| self.error(e))?
                        .ok_or_else(|| self.format(format!("plugin {name}: its module is missing")))?
                        .value()
                        .to_vec(),
                ),
                false => None,
            };
            loaded.plugins.push(KeptPlugin { settings: row.settings, module_bytes });
        }
        Ok(loaded)
    }

    /// Writes `plugin` (durably): its settings, and its module when it was given as bytes.
    pub fn save_plugin(&self, plugin: &KeptPlugin) -> Result<(), StateError> {
        let name = plugin.settings.name.as_str();
        let row = PluginRow { settings: plugin.settings.clone(), inline: plugin.module_bytes.is_some() };
        let value = serde_json::to_vec(&row).map_err(|e| self.format(format!("plugin {name}: {e}")))?;
        self.write(|txn| {
            let mut plugins = txn.open_table(PLUGINS).map_err(|e| self.error(e))?;
            plugins.insert(name, value.as_slice()).map_err(|e| self.error(e))?;
            let mut modules = txn.open_table(PLUGIN_MODULES).map_err(|e| self.error(e))?;
            match &plugin.module_bytes {
                Some(bytes) => modules.insert(name, bytes.as_slice()).map(drop),
                None => modules.remove(name).map(drop),
            }
            .map_err(|e| self.error(e))?;
            Ok(())
        })
    }

    /// Forgets plugin `name` and its module (durably).
    pub fn delete_plugin(&self, name: &str) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(PLUGINS).map_err(|e| self.error(e))?.remove(name).map_err(|e| self.error(e))?;
            txn.open_table(PLUGIN_MODULES).map_err(|e| self.error(e))?.remove(name).map_err(|e| self.error(e))?;
            Ok(())
        })
    }

    /// Writes `state` (durably), dropping the numbering of its subscriptions that are gone. A session of the config is
    /// not kept.
    pub fn save_session(&self, kept: &KeptSession) -> Result<(), StateError> {
        let state = &kept.session;
        if self.config_sessions.contains(&state.session_id) {
            return Ok(());
        }
        let value = serde_json::to_vec(kept).map_err(|e| self.format(format!("session {}: {e}", state.session_id)))?;
        let alive: BTreeSet<&str> = state.subscriptions.iter().map(|s| s.subscription_id.as_str()).collect();
        self.write(|txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(|e| self.error(e))?;
            sessions.insert(state.session_id.as_str(), value.as_slice()).map_err(|e| self.error(e))?;
            let mut numbering = txn.open_table(NUMBERING).map_err(|e| self.error(e))?;
            let (from, to) = session_range(&state.session_id);
            numbering
                .retain_in(from.as_str()..to.as_str(), |key, _| {
                    key.split_once('\0').is_some_and(|(_, sub)| alive.contains(sub))
                })
                .map_err(|e| self.error(e))?;
            Ok(())
        })
    }

    /// Forgets session `session_id` and its numbering (durably).
    pub fn delete_session(&self, session_id: &str) -> Result<(), StateError> {
        self.write(|txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(|e| self.error(e))?;
            sessions.remove(session_id).map_err(|e| self.error(e))?;
            let mut numbering = txn.open_table(NUMBERING).map_err(|e| self.error(e))?;
            let (from, to) = session_range(session_id);
            numbering.retain_in(from.as_str()..to.as_str(), |_, _| false).map_err(|e| self.error(e))?;
            Ok(())
        })
    }

    /// Writes what the subscriptions `rows` name last sent (durably): `(session, subscription, kept)`.
    pub fn keep_numbering(&self, rows: &[(String, String, Kept)]) -> Result<(), StateError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            let mut numbering = txn.open_table(NUMBERING).map_err(|e| self.error(e))?;
            for (session, subscription, kept) in rows {
                let value = serde_json::to_vec(kept).map_err(|e| self.format(format!("numbering: {e}")))?;
                numbering
                    .insert(numbering_key(session, subscription).as_str(), value.as_slice())
                    .map_err(|e| self.error(e))?;
            }
            Ok(())
        })
    }

    /// Closes the file (releasing its lock, for a process taking over); every later read or write fails.
    pub fn close(&self) {
        if let Ok(mut db) = self.db.lock() {
            db.take();
        }
    }

    /// Runs `change` in one write transaction and commits it durably (not at all when `change` fails).
    fn write(&self, change: impl FnOnce(&redb::WriteTransaction) -> Result<(), StateError>) -> Result<(), StateError> {
        let db = self.db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write().map_err(|e| self.error(e))?;
        change(&txn)?;
        txn.commit().map_err(|e| self.error(e))
    }

    fn db(&self) -> Result<std::sync::MutexGuard<'_, Option<Database>>, StateError> {
        self.db.lock().map_err(|_| self.format("a writer panicked".into()))
    }

    fn closed(&self) -> StateError {
        self.format("closed: the state was handed over to the process that took over".into())
    }

    fn error(&self, e: impl Into<redb::Error>) -> StateError {
        store_error(&self.path, e)
    }

    fn format(&self, what: String) -> StateError {
        StateError::Format { path: self.path.clone(), what }
    }
}

fn store_error(path: &Path, e: impl Into<redb::Error>) -> StateError {
    StateError::Store { path: path.to_owned(), source: Box::new(e.into()) }
}

/// The numbering row key of a subscription: its session's rows are one range (ids never hold `\0`).
fn numbering_key(session: &str, subscription: &str) -> String {
    format!("{session}\0{subscription}")
}

/// The key range of every numbering row of `session`.
fn session_range(session: &str) -> (String, String) {
    (format!("{session}\0"), format!("{session}\u{1}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{EndpointState, SubscriptionState};

    fn session(id: &str, subscriptions: &[&str]) -> KeptSession {
        let metadata = vec![KeptMetadata {
            member: Member::Endpoint("a".into()),
            version: Version { wall_us: 5, counter: 1, node_id: 2 },
            entries: vec![Entry { key: "app.k".into(), version: Version::ZERO, value: None, set_once: false }],
        }];
        KeptSession { session: state(id, subscriptions), metadata }
    }

    fn state(id: &str, subscriptions: &[&str]) -> SessionState {
        SessionState {
            session_id: id.to_owned(),
            created_unix_ms: 7,
            endpoints: vec![EndpointState {
                endpoint_id: "a".into(),
                media_address: Some("127.0.0.1:5000".parse().unwrap()),
                latching: true,
                latched_address: Some("127.0.0.1:6000".parse().unwrap()),
                rtcp_address: None,
                rtcp_port_plus_one: false,
            }],
            streams: Vec::new(),
            subscriptions: subscriptions
                .iter()
                .map(|id| SubscriptionState {
                    subscription_id: (*id).to_owned(),
                    stream_id: "v".into(),
                    endpoint_id: "a".into(),
                    out_ssrc: 0,
                    payload_type_map: vec![(96, 97)],
                    paused: false,
                    seq_offset: 0,
                    ts_offset: 0,
                    interceptors: vec!["stats".into()],
                    rtx: None,
                })
                .collect(),
        }
    }

    fn kept(seq: u16) -> Kept {
        Kept { seq, ts: 9, unix_ns: 1_000, rate_pps: 50.0, offsets: Some((1, 2)), exact: false }
    }

    #[test]
    fn what_is_written_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        store.save_session(&session("s1", &["x", "y"])).unwrap();
        store.save_session(&session("s2", &[])).unwrap();
        store.keep_numbering(&[("s1".into(), "x".into(), kept(5)), ("s1".into(), "y".into(), kept(6))]).unwrap();
        drop(store);
        let loaded = StateStore::open(dir.path(), BTreeSet::new()).unwrap().load().unwrap();
        assert_eq!(loaded.sessions, [session("s1", &["x", "y"]), session("s2", &[])]);
        assert_eq!(loaded.numbering[&("s1".to_owned(), "y".to_owned())], kept(6));
    }

    #[test]
    fn a_saved_session_drops_the_numbering_of_gone_subscriptions_and_a_delete_drops_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        store.save_session(&session("s", &["x", "y"])).unwrap();
        store.save_session(&session("s.2", &["x"])).unwrap();
        let rows = ["x", "y"].map(|sub| ("s".to_owned(), sub.to_owned(), kept(1)));
        store.keep_numbering(&rows).unwrap();
        store.keep_numbering(&[("s.2".into(), "x".into(), kept(2))]).unwrap();
        store.save_session(&session("s", &["y"])).unwrap();
        let numbering = store.load().unwrap().numbering;
        let keys: Vec<_> = numbering.keys().map(|(a, b)| format!("{a}/{b}")).collect();
        assert_eq!(keys, ["s/y", "s.2/x"], "only s/x went; the other session's rows stay");
        store.delete_session("s").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.sessions, [session("s.2", &["x"])]);
        assert_eq!(loaded.numbering.len(), 1);
    }

    #[test]
    fn plugins_are_kept_with_their_inline_module_and_mode_and_forgotten_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        let settings =
            |name: &str, path: &str| PluginConfig { name: name.into(), path: path.into(), ..Default::default() };
        let by_path = KeptPlugin { settings: settings("by_path", "/opt/p.wasm"), module_bytes: None };
        let inline = KeptPlugin {
            settings: PluginConfig {
                mode: ringfwd_tuning::RunMode::Async,
                async_queue_packets: Some(64),
                async_pass: Some(ringfwd_tuning::AsyncPassMode::Consume),
                ..settings("inline", "")
            },
            module_bytes: Some(b"(module)".to_vec()),
        };
        store.save_plugin(&by_path).unwrap();
        store.save_plugin(&inline).unwrap();
        drop(store);
        let store = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        assert_eq!(store.load().unwrap().plugins, [by_path.clone(), inline]);
        store.delete_plugin("inline").unwrap();
        assert_eq!(store.load().unwrap().plugins, [by_path]);
    }

    #[test]
    fn config_sessions_are_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), BTreeSet::from(["static".to_owned()])).unwrap();
        store.save_session(&session("static", &[])).unwrap();
        assert!(store.load().unwrap().sessions.is_empty());
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_the_file_and_served_once_it_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        first.save_session(&session("s", &[])).unwrap();
        let second = StateStore::open(dir.path(), BTreeSet::new()).unwrap_err();
        assert!(second.to_string().contains(STATE_FILE), "{second}");
        first.close();
        assert!(first.save_session(&session("t", &[])).unwrap_err().to_string().contains("closed"));
        let second = StateStore::open(dir.path(), BTreeSet::new()).unwrap();
        assert_eq!(second.load().unwrap().sessions, [session("s", &[])]);
    }
}
