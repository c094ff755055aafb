//! The publisher task: takes this host's numbered decisions from the
//! engine (normally already durable in the [`Outbox`] table, stored with
//! the ban they replicate), and publishes the outbox to Redis until Redis
//! has acknowledged every entry.
//!
//! Each batch is one MULTI: per entry an `XADD` to this host's stream
//! (trimmed by age with `MINID ~`), and the matching `HSET`/`HDEL` on its
//! bans hash with the `ZADD`/`ZREM` of the hash's expiry index; tombstones go
//! to the control stream instead. Only after `EXEC` answers are the entries
//! removed from the outbox, so a lost answer means a second publish, which
//! readers ignore.
//!
//! Besides, every few seconds it registers the host (`SADD` to the hosts
//! set, its addresses in its host hash), reads the epoch (creating it with
//! `SET NX` if missing) and prunes expired fields from its hash. Every few
//! minutes, and whenever Redis may have lost data (a new epoch, a
//! reconnection), it runs **anti-entropy**: every local active ban missing
//! from its hash is published again, and every field no longer backed by a
//! local ban is withdrawn; then it marks its host hash `synced` with the
//! epoch.
//!
//! Redis being down changes nothing for the engine: decisions keep landing
//! in the outbox, and publishing resumes with capped backoff.
//!
//! State owned: the write connection, the entries known to be in the
//! outbox table, the last sequence number acknowledged, the epoch last seen
//! and the maintenance timers. The sequence itself is shared with the
//! daemon ([`Outbox`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::{ENTRY_FIELD, Entry, Op, keys};
use super::outbox::{Outbox, Replicate, Staged, is_tombstone};
use super::state::Shared;
use crate::core::{BanOrigin, Clock, SystemClock, parse_ip_or_net};
use crate::store::{Store, StoreError};

/// The field of a host's hash naming the epoch in which its bans hash was
/// last made whole (anti-entropy done).
pub const SYNCED_FIELD: &str = "synced";
/// Entries per MULTI.
const BATCH: usize = 500;
/// How long an origin's stream keeps entries; older readers take a snapshot.
pub const STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the host re-registers and reads the epoch.
const REGISTER_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(10);
const ANTI_ENTROPY_EVERY: Duration = Duration::from_secs(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// See the module documentation.
pub struct Publisher {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Arc<Store>,
    pub(super) conn: ConnectionManager,
    /// The sequence, shared with the daemon: anti-entropy numbers here.
    pub(super) outbox: Outbox,
    /// This host's addresses, registered for peers to protect.
    pub(super) own_addrs: Vec<IpAddr>,
    /// How long the control stream keeps tombstones.
    pub(super) ctl_retention: Duration,
    /// Entries queued and not yet published, while the outbox holds nothing
    /// older (see `backlog`).
    pub(super) fresh: Vec<(u64, Vec<u8>)>,
    /// The outbox may hold entries `fresh` lacks: read it back. True at
    /// start, after a failed publish, and after entries were stored here
    /// (the table's key order is then the order to publish in).
    pub(super) backlog: bool,
    /// The last sequence number Redis acknowledged: an entry staged by the
    /// daemon may reach `fresh` after the table was read with it in.
    pub(super) acked: u64,
}

/// When each chore is next due.
struct Timers {
    register: Instant,
    prune: Instant,
    anti_entropy: Instant,
    /// After a failure: no Redis call before this.
    retry_at: Instant,
    backoff: Duration,
}

impl Publisher {
    pub async fn run(mut self, mut decisions: mpsc::Receiver<Staged>, shutdown: CancellationToken) {
        let now = Instant::now();
        let mut timers = Timers {
            register: now,
            prune: now,
            anti_entropy: now,
            retry_at: now,
            backoff: Duration::from_secs(1),
        };
        let mut epoch: Option<String> = None;
        let mut pending_intake: Vec<Staged> = Vec::new();
        loop {
            // 1. Everything the engine sent is in the outbox first.
            while let Ok(staged) = decisions.try_recv() {
                pending_intake.push(staged);
            }
            if self.shared.outbox_skipped.swap(false, std::sync::atomic::Ordering::Relaxed) {
                self.backlog = true;
            }
            if !pending_intake.is_empty() {
                // The state file failed: what is left stays in memory, in
                // order, and is tried again.
                pending_intake = self.intake(std::mem::take(&mut pending_intake)).await;
            }
            // 2. Then Redis, unless backing off.
            if Instant::now() >= timers.retry_at {
                match self.talk(&mut timers, &mut epoch).await {
                    Ok(()) => {
                        timers.backoff = Duration::from_secs(1);
                        self.shared.health(|h| {
                            h.publishing = true;
                            if h.following {
                                h.error = None;
                            }
                        });
                    }
                    Err(e) => {
                        let message = format!("publishing to Redis: {e}");
                        tracing::warn!(retry_in = ?timers.backoff, "{message}; decisions stay queued");
                        self.shared.health(|h| {
                            h.publishing = false;
                            h.error = Some(message);
                        });
                        timers.retry_at = Instant::now() + timers.backoff;
                        timers.backoff = (timers.backoff * 2).min(MAX_BACKOFF);
                        // Redis may have restarted: check everything once back.
                        timers.register = Instant::now();
                        timers.anti_entropy = Instant::now();
                    }
                }
            }
            let outbox = if self.backlog { self.outbox_len().await } else { self.fresh.len() as u64 };
            self.shared.health(|h| h.outbox = outbox);
            // 3. Wait for decisions or the next chore.
            let mut wake = timers.register.min(timers.prune).min(timers.anti_entropy);
            if outbox > 0 || !pending_intake.is_empty() {
                wake = wake.min(timers.retry_at.max(Instant::now() + Duration::from_millis(200)));
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                staged = decisions.recv() => match staged {
                    Some(staged) => pending_intake.push(staged),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.max(timers.retry_at)) => {}
            }
        }
        // Entries received but not stored are also in the store's bans;
        // anti-entropy publishes those after the next start.
        if !pending_intake.is_empty() {
            let _ = self.intake(pending_intake).await;
        }
    }

    /// Takes staged entries in order: durable ones are published from
    /// memory, others are stored first. Returns those not stored (the state
    /// file failed), in order.
    async fn intake(&mut self, staged: Vec<Staged>) -> Vec<Staged> {
        let mut staged = staged.into_iter();
        while let Some(next) = staged.next() {
            if next.durable {
                if !self.backlog {
                    self.fresh.extend(next.entries);
                }
                continue;
            }
            let store = self.store.clone();
            let entries = next.entries.clone();
            match blocking(move || store.outbox_push(&entries)).await {
                // Published from the table, after any smaller number.
                Ok(()) => self.backlog = true,
                Err(error) => {
                    tracing::error!(
                        entries = next.entries.len(),
                        "cannot queue cluster entries in the state file (retrying): {error}"
                    );
                    return std::iter::once(next).chain(staged).collect();
                }
            }
        }
        Vec::new()
    }

    /// Numbers decisions of this task's own and stores them in the outbox
    /// (durably); they are then published from the table.
    async fn queue(&mut self, decisions: Vec<Replicate>) -> Result<(), String> {
        let store = self.store.clone();
        let outbox = self.outbox.clone();
        blocking(move || outbox.stage_with(&decisions, SystemClock.now(), |e| store.outbox_push(e)).1)
            .await?;
        self.backlog = true;
        Ok(())
    }

    /// One round with Redis: chores that are due, then the outbox.
    async fn talk(&mut self, timers: &mut Timers, epoch: &mut Option<String>) -> redis::RedisResult<()> {
        let now = Instant::now();
        if now >= timers.register {
            let seen = self.register().await?;
            if epoch.as_ref().is_some_and(|old| *old != seen) {
                tracing::warn!(old = epoch.as_deref().unwrap_or(""), new = %seen, "Redis lost its data (new epoch): publishing every local ban again");
                timers.anti_entropy = now;
            }
            *epoch = Some(seen);
            timers.register = now + REGISTER_EVERY;
        }
        self.publish_outbox().await?;
        if now >= timers.prune {
            self.prune().await?;
            timers.prune = now + PRUNE_EVERY;
        }
        if now >= timers.anti_entropy {
            self.anti_entropy().await?;
            self.publish_outbox().await?;
            // Readers that kept this host's bans through a Redis data loss
            // may now replace them by its hash (see `follow`).
            if let Some(epoch) = epoch.as_deref() {
                let () = redis::cmd("HSET")
                    .arg(keys::host(&self.shared.host_id))
                    .arg(SYNCED_FIELD)
                    .arg(epoch)
                    .query_async(&mut self.conn)
                    .await?;
            }
            timers.anti_entropy = now + ANTI_ENTROPY_EVERY;
        }
        Ok(())
    }

    /// Adds this host to the hosts set with its addresses; returns the epoch
    /// (created if missing).
    async fn register(&mut self) -> redis::RedisResult<String> {
        let host = &self.shared.host_id;
        let addrs: Vec<String> = self.own_addrs.iter().map(ToString::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(keys::HOSTS).arg(host).ignore();
        pipe.cmd("HSET")
            .arg(keys::host(host))
            .arg("addrs")
            .arg(addrs.join(" "))
            .arg("seen")
            .arg(SystemClock.now().as_millis())
            .ignore();
        pipe.cmd("SET").arg(keys::EPOCH).arg(new_epoch()).arg("NX").ignore();
        pipe.cmd("GET").arg(keys::EPOCH);
        let (epoch,): (Option<String>,) = pipe.query_async(&mut self.conn).await?;
        Ok(epoch.unwrap_or_default())
    }

    /// Publishes the outbox in batches, acknowledging each.
    async fn publish_outbox(&mut self) -> redis::RedisResult<()> {
        // Entries queued since the outbox was last found empty are published
        // from memory; only older ones (a restart, a failure) are read back.
        let acked = self.acked;
        self.fresh.retain(|(seq, _)| *seq > acked);
        while !self.backlog && !self.fresh.is_empty() {
            let fresh = std::mem::take(&mut self.fresh);
            match self.publish_prefix(&fresh).await {
                Ok(done) => self.fresh = fresh[done..].to_vec(),
                Err(e) => {
                    self.backlog = true;
                    return Err(e);
                }
            }
        }
        while self.backlog {
            let store = self.store.clone();
            let batch = match tokio::task::spawn_blocking(move || store.outbox(BATCH)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::error!("cannot read the cluster outbox: {e}");
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            if batch.is_empty() {
                self.backlog = false;
                self.fresh.clear();
                return Ok(());
            }
            self.publish_prefix(&batch).await?;
        }
        Ok(())
    }

    /// Publishes the first entries of `batch` in one MULTI and acknowledges
    /// them; returns how many. A tombstone goes alone: the control stream may
    /// be closed to this host (the README's ACL opens it to admins only), and
    /// its refusal must not hold back this host's own entries.
    async fn publish_prefix(&mut self, batch: &[(u64, Vec<u8>)]) -> redis::RedisResult<usize> {
        let tombstone = |(_, bytes): &(u64, Vec<u8>)| Entry::decode(bytes).is_ok_and(|e| is_tombstone(&e));
        let count = match batch.iter().position(tombstone) {
            Some(0) => 1,
            Some(first) => first,
            None => batch.len(),
        }
        .min(BATCH);
        let batch = &batch[..count];
        let Some(&(last_seq, _)) = batch.last() else { return Ok(0) };
        let pipe = self.batch_pipe(batch);
        match pipe.query_async::<()>(&mut self.conn).await {
            Ok(()) => {
                self.acked = self.acked.max(last_seq);
                tracing::debug!(entries = batch.len(), last_seq, "published");
            }
            Err(e) if batch.len() == 1 && tombstone(&batch[0]) && is_denied(&e) => tracing::error!(
                "a cluster-wide unban was not published: this host's Redis user may not write {} ({e}); \
                 run `warden unban --cluster` on a host whose user may",
                keys::CONTROL
            ),
            Err(e) => return Err(e),
        }
        let store = self.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.outbox_ack(last_seq)).await {
            tracing::error!("cannot acknowledge published cluster entries (they will be sent again): {e}");
        }
        Ok(count)
    }

    /// The MULTI for one batch of outbox entries.
    fn batch_pipe(&self, batch: &[(u64, Vec<u8>)]) -> redis::Pipeline {
        let host = &self.shared.host_id;
        let now = SystemClock.now();
        let (stream, bans, expiry) = (keys::stream(host), keys::bans(host), keys::expiry(host));
        let minid = |retention: Duration| format!("{}", now.saturating_sub(retention).as_millis().max(0));
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (seq, bytes) in batch {
            let entry = match Entry::decode(bytes) {
                Ok(entry) => entry,
                Err(e) => {
                    // Only this build writes the outbox; skip rather than block it.
                    tracing::error!(seq, "dropping an unreadable outbox entry: {e}");
                    continue;
                }
            };
            if is_tombstone(&entry) {
                pipe.cmd("XADD")
                    .arg(keys::CONTROL)
                    .arg("MINID")
                    .arg("~")
                    .arg(minid(self.ctl_retention))
                    .arg("*")
                    .arg(ENTRY_FIELD)
                    .arg(bytes.as_slice())
                    .ignore();
                continue;
            }
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("MINID")
                .arg("~")
                .arg(minid(STREAM_RETENTION))
                .arg("*")
                .arg(ENTRY_FIELD)
                .arg(bytes.as_slice())
                .ignore();
            let field = entry.field();
            if entry.op == Op::Ban && entry.is_active(now) {
                pipe.cmd("HSET").arg(&bans).arg(&field).arg(bytes.as_slice()).ignore();
                let score = entry.until.map_or("+inf".to_string(), |u| u.as_millis().to_string());
                pipe.cmd("ZADD").arg(&expiry).arg(score).arg(&field).ignore();
            } else {
                pipe.cmd("HDEL").arg(&bans).arg(&field).ignore();
                pipe.cmd("ZREM").arg(&expiry).arg(&field).ignore();
            }
        }
        pipe
    }

    /// Deletes this host's expired bans from its hash and expiry index.
    async fn prune(&mut self) -> redis::RedisResult<()> {
        const CHUNK: usize = 10_000;
        let host = &self.shared.host_id;
        let (bans, expiry) = (keys::bans(host), keys::expiry(host));
        let now = SystemClock.now().as_millis();
        loop {
            let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&expiry)
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(CHUNK)
                .query_async(&mut self.conn)
                .await?;
            if expired.is_empty() {
                return Ok(());
            }
            // Only this task writes this host's keys, so nothing changed them
            // since the read.
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("ZREM").arg(&expiry).arg(&expired).ignore();
            pipe.cmd("HDEL").arg(&bans).arg(&expired).ignore();
            let () = pipe.query_async(&mut self.conn).await?;
            tracing::debug!(fields = expired.len(), "expired bans pruned from this host's hash");
            if expired.len() < CHUNK {
                return Ok(());
            }
        }
    }

    /// Publishes again what the hash lacks, and withdraws what it holds
    /// without a local ban behind it.
    async fn anti_entropy(&mut self) -> redis::RedisResult<()> {
        let host = self.shared.host_id.clone();
        let fields: Vec<String> =
            redis::cmd("HKEYS").arg(keys::bans(&host)).query_async(&mut self.conn).await?;
        let fields: HashSet<String> = fields.into_iter().collect();
        let store = self.store.clone();
        let now = SystemClock.now();
        let local = match tokio::task::spawn_blocking(move || store.active_bans(now)).await {
            Ok(Ok(bans)) => bans,
            Ok(Err(e)) => {
                tracing::error!("anti-entropy cannot read the local bans: {e}");
                return Ok(());
            }
            Err(_) => return Ok(()),
        };
        let mut expected: HashMap<String, crate::core::Ban> = HashMap::new();
        for ban in local.into_iter().filter(|b| !matches!(b.origin, BanOrigin::Remote { .. })) {
            expected.insert(format!("{} {}", ban.net, ban.jail), ban);
        }
        let mut decisions: Vec<Replicate> = expected
            .iter()
            .filter(|(field, _)| !fields.contains(*field))
            .map(|(_, ban)| Replicate::Ban(ban.clone()))
            .collect();
        let republished = decisions.len();
        for field in fields.iter().filter(|f| !expected.contains_key(*f)) {
            let Some((net, jail)) = field.split_once(' ') else { continue };
            if let Ok(net) = parse_ip_or_net(net) {
                decisions.push(Replicate::Unban { net, jail: jail.to_string() });
            }
        }
        if decisions.is_empty() {
            return Ok(());
        }
        tracing::info!(
            republished,
            withdrawn = decisions.len() - republished,
            "anti-entropy: this host's bans hash did not match its active bans"
        );
        if let Err(e) = self.queue(decisions).await {
            tracing::warn!("anti-entropy cannot queue its entries ({e}); it will try again");
        }
        Ok(())
    }

    async fn outbox_len(&self) -> u64 {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.outbox_len()).await.ok().and_then(Result::ok).unwrap_or(0)
    }
}

/// Runs a store call that may `fsync` on a blocking thread; its failure, or
/// the thread's, as text for the log.
async fn blocking(call: impl FnOnce() -> Result<(), StoreError> + Send + 'static) -> Result<(), String> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// True for an error saying the Redis user lacks a permission (the whole
/// MULTI is then refused).
fn is_denied(e: &redis::RedisError) -> bool {
    // Redis says NOPERM; the client reports it inside "Transaction
    // aborted: … NoPerm: …".
    let text = e.to_string().to_ascii_lowercase();
    text.contains("noperm") || text.contains("no permissions")
}

/// A value for the epoch key that no other start of any host picks.
pub fn new_epoch() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}
