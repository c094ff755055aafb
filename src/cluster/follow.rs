//! The follower task: reads every other host's stream and the control
//! stream, and turns what they say into remote bans here.
//!
//! One connection of its own (see [`super::connect`]) carries an
//! `XREAD BLOCK` over all streams from the cursors kept in the state file.
//! Each batch read is checked by the [`Limits`], merged ([`super::merge`]),
//! handed to the firewall as [`Effect`]s, and committed (remote bans,
//! tombstones and cursors together; a crash before the commit only means
//! reading the batch again).
//!
//! **Snapshot and resume.** A host met for the first time, one whose
//! stream lost entries this host had not read yet (`XINFO STREAM`'s
//! `max-deleted-entry-id` beyond the cursor: XREAD would skip them
//! silently), and one coming out of quarantine is read afresh: its bans hash
//! and its stream's last id in one MULTI, then its stream from that id.
//!
//! **Epochs.** The epoch key changes when Redis lost its data (a restart
//! without persistence). Then every stream is read again from its start:
//! hosts publish their active bans again (anti-entropy), and the bans held
//! here stay enforced meanwhile instead of being lifted and re-added. Once a
//! host says its hash is whole again (its host hash's `synced` field names
//! the new epoch), its bans here are replaced by a snapshot of it, which
//! drops those it lifted while the lost data was all that said so.
//!
//! **Failures.** Any error drops the connection; the task reconnects with
//! capped backoff and resumes from its cursors. A silent partition shows up
//! as a blocking read that overruns its timeout.
//!
//! State owned: the cursors, the epoch, the limits' standing of each
//! origin, the peers' addresses; the merge lives in [`Shared`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connect::{self, BLOCK, reply};
use super::limits::{Admission, Limits, Quarantined};
use super::merge::{Effect, Outcome};
use super::model::{ENTRY_FIELD, Entry, Op, StreamId, keys};
use super::publish::{SYNCED_FIELD, new_epoch};
use super::state::Shared;
use crate::core::{Clock, SystemClock, Timestamp};
use crate::store::{ClusterChanges, RemoteRecord, Store};

/// Hands effects to the firewall.
pub type ApplyFn = Arc<dyn Fn(Vec<Effect>) + Send + Sync>;

/// Entries read per stream per `XREAD`.
const READ_COUNT: usize = 1000;
/// How often the epoch and the hosts set are read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often peers' addresses are read again.
const PEERS_EVERY: Duration = Duration::from_secs(30);
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most addresses taken from one peer's registration.
const MAX_PEER_ADDRS: usize = 64;
/// The meta value holding the epoch seen, and the prefix of quarantines.
pub const EPOCH_META: &str = "epoch";
pub const QUARANTINE_META: &str = "quarantine:";
/// The prefix of meta values holding the epoch of an origin's last snapshot.
pub const SNAPSHOT_META: &str = "snapshot:";

/// See the module documentation.
pub struct Follower {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Arc<Store>,
    pub(super) client: redis::Client,
    pub(super) limits: Limits,
    pub(super) apply: ApplyFn,
    /// Networks no remote ban may cover, besides peers and Redis.
    pub(super) protected: Vec<IpNet>,
    pub(super) cursors: BTreeMap<String, StreamId>,
    pub(super) ctl_cursor: StreamId,
    pub(super) epoch: Option<String>,
    pub(super) resync: BTreeSet<String>,
    pub(super) peers: HashMap<String, Vec<IpAddr>>,
    pub(super) endpoint: Vec<IpAddr>,
    /// Per origin, the epoch of its last snapshot here.
    pub(super) snapshot_epochs: HashMap<String, String>,
    /// How long tombstones are kept (see `Merge::new`).
    pub(super) memory: Duration,
}

/// Why a session ended.
enum End {
    Shutdown,
    Failed(redis::RedisError),
}

impl From<redis::RedisError> for End {
    fn from(e: redis::RedisError) -> End {
        End::Failed(e)
    }
}

impl Follower {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return,
                conn = connect::reader(&self.client) => conn,
            };
            let failure = match connected {
                Ok(mut conn) => {
                    backoff = Duration::from_secs(1);
                    match self.session(&mut conn, &shutdown).await {
                        End::Shutdown => return,
                        End::Failed(e) => e,
                    }
                }
                Err(e) => e,
            };
            let message = format!("following the other hosts: {failure}");
            tracing::warn!(retry_in = ?backoff, "{message}; bans held here stay enforced");
            self.shared.health(|h| {
                h.following = false;
                h.error = Some(message);
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: checks, then read and apply until an error.
    async fn session(&mut self, conn: &mut MultiplexedConnection, shutdown: &CancellationToken) -> End {
        match self.session_inner(conn, shutdown).await {
            Ok(()) => End::Shutdown,
            Err(end) => end,
        }
    }

    async fn session_inner(
        &mut self,
        conn: &mut MultiplexedConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), End> {
        self.endpoint = connect::endpoint_addresses(&self.client).await;
        self.check_epoch(conn).await?;
        self.discover(conn, true).await?;
        self.check_trimmed(conn).await?;
        self.shared.health(|h| {
            h.following = true;
            if h.publishing {
                h.error = None;
            }
        });
        tracing::info!(origins = self.cursors.len() + self.resync.len(), "following the other hosts");
        let mut next_check = Instant::now() + CHECK_EVERY;
        let mut next_peers = Instant::now() + PEERS_EVERY;
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            self.resync_due(conn).await?;
            let read = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                read = self.xread(conn) => read?,
            };
            self.apply_read(read).await;
            let now = Instant::now();
            if now >= next_check {
                self.check_epoch(conn).await?;
                self.discover(conn, now >= next_peers).await?;
                if now >= next_peers {
                    next_peers = now + PEERS_EVERY;
                }
                next_check = now + CHECK_EVERY;
            }
            self.expire().await;
            if now >= next_sweep {
                let store = self.store.clone();
                let wall = SystemClock.now();
                let horizon = wall.saturating_sub(self.memory);
                self.shared.merge().forget(wall);
                let _ = tokio::task::spawn_blocking(move || store.sweep_remote(wall, horizon)).await;
                next_sweep = now + SWEEP_EVERY;
            }
        }
    }

    /// Reads the epoch (creating it if Redis has none); on a change, every
    /// stream is read again from its start.
    async fn check_epoch(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(keys::EPOCH).arg(new_epoch()).arg("NX").ignore();
        pipe.cmd("GET").arg(keys::EPOCH);
        let (epoch,): (Option<String>,) = pipe.query_async(conn).await?;
        let epoch = epoch.unwrap_or_default();
        if self.epoch.as_deref() == Some(epoch.as_str()) {
            return Ok(());
        }
        let mut changes = ClusterChanges {
            meta: vec![(EPOCH_META.into(), Some(epoch.clone().into_bytes()))],
            ..Default::default()
        };
        if let Some(old) = &self.epoch {
            tracing::warn!(
                old = %old, new = %epoch,
                "Redis lost its data (new epoch): reading every host's stream again; bans held here stay enforced"
            );
            changes.removed_cursors = self.cursors.keys().map(|o| keys::stream(o)).collect();
            changes.removed_cursors.push(keys::CONTROL.to_string());
            for cursor in self.cursors.values_mut() {
                *cursor = StreamId::ZERO;
            }
            self.ctl_cursor = StreamId::ZERO;
        }
        self.commit(changes, true).await;
        self.epoch = Some(epoch.clone());
        self.shared.health(|h| h.epoch = Some(epoch));
        Ok(())
    }

    /// Finds hosts (and, with `peers`, their addresses, which no remote ban
    /// may cover).
    async fn discover(&mut self, conn: &mut MultiplexedConnection, peers: bool) -> redis::RedisResult<()> {
        let members: Vec<String> = redis::cmd("SMEMBERS").arg(keys::HOSTS).query_async(conn).await?;
        let me = self.shared.host_id.clone();
        let mut new = false;
        for origin in members.into_iter().filter(|o| *o != me && valid_host_id(o)) {
            if !self.cursors.contains_key(&origin) && self.resync.insert(origin.clone()) {
                tracing::info!(host = %origin, "a new host to follow");
                new = true;
            }
        }
        self.resync_after_data_loss(conn).await?;
        if !(peers || new) {
            return Ok(());
        }
        let origins: Vec<String> = self.cursors.keys().chain(&self.resync).cloned().collect();
        let mut pipe = redis::pipe();
        for origin in &origins {
            pipe.cmd("HGET").arg(keys::host(origin)).arg("addrs");
        }
        let addrs: Vec<Option<String>> = pipe.query_async(conn).await?;
        for (origin, addrs) in origins.into_iter().zip(addrs) {
            let parsed: Vec<IpAddr> = addrs
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .take(MAX_PEER_ADDRS)
                .collect();
            self.peers.insert(origin, parsed);
        }
        let mut protected = self.protected.clone();
        protected.extend(self.peers.values().flatten().chain(&self.endpoint).map(|ip| IpNet::from(*ip)));
        self.limits.set_protected(protected);
        Ok(())
    }

    /// Marks for a snapshot every origin whose last snapshot here is from an
    /// older epoch, once it says its hash is whole in this one.
    async fn resync_after_data_loss(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let Some(epoch) = self.epoch.clone() else { return Ok(()) };
        let stale: Vec<String> = self
            .cursors
            .keys()
            .filter(|o| !self.resync.contains(*o) && self.snapshot_epochs.get(*o) != Some(&epoch))
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for origin in &stale {
            pipe.cmd("HGET").arg(keys::host(origin)).arg(SYNCED_FIELD);
        }
        let synced: Vec<Option<String>> = pipe.query_async(conn).await?;
        for (origin, synced) in stale.into_iter().zip(synced) {
            if synced.as_deref() == Some(epoch.as_str()) {
                tracing::info!(host = %origin, "it published its bans again after Redis lost its data: reading a snapshot");
                self.resync.insert(origin);
            }
        }
        Ok(())
    }

    /// Marks for a snapshot every origin whose stream lost entries past the
    /// cursor (trimmed by age while this host was away).
    async fn check_trimmed(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let followed: Vec<(String, StreamId)> = self.cursors.iter().map(|(o, c)| (o.clone(), *c)).collect();
        for (origin, cursor) in followed {
            let info: redis::RedisResult<Value> =
                redis::cmd("XINFO").arg("STREAM").arg(keys::stream(&origin)).query_async(conn).await;
            let lost = match info {
                Ok(info) => stream_lost_entries(info, cursor),
                // No stream: it never had entries (fine from the start), or
                // it was deleted with what this host had not read.
                Err(e) if e.to_string().contains("no such key") => cursor != StreamId::ZERO,
                Err(e) => return Err(e),
            };
            if lost {
                tracing::info!(host = %origin, %cursor, "entries past this host's cursor were trimmed: reading a snapshot");
                self.resync.insert(origin);
            }
        }
        Ok(())
    }

    /// Takes the snapshots due (origins out of quarantine stay due until then).
    async fn resync_due(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let now = SystemClock.now();
        let due: Vec<String> =
            self.resync.iter().filter(|o| !self.limits.is_quarantined(o, now)).cloned().collect();
        for origin in due {
            self.snapshot(conn, &origin).await?;
            self.resync.remove(&origin);
        }
        Ok(())
    }

    /// Replaces what `origin` holds here by its bans hash, and resumes its
    /// stream from the last id as of that hash.
    async fn snapshot(&mut self, conn: &mut MultiplexedConnection, origin: &str) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HGETALL").arg(keys::bans(origin));
        pipe.cmd("XREVRANGE").arg(keys::stream(origin)).arg("+").arg("-").arg("COUNT").arg(1);
        let (hash, last): (Value, Value) = pipe.query_async(conn).await?;
        let last_id = reply::items(last)
            .into_iter()
            .next()
            .and_then(|item| reply::items(item).first().and_then(reply::text))
            .and_then(|id| id.parse::<StreamId>().ok())
            .unwrap_or(StreamId::ZERO);
        let mut entries = Vec::new();
        let mut unreadable = 0u64;
        for (_, value) in reply::pairs(hash) {
            match reply::bytes(value).map(|b| Entry::decode(&b)) {
                Some(Ok(entry)) => entries.push(entry),
                _ => unreadable += 1,
            }
        }
        let now = SystemClock.now();
        let read = entries.len();
        let mut changes = ClusterChanges {
            cleared_origins: vec![origin.to_string()],
            cursors: vec![(keys::stream(origin), last_id.to_string())],
            ..Default::default()
        };
        if let Some(epoch) = &self.epoch {
            changes.meta.push((format!("{SNAPSHOT_META}{origin}"), Some(epoch.clone().into_bytes())));
            self.snapshot_epochs.insert(origin.to_string(), epoch.clone());
        }
        let mut effects = Vec::new();
        match self.limits.admit_snapshot(origin, entries, now) {
            Err(reason) => {
                self.quarantined(origin, &reason, now, &mut changes, &mut effects);
            }
            Ok((accepted, refused)) => {
                for reason in &refused {
                    tracing::warn!(host = %origin, "{reason}");
                }
                let refused = refused.len() as u64 + unreadable;
                self.shared.health(|h| h.refused += refused);
                self.shared.merge().replace_origin(origin, &accepted, now, &mut effects);
                changes.put_remote = accepted.iter().map(record).collect();
                tracing::info!(host = %origin, bans = accepted.len(), read, cursor = %last_id, "snapshot applied");
            }
        }
        self.cursors.insert(origin.to_string(), last_id);
        self.shared.health(|h| h.origins.entry(origin.to_string()).or_default().cursor = Some(last_id));
        self.commit(changes, false).await;
        (self.apply)(effects);
        Ok(())
    }

    /// One `XREAD BLOCK` over every followed stream and the control stream.
    async fn xread(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<Value> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(READ_COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64).arg("STREAMS");
        let origins: Vec<&String> = self.cursors.keys().filter(|o| !self.resync.contains(*o)).collect();
        for origin in &origins {
            cmd.arg(keys::stream(origin));
        }
        cmd.arg(keys::CONTROL);
        for origin in &origins {
            cmd.arg(self.cursors[*origin].to_string());
        }
        cmd.arg(self.ctl_cursor.to_string());
        cmd.query_async(conn).await
    }

    /// Checks, merges, commits and enforces one read's entries.
    async fn apply_read(&mut self, read: Value) {
        let now = SystemClock.now();
        let mut changes = ClusterChanges::default();
        let mut effects = Vec::new();
        for (key, entries) in parse_read(read) {
            if key == keys::CONTROL {
                self.apply_tombstones(entries, now, &mut changes, &mut effects);
                continue;
            }
            let Some(origin) = key.strip_prefix(&keys::stream("")).map(str::to_string) else { continue };
            self.apply_entries(&origin, entries, now, &mut changes, &mut effects);
        }
        if changes.is_empty() && effects.is_empty() {
            return;
        }
        // Enforced first, then stored: a crash in between only means these
        // entries are read and applied again after the restart.
        (self.apply)(effects);
        self.commit(changes, false).await;
    }

    fn apply_entries(
        &mut self,
        origin: &str,
        entries: Vec<(StreamId, Option<Vec<u8>>)>,
        now: Timestamp,
        changes: &mut ClusterChanges,
        effects: &mut Vec<Effect>,
    ) {
        let mut last = None;
        let mut applied = 0u64;
        let mut refused = 0u64;
        for (id, bytes) in entries {
            last = Some(id);
            let entry = match bytes.as_deref().map(Entry::decode) {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    tracing::warn!(host = %origin, %id, "skipping an unreadable entry: {e}");
                    refused += 1;
                    continue;
                }
                None => {
                    tracing::warn!(host = %origin, %id, "skipping a stream entry without field `{ENTRY_FIELD}`");
                    refused += 1;
                    continue;
                }
            };
            let live = self.shared.merge().live_count(origin);
            match self.limits.admit(origin, &entry, id.time(), live, now) {
                Admission::Apply(entry) => {
                    let outcome = self.shared.merge().apply(&entry, now, effects);
                    applied += u64::from(outcome == Outcome::Applied);
                    match outcome {
                        Outcome::Applied if entry.op == Op::Ban => changes.put_remote.push(record(&entry)),
                        Outcome::Applied | Outcome::Expired => {
                            changes.removed_remote.push((origin.to_string(), entry.net, entry.jail.clone()))
                        }
                        Outcome::Duplicate => {}
                    }
                }
                Admission::Refuse(reason) => {
                    tracing::warn!(host = %origin, "{reason}");
                    refused += 1;
                }
                Admission::Quarantine(reason) => self.quarantined(origin, &reason, now, changes, effects),
                Admission::Ignore => {}
            }
        }
        let Some(last) = last else { return };
        self.cursors.insert(origin.to_string(), last);
        changes.cursors.push((keys::stream(origin), last.to_string()));
        let lag = now.since(last.time()).as_millis() as u64;
        self.shared.health(|h| {
            h.refused += refused;
            let health = h.origins.entry(origin.to_string()).or_default();
            health.cursor = Some(last);
            health.applied += applied;
            health.lag_ms = Some(lag);
        });
    }

    fn apply_tombstones(
        &mut self,
        entries: Vec<(StreamId, Option<Vec<u8>>)>,
        now: Timestamp,
        changes: &mut ClusterChanges,
        effects: &mut Vec<Effect>,
    ) {
        for (id, bytes) in entries {
            self.ctl_cursor = id;
            let Some(Ok(entry)) = bytes.as_deref().map(Entry::decode) else {
                tracing::warn!(%id, "skipping an unreadable entry of the control stream");
                continue;
            };
            if let Err(reason) = self.limits.admit_tombstone(&entry) {
                tracing::warn!(%id, "{reason}");
                continue;
            }
            if self.shared.merge().tombstone(entry.net, entry.at, now, effects) {
                tracing::info!(ip = %entry.net, by = %entry.origin, "cluster-wide unban");
                changes.tombstones.push((entry.net, entry.at));
            }
        }
        changes.cursors.push((keys::CONTROL.to_string(), self.ctl_cursor.to_string()));
    }

    /// Drops what `origin` holds and records its quarantine.
    fn quarantined(
        &mut self,
        origin: &str,
        reason: &str,
        now: Timestamp,
        changes: &mut ClusterChanges,
        effects: &mut Vec<Effect>,
    ) {
        tracing::error!(
            host = %origin,
            "QUARANTINED host {origin} for {:?}: {reason}; its bans are lifted here and its entries ignored",
            super::limits::QUARANTINE
        );
        self.shared.merge().drop_origin(origin, now, effects);
        changes.cleared_origins.push(origin.to_string());
        if let Some((_, q)) = self.limits.quarantined(now).into_iter().find(|(o, _)| o == origin) {
            let saved = serde_json::json!({"until": q.until.as_millis(), "reason": q.reason});
            changes.meta.push((format!("{QUARANTINE_META}{origin}"), Some(saved.to_string().into_bytes())));
        }
        let list = self.limits.quarantined(now);
        self.shared.health(|h| {
            h.quarantined = list;
            h.origins.entry(origin.to_string()).or_default();
        });
    }

    /// Lifts what ran out; takes back origins whose quarantine ended.
    async fn expire(&mut self) {
        let now = SystemClock.now();
        let mut effects = Vec::new();
        self.shared.merge().expire(now, &mut effects);
        let released = self.limits.released(now);
        if !released.is_empty() {
            let mut changes = ClusterChanges::default();
            for origin in released {
                tracing::warn!(host = %origin, "quarantine over: reading its bans again");
                changes.meta.push((format!("{QUARANTINE_META}{origin}"), None));
                self.resync.insert(origin);
            }
            let list = self.limits.quarantined(now);
            self.shared.health(|h| h.quarantined = list);
            self.commit(changes, false).await;
        }
        if !effects.is_empty() {
            (self.apply)(effects);
        }
    }

    async fn commit(&self, changes: ClusterChanges, durable: bool) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.commit_cluster(&changes, durable)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("cannot store cluster state (what it holds is enforced anyway): {e}")
            }
            Err(e) => tracing::error!("storing cluster state failed: {e}"),
        }
    }
}

/// The stored form of an applied remote ban.
fn record(entry: &Entry) -> RemoteRecord {
    RemoteRecord {
        origin: entry.origin.clone(),
        net: entry.net,
        jail: entry.jail.clone(),
        until: entry.until,
        data: entry.encode().into_bytes(),
    }
}

/// Reads a saved quarantine.
pub fn saved_quarantine(value: &[u8]) -> Option<Quarantined> {
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    Some(Quarantined {
        until: Timestamp(json["until"].as_i64()?),
        reason: json["reason"].as_str().unwrap_or_default().to_string(),
    })
}

/// Host ids as the config allows them; anything else in the hosts set is
/// not a warden's (and would make odd key names).
fn valid_host_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An `XREAD` reply as (stream key, [(id, the entry's bytes)]).
type StreamBatch = (String, Vec<(StreamId, Option<Vec<u8>>)>);

fn parse_read(read: Value) -> Vec<StreamBatch> {
    let streams: Vec<(Value, Value)> = match read {
        Value::Map(pairs) => pairs,
        other => reply::items(other)
            .into_iter()
            .filter_map(|s| {
                let mut parts = reply::items(s).into_iter();
                Some((parts.next()?, parts.next()?))
            })
            .collect(),
    };
    streams
        .into_iter()
        .filter_map(|(key, entries)| {
            let key = reply::text(&key)?;
            let entries = reply::items(entries)
                .into_iter()
                .filter_map(|item| {
                    let mut parts = reply::items(item).into_iter();
                    let id = reply::text(&parts.next()?)?.parse::<StreamId>().ok()?;
                    let fields = parts.next().map(reply::pairs).unwrap_or_default();
                    let bytes = fields
                        .into_iter()
                        .find(|(f, _)| reply::text(f).as_deref() == Some(ENTRY_FIELD))
                        .and_then(|(_, v)| reply::bytes(v));
                    Some((id, bytes))
                })
                .collect();
            Some((key, entries))
        })
        .collect()
}

/// Whether entries after `cursor` were deleted from a stream, by its
/// `XINFO STREAM` reply: `max-deleted-entry-id` (Redis 7) beyond the
/// cursor, or, from older servers, a first entry beyond the one after it.
fn stream_lost_entries(info: Value, cursor: StreamId) -> bool {
    let fields: HashMap<String, Value> =
        reply::pairs(info).into_iter().filter_map(|(k, v)| Some((reply::text(&k)?, v))).collect();
    if let Some(deleted) = fields.get("max-deleted-entry-id").and_then(reply::text) {
        return deleted.parse::<StreamId>().is_ok_and(|deleted| deleted > cursor);
    }
    let first = fields
        .get("first-entry")
        .cloned()
        .and_then(|entry| reply::items(entry).first().and_then(reply::text))
        .and_then(|id| id.parse::<StreamId>().ok());
    first.is_some_and(|first| first > StreamId { ms: cursor.ms, seq: cursor.seq + 1 } && first.ms > cursor.ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xread_replies_are_parsed_in_resp2_form() {
        let read = Value::Array(vec![Value::Array(vec![
            bulk("warden:{w}:ev:mx1"),
            Value::Array(vec![
                Value::Array(vec![bulk("5-0"), Value::Array(vec![bulk("e"), bulk("{}")])]),
                Value::Array(vec![bulk("6-1"), Value::Array(vec![bulk("other"), bulk("x")])]),
            ]),
        ])]);
        let parsed = parse_read(read);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, "warden:{w}:ev:mx1");
        assert_eq!(
            parsed[0].1,
            [(StreamId { ms: 5, seq: 0 }, Some(b"{}".to_vec())), (StreamId { ms: 6, seq: 1 }, None)]
        );
        assert!(parse_read(Value::Nil).is_empty());
    }

    #[test]
    fn trimmed_streams_are_recognised() {
        let info = |deleted: &str| {
            Value::Array(vec![bulk("length"), Value::Int(3), bulk("max-deleted-entry-id"), bulk(deleted)])
        };
        let cursor = StreamId { ms: 100, seq: 0 };
        assert!(stream_lost_entries(info("101-0"), cursor));
        assert!(!stream_lost_entries(info("100-0"), cursor));
        assert!(!stream_lost_entries(info("0-0"), cursor));
        let old_server = |first: &str| {
            Value::Array(vec![bulk("first-entry"), Value::Array(vec![bulk(first), Value::Array(vec![])])])
        };
        assert!(stream_lost_entries(old_server("200-0"), cursor));
        assert!(!stream_lost_entries(old_server("100-1"), cursor));
    }

    #[test]
    fn saved_quarantines_and_host_ids_are_read_back() {
        let q = saved_quarantine(br#"{"until":5000,"reason":"flood"}"#).unwrap();
        assert_eq!((q.until, q.reason.as_str()), (Timestamp(5000), "flood"));
        assert!(saved_quarantine(b"nope").is_none());
        assert!(valid_host_id("mx1.example") && !valid_host_id("a b") && !valid_host_id(""));
    }
}
