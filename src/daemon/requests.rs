//! Control requests the engine answers itself: ban (one target, or many at
//! once), unban, status, bans, version. (Reload involves the sources too;
//! see [`super::run`].)
//!
//! Every check that can refuse a manual ban happens before anything is
//! persisted (for every target of a multi-address ban, before any of them): an unknown jail, a malformed address or duration, an address
//! the jail ignores, and what the firewall guard refuses (everything,
//! prefixes broader than the floor, loopback, the host's own addresses).

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};
use tokio::sync::oneshot;

use crate::cluster::{RemoteBan, Replicate, Status as ClusterStatus};
use crate::control::protocol::host_form;
use crate::control::{
    BanInfo, ClusterReport, ContainerStatus, JailStatus, MAX_BAN_TARGETS, OriginReport, Request, Response,
    StatusReport,
};
use crate::core::{Ban, BanTime, Timestamp, parse_ip_or_net};
use crate::firewall::guard::{self, BanFloor};
use crate::firewall::ipset::Family;

use super::engine::Engine;
use super::firewall::FirewallCmd;

/// Hears back once the firewall has acted on a command, or why it could not.
type FirewallDone = oneshot::Receiver<Result<(), String>>;

/// What the engine made of a request: an answer now, or one that comes
/// when the firewall has acted.
pub enum Answer {
    Now(Response),
    AfterFirewall { done: FirewallDone, ok: Response },
}

impl Engine {
    /// Answers `request`. [`Request::Reload`] is the caller's.
    pub fn answer(&mut self, request: Request) -> Answer {
        match request {
            Request::Ban { jail, target, duration } => self.ban(&jail, &target, duration.as_deref()),
            Request::BanMany { jail, targets, duration } => {
                self.ban_many(&jail, &targets, duration.as_deref())
            }
            Request::Unban { target, jail, cluster } => self.unban(&target, jail.as_deref(), cluster),
            Request::Status { jail } => Answer::Now(self.status(jail.as_deref())),
            Request::Bans { jail } => Answer::Now(self.list_bans(jail.as_deref())),
            Request::Version => Answer::Now(Response::ok(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": crate::control::PROTOCOL_VERSION,
            }))),
            Request::Reload => Answer::Now(Response::failed("reload is handled by the daemon loop")),
        }
    }

    fn known_jail(&self, jail: &str) -> Result<(), Response> {
        if self.jails.contains_key(jail) {
            return Ok(());
        }
        let known: Vec<&str> = self.jails.keys().map(|k| &**k).collect();
        Err(Response::bad_input(format!("unknown jail {jail:?}; jails: {}", known.join(", "))))
    }

    /// One ban; the answer is its [`BanInfo`].
    fn ban(&mut self, jail: &str, target: &str, duration: Option<&str>) -> Answer {
        match self.ban_all(jail, std::slice::from_ref(&target.to_string()), duration) {
            Err(response) => Answer::Now(response),
            Ok((mut infos, done)) => {
                let ok = infos.pop().map(Response::ok).unwrap_or_else(|| Response::failed("nothing banned"));
                Answer::AfterFirewall { done, ok }
            }
        }
    }

    /// Several bans, all or none; the answer is `{"banned": [BanInfo…]}`.
    fn ban_many(&mut self, jail: &str, targets: &[String], duration: Option<&str>) -> Answer {
        if targets.is_empty() {
            return Answer::Now(Response::bad_input(
                "no address to ban; give one or more addresses or networks",
            ));
        }
        if targets.len() > MAX_BAN_TARGETS {
            return Answer::Now(Response::bad_input(format!(
                "{} addresses in one request; at most {MAX_BAN_TARGETS} (split the list)",
                targets.len()
            )));
        }
        match self.ban_all(jail, targets, duration) {
            Err(response) => Answer::Now(response),
            Ok((infos, done)) => {
                Answer::AfterFirewall { done, ok: Response::ok(serde_json::json!({ "banned": infos })) }
            }
        }
    }

    /// Checks every target, then bans them all: one durable commit and one
    /// firewall batch. A target given twice is banned once.
    fn ban_all(
        &mut self,
        jail: &str,
        targets: &[String],
        duration: Option<&str>,
    ) -> Result<(Vec<BanInfo>, FirewallDone), Response> {
        self.known_jail(jail)?;
        let own = guard::own_addresses().unwrap_or_default();
        let mut checked: Vec<(IpNet, Option<BanTime>)> = Vec::with_capacity(targets.len());
        let mut seen = HashSet::with_capacity(targets.len());
        for target in targets {
            let (net, length) = self.check_ban(jail, target, duration, &own).map_err(|refused| {
                match refused {
                    // Which one, when there are several.
                    Response::Err { error } if targets.len() > 1 => {
                        Response::bad_input(format!("{target}: {}; nothing was banned", error.message))
                    }
                    other => other,
                }
            })?;
            if seen.insert(net.trunc()) {
                checked.push((net, length));
            }
        }
        let now = self.now();
        let Engine { jails, history, rng, .. } = self;
        let Some(rt) = jails.get_mut(jail) else {
            return Err(Response::bad_input(format!("unknown jail {jail:?}")));
        };
        let mut bans = Vec::with_capacity(checked.len());
        for (net, length) in checked {
            let ban = rt.jail.ban_manual(net, length, now, history, &mut || rng.next_f64());
            rt.total_banned += 1;
            tracing::info!(jail = %ban.jail, ip = %ban.net, origin = "manual", count = ban.count, "banned");
            bans.push(ban);
        }
        let infos = bans.iter().map(BanInfo::from_ban).collect();
        let (done, waiting) = oneshot::channel();
        self.persist_and_enforce(bans, Some(done));
        Ok((infos, waiting))
    }

    /// Every reason to refuse a manual ban, checked before anything changes.
    /// `own` is the host's addresses ([`guard::own_addresses`]), read once
    /// per request.
    fn check_ban(
        &self,
        jail: &str,
        target: &str,
        duration: Option<&str>,
        own: &[IpAddr],
    ) -> Result<(IpNet, Option<BanTime>), Response> {
        self.known_jail(jail)?;
        // The parse error already says what an address looks like.
        let net = parse_ip_or_net(target).map_err(|e| Response::bad_input(e.to_string()))?;
        let length = match duration {
            None => None,
            Some(text) => Some(
                BanTime::parse(text).map_err(|e| Response::bad_input(format!("--for: {e}, or permanent")))?,
            ),
        };
        // The guard goes first: `0.0.0.0/0` also overlaps ignoreip, but
        // "it covers every address" is the reason that matters.
        let floor = BanFloor { v4: self.config.firewall.ban_floor.v4, v6: self.config.firewall.ban_floor.v6 };
        guard::check_ban_target(net, floor, own).map_err(|e| Response::bad_input(refusal(&e, floor)))?;
        let rt = &self.jails[jail];
        if rt.jail.settings().ignore.covers(net) || rt.config.ignoreip.iter().any(|i| i.contains(&net.addr()))
        {
            return Err(Response::bad_input(format!(
                "refusing to ban {}: jail {jail} ignores it (ignoreip); remove it from ignoreip first if you mean it",
                host_form(net)
            )));
        }
        let rules = rt.rules();
        let host = net.prefix_len() == net.max_prefix_len();
        if !host && rules.set_spec(Family::of(&net)).set_type == crate::firewall::ipset::SetType::HashIp {
            return Err(Response::bad_input(format!(
                "jail {jail} bans single addresses, not networks like {net}; ban one address, or use a jail \
                 with ban_prefix (like {{v4: 24}})"
            )));
        }
        Ok((net, length))
    }

    /// Lifts the bans; like a ban, the answer waits until the kernel has
    /// let the address go, so a script may connect right after. In a
    /// cluster, the other hosts drop this host's bans of it; with
    /// `cluster`, a tombstone also lifts every host's replicated bans of it.
    fn unban(&mut self, target: &str, jail: Option<&str>, cluster: bool) -> Answer {
        if let Some(jail) = jail
            && let Err(response) = self.known_jail(jail)
        {
            return Answer::Now(response);
        }
        let net = match parse_ip_or_net(target) {
            Ok(net) => net,
            Err(e) => return Answer::Now(Response::bad_input(e.to_string())),
        };
        if cluster && self.cluster.is_none() {
            return Answer::Now(Response::bad_input(
                "--cluster: this warden is not in a cluster (its config has no cluster: section)",
            ));
        }
        let mut lifted = Vec::new();
        for (name, rt) in self.jails.iter_mut() {
            if jail.is_some_and(|j| j != &**name) {
                continue;
            }
            lifted.extend(rt.jail.unban(net));
        }
        let entries: Vec<(String, IpNet)> = lifted.iter().map(|b| (b.jail.clone(), b.net)).collect();
        let mut decisions: Vec<Replicate> =
            entries.iter().map(|(jail, net)| Replicate::Unban { net: *net, jail: jail.clone() }).collect();
        if cluster {
            decisions.push(Replicate::Tombstone { net });
        }
        // Their cluster entries (if any) are stored in the same commit.
        if let Err(e) =
            self.commit_replicated(decisions, |store, outbox| store.remove_bans_queued(&entries, outbox))
        {
            return Answer::Now(Response::failed(format!(
                "lifted in memory, but the store failed (the ban may return after a restart): {e}"
            )));
        }
        for ban in &lifted {
            tracing::info!(jail = %ban.jail, ip = %ban.net, origin = "manual", "unbanned");
        }
        if cluster {
            tracing::info!(ip = %net, "cluster-wide unban published");
        }
        let infos: Vec<BanInfo> = lifted.iter().map(|b| self.ban_info(b)).collect();
        // Other hosts' bans of it stay unless the unban is cluster-wide: say so.
        let mut remote: Vec<String> = match (&self.cluster, cluster) {
            (Some(handle), false) => handle
                .remote_bans(self.now())
                .into_iter()
                .filter(|b| crate::cluster::merge::overlap(&b.net, &net))
                .flat_map(|b| b.origins)
                .collect(),
            _ => Vec::new(),
        };
        remote.sort();
        remote.dedup();
        let ok = Response::ok(serde_json::json!({ "unbanned": infos, "cluster": cluster, "remote": remote }));
        if entries.is_empty() {
            return Answer::Now(ok);
        }
        let (done, waiting) = oneshot::channel();
        self.firewall.send(FirewallCmd::Unban { entries, done: Some(done) });
        Answer::AfterFirewall { done: waiting, ok }
    }

    fn status(&self, jail: Option<&str>) -> Response {
        if let Some(jail) = jail
            && let Err(response) = self.known_jail(jail)
        {
            return response;
        }
        let now = self.now();
        let mut jails = Vec::new();
        for (name, rt) in &self.jails {
            if jail.is_some_and(|j| j != &**name) {
                continue;
            }
            let mut sources: Vec<String> = rt.config.sources.iter().map(ToString::to_string).collect();
            sources.extend(
                self.containers
                    .iter()
                    .filter(|c| c.routes.iter().any(|r| r == name))
                    .map(|c| format!("container {}", c.info.name)),
            );
            jails.push(JailStatus {
                name: name.to_string(),
                filter: rt.config.filter.to_string(),
                sources,
                currently_failed: rt.jail.tracked() as u64,
                total_failed: rt.total_failed,
                currently_banned: rt.jail.active_bans(now) as u64,
                total_banned: rt.total_banned,
            });
        }
        let mut containers: Vec<ContainerStatus> = self
            .containers
            .iter()
            .map(|c| ContainerStatus {
                id: c.info.id.chars().take(12).collect(),
                name: c.info.name.clone(),
                jails: c.routes.iter().map(|r| r.to_string()).collect(),
                attached: c.running,
                logs: Some(c.info.logs.as_str().to_string()),
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let fw = self.firewall.status();
        let local_bans = self.jails.values().map(|rt| rt.jail.active_bans(now) as u64).sum();
        Response::ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            dry_run: fw.dry_run,
            backend: fw.backend.map(String::from),
            firewall_error: fw.error,
            jails,
            containers,
            cluster: self.cluster.as_ref().map(|c| cluster_report(c.status(now), local_bans, now)),
        })
    }

    /// `ban` as listed: in a cluster, with this host as its origin host.
    fn ban_info(&self, ban: &Ban) -> BanInfo {
        let mut info = BanInfo::from_ban(ban);
        if let Some(cluster) = &self.cluster
            && info.host.is_none()
        {
            info.host = Some(cluster.host_id().to_string());
        }
        info
    }

    fn list_bans(&self, jail: Option<&str>) -> Response {
        if let Some(jail) = jail
            && let Err(response) = self.known_jail(jail)
        {
            return response;
        }
        let now = self.now();
        let mut bans: Vec<Ban> = self
            .jails
            .iter()
            .filter(|(name, _)| jail.is_none_or(|j| j == &***name))
            .flat_map(|(_, rt)| rt.jail.bans().filter(|b| b.is_active(now)))
            .collect();
        bans.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
        // Other hosts' bans are listed too, unless one jail is asked for.
        let remote = match (&self.cluster, jail) {
            (Some(cluster), None) => cluster.remote_bans(now),
            _ => Vec::new(),
        };
        let host = self.cluster.as_ref().map(|c| c.host_id());
        Response::ok(BanList { local: bans, host, remote })
    }
}

/// Bans encoded as [`BanInfo`]s one at a time, straight from the jails: a
/// list of 100,000 is never copied whole before it becomes JSON. Local bans
/// first (with this host's id in a cluster), then other hosts'.
struct BanList<'a> {
    local: Vec<Ban>,
    host: Option<&'a str>,
    remote: Vec<RemoteBan>,
}

impl Serialize for BanList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let local = self
            .local
            .iter()
            .map(|ban| BanInfo { host: self.host.map(String::from), ..BanInfo::from_ban(ban) });
        let remote = self.remote.iter().map(|ban| BanInfo {
            net: host_form(ban.net),
            jail: ban.jail.clone(),
            origin: format!("remote:{}", ban.origin),
            since: ban.at.to_rfc3339(),
            until: ban.until.map(Timestamp::to_rfc3339),
            count: ban.origins.len() as u32,
            failures: 0,
            host: Some(ban.origin.clone()),
        });
        serializer.collect_seq(local.chain(remote))
    }
}

/// The protocol's view of the cluster's status.
fn cluster_report(status: ClusterStatus, local_bans: u64, now: Timestamp) -> ClusterReport {
    let health = status.health;
    let origins = health
        .origins
        .iter()
        .map(|(host, origin)| {
            let quarantine =
                health.quarantined.iter().find(|(o, q)| o == host && q.until > now).map(|(_, q)| q);
            OriginReport {
                host: host.clone(),
                bans: status.bans_per_origin.get(host).copied().unwrap_or(0) as u64,
                lag_ms: origin.lag_ms,
                applied: origin.applied,
                quarantined: quarantine.map(|q| q.reason.clone()),
                quarantined_until: quarantine.map(|q| q.until.to_rfc3339()),
            }
        })
        .collect();
    ClusterReport {
        host_id: status.host_id,
        redis: status.redis,
        connected: health.following,
        publishing: health.publishing,
        error: health.error,
        epoch: health.epoch,
        outbox: health.outbox,
        local_bans,
        remote_bans: status.remote_bans as u64,
        refused: health.refused,
        origins,
    }
}

/// The guard's reason, and what the operator may ban instead (the
/// too-broad refusal names its floor already).
fn refusal(refused: &guard::BanRefused, floor: BanFloor) -> String {
    use guard::BanRefused::*;
    let valid = match refused {
        TooBroad { .. } => return refused.to_string(),
        Everything(_) => format!(
            "ban a single address or a network no broader than /{} (IPv4) or /{} (IPv6)",
            floor.v4, floor.v6
        ),
        Loopback(_) | Unspecified(_) | OwnAddress { .. } => {
            "ban an address, or a network, that does not hold it".to_string()
        }
    };
    format!("{refused}; {valid}")
}
