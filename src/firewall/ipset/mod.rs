//! Kernel ipsets over netlink, in-process: no `ipset` binary, no libipset.
//!
//! An [`IpsetHandle`] speaks the kernel's ipset protocol (nfnetlink
//! subsystem 6, protocol version 6) over a `NETLINK_NETFILTER` socket. It
//! creates `hash:ip` and `hash:net` sets with timeout support, adds entries
//! with per-entry timeouts (alone or in batches of thousands per `sendmsg`),
//! deletes, tests, lists with remaining timeouts, and swaps, flushes, renames
//! and destroys sets. Set names come from [`set_name`], which keeps them
//! within ipset's 31 bytes without letting two jails collide.
//!
//! # Ownership
//!
//! A handle owns one socket and is meant to be owned by one task or thread,
//! the firewall's; it is `Send` but every operation takes `&mut self`, and
//! it is not meant to be shared behind a lock between tasks. The socket acts
//! on the network namespace that was current when [`IpsetHandle::open`] ran,
//! whichever thread uses it later.
//!
//! # Privileges
//!
//! Every operation except opening needs `CAP_NET_ADMIN` in that namespace;
//! without it, operations fail with [`IpsetError::is_permission_denied`].
//!
//! # Timeouts
//!
//! Entry timeouts are [`EntryTimeout`]s: whole seconds or permanent, capped
//! by the kernel at 2,147,483 s. Longer bans must be refreshed by the caller
//! (re-adding an entry resets its timeout).
//!
//! # Example
//!
//! ```no_run
//! use std::net::IpAddr;
//! use std::time::Duration;
//! use warden::firewall::ipset::{set_name, EntryTimeout, Family, IpsetHandle, SetSpec, SetType};
//!
//! let mut ipset = IpsetHandle::open()?;
//! let name = set_name("warden", "sshd", Family::V4); // "warden-sshd-v4"
//! ipset.create(&SetSpec::new(&name, SetType::HashIp, Family::V4))?; // or adopts the existing set
//! let ban = Duration::from_secs(3600);
//! let attacker: IpAddr = "203.0.113.7".parse()?;
//! ipset.add(&name, attacker, EntryTimeout::after(ban))?;
//! assert!(ipset.test(&name, attacker)?);
//! for entry in ipset.list(&name)?.entries {
//!     println!("{} expires in {:?}", entry.net, entry.timeout);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod name;
mod proto;
// The socket and the message codec also serve conntrack (`super::conntrack`).
pub(in crate::firewall) mod socket;
mod types;
pub(in crate::firewall) mod wire;

use std::collections::HashMap;

use ipnet::IpNet;

pub use error::{ErrorKind, Incompatible, IpsetError, Op};
pub use name::{set_name, set_name_with_suffix};
pub use proto::{MAX_NAME_LEN, MAX_TIMEOUT_SECS};
pub use types::{Created, EntryTimeout, Family, ListedEntry, SetHeader, SetListing, SetSpec, SetType};

use proto::*;
use socket::{ACK_TRUESIZE, NetlinkSocket, NlError};
use wire::{Attr, Malformed, Message, MsgBuf};

/// Most requests sent in one `sendmsg` of a batch. Bounded so the ACKs fit
/// in the receive buffer (see [`ACK_TRUESIZE`]) and the datagram stays well
/// under the send buffer.
const MAX_BATCH_CHUNK: usize = 1024;

/// Largest datagram a batch sends, in bytes.
const MAX_BATCH_BYTES: usize = 128 << 10;

/// A connection to the kernel's ipset subsystem. See the module docs.
///
/// Operations take `&mut self` (they share one buffer and sequence counter),
/// so one thread uses a handle at a time: give it to the task that owns the
/// firewall rather than sharing it behind a lock.
pub struct IpsetHandle {
    sock: NetlinkSocket,
    msg: MsgBuf,
    kernel_protocol: u8,
    /// Highest revision of each set type the kernel offers, asked once.
    revisions: HashMap<(SetType, Family), u8>,
    chunk: usize,
}

// The handle moves to the firewall task; keep it Send.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<IpsetHandle>();
};

/// One entry of a batch that the kernel refused.
#[derive(Debug)]
pub struct BatchFailure {
    /// Position of the entry in the batch.
    pub index: usize,
    pub error: IpsetError,
}

/// The outcome of a batch: how many entries were applied, and each refusal.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub applied: usize,
    pub failures: Vec<BatchFailure>,
}

impl BatchReport {
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

impl IpsetHandle {
    /// Opens a socket in the current network namespace and negotiates the
    /// protocol. Fails if the kernel has no ipset support or speaks a
    /// protocol older than 6.
    pub fn open() -> Result<Self, IpsetError> {
        let sock = NetlinkSocket::open().map_err(|e| IpsetError::new(Op::Open, "", ErrorKind::Io(e)))?;
        // Keep the ACKs of one chunk under half the receive buffer.
        let chunk = (sock.rcvbuf() / ACK_TRUESIZE / 2).clamp(16, MAX_BATCH_CHUNK);
        let mut handle =
            IpsetHandle { sock, msg: MsgBuf::new(), kernel_protocol: 0, revisions: HashMap::new(), chunk };
        handle.kernel_protocol = handle.negotiate()?;
        Ok(handle)
    }

    /// The protocol version the kernel reported (6 or 7 today).
    pub fn kernel_protocol(&self) -> u8 {
        self.kernel_protocol
    }

    fn negotiate(&mut self) -> Result<u8, IpsetError> {
        let seq = self.start(Cmd::Protocol, NLM_F_ACK);
        self.msg.end();
        let (mut kernel, mut min) = (None, None);
        let mut bad = None;
        self.sock
            .request(self.msg.as_bytes(), seq, |reply| {
                let result = for_each_attr(reply, |a| {
                    match a.ty {
                        ATTR_PROTOCOL => kernel = Some(a.u8()?),
                        ATTR_PROTOCOL_MIN => min = Some(a.u8()?),
                        _ => {}
                    }
                    Ok(())
                });
                bad = bad.take().or(result.err());
            })
            .map_err(|e| nl_error(Op::Protocol, "", e))?;
        if let Some(m) = bad {
            return Err(IpsetError::new(Op::Protocol, "", ErrorKind::Malformed(m.0)));
        }
        let kernel = kernel.ok_or_else(|| {
            IpsetError::new(Op::Protocol, "", ErrorKind::Malformed("protocol reply without a version".into()))
        })?;
        // A kernel whose oldest accepted version is above ours cannot talk to us.
        if kernel < PROTOCOL || min.unwrap_or(kernel) > PROTOCOL {
            return Err(IpsetError::new(Op::Protocol, "", ErrorKind::UnsupportedProtocol { kernel }));
        }
        Ok(kernel)
    }

    /// Creates the set, or accepts an existing one of the same type and
    /// family with timeout support (so a restart finds its sets again). An
    /// existing set of another kind is an [`ErrorKind::Incompatible`] error.
    pub fn create(&mut self, spec: &SetSpec) -> Result<Created, IpsetError> {
        checked_name(Op::Create, &spec.name)?;
        let revision = self.revision(spec)?;
        let seq = self.start(Cmd::Create, NLM_F_ACK | NLM_F_EXCL);
        self.msg.put_str(ATTR_SETNAME, &spec.name);
        self.msg.put_str(ATTR_TYPENAME, spec.set_type.name());
        self.msg.put_u8(ATTR_REVISION, revision);
        self.msg.put_u8(ATTR_FAMILY, spec.family.nfproto());
        let data = self.msg.nest_begin(ATTR_DATA);
        self.msg.put_be32(ATTR_TIMEOUT, spec.default_timeout.secs());
        self.msg.put_be32(ATTR_MAXELEM, spec.maxelem);
        self.msg.nest_end(data);
        self.msg.end();
        match self.sock.request(self.msg.as_bytes(), seq, |_| {}) {
            Ok(()) => Ok(Created::New),
            Err(NlError::Errno(libc::EEXIST)) => {
                let header = self.header(&spec.name)?;
                let compatible = header.set_type() == Some(spec.set_type)
                    && header.family == Some(spec.family)
                    && header.default_timeout.is_some();
                if compatible {
                    Ok(Created::Existing(header))
                } else {
                    Err(IpsetError::new(
                        Op::Create,
                        &spec.name,
                        ErrorKind::Incompatible(Box::new(Incompatible {
                            found_type: header.type_name.clone(),
                            found_family: header.family.map_or("other", Family::name).to_string(),
                            found_timeout: header.default_timeout.is_some(),
                            wanted_type: spec.set_type.name(),
                            wanted_family: spec.family.name(),
                        })),
                    ))
                }
            }
            Err(e) => Err(nl_error(Op::Create, &spec.name, e)),
        }
    }

    /// The newest revision of the spec's type the kernel has, asked once.
    fn revision(&mut self, spec: &SetSpec) -> Result<u8, IpsetError> {
        let key = (spec.set_type, spec.family);
        if let Some(&rev) = self.revisions.get(&key) {
            return Ok(rev);
        }
        let seq = self.start(Cmd::Type, NLM_F_ACK);
        self.msg.put_str(ATTR_TYPENAME, spec.set_type.name());
        self.msg.put_u8(ATTR_FAMILY, spec.family.nfproto());
        self.msg.end();
        let mut revision = None;
        self.sock
            .request(self.msg.as_bytes(), seq, |reply| {
                let _ = for_each_attr(reply, |a| {
                    if a.ty == ATTR_REVISION {
                        revision = Some(a.u8()?);
                    }
                    Ok(())
                });
            })
            .map_err(|e| nl_error(Op::Create, &spec.name, e))?;
        let revision = revision.ok_or_else(|| {
            IpsetError::new(
                Op::Create,
                &spec.name,
                ErrorKind::Malformed("type reply without a revision".into()),
            )
        })?;
        self.revisions.insert(key, revision);
        Ok(revision)
    }

    /// The set's header: type, family and settings, without its entries.
    pub fn header(&mut self, set: &str) -> Result<SetHeader, IpsetError> {
        checked_name(Op::Header, set)?;
        let seq = self.start(Cmd::List, NLM_F_DUMP);
        self.msg.put_str(ATTR_SETNAME, set);
        self.msg.put_be32(ATTR_FLAGS, FLAG_LIST_HEADER);
        self.msg.end();
        let mut header = None;
        self.sock
            .dump(self.msg.as_bytes(), seq, |part| parse_list_part(part, &mut header, None))
            .map_err(|e| nl_error(Op::Header, set, e))?;
        header.ok_or_else(|| {
            IpsetError::new(Op::Header, set, ErrorKind::Malformed("list reply without a header".into()))
        })
    }

    /// True if a set of that name exists.
    pub fn exists(&mut self, set: &str) -> Result<bool, IpsetError> {
        match self.header(set) {
            Ok(_) => Ok(true),
            Err(e) if e.is_missing_set() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `entry` with `timeout`. Re-adding an entry that is already there
    /// succeeds and resets its timeout.
    pub fn add(
        &mut self,
        set: &str,
        entry: impl Into<IpNet>,
        timeout: EntryTimeout,
    ) -> Result<(), IpsetError> {
        let entry = entry.into();
        checked_name(Op::Add, set)?;
        let seq = self.start(Cmd::Add, NLM_F_ACK);
        encode_adt(&mut self.msg, set, entry, Some(timeout));
        self.msg.end();
        let result = self.sock.request(self.msg.as_bytes(), seq, |_| {});
        result.map_err(|e| self.entry_error(Op::Add, set, entry, e))
    }

    /// Deletes `entry`; returns whether it was there (absent is not an error).
    pub fn del(&mut self, set: &str, entry: impl Into<IpNet>) -> Result<bool, IpsetError> {
        let entry = entry.into();
        checked_name(Op::Del, set)?;
        let seq = self.start(Cmd::Del, NLM_F_ACK | NLM_F_EXCL);
        encode_adt(&mut self.msg, set, entry, None);
        self.msg.end();
        match self.sock.request(self.msg.as_bytes(), seq, |_| {}) {
            Ok(()) => Ok(true),
            Err(NlError::Errno(ERR_EXIST)) => Ok(false),
            Err(e) => Err(self.entry_error(Op::Del, set, entry, e)),
        }
    }

    /// True if the set matches `entry`: for `hash:net`, an address matches
    /// when any stored network contains it.
    pub fn test(&mut self, set: &str, entry: impl Into<IpNet>) -> Result<bool, IpsetError> {
        let entry = entry.into();
        checked_name(Op::Test, set)?;
        let seq = self.start(Cmd::Test, NLM_F_ACK);
        encode_adt(&mut self.msg, set, entry, None);
        self.msg.end();
        match self.sock.request(self.msg.as_bytes(), seq, |_| {}) {
            Ok(()) => Ok(true),
            Err(NlError::Errno(ERR_EXIST)) => Ok(false),
            Err(e) => Err(self.entry_error(Op::Test, set, entry, e)),
        }
    }

    /// The set's header and every entry with its remaining timeout. Large
    /// sets arrive in many messages; they are all collected.
    pub fn list(&mut self, set: &str) -> Result<SetListing, IpsetError> {
        checked_name(Op::List, set)?;
        let seq = self.start(Cmd::List, NLM_F_DUMP);
        self.msg.put_str(ATTR_SETNAME, set);
        self.msg.end();
        let mut header = None;
        let mut entries = Vec::new();
        self.sock
            .dump(self.msg.as_bytes(), seq, |part| parse_list_part(part, &mut header, Some(&mut entries)))
            .map_err(|e| nl_error(Op::List, set, e))?;
        let header = header.ok_or_else(|| {
            IpsetError::new(Op::List, set, ErrorKind::Malformed("list reply without a header".into()))
        })?;
        Ok(SetListing { header, entries })
    }

    /// The names of every set in the namespace, warden's and others' (for
    /// cleanup: pick those with warden's prefix).
    pub fn set_names(&mut self) -> Result<Vec<String>, IpsetError> {
        let seq = self.start(Cmd::List, NLM_F_DUMP);
        self.msg.put_be32(ATTR_FLAGS, FLAG_LIST_SETNAME);
        self.msg.end();
        let mut names = Vec::new();
        self.sock
            .dump(self.msg.as_bytes(), seq, |part| {
                if part.ty == Cmd::List.msg_type() {
                    for attr in part.attrs()? {
                        let attr = attr?;
                        if attr.ty == ATTR_SETNAME {
                            names.push(attr.str()?.to_string());
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e| nl_error(Op::ListNames, "", e))?;
        Ok(names)
    }

    /// Exchanges the contents of two sets of the same type and family,
    /// atomically for packets: iptables rules naming either set see the old
    /// contents until the swap, the new ones after.
    pub fn swap(&mut self, set: &str, other: &str) -> Result<(), IpsetError> {
        self.two_names(Cmd::Swap, Op::Swap, set, other)
    }

    /// Renames a set that no iptables rule refers to.
    pub fn rename(&mut self, set: &str, new_name: &str) -> Result<(), IpsetError> {
        self.two_names(Cmd::Rename, Op::Rename, set, new_name)
    }

    fn two_names(&mut self, cmd: Cmd, op: Op, set: &str, other: &str) -> Result<(), IpsetError> {
        checked_name(op, set)?;
        checked_name(op, other).map_err(|e| e.with_other(other))?;
        let seq = self.start(cmd, NLM_F_ACK);
        self.msg.put_str(ATTR_SETNAME, set);
        self.msg.put_str(ATTR_SETNAME2, other);
        self.msg.end();
        self.sock
            .request(self.msg.as_bytes(), seq, |_| {})
            .map_err(|e| nl_error(op, set, e).with_other(other))
    }

    /// Removes every entry of the set.
    pub fn flush(&mut self, set: &str) -> Result<(), IpsetError> {
        self.one_name(Cmd::Flush, Op::Flush, set, 0)
    }

    /// Destroys the set; returns whether it existed (absent is not an
    /// error, so cleanup can be repeated). A set that iptables rules still
    /// refer to cannot be destroyed.
    pub fn destroy(&mut self, set: &str) -> Result<bool, IpsetError> {
        // EXCL: kernels since 6.9 otherwise report success for a missing set.
        match self.one_name(Cmd::Destroy, Op::Destroy, set, NLM_F_EXCL) {
            Ok(()) => Ok(true),
            Err(e) if e.is_missing_set() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn one_name(&mut self, cmd: Cmd, op: Op, set: &str, flags: u16) -> Result<(), IpsetError> {
        checked_name(op, set)?;
        let seq = self.start(cmd, NLM_F_ACK | flags);
        self.msg.put_str(ATTR_SETNAME, set);
        self.msg.end();
        self.sock.request(self.msg.as_bytes(), seq, |_| {}).map_err(|e| nl_error(op, set, e))
    }

    /// Adds many entries, up to a thousand per `sendmsg`, each acknowledged
    /// on its own: refusals are reported per entry and do not stop the
    /// others. Re-adding an entry resets its timeout.
    ///
    /// An `Err` means the exchange itself failed (socket error, lost
    /// replies); an unknown part of the batch may then have been applied.
    /// Adds are idempotent, so the caller can retry the whole batch.
    pub fn add_batch(
        &mut self,
        set: &str,
        entries: &[(IpNet, EntryTimeout)],
    ) -> Result<BatchReport, IpsetError> {
        self.batch(Op::Add, set, entries.len(), |i| (entries[i].0, Some(entries[i].1)))
    }

    /// Deletes many entries like [`IpsetHandle::add_batch`]; entries that are
    /// not in the set count as applied.
    pub fn del_batch(&mut self, set: &str, entries: &[IpNet]) -> Result<BatchReport, IpsetError> {
        self.batch(Op::Del, set, entries.len(), |i| (entries[i], None))
    }

    fn batch(
        &mut self,
        op: Op,
        set: &str,
        len: usize,
        entry: impl Fn(usize) -> (IpNet, Option<EntryTimeout>),
    ) -> Result<BatchReport, IpsetError> {
        checked_name(op, set)?;
        let cmd = if op == Op::Add { Cmd::Add } else { Cmd::Del };
        let mut report = BatchReport::default();
        let mut start = 0;
        while start < len {
            // Encode a chunk; its requests carry consecutive sequence numbers.
            let first_seq = self.sock.reserve_seqs(self.chunk as u32);
            self.msg.clear();
            let mut end = start;
            while end < len && end - start < self.chunk && self.msg.len() < MAX_BATCH_BYTES {
                let (net, timeout) = entry(end);
                // No EXCL: adding an existing entry refreshes it, deleting an absent one is fine.
                self.msg.begin(cmd, NLM_F_ACK, first_seq.wrapping_add((end - start) as u32));
                encode_adt(&mut self.msg, set, net, timeout);
                self.msg.end();
                end += 1;
            }
            let results = self
                .sock
                .batch(self.msg.as_bytes(), first_seq, end - start)
                .map_err(|e| nl_error(op, set, e))?;
            for (offset, errno) in results.into_iter().enumerate() {
                if errno == 0 {
                    report.applied += 1;
                } else {
                    let index = start + offset;
                    let error = self.entry_error(op, set, entry(index).0, NlError::Errno(errno));
                    report.failures.push(BatchFailure { index, error });
                }
            }
            start = end;
        }
        Ok(report)
    }

    /// The error for a refused add, delete or test of `entry`. The kernel
    /// answers an address of the wrong family with a bare protocol error,
    /// so that case is checked against the set's header and named.
    fn entry_error(&mut self, op: Op, set: &str, entry: IpNet, e: NlError) -> IpsetError {
        if let NlError::Errno(ERR_PROTOCOL) = e
            && let Ok(SetHeader { family: Some(set_family), .. }) = self.header(set)
            && set_family != Family::of(&entry)
        {
            let kind = ErrorKind::FamilyMismatch { set_family, entry_family: Family::of(&entry) };
            return IpsetError::new(op, set, kind).with_entry(entry);
        }
        nl_error(op, set, e).with_entry(entry)
    }

    /// Clears the buffer and starts a one-message request; returns its sequence number.
    fn start(&mut self, cmd: Cmd, flags: u16) -> u32 {
        let seq = self.sock.reserve_seqs(1);
        self.msg.clear();
        self.msg.begin(cmd, flags, seq);
        seq
    }
}

/// Set name, then `ATTR_DATA` with the entry and its timeout, if any.
fn encode_adt(msg: &mut MsgBuf, set: &str, entry: IpNet, timeout: Option<EntryTimeout>) {
    msg.put_str(ATTR_SETNAME, set);
    let data = msg.nest_begin(ATTR_DATA);
    msg.put_entry(entry);
    if let Some(t) = timeout {
        msg.put_be32(ATTR_TIMEOUT, t.secs());
    }
    msg.nest_end(data);
}

fn checked_name(op: Op, set: &str) -> Result<(), IpsetError> {
    name::check_set_name(set).map_err(|reason| IpsetError::new(op, set, ErrorKind::InvalidName(reason)))
}

fn nl_error(op: Op, set: &str, e: NlError) -> IpsetError {
    let kind = match e {
        NlError::Errno(errno) => ErrorKind::Kernel { op, errno },
        NlError::Io(io) => ErrorKind::Io(io),
        NlError::Malformed(m) => ErrorKind::Malformed(m.0),
    };
    IpsetError::new(op, set, kind)
}

fn for_each_attr(
    msg: &Message<'_>,
    mut f: impl FnMut(Attr<'_>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    for attr in msg.attrs()? {
        f(attr?)?;
    }
    Ok(())
}

/// Reads one message of a list dump: the header (first message only) and,
/// if `entries` is given, the entries it carries.
fn parse_list_part(
    msg: &Message<'_>,
    header: &mut Option<SetHeader>,
    mut entries: Option<&mut Vec<ListedEntry>>,
) -> Result<(), Malformed> {
    if msg.ty != Cmd::List.msg_type() {
        return Ok(());
    }
    let mut name = String::new();
    let mut type_name = None;
    let mut family = None;
    let mut revision = 0;
    let mut data = None;
    for attr in msg.attrs()? {
        let attr = attr?;
        match attr.ty {
            ATTR_SETNAME => name = attr.str()?.to_string(),
            ATTR_TYPENAME => type_name = Some(attr.str()?.to_string()),
            ATTR_FAMILY => family = Some(attr.u8()?),
            ATTR_REVISION => revision = attr.u8()?,
            ATTR_DATA => data = Some(attr),
            ATTR_ADT => {
                if let Some(entries) = entries.as_deref_mut() {
                    for item in attr.nested() {
                        let item = item?;
                        if item.ty == ATTR_DATA {
                            entries.push(parse_entry(item)?);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // Only the first message of a set carries its type; later ones continue its entries.
    if let (Some(type_name), None) = (type_name, header.as_ref()) {
        let mut h = SetHeader {
            name,
            type_name,
            family: family.and_then(Family::from_nfproto),
            revision,
            default_timeout: None,
            maxelem: None,
            hashsize: None,
            elements: 0,
            references: 0,
            memsize: 0,
        };
        if let Some(data) = data {
            for a in data.nested() {
                let a = a?;
                match a.ty {
                    ATTR_TIMEOUT => h.default_timeout = Some(EntryTimeout::from_secs(a.be32()?)),
                    ATTR_MAXELEM => h.maxelem = Some(a.be32()?),
                    ATTR_HASHSIZE => h.hashsize = Some(a.be32()?),
                    ATTR_ELEMENTS => h.elements = a.be32()?,
                    ATTR_REFERENCES => h.references = a.be32()?,
                    ATTR_MEMSIZE => h.memsize = a.be32()?,
                    _ => {}
                }
            }
        }
        *header = Some(h);
    }
    Ok(())
}

fn parse_entry(data: Attr<'_>) -> Result<ListedEntry, Malformed> {
    let mut ip = None;
    let mut cidr = None;
    let mut timeout = None;
    for a in data.nested() {
        let a = a?;
        match a.ty {
            ATTR_IP => ip = Some(a.ip()?),
            ATTR_CIDR => cidr = Some(a.u8()?),
            ATTR_TIMEOUT => timeout = Some(EntryTimeout::from_secs(a.be32()?)),
            _ => {}
        }
    }
    let ip = ip.ok_or_else(|| Malformed("listed entry without an address".into()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let net = IpNet::new(ip, cidr.unwrap_or(max))
        .map_err(|_| Malformed(format!("listed entry {ip} has invalid prefix {cidr:?}")))?;
    Ok(ListedEntry { net, timeout })
}
