//! Following one container's log: one tokio task per container.
//!
//! The task opens the log from where the container was left, decodes it
//! into lines, drops the lines a resumed log repeats, and sends the rest
//! to the daemon in batches, each with the cursor that holds once its lines
//! are processed. The log is read one of two ways ([`Logs`]), with the
//! same cursors, so a container can switch between them:
//!
//! - through the Docker API: a followed log stream, decoded by
//!   [`super::decode`]. It ends when dockerd ends it (the container
//!   stopped, dockerd went away);
//! - from its json-file log on disk ([`super::logfile`], decoded by
//!   [`super::jsonfile`]), woken by [`super::watch`]. It ends once the log
//!   is read to its end after the supervisor says the container died.
//!
//! The task owns the stream or files and the decoder; it also ends when
//! cancelled or when the daemon stops listening, and returns where it got
//! to so the supervisor can resume it later.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::client::{Client, ClientError, LogStream};
use super::cursor::{Position, Replay};
use super::decode::{Decoded, LogDecoder};
use super::jsonfile::JsonFileDecoder;
use super::logfile::{LogFiles, Progress, Raw};
use super::timestamp::{Nanos, nanos_to_millis};
use super::watch::{LogWatcher, Subscription};
use crate::core::{LogLine, SourceRef, Timestamp};
use crate::source::{Batch, ContainerInfo, Cursor, SourceEvent};

/// Lines sent in one batch at most, so a busy container cannot hold back a
/// cursor commit for long.
const BATCH_MAX_LINES: usize = 4096;
/// Text held for one batch at most: with long lines, the line count alone
/// would let a container pin `BATCH_MAX_LINES × line_max` bytes.
const BATCH_MAX_BYTES: usize = 1024 * 1024;
/// Repeated warnings about one container's stream come at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Without inotify, a json-file log is looked at this often when idle.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// With inotify, an idle json-file log is still looked at this often, in
/// case an event was missed.
const LOOK_ANYWAY: Duration = Duration::from_secs(2);

/// How the lines of a container are labelled: changes when it is renamed.
#[derive(Debug, Clone)]
pub struct Routing {
    pub info: ContainerInfo,
    pub source: SourceRef,
    pub jails: Arc<[Arc<str>]>,
}

impl Routing {
    pub fn new(info: ContainerInfo) -> Routing {
        let source = SourceRef::Docker { container_id: info.id.clone(), container_name: info.name.clone() };
        let jails = info.jails.iter().map(|j| Arc::from(j.as_str())).collect();
        Routing { info, source, jails }
    }
}

/// What a follow task starts from.
#[derive(Debug, Clone)]
pub struct FollowStart {
    pub id: String,
    pub cursor_key: Arc<str>,
    pub tty: bool,
    pub line_max: usize,
    /// Where the container was left; `None` for a container never read.
    pub position: Option<Position>,
    pub replay: Replay,
    pub logs: Logs,
    /// Cancelled when the container died: a json-file follower reads the
    /// log to its end and ends (the API's stream ends on its own).
    pub died: CancellationToken,
}

/// How a container's log is read.
#[derive(Debug, Clone)]
pub enum Logs {
    /// A log stream from the Docker API.
    Api,
    /// Its json-file log at `path`, woken by `watcher` (polled without one).
    File { path: PathBuf, watcher: Option<Arc<LogWatcher>> },
}

/// Why a follow task ended.
#[derive(Debug)]
pub enum FollowEnd {
    /// The stream ended: the container stopped, or dockerd closed it.
    Ended,
    /// The stream broke or could not be opened.
    Failed(ClientError),
    /// The json-file log could not be opened or read.
    FileFailed {
        path: PathBuf,
        error: io::Error,
    },
    Cancelled,
    /// The daemon dropped its receiver: the source is done.
    ReceiverGone,
}

/// A finished follow task's report.
#[derive(Debug)]
pub struct FollowExit {
    pub id: String,
    pub position: Option<Position>,
    pub end: FollowEnd,
    /// Whether the stream opened and delivered anything, for deciding how
    /// soon to retry.
    pub delivered: bool,
    pub lasted: Duration,
}

/// Follows one container until its stream ends; see the module docs.
pub async fn follow(
    client: Client,
    start: FollowStart,
    routing: watch::Receiver<Arc<Routing>>,
    tx: mpsc::Sender<SourceEvent>,
    cancel: CancellationToken,
) -> FollowExit {
    let began = Instant::now();
    let mut follower = Follower {
        position: start.position,
        resume: start.position,
        replay: start.replay,
        cursor_key: start.cursor_key.clone(),
        routing,
        tx,
        cancel,
        lines: Vec::new(),
        bytes: 0,
        delivered: false,
        truncated: Warning::default(),
        daemon_said: Warning::default(),
        invalid: Warning::default(),
    };
    let end = follower.run(&client, &start).await;
    FollowExit {
        id: start.id,
        position: follower.resume,
        end,
        delivered: follower.delivered,
        lasted: began.elapsed(),
    }
}

struct Follower {
    /// Where decoding has got to.
    position: Option<Position>,
    /// Where a new stream would resume: the position of the last batch
    /// sent with a cursor, so that nothing decoded but unsent is skipped.
    resume: Option<Position>,
    replay: Replay,
    cursor_key: Arc<str>,
    routing: watch::Receiver<Arc<Routing>>,
    tx: mpsc::Sender<SourceEvent>,
    cancel: CancellationToken,
    /// Lines decoded and not yet sent, and their text's size.
    lines: Vec<LogLine>,
    bytes: usize,
    delivered: bool,
    truncated: Warning,
    daemon_said: Warning,
    /// Lines of a json-file log that are not Docker log entries.
    invalid: Warning,
}

/// The outcome of sending to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Yes,
    Cancelled,
    ReceiverGone,
}

impl Sent {
    /// How the follow task ends when the event could not be sent.
    fn stopped(self) -> Option<FollowEnd> {
        match self {
            Sent::Yes => None,
            Sent::Cancelled => Some(FollowEnd::Cancelled),
            Sent::ReceiverGone => Some(FollowEnd::ReceiverGone),
        }
    }
}

impl Follower {
    async fn run(&mut self, client: &Client, start: &FollowStart) -> FollowEnd {
        match &start.logs {
            Logs::Api => self.run_api(client, start).await,
            Logs::File { path, watcher } => self.run_file(start, path, watcher.as_deref()).await,
        }
    }

    async fn run_api(&mut self, client: &Client, start: &FollowStart) -> FollowEnd {
        let opened = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return FollowEnd::Cancelled,
            opened = client.open_logs(&start.id, self.replay.since()) => opened,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => return FollowEnd::Failed(e),
        };
        if let Some(end) = self.announce().await.stopped() {
            return end;
        }
        debug!(since = ?self.replay.since(), "following");
        let mut decoder = LogDecoder::new(start.tty, start.line_max);
        // Local handles, so that waiting on them does not hold `self`.
        let (tx, cancel) = (self.tx.clone(), self.cancel.clone());
        loop {
            // Read while there is room; send whenever the daemon can take a
            // batch. When it is slower than the container, lines pile up
            // into larger batches instead of waiting one by one.
            let can_send = !self.lines.is_empty();
            let can_read = self.lines.len() < BATCH_MAX_LINES && self.bytes < BATCH_MAX_BYTES;
            let end = tokio::select! {
                biased;
                () = cancel.cancelled() => Some(FollowEnd::Cancelled),
                permit = tx.reserve(), if can_send => match permit {
                    Ok(permit) => {
                        self.send_with(permit, decoder.oldest_open_line());
                        None
                    }
                    Err(_) => Some(FollowEnd::ReceiverGone),
                },
                more = stream.fill(), if can_read => match more {
                    Ok(true) => self.take(&mut stream, &mut decoder),
                    Ok(false) => Some(FollowEnd::Ended),
                    Err(e) => Some(FollowEnd::Failed(ClientError::Stream { message: e.to_string() })),
                },
            };
            let Some(end) = end else { continue };
            if matches!(end, FollowEnd::Cancelled | FollowEnd::ReceiverGone) {
                return end;
            }
            if matches!(end, FollowEnd::Ended) {
                // A clean end: a line still open is complete as it is.
                decoder.finish(&mut |d| self.decoded(d));
            }
            return self.send_lines(decoder.oldest_open_line()).await.stopped().unwrap_or(end);
        }
    }

    async fn run_file(
        &mut self,
        start: &FollowStart,
        path: &Path,
        watcher: Option<&LogWatcher>,
    ) -> FollowEnd {
        let failed = |error| FollowEnd::FileFailed { path: path.to_path_buf(), error };
        // Watched before the files are opened, so that nothing written in
        // between goes unnoticed.
        let subscription = watcher.and_then(|watcher| {
            let dir = path.parent()?;
            let name = path.file_name()?.to_str()?;
            watcher
                .watch(dir, name)
                .map_err(|e| debug!(error = %e, "cannot watch the log directory; polling it"))
                .ok()
        });
        let since = self.replay.since();
        let mut files = match LogFiles::open(path, since) {
            Ok(files) => files,
            Err(e) => return failed(e),
        };
        if let Some(end) = self.announce().await.stopped() {
            return end;
        }
        debug!(since = ?since, path = %path.display(), "following the json-file log");
        let mut decoder = JsonFileDecoder::new(start.line_max);
        let (tx, cancel, died) = (self.tx.clone(), self.cancel.clone(), start.died.clone());
        // At the end of the live file: wait for news before reading again.
        let mut idle = false;
        // The container died: read to the end, then stop.
        let mut dying = false;
        loop {
            let can_send = !self.lines.is_empty();
            let can_read = self.lines.len() < BATCH_MAX_LINES && self.bytes < BATCH_MAX_BYTES;
            let end = tokio::select! {
                biased;
                () = cancel.cancelled() => Some(FollowEnd::Cancelled),
                permit = tx.reserve(), if can_send => match permit {
                    Ok(permit) => {
                        self.send_with(permit, decoder.oldest_open_line());
                        None
                    }
                    Err(_) => Some(FollowEnd::ReceiverGone),
                },
                () = died.cancelled(), if !dying => {
                    dying = true;
                    idle = false;
                    None
                }
                // Also while the daemon is slow: each rotation is seen.
                () = news(subscription.as_ref()) => match files.refresh() {
                    Ok(()) => {
                        idle = false;
                        None
                    }
                    Err(e) => Some(failed(e)),
                },
                () = std::future::ready(()), if can_read && !idle => {
                    match self.read_file(&mut files, &mut decoder, since) {
                        Ok(Progress::Read) => None,
                        Ok(Progress::Idle) if dying => Some(FollowEnd::Ended),
                        Ok(Progress::Idle) => {
                            idle = true;
                            None
                        }
                        Err(e) => Some(failed(e)),
                    }
                }
            };
            let Some(end) = end else { continue };
            if matches!(end, FollowEnd::Cancelled | FollowEnd::ReceiverGone) {
                return end;
            }
            if matches!(end, FollowEnd::Ended) {
                // The container is gone and its log read: a line still
                // open is complete as it is.
                decoder.finish(&mut |d| self.decoded(d));
            }
            return self.send_lines(decoder.oldest_open_line()).await.stopped().unwrap_or(end);
        }
    }

    /// Reads one chunk of the json-file log and decodes its lines.
    fn read_file(
        &mut self,
        files: &mut LogFiles,
        decoder: &mut JsonFileDecoder,
        since: Option<Nanos>,
    ) -> io::Result<Progress> {
        let routing = self.routing.borrow().clone();
        let progress = files.read(&mut |raw| {
            let error = match raw {
                Raw::Line(line) => {
                    match decoder.entry(line, since, &mut |d| self.decoded_with(&routing, d)) {
                        Ok(()) => return,
                        Err(e) => e.to_string(),
                    }
                }
                Raw::TooLong => "longer than 1 MiB".to_string(),
            };
            self.invalid.note(|repeats| {
                warn!(%error, repeats, "skipped a line of the json-file log that is not a Docker log entry")
            });
        })?;
        if progress == Progress::Read {
            self.delivered = true;
        }
        Ok(progress)
    }

    /// Decodes the body bytes read; returns why the stream ended, if it did.
    fn take(&mut self, stream: &mut LogStream, decoder: &mut LogDecoder) -> Option<FollowEnd> {
        self.delivered = true;
        let routing = self.routing.borrow().clone();
        let drained = stream.drain(&mut |data| decoder.feed(data, &mut |d| self.decoded_with(&routing, d)));
        match drained {
            Err(e) => Some(FollowEnd::Failed(ClientError::Stream { message: e.to_string() })),
            Ok(()) if stream.ended() => Some(FollowEnd::Ended),
            Ok(()) => None,
        }
    }

    fn decoded(&mut self, decoded: Decoded<'_>) {
        let routing = self.routing.borrow().clone();
        self.decoded_with(&routing, decoded);
    }

    fn decoded_with(&mut self, routing: &Routing, decoded: Decoded<'_>) {
        match decoded {
            Decoded::Line { time, text, dropped } => {
                if !self.replay.admit(time) {
                    return;
                }
                match &mut self.position {
                    Some(p) => p.advance(time),
                    None => self.position = Some(Position::first(time)),
                }
                if dropped > 0 {
                    let kept = text.len();
                    self.truncated.note(|repeats| {
                        warn!(
                            kept,
                            dropped,
                            repeats,
                            "log line longer than line_max: truncated (raise line_max to keep more)"
                        )
                    });
                }
                if text.is_empty() {
                    return;
                }
                self.bytes += text.len();
                self.lines.push(LogLine {
                    source: routing.source.clone(),
                    jails: routing.jails.clone(),
                    time: Some(Timestamp(nanos_to_millis(time))),
                    text: String::from_utf8_lossy(text).into_owned(),
                });
            }
            Decoded::DaemonMessage(message) => {
                let message = String::from_utf8_lossy(message);
                self.daemon_said
                    .note(|repeats| warn!(%message, repeats, "dockerd reported a problem in the log stream"));
            }
        }
    }

    /// The batch of the lines decoded so far, with a cursor unless a line
    /// still open (begun at `open`) is older than the position (resuming
    /// there would lose its rest), and the position the cursor holds.
    fn batch(&mut self, open: Option<Nanos>) -> (Batch, Option<Position>) {
        let position = self.position.filter(|p| open.is_none_or(|open| open >= p.time));
        let cursor = position.map(|p| Cursor { key: self.cursor_key.clone(), value: p.encode() });
        self.bytes = 0;
        (Batch { lines: std::mem::take(&mut self.lines), cursor }, position)
    }

    /// Sends the decoded lines with the room reserved; `open` as for
    /// [`Follower::batch`].
    fn send_with(&mut self, permit: mpsc::Permit<'_, SourceEvent>, open: Option<Nanos>) {
        let (batch, position) = self.batch(open);
        permit.send(SourceEvent::Lines(batch));
        if position.is_some() {
            self.resume = position;
        }
    }

    /// Sends the decoded lines, waiting for room; `open` as for
    /// [`Follower::batch`].
    async fn send_lines(&mut self, open: Option<Nanos>) -> Sent {
        if self.lines.is_empty() {
            return Sent::Yes;
        }
        let (batch, position) = self.batch(open);
        let sent = self.send(SourceEvent::Lines(batch)).await;
        if sent == Sent::Yes && position.is_some() {
            self.resume = position;
        }
        sent
    }

    /// Tells the daemon the container is followed, before its first lines.
    async fn announce(&mut self) -> Sent {
        let info = self.routing.borrow().info.clone();
        self.send(SourceEvent::ContainerUp(info)).await
    }

    /// Sends an event unless cancelled first (the event is then dropped).
    async fn send(&mut self, event: SourceEvent) -> Sent {
        tokio::select! {
            biased;
            sent = self.tx.send(event) => if sent.is_ok() { Sent::Yes } else { Sent::ReceiverGone },
            () = self.cancel.cancelled() => Sent::Cancelled,
        }
    }
}

/// Resolves when the json-file log may have news: on an inotify event (or
/// after [`LOOK_ANYWAY`]), else after [`POLL_INTERVAL`].
async fn news(subscription: Option<&Subscription>) {
    match subscription {
        Some(subscription) => {
            let _ = tokio::time::timeout(LOOK_ANYWAY, subscription.changed()).await;
        }
        None => tokio::time::sleep(POLL_INTERVAL).await,
    }
}

/// A warning that repeats at most every [`WARNING_INTERVAL`], counting the
/// occurrences in between.
#[derive(Debug, Default)]
struct Warning {
    last: Option<Instant>,
    repeats: u64,
}

impl Warning {
    fn note(&mut self, emit: impl FnOnce(u64)) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < WARNING_INTERVAL) {
            self.repeats += 1;
            return;
        }
        emit(self.repeats);
        self.last = Some(now);
        self.repeats = 0;
    }
}
