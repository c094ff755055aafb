//! Deleting a banned address's conntrack entries, in-process over netlink
//! (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_CTNETLINK`): no
//! `conntrack` binary, no child process.
//!
//! Why: a ban drops new packets at once (warden's jumps come before any
//! `ESTABLISHED` accept), but the connection tracking entries of the
//! attacker's open flows would linger for days (an established TCP entry
//! lives 5 days), keeping NAT mappings and flow state alive that no longer
//! serve anyone. Deleting them leaves no stale state behind the ban.
//!
//! How: the kernel can only delete an entry named by its exact original
//! tuple, and it cannot filter a dump by network prefix. So a
//! [`ConntrackHandle`] dumps the table of each family involved, keeps the
//! entries whose original source lies in a banned network (and not in the
//! allowlist), and deletes each by its tuple, id and zone, many per
//! `sendmsg`. An entry that vanished meanwhile (expired, or closed) is not
//! an error.
//!
//! A handle owns one socket, acting on the network namespace current when
//! [`ConntrackHandle::open`] ran. Every operation needs `CAP_NET_ADMIN`
//! there.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ipset::Family;
use super::ipset::socket::{NetlinkSocket, NlError};
use super::ipset::wire::{Attr, Malformed, Message, MsgBuf};

// From include/uapi/linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x100 | 0x200;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
const NFGENMSG_LEN: usize = 4;

/// Deletes sent in one `sendmsg`: their ACKs fit the receive buffer easily.
const DELETE_CHUNK: usize = 256;

fn msg_type(cmd: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | cmd
}

fn af(family: Family) -> u8 {
    match family {
        Family::V4 => libc::AF_INET as u8,
        Family::V6 => libc::AF_INET6 as u8,
    }
}

fn family_label(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// One tracked connection: its original direction, and what the kernel
/// needs to delete exactly this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConntrackEntry {
    pub family: Family,
    /// Source of the original direction: the peer that opened the flow.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, …).
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// The kernel's id of the entry: a delete naming it cannot hit a newer
    /// entry that reuses the tuple.
    pub id: Option<u32>,
    pub zone: Option<u16>,
    /// The `CTA_TUPLE_ORIG` attribute's value as dumped, sent back to delete.
    orig_tuple: Vec<u8>,
}

impl fmt::Display for ConntrackEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            1 => "icmp".to_string(),
            58 => "icmpv6".to_string(),
            n => format!("proto {n}"),
        };
        let end = |ip: IpAddr, port: Option<u16>| match (ip, port) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (ip, Some(p)) => format!("{ip}:{p}"),
            (ip, None) => ip.to_string(),
        };
        write!(f, "{proto} {} -> {}", end(self.src, self.src_port), end(self.dst, self.dst_port))
    }
}

/// What a failed conntrack operation was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConntrackOp {
    Open,
    Dump(Family),
    Delete(String),
}

impl fmt::Display for ConntrackOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConntrackOp::Open => f.write_str("open a netlink socket to the connection tracker"),
            ConntrackOp::Dump(family) => write!(f, "dump the {} connection table", family_label(*family)),
            ConntrackOp::Delete(entry) => write!(f, "delete the connection tracking entry {entry}"),
        }
    }
}

/// A conntrack operation that failed, naming the operation and the errno.
#[derive(Debug, thiserror::Error)]
#[error("conntrack: cannot {op}: {kind}")]
pub struct ConntrackError {
    pub op: ConntrackOp,
    #[source]
    pub kind: ConntrackErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ConntrackErrorKind {
    #[error("the kernel refused: {} (errno {errno}){}", strerror(*errno), errno_hint(*errno))]
    Kernel { errno: i32 },

    #[error("netlink socket error: {0}")]
    Io(#[source] io::Error),

    #[error("malformed reply from the kernel: {0}")]
    Malformed(String),
}

/// The C library's words for `errno`, without Rust's "(os error N)".
fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

fn errno_hint(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "; warden needs CAP_NET_ADMIN",
        libc::EOPNOTSUPP | libc::EPROTONOSUPPORT => "; is nf_conntrack_netlink available in this kernel?",
        _ => "",
    }
}

impl ConntrackError {
    fn new(op: ConntrackOp, e: NlError) -> Self {
        let kind = match e {
            NlError::Errno(errno) => ConntrackErrorKind::Kernel { errno },
            NlError::Io(io) => ConntrackErrorKind::Io(io),
            NlError::Malformed(m) => ConntrackErrorKind::Malformed(m.0),
        };
        ConntrackError { op, kind }
    }

    /// The kernel's errno, if the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self.kind {
            ConntrackErrorKind::Kernel { errno } => Some(errno),
            ConntrackErrorKind::Io(ref e) => e.raw_os_error(),
            ConntrackErrorKind::Malformed(_) => None,
        }
    }
}

/// Which sources to pick: inside one of the banned networks, outside every
/// allowlisted one. Single addresses go through a hash set, so a batch of
/// many thousand bans matches each entry in constant time.
struct SourceMatcher {
    hosts: HashSet<IpAddr>,
    nets: Vec<IpNet>,
    except: Vec<IpNet>,
}

impl SourceMatcher {
    fn new(nets: &[IpNet], except: &[IpNet]) -> Self {
        let mut hosts = HashSet::new();
        let mut wide = Vec::new();
        for net in nets {
            if net.prefix_len() == net.max_prefix_len() {
                hosts.insert(net.addr());
            } else {
                wide.push(net.trunc());
            }
        }
        SourceMatcher { hosts, nets: wide, except: except.to_vec() }
    }

    fn matches(&self, src: IpAddr) -> bool {
        (self.hosts.contains(&src) || self.nets.iter().any(|n| n.contains(&src)))
            && !self.except.iter().any(|n| n.contains(&src))
    }
}

/// A connection to the kernel's connection tracker. See the module docs.
pub struct ConntrackHandle {
    sock: NetlinkSocket,
    msg: MsgBuf,
}

impl ConntrackHandle {
    /// Opens a socket in the current network namespace.
    pub fn open() -> Result<Self, ConntrackError> {
        let sock = NetlinkSocket::open()
            .map_err(|e| ConntrackError { op: ConntrackOp::Open, kind: ConntrackErrorKind::Io(e) })?;
        Ok(ConntrackHandle { sock, msg: MsgBuf::new() })
    }

    /// Every entry of `family`'s table.
    pub fn entries(&mut self, family: Family) -> Result<Vec<ConntrackEntry>, ConntrackError> {
        let mut entries = Vec::new();
        self.dump(family, |entry| entries.push(entry))?;
        Ok(entries)
    }

    /// The entries whose original source lies in one of `nets` and in none
    /// of `except`, both families as needed.
    pub fn entries_from(
        &mut self,
        nets: &[IpNet],
        except: &[IpNet],
    ) -> Result<Vec<ConntrackEntry>, ConntrackError> {
        let matcher = SourceMatcher::new(nets, except);
        let mut found = Vec::new();
        for family in [Family::V4, Family::V6] {
            if nets.iter().any(|n| Family::of(n) == family) {
                self.dump(family, |entry| {
                    if matcher.matches(entry.src) {
                        found.push(entry);
                    }
                })?;
            }
        }
        Ok(found)
    }

    /// Deletes the entries from `nets` (see [`ConntrackHandle::entries_from`]);
    /// returns how many were deleted.
    pub fn delete_from(&mut self, nets: &[IpNet], except: &[IpNet]) -> Result<usize, ConntrackError> {
        let entries = self.entries_from(nets, except)?;
        self.delete(&entries)
    }

    /// Deletes `entries`, many per `sendmsg`; returns how many the kernel
    /// deleted. Entries already gone are skipped silently. If the kernel
    /// refuses one for another reason, the others are still tried and the
    /// first refusal is returned.
    pub fn delete(&mut self, entries: &[ConntrackEntry]) -> Result<usize, ConntrackError> {
        let mut deleted = 0;
        let mut first_error = None;
        for chunk in entries.chunks(DELETE_CHUNK) {
            let first_seq = self.sock.reserve_seqs(chunk.len() as u32);
            self.msg.clear();
            for (i, entry) in chunk.iter().enumerate() {
                let seq = first_seq.wrapping_add(i as u32);
                self.msg.begin_nfnl(msg_type(IPCTNL_MSG_CT_DELETE), af(entry.family), NLM_F_ACK, seq);
                self.msg.put_attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &entry.orig_tuple);
                if let Some(zone) = entry.zone {
                    self.msg.put_attr(CTA_ZONE | NLA_F_NET_BYTEORDER, &zone.to_be_bytes());
                }
                if let Some(id) = entry.id {
                    self.msg.put_attr(CTA_ID | NLA_F_NET_BYTEORDER, &id.to_be_bytes());
                }
                self.msg.end();
            }
            let results = self
                .sock
                .batch(self.msg.as_bytes(), first_seq, chunk.len())
                .map_err(|e| ConntrackError::new(ConntrackOp::Delete(chunk[0].to_string()), e))?;
            for (entry, errno) in chunk.iter().zip(results) {
                match errno {
                    0 => deleted += 1,
                    libc::ENOENT => {}
                    errno => {
                        first_error.get_or_insert_with(|| {
                            ConntrackError::new(ConntrackOp::Delete(entry.to_string()), NlError::Errno(errno))
                        });
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    fn dump(&mut self, family: Family, mut each: impl FnMut(ConntrackEntry)) -> Result<(), ConntrackError> {
        let seq = self.sock.reserve_seqs(1);
        self.msg.clear();
        self.msg.begin_nfnl(msg_type(IPCTNL_MSG_CT_GET), af(family), NLM_F_DUMP, seq);
        self.msg.end();
        self.sock
            .dump(self.msg.as_bytes(), seq, |msg| {
                if let Some(entry) = parse_entry(msg, family)? {
                    each(entry);
                }
                Ok(())
            })
            .map_err(|e| ConntrackError::new(ConntrackOp::Dump(family), e))
    }
}

/// An entry of a dump, or `None` for messages that are not entries (or
/// entries of another family, which a kernel without dump filtering sends).
fn parse_entry(msg: &Message<'_>, family: Family) -> Result<Option<ConntrackEntry>, Malformed> {
    if msg.ty != msg_type(IPCTNL_MSG_CT_NEW) || msg.payload.first() != Some(&af(family)) {
        return Ok(None);
    }
    if msg.payload.len() < NFGENMSG_LEN {
        return Err(Malformed("conntrack message without nfgenmsg".into()));
    }
    let mut tuple = None;
    let mut id = None;
    let mut zone = None;
    for attr in msg.attrs()? {
        let attr = attr?;
        match attr.ty {
            CTA_TUPLE_ORIG => tuple = Some(attr),
            CTA_ID => id = Some(attr.be32()?),
            CTA_ZONE => zone = Some(be16(&attr)?),
            _ => {}
        }
    }
    let Some(tuple) = tuple else { return Ok(None) };
    let (mut src, mut dst, mut protocol, mut src_port, mut dst_port) = (None, None, 0, None, None);
    for part in tuple.nested() {
        let part = part?;
        match part.ty {
            CTA_TUPLE_IP => {
                for a in part.nested() {
                    let a = a?;
                    match a.ty {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(ip(&a)?),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(ip(&a)?),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for a in part.nested() {
                    let a = a?;
                    match a.ty {
                        CTA_PROTO_NUM => protocol = a.u8()?,
                        CTA_PROTO_SRC_PORT => src_port = Some(be16(&a)?),
                        CTA_PROTO_DST_PORT => dst_port = Some(be16(&a)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(Malformed("conntrack entry without addresses in its original tuple".into()));
    };
    Ok(Some(ConntrackEntry {
        family,
        src,
        dst,
        protocol,
        src_port,
        dst_port,
        id,
        zone,
        orig_tuple: tuple.value.to_vec(),
    }))
}

fn be16(attr: &Attr<'_>) -> Result<u16, Malformed> {
    let raw: [u8; 2] = attr
        .value
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Malformed(format!("conntrack attribute {} too short for a u16", attr.ty)))?;
    Ok(u16::from_be_bytes(raw))
}

fn ip(attr: &Attr<'_>) -> Result<IpAddr, Malformed> {
    match attr.value.len() {
        4 => Ok(IpAddr::from(<[u8; 4]>::try_from(attr.value).unwrap_or_default())),
        16 => Ok(IpAddr::from(<[u8; 16]>::try_from(attr.value).unwrap_or_default())),
        n => Err(Malformed(format!("conntrack address attribute of {n} bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn sources_match_banned_hosts_and_networks_but_not_the_allowlist() {
        let m = SourceMatcher::new(
            &[net("203.0.113.7/32"), net("198.51.100.0/24"), net("2001:db8::/64")],
            &[net("198.51.100.9/32")],
        );
        for yes in ["203.0.113.7", "198.51.100.1", "2001:db8::5"] {
            assert!(m.matches(yes.parse().unwrap()), "{yes}");
        }
        for no in ["203.0.113.8", "198.51.100.9", "2001:db8:1::5", "192.0.2.1"] {
            assert!(!m.matches(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn errors_name_the_operation_and_the_errno() {
        let e = ConntrackError::new(ConntrackOp::Dump(Family::V6), NlError::Errno(libc::EPERM));
        assert_eq!(
            e.to_string(),
            "conntrack: cannot dump the IPv6 connection table: the kernel refused: Operation not permitted \
             (errno 1); warden needs CAP_NET_ADMIN"
        );
        assert_eq!(e.errno(), Some(libc::EPERM));
        let op = ConntrackOp::Delete("tcp 10.0.0.2:40000 -> 10.0.0.1:9000".into());
        let e = ConntrackError::new(op, NlError::Errno(libc::EBUSY));
        assert_eq!(
            e.to_string(),
            "conntrack: cannot delete the connection tracking entry tcp 10.0.0.2:40000 -> 10.0.0.1:9000: \
             the kernel refused: Device or resource busy (errno 16)"
        );
    }

    /// A dump message as the kernel builds it: nfgenmsg, then the original
    /// tuple (addresses, protocol and ports), the id and the zone.
    fn dumped(family: u8, src: &[u8], dst: &[u8], zone: Option<u16>) -> Vec<u8> {
        let mut m = MsgBuf::new();
        m.begin_nfnl(msg_type(IPCTNL_MSG_CT_NEW), family, 0, 7);
        let orig = m.nest_begin(CTA_TUPLE_ORIG);
        let ips = m.nest_begin(CTA_TUPLE_IP);
        let (s, d) =
            if src.len() == 4 { (CTA_IP_V4_SRC, CTA_IP_V4_DST) } else { (CTA_IP_V6_SRC, CTA_IP_V6_DST) };
        m.put_attr(s, src);
        m.put_attr(d, dst);
        m.nest_end(ips);
        let proto = m.nest_begin(CTA_TUPLE_PROTO);
        m.put_u8(CTA_PROTO_NUM, 6);
        m.put_attr(CTA_PROTO_SRC_PORT | NLA_F_NET_BYTEORDER, &40000u16.to_be_bytes());
        m.put_attr(CTA_PROTO_DST_PORT | NLA_F_NET_BYTEORDER, &9000u16.to_be_bytes());
        m.nest_end(proto);
        m.nest_end(orig);
        m.put_be32(CTA_ID, 0xdead_beef);
        if let Some(z) = zone {
            m.put_attr(CTA_ZONE | NLA_F_NET_BYTEORDER, &z.to_be_bytes());
        }
        m.end();
        m.as_bytes().to_vec()
    }

    fn parse(bytes: &[u8], family: Family) -> Option<ConntrackEntry> {
        let msg = super::super::ipset::wire::Messages::new(bytes).next().unwrap().unwrap();
        parse_entry(&msg, family).unwrap()
    }

    #[test]
    fn dumped_entries_parse_into_tuple_id_and_zone() {
        let bytes = dumped(libc::AF_INET as u8, &[10, 0, 0, 2], &[10, 0, 0, 1], Some(3));
        let e = parse(&bytes, Family::V4).unwrap();
        assert_eq!(e.src, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(e.dst, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((e.protocol, e.src_port, e.dst_port), (6, Some(40000), Some(9000)));
        assert_eq!((e.id, e.zone), (Some(0xdead_beef), Some(3)));
        assert_eq!(e.to_string(), "tcp 10.0.0.2:40000 -> 10.0.0.1:9000");
        // The tuple goes back to the kernel as it came: both nests, four addresses/ports.
        assert_eq!(Attr { ty: CTA_TUPLE_ORIG, value: &e.orig_tuple }.nested().count(), 2);

        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 2;
        let bytes = dumped(libc::AF_INET6 as u8, &v6, &v6, None);
        let e = parse(&bytes, Family::V6).unwrap();
        assert_eq!(e.to_string(), "tcp [2001:db8::2]:40000 -> [2001:db8::2]:9000");
        assert_eq!(e.zone, None);
        assert_eq!(parse(&bytes, Family::V4), None, "other families are skipped");
    }
}
