//! Numbers of the kernel's ipset netlink protocol, from
//! `include/uapi/linux/netfilter/ipset/ip_set.h` and `ip_set_hash.h`, plus
//! the few generic netlink and nfnetlink constants the encoder needs, typed
//! as they travel on the wire so the encoder needs no casts.

/// Protocol version warden speaks. Kernels with protocol 7 accept 6 (their
/// `IPSET_PROTOCOL_MIN`); 6 carries everything warden needs.
pub const PROTOCOL: u8 = 6;

/// Longest set name, excluding the terminating NUL (`IPSET_MAXNAMELEN - 1`).
pub const MAX_NAME_LEN: usize = 31;

/// The kernel's cap on timeouts, in seconds: `(UINT_MAX >> 1) / MSEC_PER_SEC`.
pub const MAX_TIMEOUT_SECS: u32 = 2_147_483;

// nfnetlink: message type is (subsystem << 8) | command.
pub const NFNL_SUBSYS_IPSET: u16 = 6;
pub const NFNETLINK_V0: u8 = 0;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;

// netlink header.
pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;
pub const NLA_HDRLEN: usize = 4;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x100 | 0x200; // ROOT | MATCH
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLA_F_NESTED: u16 = 1 << 15;
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// ipset commands (`enum ipset_cmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    Protocol = 1,
    Create = 2,
    Destroy = 3,
    Flush = 4,
    Rename = 5,
    Swap = 6,
    List = 7,
    Add = 9,
    Del = 10,
    Test = 11,
    Type = 13,
}

impl Cmd {
    /// The netlink message type carrying this command.
    pub fn msg_type(self) -> u16 {
        (NFNL_SUBSYS_IPSET << 8) | self as u16
    }
}

// Attributes at command level.
pub const ATTR_PROTOCOL: u16 = 1;
pub const ATTR_SETNAME: u16 = 2;
pub const ATTR_TYPENAME: u16 = 3;
pub const ATTR_SETNAME2: u16 = ATTR_TYPENAME;
pub const ATTR_REVISION: u16 = 4;
pub const ATTR_FAMILY: u16 = 5;
pub const ATTR_FLAGS: u16 = 6;
pub const ATTR_DATA: u16 = 7;
pub const ATTR_ADT: u16 = 8;
pub const ATTR_PROTOCOL_MIN: u16 = 10;

// Attributes inside ATTR_DATA (CADT and create-specific).
pub const ATTR_IP: u16 = 1;
pub const ATTR_CIDR: u16 = 3;
pub const ATTR_TIMEOUT: u16 = 6;
pub const ATTR_HASHSIZE: u16 = 18;
pub const ATTR_MAXELEM: u16 = 19;
pub const ATTR_ELEMENTS: u16 = 24;
pub const ATTR_REFERENCES: u16 = 25;
pub const ATTR_MEMSIZE: u16 = 26;

// Attributes inside ATTR_IP.
pub const ATTR_IPADDR_IPV4: u16 = 1;
pub const ATTR_IPADDR_IPV6: u16 = 2;

/// `IPSET_FLAG_LIST_SETNAME`, sent in ATTR_FLAGS of a list: names only.
pub const FLAG_LIST_SETNAME: u32 = 1 << 1;
/// `IPSET_FLAG_LIST_HEADER`, sent in ATTR_FLAGS of a list: header only.
pub const FLAG_LIST_HEADER: u32 = 1 << 2;

// Error codes (`enum ipset_errno`, then the hash types' own).
pub const ERR_PROTOCOL: i32 = 4097;
pub const ERR_FIND_TYPE: i32 = 4098;
pub const ERR_MAX_SETS: i32 = 4099;
pub const ERR_BUSY: i32 = 4100;
pub const ERR_EXIST_SETNAME2: i32 = 4101;
pub const ERR_TYPE_MISMATCH: i32 = 4102;
pub const ERR_EXIST: i32 = 4103;
pub const ERR_INVALID_CIDR: i32 = 4104;
pub const ERR_INVALID_NETMASK: i32 = 4105;
pub const ERR_INVALID_FAMILY: i32 = 4106;
pub const ERR_TIMEOUT: i32 = 4107;
pub const ERR_REFERENCED: i32 = 4108;
pub const ERR_IPADDR_IPV4: i32 = 4109;
pub const ERR_IPADDR_IPV6: i32 = 4110;
pub const ERR_COUNTER: i32 = 4111;
pub const ERR_COMMENT: i32 = 4112;
pub const ERR_INVALID_MARKMASK: i32 = 4113;
pub const ERR_SKBINFO: i32 = 4114;
pub const ERR_BITMASK_NETMASK_EXCL: i32 = 4115;
pub const ERR_HASH_FULL: i32 = 4352;
pub const ERR_HASH_ELEM: i32 = 4353;
pub const ERR_INVALID_PROTO: i32 = 4354;
pub const ERR_MISSING_PROTO: i32 = 4355;
pub const ERR_HASH_RANGE_UNSUPPORTED: i32 = 4356;
pub const ERR_HASH_RANGE: i32 = 4357;
