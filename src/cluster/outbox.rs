//! The outbox: this host's decisions become entries with sequence numbers,
//! durable in the state file before anything is sent, and stay there until
//! Redis has acknowledged them (see [`super::publish`]). Delivery is at least
//! once; readers apply each `(origin, seq)` once.
//!
//! State owned: the next sequence number (persisted with every push, so it
//! only grows, across restarts too).

use std::sync::Arc;

use ipnet::IpNet;

use super::model::{ANY_JAIL, ENTRY_VERSION, Entry, Op};
use crate::core::{Ban, BanOrigin, Timestamp};
use crate::store::{Store, StoreError};

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

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    store: Arc<Store>,
    host_id: String,
    next_seq: u64,
}

impl Outbox {
    /// The outbox of `host_id` in `store`, continuing from `next_seq` (read
    /// from the saved meta values; 1 for a new state file).
    pub fn new(store: Arc<Store>, host_id: &str, next_seq: u64) -> Outbox {
        Outbox { store, host_id: host_id.to_string(), next_seq: next_seq.max(1) }
    }

    /// Reads the next sequence number from saved meta values.
    pub fn saved_next_seq(meta: &[(String, Vec<u8>)]) -> u64 {
        meta.iter()
            .find(|(name, _)| name == NEXT_SEQ)
            .and_then(|(_, value)| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(1, u64::from_be_bytes)
    }

    /// Turns `decisions` into entries and stores them durably, in one
    /// commit. Blocks for the `fsync`.
    pub fn push(&mut self, decisions: &[Replicate], now: Timestamp) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let (entries, next_seq) = self.prepare(decisions, now);
        self.store.outbox_push(&entries, next_seq)?;
        self.pushed(next_seq);
        Ok(())
    }

    /// The encoded entries for `decisions` and the sequence number after
    /// them, for a caller that stores them itself (off an async thread) with
    /// [`Store::outbox_push`] and then calls [`Outbox::pushed`].
    pub fn prepare(&self, decisions: &[Replicate], now: Timestamp) -> (Vec<(u64, Vec<u8>)>, u64) {
        let mut seq = self.next_seq;
        let entries = decisions
            .iter()
            .map(|decision| {
                let entry = entry_for(&self.host_id, seq, decision, now);
                seq += 1;
                (entry.seq, entry.encode().into_bytes())
            })
            .collect();
        (entries, seq)
    }

    /// Records that entries up to `next_seq` (exclusive) are stored.
    pub fn pushed(&mut self, next_seq: u64) {
        self.next_seq = self.next_seq.max(next_seq);
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
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
        let mut outbox = Outbox::new(store.clone(), "mx1", 1);
        let net = ban.net;
        outbox
            .push(
                &[
                    Replicate::Ban(ban.clone()),
                    Replicate::Unban { net, jail: "sshd".into() },
                    Replicate::Tombstone { net },
                ],
                Timestamp(5_000),
            )
            .unwrap();
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
        let mut reopened = Outbox::new(store.clone(), "mx1", Outbox::saved_next_seq(&meta));
        assert_eq!(reopened.next_seq(), 4);
        reopened.push(&[Replicate::Tombstone { net }], Timestamp(6_000)).unwrap();
        assert_eq!(store.outbox(10).unwrap().last().unwrap().0, 4);
        assert_eq!(Outbox::saved_next_seq(&[]), 1);
    }
}
