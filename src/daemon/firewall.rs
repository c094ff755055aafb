//! The firewall task: one thread that owns the [`Enforcer`].
//!
//! State owned: the enforcer (sockets, ruleset), the remote bans (from the
//! cluster: one per network, in the `@remote` pseudo-jail, re-installed
//! with every replacement of the enforcer), and, until the first successful
//! start, the bans waiting to be installed. Receives
//! [`FirewallCmd`]s from the engine; sends nothing back but the replies its
//! commands ask for, and a [`FirewallStatus`] others may read.
//!
//! The enforcer's calls are synchronous (netlink round trips, and
//! `iptables-restore` at start and check), so this is a plain thread with a
//! channel, not an async task: a slow iptables never stalls the runtime.
//!
//! **Failures never open the firewall.** If starting fails (a missing kernel
//! module, a locked xtables, the wrong backend), the error is logged with
//! the command, its status and its stderr, kept in the status, and retried
//! with capped backoff; bans keep arriving, are persisted by the engine
//! first, and are installed once the start succeeds. Periodically the task
//! re-checks chains and jumps (restoring them after Docker restarts),
//! refreshes bans longer than the kernel's timeout cap, and deletes
//! conntrack entries of recent bans when its inbox is empty.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::oneshot;

use crate::cluster::Effect;
use crate::core::{Ban, BanOrigin, Clock, SystemClock, Timestamp};
use crate::firewall::enforcer::{EnforceError, Enforcer};
use crate::firewall::rules::REMOTE_JAIL;

/// Longest wait between two start attempts after failures.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How often clamped long bans are looked at; they are refreshed a day
/// before their kernel timeout lapses, so this is never late.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// What the engine asks of the firewall.
pub enum FirewallCmd {
    /// Enforce these bans (already persisted). `done` hears back once they
    /// are in the kernel, or why not.
    Ban { bans: Vec<Ban>, done: Option<oneshot::Sender<Result<(), String>>> },
    /// Remove these (jail, network) entries. `done` hears back once they
    /// are out of the kernel, or why not.
    Unban { entries: Vec<(String, IpNet)>, done: Option<oneshot::Sender<Result<(), String>>> },
    /// Replace the enforcer (a reload) and start it from `active`.
    Replace { enforcer: Box<Enforcer>, active: Vec<Ban>, done: oneshot::Sender<Result<(), String>> },
    /// Re-check chains and jumps now (Docker came back, say).
    Check,
    /// Remote bans changed (from the cluster's follower).
    Remote { effects: Vec<Effect> },
}

/// A remote ban as the enforcer takes it: the `@remote` pseudo-jail.
pub fn remote_ban(net: IpNet, until: Option<Timestamp>) -> Ban {
    Ban {
        net,
        jail: REMOTE_JAIL.to_string(),
        origin: BanOrigin::Remote { host: String::new() },
        at: SystemClock.now(),
        until,
        count: 1,
        failures: 0,
    }
}

impl std::fmt::Debug for FirewallCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirewallCmd::Ban { bans, .. } => write!(f, "Ban({} bans)", bans.len()),
            FirewallCmd::Unban { entries, .. } => write!(f, "Unban({} entries)", entries.len()),
            FirewallCmd::Replace { active, .. } => write!(f, "Replace({} active bans)", active.len()),
            FirewallCmd::Check => f.write_str("Check"),
            FirewallCmd::Remote { effects } => write!(f, "Remote({} changes)", effects.len()),
        }
    }
}

/// What `warden status` shows about the firewall.
#[derive(Debug, Clone, Default)]
pub struct FirewallStatus {
    pub started: bool,
    pub backend: Option<&'static str>,
    pub dry_run: bool,
    /// The last error, until the next success.
    pub error: Option<String>,
}

/// The engine's end of the firewall task.
#[derive(Debug, Clone)]
pub struct FirewallHandle {
    tx: Sender<FirewallCmd>,
    status: Arc<Mutex<FirewallStatus>>,
}

impl FirewallHandle {
    /// Sends a command; false if the task is gone (it only stops at shutdown).
    pub fn send(&self, cmd: FirewallCmd) -> bool {
        self.tx.send(cmd).is_ok()
    }

    pub fn status(&self) -> FirewallStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Starts the firewall thread with `enforcer`, installing `active` and the
/// `remote` bans (see [`remote_ban`]) first. The thread ends when every
/// handle is dropped.
pub fn spawn(
    enforcer: Enforcer,
    mut active: Vec<Ban>,
    remote: Vec<Ban>,
    check_interval: Duration,
) -> std::io::Result<(FirewallHandle, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let status =
        Arc::new(Mutex::new(FirewallStatus { dry_run: enforcer.is_dry_run(), ..Default::default() }));
    active.extend(remote.iter().cloned());
    let task = Task {
        enforcer,
        remote: remote.into_iter().map(|ban| (ban.net, ban)).collect(),
        waiting: Some(active),
        status: status.clone(),
        check_interval,
        retry: Duration::from_secs(1),
        next_start: Instant::now(),
        next_check: Instant::now() + check_interval,
        next_refresh: Instant::now() + REFRESH_EVERY,
    };
    let thread = std::thread::Builder::new().name("firewall".into()).spawn(move || task.run(rx))?;
    Ok((FirewallHandle { tx, status }, thread))
}

struct Task {
    enforcer: Enforcer,
    /// The remote bans in force, by network.
    remote: HashMap<IpNet, Ban>,
    /// `Some` until the enforcer has started: the bans to install then.
    waiting: Option<Vec<Ban>>,
    status: Arc<Mutex<FirewallStatus>>,
    check_interval: Duration,
    retry: Duration,
    next_start: Instant,
    next_check: Instant,
    next_refresh: Instant,
}

impl Task {
    fn run(mut self, rx: Receiver<FirewallCmd>) {
        loop {
            if self.waiting.is_some() && Instant::now() >= self.next_start {
                let _ = self.try_start(); // failures are logged and retried
            }
            self.periodic();
            let cmd = match rx.try_recv() {
                Ok(cmd) => cmd,
                Err(_) => {
                    // The inbox is empty: a good moment for the coalesced
                    // conntrack walk, if due (walks are paced: each costs
                    // milliseconds of kernel time whatever it finds).
                    if self.enforcer.conntrack_due().is_some_and(|due| due <= Instant::now()) {
                        self.enforcer.flush_conntrack();
                    }
                    match rx.recv_timeout(self.next_deadline().saturating_duration_since(Instant::now())) {
                        Ok(cmd) => cmd,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            self.handle(cmd);
        }
        tracing::debug!("firewall task stopped; sets and rules stay in place");
    }

    fn next_deadline(&self) -> Instant {
        let mut next = self.next_check.min(self.next_refresh);
        if let Some(due) = self.enforcer.conntrack_due() {
            next = next.min(due);
        }
        if self.waiting.is_some() {
            next = next.min(self.next_start);
        }
        next
    }

    fn handle(&mut self, cmd: FirewallCmd) {
        match cmd {
            FirewallCmd::Ban { bans, done } => {
                let result = self.ban(bans);
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            FirewallCmd::Unban { entries, done } => {
                let result = self.unban(entries);
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            FirewallCmd::Replace { enforcer, mut active, done } => {
                self.enforcer = *enforcer;
                active.extend(self.remote.values().cloned());
                self.waiting = Some(active);
                self.retry = Duration::from_secs(1);
                let result = self.try_start();
                let _ = done.send(result);
            }
            FirewallCmd::Check => self.next_check = Instant::now(),
            FirewallCmd::Remote { effects } => self.remote(effects),
        }
    }

    /// Applies the cluster's changes to the remote sets. Refusals and
    /// failures are logged by [`Task::ban`] and [`Task::unban`]; the
    /// follower goes on either way.
    fn remote(&mut self, effects: Vec<Effect>) {
        // The last effect on a network decides it.
        let mut last: HashMap<IpNet, Option<Option<Timestamp>>> = HashMap::new();
        for effect in effects {
            match effect {
                Effect::Enforce { net, until } => last.insert(net, Some(until)),
                Effect::Lift { net } => last.insert(net, None),
            };
        }
        let mut bans = Vec::new();
        let mut lifted = Vec::new();
        for (net, state) in last {
            match state {
                Some(until) => {
                    let ban = remote_ban(net, until);
                    self.remote.insert(net, ban.clone());
                    bans.push(ban);
                }
                None => {
                    if self.remote.remove(&net).is_some() {
                        lifted.push((REMOTE_JAIL.to_string(), net));
                    }
                }
            }
        }
        if !bans.is_empty() {
            let _ = self.ban(bans);
        }
        if !lifted.is_empty() {
            let _ = self.unban(lifted);
        }
    }

    fn ban(&mut self, bans: Vec<Ban>) -> Result<(), String> {
        if let Some(waiting) = self.waiting.as_mut() {
            // Not started: installed by the next successful start. The bans
            // are persisted, so nothing is lost meanwhile.
            waiting.extend(bans);
            let error = self.status.lock().ok().and_then(|s| s.error.clone()).unwrap_or_default();
            return Err(format!(
                "stored, but the firewall is not up yet ({error}); it will be enforced once it is"
            ));
        }
        let now = SystemClock.now();
        if let [ban] = bans.as_slice() {
            return match self.enforcer.ban(ban, now) {
                Ok(enforced) => {
                    tracing::debug!(jail = %ban.jail, ip = %enforced.net, timeout = %enforced.timeout, "enforced");
                    Ok(())
                }
                Err(e) => self.ban_failed(ban, e),
            };
        }
        match self.enforcer.ban_batch(&bans, now) {
            Ok(done) => {
                let mut first_error = Ok(());
                for (i, e) in done.rejected {
                    let result = self.ban_failed(&bans[i], e);
                    if first_error.is_ok() {
                        first_error = result;
                    }
                }
                first_error
            }
            Err(e) => {
                self.failed("enforcing a batch of bans", &e);
                Err(e.to_string())
            }
        }
    }

    fn ban_failed(&mut self, ban: &Ban, e: EnforceError) -> Result<(), String> {
        match e {
            EnforceError::Refused { .. }
            | EnforceError::Allowlisted { .. }
            | EnforceError::Expired { .. } => {
                tracing::warn!(jail = %ban.jail, ip = %ban.net, "not enforced: {e}");
            }
            _ => self.failed("enforcing a ban", &e),
        }
        Err(e.to_string())
    }

    fn unban(&mut self, entries: Vec<(String, IpNet)>) -> Result<(), String> {
        if let Some(waiting) = self.waiting.as_mut() {
            // Not started: the next successful start installs only what
            // the store still lists, and clears the rest from the sets.
            waiting.retain(|b| !entries.iter().any(|(jail, net)| *jail == b.jail && *net == b.net));
            let error = self.status.lock().ok().and_then(|s| s.error.clone()).unwrap_or_default();
            return Err(format!(
                "lifted and stored, but the firewall is not up yet ({error}); the kernel lets it go once it is"
            ));
        }
        let mut first_error = Ok(());
        for (jail, net) in entries {
            if let Err(e) = self.enforcer.unban(&net, &jail) {
                tracing::warn!(jail = %jail, ip = %net, "unban failed: {e}");
                if first_error.is_ok() {
                    first_error = Err(format!("jail {jail}: cannot remove {net} from the kernel: {e}"));
                }
            }
        }
        first_error
    }

    fn try_start(&mut self) -> Result<(), String> {
        let Some(active) = self.waiting.as_ref() else { return Ok(()) };
        let now = SystemClock.now();
        match self.enforcer.start(active, now) {
            Ok(changes) => {
                let installed = active.len();
                self.waiting = None;
                self.retry = Duration::from_secs(1);
                if let Ok(mut s) = self.status.lock() {
                    s.started = true;
                    s.backend = self.enforcer.backend().map(|b| b.name());
                    s.error = None;
                }
                tracing::info!(bans = installed, chain_changes = changes.len(), "firewall in place");
                Ok(())
            }
            Err(e) => {
                self.failed("starting the firewall", &e);
                self.next_start = Instant::now() + self.retry;
                tracing::warn!(retry_in = ?self.retry, "the firewall will be retried; bans are kept in the store meanwhile");
                self.retry = (self.retry * 2).min(MAX_RETRY);
                Err(e.to_string())
            }
        }
    }

    fn periodic(&mut self) {
        let now = Instant::now();
        if self.waiting.is_some() {
            return;
        }
        // A dry run created nothing, so a check would find everything
        // "missing" and warn about it every interval; the deadline still
        // moves on, or the thread would wake at once, again and again.
        if now >= self.next_check {
            self.next_check = now + self.check_interval;
            if !self.enforcer.is_dry_run() {
                self.check();
            }
        }
        if now >= self.next_refresh {
            self.next_refresh = now + REFRESH_EVERY;
            if let Err(e) = self.enforcer.refresh(SystemClock.now()) {
                self.failed("refreshing long bans", &e);
            }
        }
    }

    /// Checks the chains, jumps and sets, and restores what is missing.
    fn check(&mut self) {
        match self.enforcer.check() {
            Ok(repairs) => {
                for repair in &repairs {
                    tracing::warn!("firewall check: repaired: {repair}");
                }
                if let Ok(mut s) = self.status.lock() {
                    s.error = None;
                }
            }
            Err(e) => self.failed("checking the firewall", &e),
        }
    }

    fn failed(&self, doing: &str, e: &EnforceError) {
        tracing::error!("{doing}: {e}");
        if let Ok(mut s) = self.status.lock() {
            s.error = Some(format!("{doing}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::enforcer::EnforcerConfig;

    /// In a dry run the check is skipped, but its deadline must still move
    /// on: a deadline left in the past makes `run` wait for zero time,
    /// again and again, and the thread spins.
    #[test]
    fn dry_run_periodic_moves_every_deadline_into_the_future() {
        let enforcer =
            Enforcer::new(EnforcerConfig { dry_run: true, ..Default::default() }, Vec::new(), Vec::new());
        let past = Instant::now();
        let mut task = Task {
            enforcer,
            waiting: None,
            remote: HashMap::new(),
            status: Arc::default(),
            check_interval: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            next_start: past,
            next_check: past,
            next_refresh: past,
        };
        task.periodic();
        let now = Instant::now();
        assert!(task.next_deadline() > now, "a deadline stayed in the past: the thread would spin");
        assert!(task.status.lock().is_ok_and(|s| s.error.is_none()), "a dry run checked nothing");
    }
}
