//! Core value types shared by every layer: time, durations, addresses, and the
//! events that flow from sources through filters and jails to the store and the
//! firewall. Nothing here performs I/O; everything is plain data with tests.

pub mod duration;
pub mod event;
pub mod net;
pub mod policy;
pub mod time;

pub use duration::{BanTime, DurationError, parse_duration};
pub use event::{Ban, BanOrigin, Failure, LogLine, SourceRef};
pub use net::{AddrError, BanPrefix, normalize_ip, parse_ip_or_net, prefix_network};
pub use policy::{Action, IncrementPolicy, PortRange, Protocol, Target};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
