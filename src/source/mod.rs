//! Log sources: where [`LogLine`]s come from.
//!
//! Each source is a tokio task that owns its readers (a Docker connection, a
//! journal, followed files) and sends [`SourceEvent`]s to the daemon over a
//! bounded channel, so a slow pipeline slows reading instead of growing
//! memory.
//!
//! **Cursors.** A source never writes its own position. Each [`Batch`]
//! carries the [`Cursor`] that becomes current once its lines have been
//! processed; the daemon commits it together with the failures those lines
//! produced, in one store transaction. After a crash both roll back
//! together, so no line is counted twice and none is skipped. At start a
//! source reads its last committed cursor from the store
//! ([`crate::store::Store::cursor`]) under its [`Cursor::key`].

pub mod docker;
pub mod file;
pub mod journald;
mod thread;

pub use thread::ThreadError;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::core::{LogLine, Protocol};

/// What a source tells the daemon.
#[derive(Debug)]
pub enum SourceEvent {
    /// Lines to process, in order.
    Lines(Batch),
    /// A Docker container starts feeding jails, or changed (renamed).
    /// Always sent before the container's first lines.
    ContainerUp(ContainerInfo),
    /// A container stopped or died; its cursor stays for when it returns.
    ContainerDown { id: String },
    /// A container was removed: forget its cursor.
    ContainerGone { id: String, cursor_key: Arc<str> },
    /// The Docker source (re)connected to dockerd.
    DockerConnected,
}

/// Lines read in one go, and where the source stands after them.
#[derive(Debug, Default)]
pub struct Batch {
    pub lines: Vec<LogLine>,
    /// Commit this once every line above has been processed; `None` when the
    /// source has no position to keep.
    pub cursor: Option<Cursor>,
}

/// A source's position, opaque to everyone but the source that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Unique per followed thing: `docker:<container id>`,
    /// `file:<path>`, `journald:<match groups>`.
    pub key: Arc<str>,
    pub value: Vec<u8>,
}

/// A followed container, as the daemon needs to know it: for routing its
/// lines, for label-defined jails, for inferring ports and for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// Every label on the container; the daemon reads `warden.jail.<j>.<opt>`.
    pub labels: BTreeMap<String, String>,
    /// The jails its lines feed, from `warden.jails` and from config jails
    /// that name the container. The daemon validates them.
    pub jails: Vec<String>,
    /// Host ports Docker publishes for it, for jails without `ports`.
    pub published: Vec<PublishedPort>,
    pub tty: bool,
    /// How its logs are read.
    pub logs: LogAccess,
}

/// How a container's logs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAccess {
    /// Streamed from the Docker API.
    Api,
    /// Read from its json-file log on disk.
    File,
}

impl LogAccess {
    /// `api` or `file`, as `warden status` shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogAccess::Api => "api",
            LogAccess::File => "file",
        }
    }
}

/// One published port (`-p 8080:80/tcp` gives host port 8080, tcp).
/// DOCKER-USER rules match the original destination port, the host side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublishedPort {
    pub port: u16,
    /// [`Protocol::Tcp`] or [`Protocol::Udp`].
    pub protocol: Protocol,
}
