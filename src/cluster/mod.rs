//! Ban replication across hosts through Redis or Valkey Streams.
//!
//! Each host publishes its own decisions to its own stream and bans hash
//! ([`model`] names the keys and the entry format), follows every other
//! host's stream, and [`merge`]s what they say into the bans it enforces,
//! within [`limits`] that keep a broken or compromised peer from doing harm.
//!
//! Layering: the daemon drives this module; it uses `core`, `config` and
//! `store`, and never the daemon.

pub mod limits;
pub mod merge;
pub mod model;
