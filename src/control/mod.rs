//! The control socket: how the CLI (`warden ban`, `status`, …) talks to a
//! running daemon.
//!
//! One request per connection, each a single line of JSON, answered by a
//! single line of JSON ([`protocol`]). The daemon listens with [`server`];
//! CLI commands connect with [`client`]. The socket is a Unix socket, mode
//! 0600, and the server also checks each peer's credentials: only root (or
//! the daemon's own user) may ban.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use protocol::{
    BanInfo, ClusterReport, ContainerStatus, ErrorKind, JailStatus, MAX_BAN_TARGETS, OriginReport,
    PROTOCOL_VERSION, Request, Response, StatusReport,
};
pub use server::{Call, Server};
