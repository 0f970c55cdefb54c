//! The Redis directory: the nodes of a cluster share one Redis server.
//!
//! Owns [`RedisDirectory`] and the layout of its keys under `cluster.namespace` (`ns`):
//! - `ns:node:<id>`: a node's [`NodeRecord`] as JSON, set with a time to live of `cluster.lease_ms` on every renewal:
//!   the lease is the key's life;
//! - `ns:nodes`: the set of node ids that hold or held a lease not yet cleaned up;
//! - `ns:streams`: a hash from `session/stream` to the id of the node it is published on;
//! - `ns:sessions`: a hash from a session's id to its [`SessionRecord`] as JSON;
//! - `ns:sessions:ended`: a sorted set of the sessions deleted, `id/created_unix_ms`, scored by when (kept
//!   [`ENDED_SESSIONS_KEPT_MS`]);
//! - `ns:meta:<session>`: a hash of the session's metadata, from `[member, key]` as JSON to `rank entry` (the entry
//!   as JSON after a fixed-width rank whose byte order is the metadata's merge order: the script keeps the greatest);
//!   deleted with the session;
//! - `ns:changes`: the channel every [`Change`] is published on, as JSON.
//!
//! Changes are written by the call that makes them, in one Lua script with the write (so a change is published once
//! and only when it happened), and every node's watchers get them from the channel. A lease that runs out is seen
//! through Redis's key expiry event (`notify-keyspace-events` with `E` and `x`, set at connect when the server lets
//! it): every node that hears it runs the clean-up script, which removes the node's streams and publishes
//! [`Change::NodeDown`] only for the first. No polling: the directory is read when someone asks ([`Directory::nodes`]
//! also cleans up a node whose expiry event was missed while disconnected). Every call is bounded by
//! [`CALL_TIMEOUT`]; the command connection reconnects by itself, the subscription with backoff, after which the
//! watchers are told the joins and losses of nodes they could not hear meanwhile (the live nodes against those the
//! watcher knew).
//! Must never hold a lock across a call to Redis, nor block a caller longer than [`CALL_TIMEOUT`].

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue};
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;

use super::directory::{
    Change, Directory, DirectoryError, DirectoryFuture, NodeLease, NodeRecord, SessionRecord, StreamKey,
    ENDED_SESSIONS_KEPT_MS,
};
use crate::metadata::{Entry, Member};

/// The longest a directory call waits for Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the first connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest wait before the subscription is made again after it was lost.
const RESUBSCRIBE_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Removes a node (`ARGV[1]`): its lease key when it leaves (`ARGV[3]` = "0"), or nothing when its lease ran out
/// (`ARGV[3]` = "1") unless the key is back (then nothing at all: it renewed meanwhile); its id from the set, the
/// streams placed on it, and publishes `node_down` on `ARGV[2]` when this call took it out of the set.
const REMOVE_NODE: &str = r#"
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
else
  redis.call('DEL', KEYS[3])
end
local removed = redis.call('SREM', KEYS[2], ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[1], all[i]) end
end
if removed == 1 then
  redis.call('PUBLISH', ARGV[2], cjson.encode({change = 'node_down', node = ARGV[1], expired = (ARGV[3] == '1')}))
end
return removed
"#;

/// Renews a lease: sets `KEYS[1]` to `ARGV[1]` for `ARGV[2]` ms, adds `ARGV[3]` to the set `KEYS[2]`; answers what the
/// key held, or, when it was not there, publishes `ARGV[5]` on `ARGV[4]` and answers nil.
const RENEW: &str = r#"
local old = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'GET')
redis.call('SADD', KEYS[2], ARGV[3])
if old then return old end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return false
"#;

/// Places stream `ARGV[1]` on node `ARGV[2]` in hash `KEYS[1]`; when that changed anything, publishes `ARGV[4]` on
/// `ARGV[3]`.
const PLACE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

/// Removes field `ARGV[1]` from hash `KEYS[1]` when it holds `ARGV[2]` (a stream's node, a session's record), and
/// publishes `ARGV[4]` on `ARGV[3]`.
const REMOVE_IF: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

/// Writes session `ARGV[1]`'s record `ARGV[2]` into hash `KEYS[1]` unless it holds one, then publishes `ARGV[4]` on
/// `ARGV[3]`; answers the record held.
const CLAIM: &str = r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then return held end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return ARGV[2]
"#;

/// Ends session `ARGV[1]` when hash `KEYS[1]` holds record `ARGV[2]` for it: removes it, adds `ARGV[6]` to the
/// sorted set `KEYS[2]` scored `ARGV[5]` (now) and forgets what scored below `ARGV[7]`, deletes its metadata hash
/// `KEYS[3]`, publishes `ARGV[4]` on `ARGV[3]`.
const END_SESSION: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

/// Keeps metadata entries in hash `KEYS[1]`: `ARGV[3..]` are (field, rank, entry) triples; a field takes the entry
/// (stored as `rank entry`) unless it holds one of a rank not below; then publishes `ARGV[2]` on `ARGV[1]`.
const SHARE_METADATA: &str = r#"
for i = 3, #ARGV, 3 do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if (not held) or string.sub(held, 1, #ARGV[i + 1]) < ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"#;

/// A fixed-width text whose byte order is [`crate::metadata::merge_order`] for entries of distinct versions: a
/// set-once entry above any other, the first of two set-once entries above the later, else the later version above.
fn metadata_rank(entry: &Entry) -> String {
    let v = entry.version;
    if entry.set_once {
        format!("1{:020}{:020}{:010}", u64::MAX - v.wall_us, u64::MAX - v.counter, u32::MAX - v.node_id)
    } else {
        format!("0{:020}{:020}{:010}", v.wall_us, v.counter, v.node_id)
    }
}

/// The names this cluster uses in Redis.
#[derive(Clone, Debug)]
struct Keys {
    nodes: String,
    streams: String,
    sessions: String,
    ended_sessions: String,
    changes: String,
    node_prefix: String,
    /// Followed by a session id: the hash of that session's metadata.
    metadata_prefix: String,
    /// The channel of the key expiry events of the database the URL names.
    expired: String,
}

impl Keys {
    fn new(namespace: &str, db: i64) -> Keys {
        Keys {
            nodes: format!("{namespace}:nodes"),
            streams: format!("{namespace}:streams"),
            sessions: format!("{namespace}:sessions"),
            ended_sessions: format!("{namespace}:sessions:ended"),
            changes: format!("{namespace}:changes"),
            node_prefix: format!("{namespace}:node:"),
            metadata_prefix: format!("{namespace}:meta:"),
            expired: format!("__keyevent@{db}__:expired"),
        }
    }

    fn node(&self, id: &str) -> String {
        format!("{}{id}", self.node_prefix)
    }
}

/// The directory on a Redis server.
pub struct RedisDirectory {
    connection: ConnectionManager,
    keys: Keys,
    changes: broadcast::Sender<Change>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for RedisDirectory {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn backend_error(message: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Backend { backend: "redis", message: message.to_string() }
}

/// `call` within [`CALL_TIMEOUT`], its error as a [`DirectoryError`].
async fn bounded<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, DirectoryError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(backend_error),
        Err(_) => Err(backend_error(format!("no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// `command` on `connection`, within [`CALL_TIMEOUT`].
async fn query<T: FromRedisValue>(
    command: redis::Cmd,
    connection: &mut ConnectionManager,
) -> Result<T, DirectoryError> {
    bounded(command.query_async::<T>(connection)).await
}

fn json(change: &Change) -> String {
    serde_json::to_string(change).unwrap_or_default()
}

impl RedisDirectory {
    /// Connects to the server at `url`, makes sure it sends key expiry events, subscribes to this cluster's changes
    /// (`namespace`) and to the expiry events; watchers may fall `buffer` changes behind. The error says what failed.
    pub async fn connect(url: &str, namespace: &str, buffer: usize) -> Result<RedisDirectory, DirectoryError> {
        let client = Client::open(url).map_err(backend_error)?;
        // Two attempts at most per (re)connection: the heartbeat retries anyway, and a start against a server that is
        // not there fails at once, saying so.
        let settings = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let connect = client.get_connection_manager_with_config(settings);
        let mut connection = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(connection) => connection.map_err(|e| backend_error(format!("cannot connect: {e}")))?,
            Err(_) => return Err(backend_error(format!("cannot connect within {CONNECT_TIMEOUT:?}"))),
        };
        ensure_expiry_events(&mut connection).await?;
        let keys = Keys::new(namespace, client.get_connection_info().redis_settings().db());
        let (changes, _) = broadcast::channel(buffer.max(1));
        let pubsub = subscribe(&client, &keys).await?;
        let watcher = tokio::spawn(watch(client, pubsub, keys.clone(), connection.clone(), changes.clone()));
        Ok(RedisDirectory { connection, keys, changes, watcher })
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Session `id`'s record as the hash holds it (`text`).
    fn session_record(&self, id: &str, text: &str) -> Result<SessionRecord, DirectoryError> {
        serde_json::from_str(text).map_err(|e| DirectoryError::BadRecord {
            backend: "redis",
            key: format!("{} {id}", self.keys.sessions),
            message: e.to_string(),
        })
    }

    /// Runs `script` ([`PLACE`] or [`REMOVE_IF`]) on `stream` and `node`, publishing `change` when it changed
    /// anything.
    async fn on_stream(
        &self,
        script: &str,
        stream: &StreamKey,
        node: &str,
        change: Change,
    ) -> Result<(), DirectoryError> {
        let mut command = redis::cmd("EVAL");
        command.arg(script).arg(1).arg(&self.keys.streams).arg(stream.encode()).arg(node);
        command.arg(&self.keys.changes).arg(json(&change));
        query::<i64>(command, &mut self.connection()).await.map(drop)
    }
}

/// Makes sure the server publishes key expiry events (`notify-keyspace-events` with `E`, and `x` or `A`), setting
/// them when they are off.
async fn ensure_expiry_events(connection: &mut ConnectionManager) -> Result<(), DirectoryError> {
    let get =
        query::<Vec<String>>(redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").to_owned(), connection);
    let current = match get.await {
        Ok(reply) => reply.get(1).cloned().unwrap_or_default(),
        Err(e) => return Err(backend_error(format!("cannot read notify-keyspace-events ({e}); set it to Ex"))),
    };
    if current.contains('E') && (current.contains('x') || current.contains('A')) {
        return Ok(());
    }
    let mut wanted: String = current.chars().filter(|c| *c != 'E' && *c != 'x').collect();
    wanted.push_str("Ex");
    let set =
        query::<()>(redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg(&wanted).to_owned(), connection);
    set.await.map_err(|e| {
        backend_error(format!(
            "it does not send key expiry events (notify-keyspace-events = {current:?}) and refused to turn them on \
             ({e}): set notify-keyspace-events to include Ex in its configuration"
        ))
    })
}

/// A subscription to the cluster's change channel and to the key expiry events.
async fn subscribe(client: &Client, keys: &Keys) -> Result<redis::aio::PubSub, DirectoryError> {
    let subscribe = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&keys.changes).await?;
        pubsub.subscribe(&keys.expired).await?;
        Ok(pubsub)
    };
    bounded(subscribe).await
}

/// The ids of the nodes whose lease key exists now.
async fn live_nodes(connection: &mut ConnectionManager, keys: &Keys) -> Result<BTreeSet<String>, DirectoryError> {
    let ids = query::<Vec<String>>(redis::cmd("SMEMBERS").arg(&keys.nodes).to_owned(), connection).await?;
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("EXISTS").arg(keys.node(id));
    }
    let exists = bounded(pipe.query_async::<Vec<i64>>(connection)).await?;
    Ok(ids.into_iter().zip(exists).filter(|(_, exists)| *exists == 1).map(|(id, _)| id).collect())
}

/// Hands every change on the channel to the watchers, and cleans up after every lease that runs out; subscribes
/// again, with backoff, when the subscription is lost, and then tells the watchers what changed in the nodes
/// meanwhile (a join or a loss they could not hear), against the nodes it knew.
async fn watch(
    client: Client,
    mut pubsub: redis::aio::PubSub,
    keys: Keys,
    connection: ConnectionManager,
    changes: broadcast::Sender<Change>,
) {
    let mut known = live_nodes(&mut connection.clone(), &keys).await.unwrap_or_default();
    let mut backoff = RESUBSCRIBE_BACKOFF.0;
    loop {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            backoff = RESUBSCRIBE_BACKOFF.0;
            let Ok(payload) = message.get_payload::<String>() else { continue };
            if message.get_channel_name() == keys.changes {
                match serde_json::from_str::<Change>(&payload) {
                    Ok(change) => {
                        match &change {
                            Change::NodeUp { node } => known.insert(node.clone()),
                            Change::NodeDown { node, .. } => known.remove(node),
                            _ => false,
                        };
                        let _ = changes.send(change);
                    }
                    Err(e) => tracing::warn!(%payload, "cluster: an unreadable change on {}: {e}", keys.changes),
                }
            } else if let Some(node) = payload.strip_prefix(&keys.node_prefix) {
                if let Err(e) = remove_node(&mut connection.clone(), &keys, node, true).await {
                    tracing::warn!(node, "cluster: cleaning up after a node whose lease ran out failed: {e}");
                }
            }
        }
        tracing::warn!("cluster: the Redis subscription was lost; subscribing again");
        pubsub = loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RESUBSCRIBE_BACKOFF.1);
            match subscribe(&client, &keys).await {
                Ok(pubsub) => break pubsub,
                Err(e) => tracing::warn!("cluster: subscribing again failed: {e}"),
            }
        };
        // The server may have restarted meanwhile, with its configuration file's settings: expiry events again.
        if let Err(e) = ensure_expiry_events(&mut connection.clone()).await {
            tracing::warn!("cluster: after subscribing again: {e}");
        }
        match live_nodes(&mut connection.clone(), &keys).await {
            Ok(live) => {
                for node in known.difference(&live) {
                    let _ = changes.send(Change::NodeDown { node: node.clone(), expired: true });
                }
                for node in live.difference(&known) {
                    let _ = changes.send(Change::NodeUp { node: node.clone() });
                }
                known = live;
            }
            Err(e) => tracing::warn!("cluster: reading the nodes after subscribing again failed: {e}"),
        }
    }
}

/// Runs [`REMOVE_NODE`] for `node`: `true` when this call removed it.
async fn remove_node(
    connection: &mut ConnectionManager,
    keys: &Keys,
    node: &str,
    expired: bool,
) -> Result<bool, DirectoryError> {
    let call = query::<i64>(
        redis::cmd("EVAL")
            .arg(REMOVE_NODE)
            .arg(3)
            .arg(&keys.streams)
            .arg(&keys.nodes)
            .arg(keys.node(node))
            .arg(node)
            .arg(&keys.changes)
            .arg(if expired { "1" } else { "0" })
            .to_owned(),
        connection,
    );
    Ok(call.await? == 1)
}

impl Directory for RedisDirectory {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn renew<'a>(&'a self, node: &'a NodeRecord, lease_ms: u32) -> DirectoryFuture<'a, Option<NodeRecord>> {
        Box::pin(async move {
            let record = serde_json::to_string(node).map_err(backend_error)?;
            let up = json(&Change::NodeUp { node: node.id.clone() });
            let mut connection = self.connection();
            let call = query::<Option<String>>(
                redis::cmd("EVAL")
                    .arg(RENEW)
                    .arg(2)
                    .arg(self.keys.node(&node.id))
                    .arg(&self.keys.nodes)
                    .arg(record)
                    .arg(lease_ms)
                    .arg(&node.id)
                    .arg(&self.keys.changes)
                    .arg(up)
                    .to_owned(),
                &mut connection,
            );
            let Some(previous) = call.await? else { return Ok(None) };
            // A record this version cannot read was still a lease: renewed, taken as this node's own.
            Ok(Some(serde_json::from_str(&previous).unwrap_or_else(|_| node.clone())))
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> DirectoryFuture<'a, ()> {
        Box::pin(async move { remove_node(&mut self.connection(), &self.keys, node, false).await.map(drop) })
    }

    fn nodes(&self) -> DirectoryFuture<'_, Vec<NodeLease>> {
        Box::pin(async move {
            let mut connection = self.connection();
            let mut ids =
                query::<Vec<String>>(redis::cmd("SMEMBERS").arg(&self.keys.nodes).to_owned(), &mut connection).await?;
            ids.sort();
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("GET").arg(self.keys.node(id)).cmd("PTTL").arg(self.keys.node(id));
            }
            let replies = bounded(pipe.query_async::<Vec<redis::Value>>(&mut connection)).await?;
            let mut leases = Vec::with_capacity(ids.len());
            for (id, pair) in ids.iter().zip(replies.chunks(2)) {
                let record = pair.first().and_then(|v| Option::<String>::from_redis_value(v.clone()).ok()).flatten();
                let ttl = pair.get(1).and_then(|v| i64::from_redis_value(v.clone()).ok()).unwrap_or(-2);
                match record {
                    Some(record) if ttl > 0 => {
                        let record =
                            serde_json::from_str::<NodeRecord>(&record).map_err(|e| DirectoryError::BadRecord {
                                backend: "redis",
                                key: self.keys.node(id),
                                message: e.to_string(),
                            })?;
                        leases.push(NodeLease { record, remaining_ms: u64::try_from(ttl).unwrap_or(0) });
                    }
                    // Its lease ran out and no expiry event cleaned up after it (missed while disconnected).
                    _ => {
                        remove_node(&mut connection, &self.keys, id, true).await?;
                    }
                }
            }
            Ok(leases)
        })
    }

    fn place<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()> {
        let change = Change::StreamPlaced { stream: stream.encode(), node: node.to_owned() };
        Box::pin(self.on_stream(PLACE, stream, node, change))
    }

    fn remove<'a>(&'a self, stream: &'a StreamKey, node: &'a str) -> DirectoryFuture<'a, ()> {
        let change = Change::StreamRemoved { stream: stream.encode(), node: node.to_owned() };
        Box::pin(self.on_stream(REMOVE_IF, stream, node, change))
    }

    fn locate<'a>(&'a self, stream: &'a StreamKey) -> DirectoryFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut connection = self.connection();
            let call = query::<Option<String>>(
                redis::cmd("HGET").arg(&self.keys.streams).arg(stream.encode()).to_owned(),
                &mut connection,
            );
            call.await
        })
    }

    fn streams(&self) -> DirectoryFuture<'_, Vec<(StreamKey, String)>> {
        Box::pin(async move {
            let mut connection = self.connection();
            let call = query::<Vec<(String, String)>>(
                redis::cmd("HGETALL").arg(&self.keys.streams).to_owned(),
                &mut connection,
            );
            let mut placed: Vec<(StreamKey, String)> = call
                .await?
                .into_iter()
                .filter_map(|(stream, node)| Some((StreamKey::decode(&stream)?, node)))
                .collect();
            placed.sort();
            Ok(placed)
        })
    }

    fn claim_session<'a>(&'a self, id: &'a str, record: &'a SessionRecord) -> DirectoryFuture<'a, SessionRecord> {
        Box::pin(async move {
            let text = serde_json::to_string(record).map_err(backend_error)?;
            let change = json(&Change::SessionCreated { session: id.to_owned(), record: record.clone() });
            let mut command = redis::cmd("EVAL");
            command.arg(CLAIM).arg(1).arg(&self.keys.sessions).arg(id).arg(&text).arg(&self.keys.changes).arg(change);
            let held = query::<String>(command, &mut self.connection()).await?;
            self.session_record(id, &held)
        })
    }

    fn end_session<'a>(
        &'a self,
        id: &'a str,
        incarnation: Option<u64>,
        now_unix_ms: u64,
    ) -> DirectoryFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let mut connection = self.connection();
            let get = redis::cmd("HGET").arg(&self.keys.sessions).arg(id).to_owned();
            let Some(held) = query::<Option<String>>(get, &mut connection).await? else { return Ok(None) };
            let record = self.session_record(id, &held)?;
            if incarnation.is_some_and(|i| i != record.incarnation) {
                return Ok(None);
            }
            // Ended only if it still holds what was read: a session created again meanwhile stays.
            let change = json(&Change::SessionDeleted { session: id.to_owned(), incarnation: record.incarnation });
            let mut command = redis::cmd("EVAL");
            command.arg(END_SESSION).arg(3).arg(&self.keys.sessions).arg(&self.keys.ended_sessions);
            command.arg(format!("{}{id}", self.keys.metadata_prefix));
            command.arg(id).arg(&held).arg(&self.keys.changes).arg(change).arg(now_unix_ms);
            command.arg(format!("{id}/{}", record.created_unix_ms));
            command.arg(now_unix_ms.saturating_sub(ENDED_SESSIONS_KEPT_MS));
            let removed = query::<i64>(command, &mut connection).await?;
            Ok((removed == 1).then_some(record))
        })
    }

    fn ended_sessions(&self) -> DirectoryFuture<'_, BTreeSet<(String, u64)>> {
        Box::pin(async move {
            let all = redis::cmd("ZRANGE").arg(&self.keys.ended_sessions).arg(0).arg(-1).to_owned();
            let members = query::<Vec<String>>(all, &mut self.connection()).await?;
            let parse = |member: &str| {
                let (id, created) = member.rsplit_once('/')?;
                Some((id.to_owned(), created.parse().ok()?))
            };
            Ok(members.iter().filter_map(|member| parse(member)).collect())
        })
    }

    fn share_metadata<'a>(
        &'a self,
        session: &'a str,
        member: &'a Member,
        entries: &'a [Entry],
        node: &'a str,
    ) -> DirectoryFuture<'a, ()> {
        Box::pin(async move {
            let change = Change::MetadataShared {
                session: session.to_owned(),
                member: member.clone(),
                entries: entries.to_vec(),
                node: node.to_owned(),
            };
            let mut command = redis::cmd("EVAL");
            command.arg(SHARE_METADATA).arg(1).arg(format!("{}{session}", self.keys.metadata_prefix));
            command.arg(&self.keys.changes).arg(json(&change));
            for entry in entries {
                let field = serde_json::to_string(&(member, &entry.key)).map_err(backend_error)?;
                let text = serde_json::to_string(entry).map_err(backend_error)?;
                command.arg(field).arg(metadata_rank(entry)).arg(text);
            }
            query::<i64>(command, &mut self.connection()).await.map(drop)
        })
    }

    fn metadata<'a>(&'a self, session: &'a str) -> DirectoryFuture<'a, Vec<(Member, Entry)>> {
        Box::pin(async move {
            let all = redis::cmd("HGETALL").arg(format!("{}{session}", self.keys.metadata_prefix)).to_owned();
            let held = query::<Vec<(String, String)>>(all, &mut self.connection()).await?;
            let mut kept = Vec::with_capacity(held.len());
            for (field, value) in held {
                let (member, _key): (Member, String) = serde_json::from_str(&field).map_err(backend_error)?;
                let text = value.split_once(' ').map_or(value.as_str(), |(_, text)| text);
                kept.push((member, serde_json::from_str::<Entry>(text).map_err(backend_error)?));
            }
            Ok(kept)
        })
    }

    fn session<'a>(&'a self, id: &'a str) -> DirectoryFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let get = redis::cmd("HGET").arg(&self.keys.sessions).arg(id).to_owned();
            let held = query::<Option<String>>(get, &mut self.connection()).await?;
            held.map(|text| self.session_record(id, &text)).transpose()
        })
    }

    fn sessions(&self) -> DirectoryFuture<'_, Vec<(String, SessionRecord)>> {
        Box::pin(async move {
            let all = redis::cmd("HGETALL").arg(&self.keys.sessions).to_owned();
            let held = query::<Vec<(String, String)>>(all, &mut self.connection()).await?;
            let mut sessions = Vec::with_capacity(held.len());
            for (id, record) in held {
                sessions.push((id.clone(), self.session_record(&id, &record)?));
            }
            sessions.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(sessions)
        })
    }

    fn watch(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{merge_order, Version};

    #[test]
    fn the_rank_orders_entries_as_the_merge_does() {
        let entry = |wall_us, counter, node_id, set_once| Entry {
            key: "app.k".into(),
            version: Version { wall_us, counter, node_id },
            value: Some("v".into()),
            set_once,
        };
        let entries = [
            entry(1, 0, 1, false),
            entry(1, 0, 2, false),
            entry(1, 1, 1, false),
            entry(u64::MAX, 0, 1, false),
            entry(5, 0, 1, true),
            entry(6, 0, 1, true),
            entry(5, 1, 1, true),
            entry(0, 0, 0, true),
        ];
        for a in &entries {
            assert_eq!(metadata_rank(a).len(), 51, "fixed width");
            for b in &entries {
                let by_rank = metadata_rank(a).cmp(&metadata_rank(b));
                assert_eq!(by_rank, merge_order(a, b), "{a:?} against {b:?}");
            }
        }
    }
}
