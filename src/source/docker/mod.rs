//! The Docker source: log lines of the containers that opt in, read
//! through the Docker API or, for the `json-file` log driver, from the log
//! files dockerd writes.
//!
//! A container is followed while it runs and either lists jails in its
//! `warden.jails` label or is named by a config jail
//! ([`DockerSourceConfig::named`]), unless `warden.enable=false` opts it
//! out. Its stdout and stderr are read with Docker's timestamps, which
//! become [`LogLine::time`](crate::core::LogLine::time). Every line goes to
//! the daemon in a [`Batch`](super::Batch) whose [`Cursor`](super::Cursor)
//! (`docker:<id>`) lets a later stream resume exactly after it.
//!
//! **Two ways to read a log.** Discovery, labels, events and cursors
//! always go through the Docker API. The lines themselves come through the
//! API's log stream, or, when the container logs with the `json-file`
//! driver and warden can open its `LogPath` (dockerd's containers
//! directory mounted read-only at the same path, see
//! [`DockerSourceConfig::read_files`]), straight from the file. Serving
//! logs costs dockerd more CPU than warden spends processing them and caps
//! a container at about 60,000 lines/s; the file has no such ceiling. Both
//! ways give the same lines, times and cursors, so a container switches
//! between them without a line lost or repeated.
//!
//! Pieces, in data-flow order:
//! - [`client`]: where dockerd listens, API version negotiation (bollard),
//!   and the log-stream request, read by [`http`] in large pieces;
//! - [`supervisor`]: discovery, container events, reconnection with capped
//!   backoff, one task per followed container;
//! - [`follow`]: one container's stream, batches and cursors;
//! - [`decode`]: stream framing, lines Docker split at 16 KiB, the line cap;
//! - [`logfile`], [`jsonfile`], [`watch`]: the json-file log on disk, its
//!   rotation, its format, and inotify;
//! - [`cursor`]: positions (`<nanoseconds>:<count>`) and dropping the lines
//!   a resumed stream repeats;
//! - [`labels`], [`container`], [`timestamp`]: reading what Docker says.
//!
//! Tasks, not threads: each followed container is one tokio task holding one
//! socket, so the number of OS threads does not grow with containers.
//! Memory per container is bounded too: a 64 KiB read buffer, at most
//! `line_max` of an unfinished line per stream, and at most 1 MiB of lines
//! waiting for the daemon, whatever the container writes. Reading files
//! adds one inotify instance for the whole source.

pub mod client;
pub mod container;
pub mod cursor;
pub mod decode;
pub mod follow;
pub mod http;
pub mod jsonfile;
pub mod labels;
pub mod logfile;
pub mod supervisor;
pub mod timestamp;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SourceEvent;
use crate::config::ReadFiles;
use crate::core::Timestamp;
use crate::store::Store;

pub use client::{ClientError, Endpoint};
pub use supervisor::cursor_key;

/// Lines longer than this are truncated unless configured otherwise.
pub const DEFAULT_LINE_MAX: usize = 64 * 1024;
/// The longest wait between attempts to reach dockerd, by default.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

/// What the Docker source needs to know from warden's configuration.
#[derive(Debug, Clone)]
pub struct DockerSourceConfig {
    /// dockerd's address (`unix:///…` or `tcp://host:port`); `None` uses
    /// `$DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    pub host: Option<String>,
    /// Longer lines are cut to this many bytes, with a warning.
    pub line_max: usize,
    /// Container name → config jails that name it; such containers are
    /// followed even without labels (`warden.enable=false` still opts
    /// them out).
    pub named: BTreeMap<String, Vec<String>>,
    /// Jails with `read_from: start`: a container feeding one of them that
    /// has no cursor yet is read from the beginning of its log.
    pub read_from_start: BTreeSet<String>,
    /// When warden started: a container without a cursor is read from
    /// here (unless `read_from_start` applies), so old lines never make
    /// fresh bans.
    pub started_at: Timestamp,
    /// Cap of the exponential backoff between reconnection attempts.
    pub retry_max: Duration,
    /// Whether json-file logs are read from disk when they can be opened.
    pub read_files: ReadFiles,
}

impl DockerSourceConfig {
    /// Defaults: `$DOCKER_HOST` or the default socket, 64 KiB lines, no
    /// named containers, reading from `started_at`, json-file logs from
    /// disk when they can be opened.
    pub fn new(started_at: Timestamp) -> DockerSourceConfig {
        DockerSourceConfig {
            host: None,
            line_max: DEFAULT_LINE_MAX,
            named: BTreeMap::new(),
            read_from_start: BTreeSet::new(),
            started_at,
            retry_max: DEFAULT_RETRY_MAX,
            read_files: ReadFiles::Auto,
        }
    }
}

/// Runs the Docker source until `shutdown` is cancelled or `tx`'s receiver
/// is dropped. A dockerd that is absent or goes away is waited for, not an
/// error; only an invalid [`DockerSourceConfig::host`] fails.
pub async fn run(
    cfg: DockerSourceConfig,
    store: Arc<Store>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let endpoint = Endpoint::resolve(cfg.host.as_deref())?;
    supervisor::Supervisor::new(cfg, endpoint, store, tx, shutdown).run().await;
    Ok(())
}
