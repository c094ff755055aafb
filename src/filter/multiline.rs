//! Multi-line failure ids (`<F-MLFID>`): what a stream has said so far about
//! each open connection, so an attempt logged on several lines counts once.
//!
//! State owned: one `Conn` per open connection id, at most `capacity` of
//! them; when full, the oldest connection is evicted first. Entries older
//! than `max_age` (by line time) are treated as gone. The last connection
//! merged into is remembered, so the next line of it skips the map.
//!
//! The merge follows fail2ban's `Filter._mergeFailure`:
//! - a line's values overwrite the connection's (the host a PAM line gave is
//!   kept for a later line without one);
//! - `<F-NOFAIL>` and `<F-MLFGAINED>` make the merged line not count;
//! - a second, different user on one connection makes it count anyway
//!   (several logon attempts under different names);
//! - `<F-MLFFORGET>` drops the connection after merging;
//! - a failure logged before the address is known ("User root not allowed
//!   because account is locked") is kept pending, even past a forget, and
//!   counts on the first later line of the connection that has the address.
//!
//! warden adds `<F-MLFONCE>`: the line counts only if nothing on the
//! connection has counted yet (a line counts when it is not a nofail and has
//! an address or id) (a summary like "maximum authentication
//! attempts exceeded" after failures that already counted).

use crate::core::Timestamp;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::addr::addr_from_id;
use super::text::{InlineBytes, ShortText, words};

/// Default number of open connections remembered per stream.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default age after which a silent connection is forgotten (10 minutes).
pub const DEFAULT_MAX_AGE_MS: i64 = 10 * 60 * 1000;

/// What one matched line says (after its own groups are read), borrowing
/// its text from the line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fields<'l> {
    pub addr: Option<IpAddr>,
    pub user: Option<&'l str>,
    pub alt_user: Option<&'l str>,
    pub id: Option<&'l str>,
    pub nofail: bool,
    pub forget: bool,
    pub gained: bool,
    pub once: bool,
}

/// A line's view after merging with its connection: what a [`Hit`](super::Hit)
/// needs, and no more (the texts are copied once, into the hit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Merged {
    /// The address, else one read from the failure id (`<F-ID>`).
    pub addr: Option<IpAddr>,
    /// The user, else the alternative user.
    pub user: Option<ShortText>,
    /// The line does not count as a new failure.
    pub nofail: bool,
}

impl Merged {
    /// A line without a connection id: its own values, as they are.
    pub fn alone(fields: &Fields) -> Merged {
        Merged {
            addr: fields.addr.or_else(|| fields.id.and_then(addr_from_id)),
            user: fields.user.or(fields.alt_user).map(ShortText::new),
            nofail: fields.nofail || fields.gained,
        }
    }
}

#[derive(Debug, Clone)]
struct Conn {
    seq: u64,
    last_time: Option<Timestamp>,
    addr: Option<IpAddr>,
    user: Option<ShortText>,
    alt_user: Option<ShortText>,
    id: Option<ShortText>,
    /// Distinct users seen on the connection, up to [`MAX_USERS`]: the first
    /// apart, so the usual connection (one user) needs no list.
    first_user: Option<ShortText>,
    more_users: Vec<ShortText>,
    /// Whether a line on this connection has counted as a failure.
    counted: bool,
    /// A failure was logged before the connection's address was known; the
    /// first line that brings the address counts for it.
    pending: bool,
}

impl Conn {
    fn users_len(&self) -> usize {
        usize::from(self.first_user.is_some()) + self.more_users.len()
    }

    /// Remembers `user` among the distinct users (bounded). Compared as
    /// text: the usual line repeats a user already known, and copies
    /// nothing.
    fn see_user(&mut self, user: &str) {
        match &self.first_user {
            None => self.first_user = Some(ShortText::new(user)),
            Some(first) if *first == *user => {}
            Some(_) => {
                if !self.more_users.iter().any(|u| *u == *user) && self.users_len() < MAX_USERS {
                    self.more_users.push(ShortText::new(user));
                }
            }
        }
    }
}

/// The connection's value after a line: the line's if it has one, else the
/// one kept. (Inlined into [`update`], which runs on most lines.)
#[inline(always)]
fn adopt(kept: &mut Option<ShortText>, line: Option<&str>) {
    if let Some(v) = line
        && kept.as_ref().is_none_or(|k| *k != *v)
    {
        *kept = Some(ShortText::new(v));
    }
}

/// A connection id as a map key: inline when short (`host sshd[12345]`
/// fits), so opening a connection allocates nothing for its key, and
/// comparing two inline keys compares two fixed-size arrays. A given id is
/// always stored the same way (inline exactly when it fits), so comparing
/// and hashing the representation is comparing and hashing the id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnKey {
    /// The id's bytes as zero-padded words (built, hashed and compared a
    /// word at a time).
    Inline {
        len: u8,
        words: [u64; INLINE_KEY / 8],
    },
    Heap(Box<[u8]>),
}

/// Two words per write, and the last two only when they hold bytes (a
/// short id fits in the first two): each write is one multiply in
/// foldhash. Ids differing only in trailing NUL bytes (equal words, other
/// lengths) hash alike, which makes at most 32 keys collide whatever the
/// seed, and a heap key may hash like an inline one: harmless, as keys are
/// compared whole.
impl std::hash::Hash for ConnKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            ConnKey::Inline { words: [a, b, c, d], .. } => {
                state.write_u128(u128::from(*a) | u128::from(*b) << 64);
                if *c | *d != 0 {
                    state.write_u128(u128::from(*c) | u128::from(*d) << 64);
                }
            }
            ConnKey::Heap(bytes) => state.write(bytes),
        }
    }
}

/// Longest connection id kept inline.
const INLINE_KEY: usize = 32;

impl ConnKey {
    fn new(id: &str) -> ConnKey {
        let b = id.as_bytes();
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= INLINE_KEY => ConnKey::Inline { len, words: words(b) },
            _ => ConnKey::Heap(b.into()),
        }
    }
}

/// The per-stream connection cache.
///
/// Connections live in `slots`, and the map gives an id's slot and the
/// sequence number of the connection opened there, so a connection keeps
/// its place while it is open and an entry is checked against its slot:
/// - the last connection merged into is remembered by slot ([`LastConn`]),
///   and a line of the same connection (most lines: one sshd process logs
///   several in a row) finds it without hashing its id or probing the map;
/// - a connection is forgotten, evicted or expired by emptying its slot;
///   its map entry, now dead, is reused when the id comes back, and dead
///   entries are dropped when they outnumber the open ones.
#[derive(Debug, Clone)]
pub(crate) struct ConnCache {
    /// Connection id to (slot, seq). foldhash: fast and randomly seeded
    /// (ids come from log lines).
    map: HashMap<ConnKey, (usize, u64), foldhash::fast::RandomState>,
    conns: Conns,
    max_age_ms: i64,
}

/// The connections and their bookkeeping (apart from the map, so a map
/// entry can stay borrowed while a connection is opened or closed).
#[derive(Debug, Clone)]
struct Conns {
    /// The connections; `None` in slots freed for reuse (`free`).
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Open connections (slots holding one).
    open: usize,
    /// The connection the last merged line left open, if its id is short.
    last: Option<LastConn>,
    /// Insertion order for eviction, as (slot, seq): entries whose slot no
    /// longer holds that seq are stale.
    order: VecDeque<(usize, u64)>,
    next_seq: u64,
    capacity: usize,
}

/// The id, slot and seq of the last connection merged into (ids up to
/// [`INLINE_KEY`] bytes), compared byte for byte with the next line's id.
/// It answers only while the slot still holds that seq.
#[derive(Debug, Clone)]
struct LastConn {
    id: InlineBytes<INLINE_KEY>,
    slot: usize,
    seq: u64,
}

impl LastConn {
    fn new(id: &str, slot: usize, seq: u64) -> Option<LastConn> {
        InlineBytes::new(id.as_bytes()).map(|id| LastConn { id, slot, seq })
    }

    fn is(&self, id: &str) -> bool {
        self.id.is(id.as_bytes())
    }
}

/// How many distinct users one connection remembers (bounds memory per entry).
const MAX_USERS: usize = 8;

/// Whether a connection last heard of at `last` is still open at `time`.
fn fresh(last: Option<Timestamp>, time: Option<Timestamp>, max_age_ms: i64) -> bool {
    match (last, time) {
        (Some(last), Some(t)) => t.0.saturating_sub(last.0) <= max_age_ms,
        _ => true,
    }
}

/// The connection opened as `seq` in `slot`, if it is still there.
fn held(slots: &mut [Option<Conn>], slot: usize, seq: u64) -> Option<&mut Conn> {
    slots.get_mut(slot)?.as_mut().filter(|conn| conn.seq == seq)
}

impl ConnCache {
    pub fn new(capacity: usize, max_age_ms: i64) -> Self {
        ConnCache {
            map: HashMap::default(),
            conns: Conns {
                slots: Vec::new(),
                free: Vec::new(),
                open: 0,
                last: None,
                order: VecDeque::new(),
                next_seq: 0,
                capacity: capacity.max(1),
            },
            max_age_ms,
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.open
    }

    pub fn clear(&mut self) {
        self.map.clear();
        let c = &mut self.conns;
        c.slots.clear();
        c.free.clear();
        c.open = 0;
        c.last = None;
        c.order.clear();
    }

    /// Merges `fields` of a line with connection id `mlfid`, returning the
    /// merged view. `nofail` in the result says whether the line counts.
    ///
    /// The last line's connection is found by its slot; any other with one
    /// hash and one probe. The connection is updated, emptied or filled in
    /// place.
    pub fn merge(&mut self, mlfid: &str, fields: &Fields, time: Option<Timestamp>) -> Merged {
        let max_age = self.max_age_ms;
        let conns = &mut self.conns;
        if let Some(last) = &conns.last
            && last.is(mlfid)
            && let Some(conn) = held(&mut conns.slots, last.slot, last.seq)
            && fresh(conn.last_time, time, max_age)
        {
            let (merged, forget) = update(conn, fields, time);
            if forget {
                let slot = last.slot;
                conns.close(slot);
            }
            return merged;
        }
        let seq = conns.next_seq;
        match self.map.entry(ConnKey::new(mlfid)) {
            Entry::Occupied(mut entry) => {
                let (slot, old_seq) = *entry.get();
                if let Some(conn) = held(&mut conns.slots, slot, old_seq) {
                    if fresh(conn.last_time, time, max_age) {
                        let (merged, forget) = update(conn, fields, time);
                        if forget {
                            conns.close(slot);
                        } else {
                            conns.last = LastConn::new(mlfid, slot, old_seq);
                        }
                        return merged;
                    }
                    // Silent for longer than max_age: a new connection.
                    conns.close(slot);
                }
                // The id's connection was forgotten, evicted or expired:
                // opened again in the same entry when there is room.
                if conns.open < conns.capacity {
                    let (merged, keep) = open(fields);
                    if keep {
                        let slot = conns.fill(mlfid, fields, time);
                        entry.insert((slot, seq));
                    }
                    return merged;
                }
            }
            Entry::Vacant(entry) => {
                if conns.open < conns.capacity {
                    let (merged, keep) = open(fields);
                    if keep {
                        let slot = conns.fill(mlfid, fields, time);
                        entry.insert((slot, seq));
                        self.compact_map();
                    }
                    return merged;
                }
            }
        }
        // A new connection when the cache is full: make room first.
        let (merged, keep) = open(fields);
        if keep {
            conns.evict_for_one();
            let slot = conns.fill(mlfid, fields, time);
            self.map.insert(ConnKey::new(mlfid), (slot, seq));
            self.compact_map();
        }
        merged
    }

    /// Closed connections leave dead map entries; keep the map bounded.
    fn compact_map(&mut self) {
        if self.map.len() > 2 * self.conns.capacity {
            let slots = &mut self.conns.slots;
            self.map.retain(|_, &mut (slot, seq)| held(slots, slot, seq).is_some());
        }
    }
}

impl Conns {
    /// Opens the connection a line starts (as `next_seq`; see [`open`]) in
    /// a free slot, or a new one, and remembers it as the last connection
    /// and for eviction. (Built where it is kept: a connection is a few
    /// hundred bytes, and built elsewhere it was copied there.)
    fn fill(&mut self, mlfid: &str, fields: &Fields, time: Option<Timestamp>) -> usize {
        let seq = self.next_seq;
        let slot = match self.free.pop() {
            Some(slot) if slot < self.slots.len() => {
                self.slots[slot] = Some(new_conn(fields, time, seq));
                slot
            }
            _ => {
                self.slots.push(Some(new_conn(fields, time, seq)));
                self.slots.len() - 1
            }
        };
        self.open += 1;
        self.next_seq += 1;
        self.order.push_back((slot, seq));
        self.last = LastConn::new(mlfid, slot, seq);
        self.compact_order();
        slot
    }

    /// Forgets the connection in `slot`; its map entry is left dead.
    fn close(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot)
            && entry.take().is_some()
        {
            self.free.push(slot);
            self.open -= 1;
        }
    }

    /// Evicts the oldest connections until one more fits.
    fn evict_for_one(&mut self) {
        while self.open >= self.capacity {
            let Some((slot, seq)) = self.order.pop_front() else { break };
            if held(&mut self.slots, slot, seq).is_some() {
                self.close(slot);
            }
        }
    }

    /// Forgotten connections leave stale order entries; keep the queue bounded.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.capacity {
            let slots = &mut self.slots;
            self.order.retain(|&(slot, seq)| held(slots, slot, seq).is_some());
        }
    }
}

/// Merges a line into its open connection; also says whether the
/// connection is now to be forgotten. (Inlined into both of
/// [`ConnCache::merge`]'s ways to a connection: it runs on most lines.)
#[inline(always)]
fn update(conn: &mut Conn, fields: &Fields, time: Option<Timestamp>) -> (Merged, bool) {
    let mut nofail = fields.nofail || fields.gained;
    // The line's values win; the connection lends the ones it lacks. A
    // line repeating the connection's user (the usual case) changes
    // nothing: that user was seen when it became the connection's, and is
    // among the distinct users unless their list was full then (it still
    // is: it never shrinks).
    if let Some(u) = fields.user
        && conn.user.as_ref().is_none_or(|k| *k != *u)
    {
        conn.see_user(u);
        conn.user = Some(ShortText::new(u));
    }
    let users_len = conn.users_len();
    if fields.addr.is_some() {
        conn.addr = fields.addr;
    }
    adopt(&mut conn.alt_user, fields.alt_user);
    adopt(&mut conn.id, fields.id);
    if time.is_some() {
        conn.last_time = time;
    }
    if fields.once && conn.counted {
        nofail = true;
    }
    if users_len > 1 {
        nofail = false;
    }
    let identified = conn.addr.is_some() || conn.id.is_some();
    if !nofail && !identified {
        conn.pending = true;
    } else if identified && conn.pending {
        // The failure logged before the address was known counts now.
        nofail = false;
        conn.pending = false;
    }
    // A line with an address (or id) that is not a nofail counts.
    conn.counted |= !nofail && identified;
    let merged = Merged {
        addr: conn.addr.or_else(|| conn.id.as_deref().and_then(addr_from_id)),
        user: conn.user.as_ref().or(conn.alt_user.as_ref()).cloned(),
        nofail: nofail && users_len <= 1,
    };
    (merged, fields.forget && !conn.pending)
}

/// A line that opens a connection: its merged view, and whether to
/// remember the connection ([`new_conn`]; not when the line also closes it
/// and nothing is pending).
fn open(fields: &Fields) -> (Merged, bool) {
    let nofail = fields.nofail || fields.gained;
    let users_len = usize::from(fields.user.is_some());
    let line = Merged { nofail: nofail && users_len <= 1, ..Merged::alone(fields) };
    (line, !fields.forget || pending(fields))
}

/// A failure logged before the connection's address (or id) is known.
fn pending(fields: &Fields) -> bool {
    // Neither a nofail nor identified.
    !(fields.nofail || fields.gained || fields.addr.is_some() || fields.id.is_some())
}

/// The connection a line opens, as `seq` (see [`open`]).
#[inline(always)]
fn new_conn(fields: &Fields, time: Option<Timestamp>, seq: u64) -> Conn {
    let nofail = fields.nofail || fields.gained;
    let identified = fields.addr.is_some() || fields.id.is_some();
    let user = fields.user.map(ShortText::new);
    Conn {
        seq,
        last_time: time,
        addr: fields.addr,
        user: user.clone(),
        alt_user: fields.alt_user.map(ShortText::new),
        id: fields.id.map(ShortText::new),
        first_user: user,
        more_users: Vec::new(),
        counted: !nofail && identified,
        pending: pending(fields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn line(addr: Option<IpAddr>, user: Option<&str>) -> Fields<'_> {
        Fields { addr, user, ..Fields::default() }
    }

    #[test]
    fn nofail_line_lends_its_host_to_a_later_line() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        let pam = Fields { nofail: true, ..line(ip("192.0.2.1"), Some("root")) };
        let m = c.merge("42", &pam, None);
        assert!(m.nofail);
        let later = c.merge("42", &line(None, None), None);
        assert_eq!((later.addr, later.user.as_deref(), later.nofail), (ip("192.0.2.1"), Some("root"), false));
    }

    #[test]
    fn forget_drops_the_connection_after_merging() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        c.merge("1", &line(ip("192.0.2.1"), None), None);
        let closed = c.merge("1", &Fields { nofail: true, forget: true, ..line(None, None) }, None);
        assert_eq!((closed.addr, closed.nofail), (ip("192.0.2.1"), true));
        assert_eq!(c.len(), 0);
        let fresh = c.merge("1", &line(None, None), None);
        assert_eq!(fresh.addr, None);
    }

    #[test]
    fn gained_means_no_failure_and_a_second_user_counts_again() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        let m = c.merge("1", &Fields { gained: true, ..line(ip("192.0.2.1"), Some("a")) }, None);
        assert!(m.nofail);
        c.merge("2", &Fields { nofail: true, ..line(ip("192.0.2.2"), Some("a")) }, None);
        let m = c.merge("2", &Fields { nofail: true, ..line(None, Some("b")) }, None);
        assert!(!m.nofail, "two users on one connection count");
    }

    #[test]
    fn a_repeated_user_is_one_user_and_every_user_is_remembered_once() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        let nofail = |user| Fields { nofail: true, ..line(ip("192.0.2.1"), Some(user)) };
        assert!(c.merge("1", &nofail("a"), None).nofail);
        assert!(c.merge("1", &nofail("a"), None).nofail, "the same user again is one user");
        assert!(!c.merge("1", &nofail("b"), None).nofail);
        let back = c.merge("1", &nofail("a"), None);
        assert_eq!((back.nofail, back.user.as_deref()), (false, Some("a")), "a is back: still two users");
        let users = |c: &ConnCache| c.conns.slots.iter().flatten().map(Conn::users_len).sum::<usize>();
        assert_eq!(users(&c), 2);
        // Past MAX_USERS distinct users the list stays full, and the
        // connection's user is still the line's.
        let names: Vec<String> = (0..MAX_USERS + 2).map(|i| format!("u{i}")).collect();
        for name in names.iter().chain(names.iter().rev()) {
            let m = c.merge("1", &nofail(name), None);
            assert_eq!((m.nofail, m.user.as_deref()), (false, Some(name.as_str())));
        }
        assert_eq!(users(&c), MAX_USERS);
    }

    #[test]
    fn once_counts_only_if_nothing_counted_yet() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        assert!(
            !c.merge("1", &line(ip("192.0.2.1"), None), None).nofail,
            "counts, and is remembered as counted"
        );
        assert!(c.merge("1", &Fields { once: true, ..line(None, None) }, None).nofail);
        c.merge("2", &Fields { nofail: true, ..line(ip("192.0.2.2"), None) }, None);
        assert!(!c.merge("2", &Fields { once: true, ..line(None, None) }, None).nofail);
    }

    #[test]
    fn a_failure_without_address_counts_when_the_address_arrives() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        let locked = c.merge("1", &Fields { forget: true, ..line(None, Some("root")) }, None);
        assert_eq!((locked.addr, locked.nofail), (None, false));
        let close = c.merge("1", &Fields { nofail: true, forget: true, ..line(ip("192.0.2.1"), None) }, None);
        assert_eq!((close.addr, close.nofail, close.user.as_deref()), (ip("192.0.2.1"), false, Some("root")));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn long_connection_ids_are_kept_apart() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        let long = "a-host-name-longer-than-thirty-bytes sshd[1]";
        let other = "a-host-name-longer-than-thirty-bytes sshd[2]";
        c.merge(long, &line(ip("192.0.2.1"), None), None);
        c.merge(other, &line(ip("192.0.2.2"), None), None);
        assert_eq!(c.merge(long, &line(None, None), None).addr, ip("192.0.2.1"));
        assert_eq!(c.merge(other, &Fields { forget: true, ..line(None, None) }, None).addr, ip("192.0.2.2"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn capacity_evicts_oldest_first_and_age_expires() {
        let mut c = ConnCache::new(3, 1000);
        for id in ["a", "b", "c", "d"] {
            c.merge(id, &line(ip("192.0.2.1"), None), Some(Timestamp(0)));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.merge("a", &line(None, None), None).addr, None, "a was evicted");
        assert_eq!(c.merge("d", &line(None, None), Some(Timestamp(500))).addr, ip("192.0.2.1"));
        assert_eq!(c.merge("d", &line(None, None), Some(Timestamp(5000))).addr, None, "d expired");
        for i in 0..100 {
            let id = format!("x{i}");
            c.merge(&id, &line(None, None), None);
            c.merge(&id, &Fields { forget: true, ..line(None, None) }, None);
        }
        assert!(c.conns.order.len() <= 6, "stale order entries are compacted: {}", c.conns.order.len());
        assert!(c.map.len() <= 7, "dead map entries are dropped: {}", c.map.len());
    }

    #[test]
    fn a_reused_slot_never_answers_for_the_connection_that_left_it() {
        let mut c = ConnCache::new(10, DEFAULT_MAX_AGE_MS);
        c.merge("x", &line(ip("192.0.2.1"), None), None);
        // Closed through the last-connection memo; "y" then takes its slot.
        c.merge("x", &Fields { forget: true, ..line(None, None) }, None);
        c.merge("y", &line(ip("192.0.2.2"), None), None);
        assert_eq!(c.merge("x", &line(None, None), None).addr, None, "x was forgotten");
        assert_eq!(c.merge("y", &line(None, None), None).addr, ip("192.0.2.2"));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_full_cache_evicts_the_last_connection_too() {
        let mut c = ConnCache::new(1, DEFAULT_MAX_AGE_MS);
        c.merge("a", &line(ip("192.0.2.1"), None), None);
        c.merge("b", &line(ip("192.0.2.2"), None), None);
        // "a" comes back to a dead entry while the cache is full: "b" goes.
        assert_eq!(c.merge("a", &line(None, None), None).addr, None, "a was evicted");
        assert_eq!(c.merge("b", &line(None, None), None).addr, None, "b was evicted");
        assert_eq!(c.merge("b", &line(None, None), None).addr, None);
        assert_eq!(c.merge("b", &line(ip("192.0.2.3"), None), None).addr, ip("192.0.2.3"));
        assert_eq!(c.merge("b", &line(None, None), None).addr, ip("192.0.2.3"));
        assert_eq!(c.len(), 1);
    }
}
