//! The outbox: this host's decisions become entries with sequence numbers,
//! durable in the state file before anything is sent, and stay there until
//! Redis has acknowledged them (see [`super::publish`]). Delivery is at least
//! once; readers apply each `(origin, seq)` once.
//!
//! Entries are numbered here and stored by whoever makes the decision
//! durable: the daemon stores a ban's entry in the ban's own commit, the
//! publisher stores what anti-entropy republishes. Numbering and storing
//! happen under one lock ([`Outbox::stage_with`]), so the outbox table
//! never holds a number before a smaller one that is still to come: reading
//! it in key order is publishing in decision order.
//!
//! State owned: the next sequence number (persisted with every stored
//! entry, so it only grows, across restarts too).

use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::model::{ANY_JAIL, ENTRY_VERSION, Entry, Op};
use crate::core::{Ban, BanOrigin, Timestamp};
use crate::store::StoreError;

/// The meta value holding the next sequence number (big-endian u64).
pub const NEXT_SEQ: &str = "next_seq";

/// A decision of this host, to replicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicate {
    /// A jail or an operator banned (already persisted and enforced here).
    Ban(Ban),
    /// This host lifted its own ban of `net` in `jail`; other hosts drop
    /// this host's ban, and keep their own and other hosts'.
    Unban { net: IpNet, jail: String },
    /// `warden unban --cluster`: every host lifts the remote bans of `net`
    /// decided until now (a tombstone on the control stream).
    Tombstone { net: IpNet },
}

/// Numbered entries on their way to the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// (sequence number, encoded entry), in increasing numbers.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Already in the outbox table; otherwise the publisher stores them
    /// before sending them.
    pub durable: bool,
}

/// See the module documentation. Clones share the sequence.
#[derive(Debug, Clone)]
pub struct Outbox {
    host_id: Arc<str>,
    next_seq: Arc<Mutex<u64>>,
}

impl Outbox {
    /// The outbox of `host_id`, continuing from `next_seq` (read from the
    /// saved meta values; 1 for a new state file).
    pub fn new(host_id: &str, next_seq: u64) -> Outbox {
        Outbox { host_id: Arc::from(host_id), next_seq: Arc::new(Mutex::new(next_seq.max(1))) }
    }

    /// Reads the next sequence number from saved meta values.
    pub fn saved_next_seq(meta: &[(String, Vec<u8>)]) -> u64 {
        meta.iter()
            .find(|(name, _)| name == NEXT_SEQ)
            .and_then(|(_, value)| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(1, u64::from_be_bytes)
    }

    /// Numbers `decisions` and hands the entries to `store`, which puts
    /// them in the outbox table (in a commit of its
    /// choosing); no other number is given out meanwhile. The numbers are
    /// used up either way: a gap is harmless, a number given twice is not.
    /// Blocks for as long as `store` does.
    pub fn stage_with<T>(
        &self,
        decisions: &[Replicate],
        now: Timestamp,
        store: impl FnOnce(&[(u64, Vec<u8>)]) -> Result<T, StoreError>,
    ) -> (Staged, Result<T, StoreError>) {
        // A poisoned lock only means a panic elsewhere while numbering; the
        // number inside is still the next one free.
        let mut next_seq = self.next_seq.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = *next_seq;
        let entries: Vec<(u64, Vec<u8>)> = (first..)
            .zip(decisions)
            .map(|(seq, decision)| (seq, entry_for(&self.host_id, seq, decision, now).encode().into_bytes()))
            .collect();
        *next_seq = first + entries.len() as u64;
        let stored = store(&entries);
        (Staged { entries, durable: stored.is_ok() }, stored)
    }

    pub fn next_seq(&self) -> u64 {
        *self.next_seq.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The entry `host_id` publishes for `decision`, numbered `seq`.
pub fn entry_for(host_id: &str, seq: u64, decision: &Replicate, now: Timestamp) -> Entry {
    let (op, net, jail, at, until, reason) = match decision {
        Replicate::Ban(ban) => {
            let reason = match &ban.origin {
                BanOrigin::Jail => format!("jail {}: {} failures", ban.jail, ban.failures),
                BanOrigin::Manual => "manual".to_string(),
                BanOrigin::Remote { host } => format!("remote {host}"),
            };
            (Op::Ban, ban.net, ban.jail.clone(), ban.at, ban.until, reason)
        }
        Replicate::Unban { net, jail } => (Op::Unban, *net, jail.clone(), now, None, "unban".to_string()),
        Replicate::Tombstone { net } => {
            (Op::Unban, *net, ANY_JAIL.to_string(), now, None, "admin unban".to_string())
        }
    };
    Entry { v: ENTRY_VERSION, origin: host_id.to_string(), seq, op, net, jail, at, until, reason }
}

/// True for an entry that belongs on the control stream (a tombstone).
pub fn is_tombstone(entry: &Entry) -> bool {
    entry.op == Op::Unban && entry.jail == ANY_JAIL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::parse_ip_or_net;
    use crate::store::Store;

    #[test]
    fn decisions_become_numbered_durable_entries_and_numbers_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let ban = Ban {
            net: parse_ip_or_net("203.0.113.7").unwrap(),
            jail: "sshd".into(),
            origin: BanOrigin::Jail,
            at: Timestamp(1_000),
            until: Some(Timestamp(61_000)),
            count: 1,
            failures: 5,
        };
        let outbox = Outbox::new("mx1", 1);
        let net = ban.net;
        let decisions = [
            Replicate::Ban(ban.clone()),
            Replicate::Unban { net, jail: "sshd".into() },
            Replicate::Tombstone { net },
        ];
        let (staged, stored) = outbox.stage_with(&decisions, Timestamp(5_000), |e| store.outbox_push(e));
        stored.unwrap();
        assert!(staged.durable);
        assert_eq!(outbox.next_seq(), 4);
        let queued: Vec<Entry> =
            store.outbox(10).unwrap().iter().map(|(_, bytes)| Entry::decode(bytes).unwrap()).collect();
        assert_eq!(queued.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            (queued[0].op, queued[0].until, queued[0].reason.as_str()),
            (Op::Ban, ban.until, "jail sshd: 5 failures")
        );
        assert_eq!(
            (queued[1].op, queued[1].jail.as_str(), queued[1].at),
            (Op::Unban, "sshd", Timestamp(5_000))
        );
        assert!(is_tombstone(&queued[2]) && !is_tombstone(&queued[1]));

        let meta = store.cluster_state(Timestamp(0)).unwrap().meta;
        let reopened = Outbox::new("mx1", Outbox::saved_next_seq(&meta));
        assert_eq!(reopened.next_seq(), 4);
        // A failed store uses its numbers up all the same.
        let (failed, stored) = reopened.stage_with(&[Replicate::Tombstone { net }], Timestamp(6_000), |_| {
            Err::<(), _>(StoreError::Corrupt { path: "x".into(), detail: "test".into() })
        });
        assert!(stored.is_err() && !failed.durable);
        assert_eq!(failed.entries[0].0, 4);
        let (again, stored) =
            reopened.stage_with(&[Replicate::Tombstone { net }], Timestamp(6_000), |e| store.outbox_push(e));
        stored.unwrap();
        assert_eq!(again.entries[0].0, 5);
        assert_eq!(store.outbox(10).unwrap().last().unwrap().0, 5);
        assert_eq!(Outbox::saved_next_seq(&[]), 1);
    }
}
