//! [`Chains`]: puts warden's iptables/ip6tables chains and jumps in place,
//! repairs them, and removes them, through the bounded [`Runner`] and the
//! detected [`Backend`]. Each call reads the `filter` table with `-save`,
//! and runs `-restore --noflush` only if something differs, so re-applying
//! an unchanged ruleset changes nothing.
//!
//! Owns no state: the kernel holds it, and every call reads it afresh.

use super::backend::Backend;
use super::error::FirewallError;
use super::exec::Runner;
use super::ipset::Family;
use super::rules::{self, DOCKER_USER, Ruleset, Script};
use super::save::Saved;

/// Both families, in the order they are applied.
const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// warden's side of iptables and ip6tables. See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Chains {
    runner: Runner,
    backend: Backend,
}

impl Chains {
    pub fn new(runner: Runner, backend: Backend) -> Self {
        Chains { runner, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Seconds iptables may wait for the xtables lock: bounded, and within
    /// the runner's timeout so the wait fails before the kill.
    fn wait_secs(&self) -> String {
        (self.runner.timeout().as_secs() / 2).max(1).to_string()
    }

    /// The `filter` table of `family`, as `-save` prints it.
    pub fn save(&self, family: Family) -> Result<Saved, FirewallError> {
        let program = self.backend.save(family);
        let out = self.runner.run(program, &["-t", "filter"], None)?;
        if out.stdout_truncated {
            let command = super::exec::command_line(program, &["-t", "filter"]);
            return Err(FirewallError::Truncated { command, limit: out.stdout.len() });
        }
        Ok(Saved::parse(&out.stdout))
    }

    fn restore(&self, family: Family, script: &Script) -> Result<(), FirewallError> {
        let wait = self.wait_secs();
        let args = ["-w", wait.as_str(), "--noflush"];
        self.runner.run(self.backend.restore(family), &args, Some(script.text.as_bytes()))?;
        Ok(())
    }

    /// Creates `DOCKER-USER` as Docker would find it before starting: an
    /// empty chain (dockerd keeps it, appends its `RETURN` and adds the
    /// `FORWARD` jump). Losing a race with dockerd creating it is fine.
    fn create_docker_user(&self, family: Family) -> Result<(), FirewallError> {
        let wait = self.wait_secs();
        let args = ["-w", wait.as_str(), "-t", "filter", "-N", DOCKER_USER];
        match self.runner.run(self.backend.iptables(family), &args, None) {
            Ok(_) => Ok(()),
            Err(e) if e.stderr().contains("already exists") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes both families' chains and jumps match `ruleset`; returns what
    /// changed (empty if nothing did). The ruleset's sets must exist.
    pub fn apply(&self, ruleset: &Ruleset) -> Result<Vec<String>, FirewallError> {
        let mut changes = Vec::new();
        for family in FAMILIES {
            let mut saved = self.save(family)?;
            if rules::needs_docker_user(&saved) {
                self.create_docker_user(family)?;
                changes
                    .push(format!("{}: chain {DOCKER_USER} created (Docker not started yet)", label(family)));
                saved = self.save(family)?;
            }
            if let Some(script) = rules::apply_script(&saved, &rules::plan(ruleset, family)) {
                self.restore(family, &script)?;
                changes.extend(script.changes.iter().map(|c| format!("{}: {c}", label(family))));
            }
        }
        for change in &changes {
            tracing::info!(backend = %self.backend, "{change}");
        }
        Ok(changes)
    }

    /// Re-checks the jumps and chains (after Docker restarted, or
    /// periodically) and restores what is missing; returns the repairs,
    /// each also logged as a warning.
    pub fn check_jumps(&self, ruleset: &Ruleset) -> Result<Vec<String>, FirewallError> {
        let repairs = self.apply(ruleset)?;
        for repair in &repairs {
            tracing::warn!(backend = %self.backend, "warden's rules were altered; repaired: {repair}");
        }
        Ok(repairs)
    }

    /// Removes warden's jumps and chains from both families (and an empty,
    /// unreferenced `DOCKER-USER`, see [`rules::cleanup_script`]); returns
    /// what was removed.
    pub fn cleanup(&self) -> Result<Vec<String>, FirewallError> {
        let mut removed = Vec::new();
        for family in FAMILIES {
            if let Some(script) = rules::cleanup_script(&self.save(family)?) {
                self.restore(family, &script)?;
                removed.extend(script.changes.iter().map(|c| format!("{}: {c}", label(family))));
            }
        }
        for change in &removed {
            tracing::info!(backend = %self.backend, "cleanup: {change}");
        }
        Ok(removed)
    }
}

fn label(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}
