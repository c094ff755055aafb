//! The firewall's sets: creating each jail's and the allowlist's,
//! [`reconcile`]-ing a set's content with a desired list without any window
//! in which a banned address gets through, and destroying warden's sets on
//! cleanup. All in-process, through an [`IpsetHandle`].

use ipnet::IpNet;

use super::error::FirewallError;
use super::ipset::{EntryTimeout, Family, IpsetHandle, SetSpec};
use super::rules::{self, JailRules, Ruleset};

/// Creates every set `ruleset` refers to (adopting those that exist, so
/// bans survive a restart) and makes the allowlist sets hold exactly
/// `ruleset.allowlist`. Call before [`super::chains::Chains::apply`]:
/// rules cannot name a set that does not exist.
pub fn ensure_sets(handle: &mut IpsetHandle, ruleset: &Ruleset) -> Result<(), FirewallError> {
    for spec in ruleset.set_specs() {
        handle.create(&spec)?;
    }
    for family in [Family::V4, Family::V6] {
        let spec = SetSpec::new(rules::allow_set_name(family), super::ipset::SetType::HashNet, family);
        let entries: Vec<(IpNet, EntryTimeout)> = ruleset
            .allowlist
            .iter()
            .filter(|net| Family::of(net) == family)
            .map(|net| (net.trunc(), EntryTimeout::PERMANENT))
            .collect();
        reconcile_set(handle, &spec, &entries)?;
    }
    Ok(())
}

/// How many entries each family's set of a jail holds after [`reconcile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconciled {
    pub v4: usize,
    pub v6: usize,
}

/// Makes `jail`'s sets hold exactly `desired` (each entry with its
/// remaining time), as on startup from the store: entries missing are
/// added, entries not desired disappear, and at no moment is a desired
/// entry absent from the set that the rules match (see [`reconcile_set`]).
pub fn reconcile(
    handle: &mut IpsetHandle,
    jail: &JailRules,
    desired: &[(IpNet, EntryTimeout)],
) -> Result<Reconciled, FirewallError> {
    let mut done = Reconciled::default();
    for family in [Family::V4, Family::V6] {
        let entries: Vec<_> = desired.iter().copied().filter(|(net, _)| Family::of(net) == family).collect();
        let count = reconcile_set(handle, &jail.set_spec(family), &entries)?;
        match family {
            Family::V4 => done.v4 = count,
            Family::V6 => done.v6 = count,
        }
    }
    Ok(done)
}

/// Makes the set `spec` names hold exactly `entries`: fills a scratch set
/// of the same kind, swaps the two (atomically for packets: rules see the
/// old content until the swap, the new content after), then destroys the
/// scratch set, which now holds the old content. The set is created if
/// missing. Returns the number of entries installed.
///
/// If any entry is refused, nothing is swapped and the set keeps its old
/// content: better stale bans than missing ones.
pub fn reconcile_set(
    handle: &mut IpsetHandle,
    spec: &SetSpec,
    entries: &[(IpNet, EntryTimeout)],
) -> Result<usize, FirewallError> {
    handle.create(spec)?;
    let scratch = SetSpec { name: rules::swap_set_name(spec.family), ..spec.clone() };
    // A scratch set left by a crash may be of another kind; it is never referenced.
    handle.destroy(&scratch.name)?;
    handle.create(&scratch)?;
    let filled = handle.add_batch(&scratch.name, entries);
    let report = match filled {
        Ok(report) => report,
        Err(e) => {
            let _ = handle.destroy(&scratch.name);
            return Err(e.into());
        }
    };
    if let Some(first) = report.failures.into_iter().next() {
        let refused = entries.len() - report.applied;
        let _ = handle.destroy(&scratch.name);
        return Err(FirewallError::Refused {
            set: spec.name.clone(),
            refused,
            total: entries.len(),
            first: Box::new(first.error),
        });
    }
    handle.swap(&spec.name, &scratch.name)?;
    handle.destroy(&scratch.name)?;
    Ok(report.applied)
}

/// Destroys warden's sets that `keep` does not name (nor the scratch
/// sets); returns their names. A set some rule still refers to is left
/// alone with a warning: the kernel refuses to destroy it anyway.
pub fn destroy_unreferenced(
    handle: &mut IpsetHandle,
    keep: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>, FirewallError> {
    let scratch = [rules::swap_set_name(Family::V4), rules::swap_set_name(Family::V6)];
    let mut destroyed = Vec::new();
    for name in handle.set_names()? {
        if !rules::is_warden_set(&name) || keep.contains(&name) || scratch.contains(&name) {
            continue;
        }
        match handle.destroy(&name) {
            Ok(true) => destroyed.push(name),
            Ok(false) => {}
            Err(e) => tracing::warn!(set = %name, "an unused warden set could not be destroyed: {e}"),
        }
    }
    Ok(destroyed)
}

/// Destroys every set warden created ([`rules::is_warden_set`]); returns
/// their names. Run after the chains are gone: a set a rule refers to
/// cannot be destroyed.
pub fn destroy_sets(handle: &mut IpsetHandle) -> Result<Vec<String>, FirewallError> {
    let mut destroyed = Vec::new();
    for name in handle.set_names()? {
        if rules::is_warden_set(&name) && handle.destroy(&name)? {
            destroyed.push(name);
        }
    }
    Ok(destroyed)
}
