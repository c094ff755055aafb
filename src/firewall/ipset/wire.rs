//! Encoding of ipset requests and decoding of the kernel's replies: netlink
//! message headers, the nfnetlink header, and netlink attributes (TLVs,
//! padded to 4 bytes, nested where the protocol says so).
//!
//! [`MsgBuf`] appends whole messages to one buffer, so a batch of requests
//! goes to the kernel in one `sendmsg`. [`Messages`] and [`Attrs`] walk a
//! received buffer without copying; every length is checked, so a short or
//! corrupt reply is a [`Malformed`] error, never a panic.

use std::net::IpAddr;

use ipnet::IpNet;

use super::proto::*;

/// A reply that does not follow the netlink or ipset format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Rounds `len` up to netlink's 4-byte alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A buffer of outgoing netlink messages.
#[derive(Debug, Default)]
pub struct MsgBuf {
    buf: Vec<u8>,
    /// Offset of the message being built, if any.
    msg_start: Option<usize>,
}

impl MsgBuf {
    pub fn new() -> Self {
        MsgBuf::default()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.msg_start = None;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Starts an ipset message: netlink header, nfnetlink header and the
    /// protocol attribute every ipset command must carry.
    pub fn begin(&mut self, cmd: Cmd, flags: u16, seq: u32) {
        // nfgenmsg family: unused by ipset.
        self.begin_nfnl(cmd.msg_type(), NFPROTO_IPV4, flags, seq);
        self.put_u8(ATTR_PROTOCOL, PROTOCOL);
    }

    /// Starts any nfnetlink message: netlink header (with `NLM_F_REQUEST`)
    /// and the nfgenmsg header carrying `family`.
    pub fn begin_nfnl(&mut self, msg_type: u16, family: u8, flags: u16, seq: u32) {
        debug_assert!(self.msg_start.is_none(), "previous message not ended");
        self.msg_start = Some(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end()
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        // nfgenmsg: family, version, resource id (big endian).
        self.buf.extend_from_slice(&[family, NFNETLINK_V0, 0, 0]);
    }

    /// Finishes the current message by writing its length.
    pub fn end(&mut self) {
        // begin() always precedes end(); a missing start is a bug in this module.
        let start = self.msg_start.take().expect("MsgBuf::end without begin");
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// An attribute of type `ty` (flags included) holding `value` as is.
    pub fn put_attr(&mut self, ty: u16, value: &[u8]) {
        let len = (NLA_HDRLEN + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }

    pub fn put_u8(&mut self, ty: u16, v: u8) {
        self.put_attr(ty, &[v]);
    }

    /// A u32 in network byte order, flagged as such (the kernel insists).
    pub fn put_be32(&mut self, ty: u16, v: u32) {
        self.put_attr(ty | NLA_F_NET_BYTEORDER, &v.to_be_bytes());
    }

    /// A NUL-terminated string.
    pub fn put_str(&mut self, ty: u16, s: &str) {
        let len = (NLA_HDRLEN + s.len() + 1) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute; returns its offset for [`MsgBuf::nest_end`].
    pub fn nest_begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    pub fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// `ATTR_IP` holding one address in network byte order.
    pub fn put_ip(&mut self, ty: u16, ip: IpAddr) {
        let nest = self.nest_begin(ty);
        match ip {
            IpAddr::V4(v4) => self.put_attr(ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, &v4.octets()),
            IpAddr::V6(v6) => self.put_attr(ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER, &v6.octets()),
        }
        self.nest_end(nest);
    }

    /// An entry: its address, and its prefix length unless it is one host
    /// (the kernel takes a missing `CIDR` as a host; `hash:ip` would read one
    /// as a range to expand).
    pub fn put_entry(&mut self, net: IpNet) {
        self.put_ip(ATTR_IP, net.addr());
        if net.prefix_len() != net.max_prefix_len() {
            self.put_u8(ATTR_CIDR, net.prefix_len());
        }
    }
}

/// One received netlink message.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub ty: u16,
    pub seq: u32,
    /// Everything after the netlink header.
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// For `NLMSG_ERROR`: the (negated, so positive) errno, 0 for an ACK.
    pub fn error_code(&self) -> Result<i32, Malformed> {
        read_i32(self.payload).map(|e| -e)
    }

    /// For `NLMSG_DONE` of a dump: 0, or the errno that ended the dump.
    pub fn done_code(&self) -> i32 {
        // An empty payload is a plain end of dump.
        read_i32(self.payload).map(|e| -e).unwrap_or(0)
    }

    /// The attributes of an ipset reply (after the nfnetlink header).
    pub fn attrs(&self) -> Result<Attrs<'a>, Malformed> {
        self.payload.get(NFGENMSG_LEN..).map(Attrs::new).ok_or_else(|| {
            Malformed(format!("ipset message of {} bytes has no nfgenmsg", self.payload.len()))
        })
    }
}

fn read_i32(bytes: &[u8]) -> Result<i32, Malformed> {
    let raw: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Malformed("netlink error message shorter than its code".into()))?;
    Ok(i32::from_ne_bytes(raw))
}

/// Iterates over the netlink messages in a received datagram.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        let header = |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        if rest.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "{} trailing bytes, shorter than a netlink header",
                rest.len()
            ))));
        }
        let len = header(0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "netlink message claims {len} bytes with {} available",
                rest.len()
            ))));
        }
        let msg = Message {
            ty: u16::from_ne_bytes([rest[4], rest[5]]),
            seq: header(8),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        self.rest = rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

/// One attribute: its type without flag bits, and its value.
#[derive(Debug, Clone, Copy)]
pub struct Attr<'a> {
    pub ty: u16,
    pub value: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn u8(&self) -> Result<u8, Malformed> {
        self.value.first().copied().ok_or_else(|| self.short("u8"))
    }

    /// A u32 in network byte order (the kernel sends ipset numbers so).
    pub fn be32(&self) -> Result<u32, Malformed> {
        let raw: [u8; 4] =
            self.value.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| self.short("u32"))?;
        Ok(u32::from_be_bytes(raw))
    }

    /// A NUL-terminated string.
    pub fn str(&self) -> Result<&'a str, Malformed> {
        let bytes = self.value.split(|&b| b == 0).next().unwrap_or(&[]);
        std::str::from_utf8(bytes).map_err(|_| Malformed(format!("attribute {} is not UTF-8", self.ty)))
    }

    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.value)
    }

    /// `ATTR_IP`: the nested IPv4 or IPv6 address.
    pub fn ip(&self) -> Result<IpAddr, Malformed> {
        for inner in self.nested() {
            let inner = inner?;
            match inner.ty {
                ATTR_IPADDR_IPV4 => {
                    let o: [u8; 4] = inner.value.try_into().map_err(|_| inner.short("IPv4 address"))?;
                    return Ok(IpAddr::from(o));
                }
                ATTR_IPADDR_IPV6 => {
                    let o: [u8; 16] = inner.value.try_into().map_err(|_| inner.short("IPv6 address"))?;
                    return Ok(IpAddr::from(o));
                }
                _ => {}
            }
        }
        Err(Malformed("address attribute holds no IPv4 or IPv6 address".into()))
    }

    fn short(&self, what: &str) -> Malformed {
        Malformed(format!("attribute {} of {} bytes is too short for a {what}", self.ty, self.value.len()))
    }
}

/// Iterates over a run of attributes.
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            // Up to 3 bytes may be alignment padding.
            self.rest = &[];
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let ty = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.rest.len() {
            let available = self.rest.len();
            self.rest = &[];
            return Some(Err(Malformed(format!(
                "attribute {ty} claims {len} bytes with {available} available"
            ))));
        }
        let attr = Attr { ty, value: &self.rest[NLA_HDRLEN..len] };
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(attr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_an_add_message_byte_for_byte() {
        let mut m = MsgBuf::new();
        m.begin(Cmd::Add, NLM_F_ACK, 7);
        m.put_str(ATTR_SETNAME, "ab");
        let data = m.nest_begin(ATTR_DATA);
        m.put_entry("192.0.2.1/32".parse().unwrap());
        m.put_be32(ATTR_TIMEOUT, 600);
        m.nest_end(data);
        m.end();
        let b = m.as_bytes();
        let mut expected: Vec<u8> = Vec::new();
        expected.extend_from_slice(&60u32.to_ne_bytes());
        expected.extend_from_slice(&((6u16 << 8) | 9).to_ne_bytes());
        expected.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        expected.extend_from_slice(&7u32.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0]);
        // protocol: len 5, padded to 8
        expected.extend_from_slice(&5u16.to_ne_bytes());
        expected.extend_from_slice(&1u16.to_ne_bytes());
        expected.extend_from_slice(&[6, 0, 0, 0]);
        // set name "ab\0": len 7, padded to 8
        expected.extend_from_slice(&7u16.to_ne_bytes());
        expected.extend_from_slice(&2u16.to_ne_bytes());
        expected.extend_from_slice(b"ab\0\0");
        // data nest: 4 + ip nest (4 + 8) + timeout 8 = 24
        expected.extend_from_slice(&24u16.to_ne_bytes());
        expected.extend_from_slice(&(7u16 | NLA_F_NESTED).to_ne_bytes());
        expected.extend_from_slice(&12u16.to_ne_bytes());
        expected.extend_from_slice(&(1u16 | NLA_F_NESTED).to_ne_bytes());
        expected.extend_from_slice(&8u16.to_ne_bytes());
        expected.extend_from_slice(&(1u16 | NLA_F_NET_BYTEORDER).to_ne_bytes());
        expected.extend_from_slice(&[192, 0, 2, 1]);
        expected.extend_from_slice(&8u16.to_ne_bytes());
        expected.extend_from_slice(&(6u16 | NLA_F_NET_BYTEORDER).to_ne_bytes());
        expected.extend_from_slice(&600u32.to_be_bytes());
        assert_eq!(b, expected.as_slice());
    }

    #[test]
    fn network_entries_carry_their_prefix_and_hosts_do_not() {
        let cidrs = |net: &str| {
            let mut m = MsgBuf::new();
            m.begin(Cmd::Add, 0, 1);
            let data = m.nest_begin(ATTR_DATA);
            m.put_entry(net.parse().unwrap());
            m.nest_end(data);
            m.end();
            let msg = Messages::new(m.as_bytes()).next().unwrap().unwrap();
            let data = msg.attrs().unwrap().map(Result::unwrap).find(|a| a.ty == ATTR_DATA).unwrap();
            let attrs: Vec<_> = data.nested().map(Result::unwrap).collect();
            let ip = attrs.iter().find(|a| a.ty == ATTR_IP).unwrap().ip().unwrap();
            let cidr = attrs.iter().find(|a| a.ty == ATTR_CIDR).map(|a| a.u8().unwrap());
            (ip, cidr)
        };
        assert_eq!(cidrs("198.51.100.0/24"), ("198.51.100.0".parse().unwrap(), Some(24)));
        assert_eq!(cidrs("198.51.100.7/32"), ("198.51.100.7".parse().unwrap(), None));
        assert_eq!(cidrs("2001:db8::/48"), ("2001:db8::".parse().unwrap(), Some(48)));
        assert_eq!(cidrs("2001:db8::9/128"), ("2001:db8::9".parse().unwrap(), None));
    }

    #[test]
    fn several_messages_share_one_buffer_and_parse_back() {
        let mut m = MsgBuf::new();
        for seq in 10..13 {
            m.begin(Cmd::Del, NLM_F_ACK, seq);
            m.put_str(ATTR_SETNAME, "set-with-a-longer-name");
            m.end();
        }
        let seqs: Vec<u32> = Messages::new(m.as_bytes()).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, [10, 11, 12]);
        let first = Messages::new(m.as_bytes()).next().unwrap().unwrap();
        assert_eq!(first.ty, Cmd::Del.msg_type());
        let name = first.attrs().unwrap().map(Result::unwrap).find(|a| a.ty == ATTR_SETNAME).unwrap();
        assert_eq!(name.str().unwrap(), "set-with-a-longer-name");
    }

    #[test]
    fn truncated_input_is_malformed_not_a_panic() {
        let mut m = MsgBuf::new();
        m.begin(Cmd::Add, 0, 1);
        m.put_str(ATTR_SETNAME, "x");
        m.end();
        let bytes = m.as_bytes();
        for cut in 1..bytes.len() {
            for msg in Messages::new(&bytes[..cut]) {
                if let Ok(msg) = msg
                    && let Ok(attrs) = msg.attrs()
                {
                    attrs.for_each(drop);
                }
            }
        }
        assert!(Messages::new(&bytes[..10]).next().unwrap().is_err());
        // A length field larger than the data is reported.
        let mut corrupt = bytes.to_vec();
        corrupt[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(Messages::new(&corrupt).next().unwrap().is_err());
        let bad_attr = [200u8, 0, 1, 0, 0, 0, 0, 0];
        assert!(Attrs::new(&bad_attr).next().unwrap().is_err());
    }

    #[test]
    fn reads_error_codes() {
        let mut payload = (-4103i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        let msg = Message { ty: NLMSG_ERROR, seq: 1, payload: &payload };
        assert_eq!(msg.error_code().unwrap(), ERR_EXIST);
        let done = Message { ty: NLMSG_DONE, seq: 1, payload: &[] };
        assert_eq!(done.done_code(), 0);
    }
}
