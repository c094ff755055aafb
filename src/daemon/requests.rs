//! Control requests the engine answers itself: ban, unban, status, bans,
//! version. (Reload involves the sources too; see [`super::run`].)
//!
//! Every check that can refuse a manual ban happens before anything is
//! persisted: an unknown jail, a malformed address or duration, an address
//! the jail ignores, and what the firewall guard refuses (everything,
//! prefixes broader than the floor, loopback, the host's own addresses).

use std::collections::BTreeMap;

use ipnet::IpNet;
use tokio::sync::oneshot;

use crate::control::protocol::host_form;
use crate::control::{BanInfo, ContainerStatus, JailStatus, Request, Response, StatusReport};
use crate::core::{BanTime, parse_ip_or_net};
use crate::firewall::guard::{self, BanFloor};
use crate::firewall::ipset::Family;

use super::engine::Engine;
use super::firewall::FirewallCmd;

/// What the engine made of a request: an answer now, or one that comes
/// when the firewall has acted.
pub enum Answer {
    Now(Response),
    AfterFirewall { done: oneshot::Receiver<Result<(), String>>, ok: Response },
}

impl Engine {
    /// Answers `request`. [`Request::Reload`] is the caller's.
    pub fn answer(&mut self, request: Request) -> Answer {
        match request {
            Request::Ban { jail, target, duration } => self.ban(&jail, &target, duration.as_deref()),
            Request::Unban { target, jail } => Answer::Now(self.unban(&target, jail.as_deref())),
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

    fn ban(&mut self, jail: &str, target: &str, duration: Option<&str>) -> Answer {
        match self.check_ban(jail, target, duration) {
            Err(response) => Answer::Now(response),
            Ok((net, length)) => {
                let now = self.now();
                let Engine { jails, history, rng, .. } = self;
                let Some(rt) = jails.get_mut(jail) else {
                    return Answer::Now(Response::bad_input(format!("unknown jail {jail:?}")));
                };
                let ban = rt.jail.ban_manual(net, length, now, history, &mut || rng.next_f64());
                rt.total_banned += 1;
                tracing::info!(jail = %ban.jail, ip = %ban.net, origin = "manual", count = ban.count, "banned");
                let ok = Response::ok(BanInfo::from_ban(&ban));
                let (done, waiting) = oneshot::channel();
                self.persist_and_enforce(vec![ban], Some(done));
                Answer::AfterFirewall { done: waiting, ok }
            }
        }
    }

    /// Every reason to refuse a manual ban, checked before anything changes.
    fn check_ban(
        &self,
        jail: &str,
        target: &str,
        duration: Option<&str>,
    ) -> Result<(IpNet, Option<BanTime>), Response> {
        self.known_jail(jail)?;
        let net = parse_ip_or_net(target).map_err(|e| {
            Response::bad_input(format!(
                "{e}; expected an address (203.0.113.7, 2001:db8::1) or a network (198.51.100.0/24)"
            ))
        })?;
        let length = match duration {
            None => None,
            Some(text) => Some(
                BanTime::parse(text).map_err(|e| Response::bad_input(format!("--for: {e}, or permanent")))?,
            ),
        };
        let rt = &self.jails[jail];
        if rt.jail.settings().ignore.covers(net) || rt.config.ignoreip.iter().any(|i| i.contains(&net.addr()))
        {
            return Err(Response::bad_input(format!(
                "refusing to ban {}: jail {jail} ignores it (ignoreip); remove it from ignoreip first if you mean it",
                host_form(net)
            )));
        }
        let floor = BanFloor { v4: self.config.firewall.ban_floor.v4, v6: self.config.firewall.ban_floor.v6 };
        let own = guard::own_addresses().unwrap_or_default();
        guard::check_ban_target(net, floor, &own).map_err(|e| Response::bad_input(e.to_string()))?;
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

    fn unban(&mut self, target: &str, jail: Option<&str>) -> Response {
        if let Some(jail) = jail
            && let Err(response) = self.known_jail(jail)
        {
            return response;
        }
        let net = match parse_ip_or_net(target) {
            Ok(net) => net,
            Err(e) => {
                return Response::bad_input(format!(
                    "{e}; expected an address (203.0.113.7) or a network (198.51.100.0/24)"
                ));
            }
        };
        let mut lifted = Vec::new();
        for (name, rt) in self.jails.iter_mut() {
            if jail.is_some_and(|j| j != &**name) {
                continue;
            }
            lifted.extend(rt.jail.unban(net));
        }
        let entries: Vec<(String, IpNet)> = lifted.iter().map(|b| (b.jail.clone(), b.net)).collect();
        if let Err(e) = self.store.remove_bans(&entries) {
            return Response::failed(format!(
                "lifted in memory, but the store failed (the ban may return after a restart): {e}"
            ));
        }
        for ban in &lifted {
            tracing::info!(jail = %ban.jail, ip = %ban.net, origin = "manual", "unbanned");
        }
        self.firewall.send(FirewallCmd::Unban { entries });
        let infos: Vec<BanInfo> = lifted.iter().map(BanInfo::from_ban).collect();
        Response::ok(serde_json::json!({ "unbanned": infos }))
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
                currently_banned: rt.jail.bans().filter(|b| b.is_active(now)).count() as u64,
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
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let fw = self.firewall.status();
        Response::ok(StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            dry_run: fw.dry_run,
            backend: fw.backend.map(String::from),
            firewall_error: fw.error,
            jails,
            containers,
        })
    }

    fn list_bans(&self, jail: Option<&str>) -> Response {
        if let Some(jail) = jail
            && let Err(response) = self.known_jail(jail)
        {
            return response;
        }
        let mut bans: BTreeMap<(String, String), BanInfo> = BTreeMap::new();
        for ban in self.active_bans() {
            if jail.is_some_and(|j| j != ban.jail) {
                continue;
            }
            let info = BanInfo::from_ban(&ban);
            bans.insert((info.jail.clone(), info.net.clone()), info);
        }
        Response::ok(bans.into_values().collect::<Vec<_>>())
    }
}
