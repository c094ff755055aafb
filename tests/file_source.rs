//! The file source end to end: real files in a temporary directory, the
//! source on its thread, and the test playing the daemon (it receives the
//! batches and commits their cursors to a real store, as `warden run` does).
//!
//! Covers appends, rotation by rename, truncation in place, a file created
//! after the source started, glob patterns, `read_from`, long and binary
//! lines, and resumption after a restart with nothing read twice or missed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warden::config::ReadFrom;
use warden::core::SourceRef;
use warden::source::SourceEvent;
use warden::source::file::{self, FileCursor, FileSourceConfig, FileSourceError};
use warden::store::Store;

/// How long any expected line may take to show up.
const DEADLINE: Duration = Duration::from_secs(15);

/// A running file source and the test's side of its channel: the daemon.
struct Daemon {
    store: Arc<Store>,
    rx: mpsc::Receiver<SourceEvent>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), FileSourceError>>,
    /// Every line received, with the path it came from.
    lines: Vec<(PathBuf, String)>,
    /// Commit each batch's cursor once its lines are received.
    commit: bool,
}

fn jails() -> Arc<[Arc<str>]> {
    Arc::from(vec![Arc::<str>::from("test")])
}

fn config(pattern: &Path, read_from: ReadFrom) -> FileSourceConfig {
    FileSourceConfig::new(pattern, jails(), read_from)
}

impl Daemon {
    fn start(store: Arc<Store>, cfg: FileSourceConfig) -> Daemon {
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(file::run(cfg, Arc::clone(&store), tx, shutdown.clone()));
        Daemon { store, rx, shutdown, task, lines: Vec::new(), commit: true }
    }

    /// Stops the source and waits for it; returns the store for a restart.
    async fn stop(self) -> Arc<Store> {
        self.shutdown.cancel();
        self.task.await.expect("source task joins").expect("source ends cleanly");
        self.store
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|(_, t)| t.as_str()).collect()
    }

    /// Receives until `done` holds for the lines so far, or fails at the
    /// deadline with what was received.
    async fn until(&mut self, what: &str, done: impl Fn(&[(PathBuf, String)]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(SourceEvent::Lines(batch))) => {
                    let cursor = batch.cursor.expect("file batches carry a cursor");
                    for line in batch.lines {
                        assert_eq!(line.jails.as_ref(), jails().as_ref());
                        assert_eq!(line.time, None, "files have no source timestamp");
                        let SourceRef::File { path } = line.source else {
                            panic!("not a file line: {line:?}")
                        };
                        assert_eq!(
                            cursor.key.as_ref(),
                            file::cursor_key(&path),
                            "a batch holds one file's lines"
                        );
                        self.lines.push((path, line.text));
                    }
                    if self.commit {
                        self.store
                            .put_cursors(&[(cursor.key.as_ref(), &cursor.value)])
                            .expect("commit cursor");
                    }
                }
                Ok(Some(other)) => panic!("unexpected event {other:?}"),
                Ok(None) => panic!("source ended while waiting for {what}; got {:?}", self.texts()),
                Err(_) => panic!("timed out waiting for {what}; got {:?}", self.texts()),
            }
        }
    }

    /// Receives the batch without lines that announces (and commits) where
    /// a file present at startup starts with `ReadFrom::End`.
    async fn announced(&mut self) -> FileCursor {
        let event = tokio::time::timeout(DEADLINE, self.rx.recv()).await;
        let Ok(Some(SourceEvent::Lines(batch))) = event else {
            panic!("expected an announced position, got {event:?}")
        };
        assert!(batch.lines.is_empty(), "old lines were sent: {:?}", batch.lines);
        let cursor = batch.cursor.expect("a position");
        self.store.put_cursors(&[(cursor.key.as_ref(), &cursor.value)]).expect("commit cursor");
        FileCursor::decode(&cursor.value).expect("a file cursor")
    }

    /// Waits for `marker` (a line the test wrote last), then checks that
    /// the lines received are exactly `want` followed by it: nothing
    /// missing, nothing twice, nothing out of order.
    async fn expect_exactly(&mut self, want: &[&str], marker: &str) {
        self.until(marker, |lines| lines.iter().any(|(_, t)| t == marker)).await;
        let mut expected: Vec<&str> = want.to_vec();
        expected.push(marker);
        assert_eq!(self.texts(), expected);
    }
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

fn store_in(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open_in(dir).expect("open store"))
}

struct Setup {
    _tmp: tempfile::TempDir,
    logs: PathBuf,
    state: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    let state = tmp.path().join("state");
    fs::create_dir(&logs).unwrap();
    fs::create_dir(&state).unwrap();
    Setup { _tmp: tmp, logs, state }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_appends_from_the_start_of_an_existing_file() {
    let s = setup();
    let log = s.logs.join("auth.log");
    append(&log, "old one\nold two\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    daemon.until("existing lines", |l| l.len() == 2).await;
    append(&log, "new é\r\npartial");
    daemon.until("the CRLF line", |l| l.len() == 3).await;
    append(&log, " done\nmarker\n");
    daemon.expect_exactly(&["old one", "old two", "new é", "partial done"], "marker").await;
    assert!(daemon.lines.iter().all(|(p, _)| p == &log));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_from_end_skips_old_lines_and_remembers_that_position() {
    let s = setup();
    let log = s.logs.join("app.log");
    append(&log, "before start\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::End));
    // The position is announced (and committed) before any new line.
    let at = daemon.announced().await;
    assert_eq!(at.offset, "before start\n".len() as u64);
    let store = daemon.stop().await;
    // Written while warden was down: read after the restart, even though
    // the source starts at the end of files it has no cursor for.
    append(&log, "while down\nmarker\n");
    let mut daemon = Daemon::start(store, config(&log, ReadFrom::End));
    daemon.expect_exactly(&["while down"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_finishes_the_old_file_then_reads_the_new_one() {
    let s = setup();
    let log = s.logs.join("auth.log");
    let rotated = s.logs.join("auth.log.1");
    append(&log, "a\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    daemon.until("a", |l| l.len() == 1).await;

    // The writer keeps its handle across the rename, as a daemon does until
    // it is told to reopen.
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"b\n").unwrap();
    fs::rename(&log, &rotated).unwrap();
    writer.write_all(b"late to the old file, unfinished").unwrap();
    append(&log, "c\nmarker\n");
    daemon.expect_exactly(&["a", "b", "late to the old file, unfinished", "c"], "marker").await;
    // The unfinished last line of the old file is sent as it is when the
    // old file is closed, and every line was reported under the path.
    assert!(daemon.lines.iter().all(|(p, _)| p == &log));
    drop(writer);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rotated_to_a_name_the_glob_matches_is_not_read_twice() {
    let s = setup();
    let log = s.logs.join("app.log");
    let dated = s.logs.join("app-20261121.log");
    append(&log, "a\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.logs.join("*.log"), ReadFrom::Start));
    daemon.until("a", |l| l.len() == 1).await;
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"b, unfin").unwrap();
    // logrotate's dateext: the old file keeps matching the glob.
    fs::rename(&log, &dated).unwrap();
    writer.write_all(b"ished\n").unwrap();
    append(&log, "c\n");
    daemon.until("b and c", |l| l.len() == 3).await;
    append(&dated, "marker\n");
    daemon.until("marker", |l| l.iter().any(|(_, t)| t == "marker")).await;
    let mut texts = daemon.texts();
    texts.sort();
    assert_eq!(texts, ["a", "b, unfinished", "c", "marker"], "each line once: {:?}", daemon.lines);
    drop(writer);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_in_place_rereads_from_the_start() {
    let s = setup();
    let log = s.logs.join("app.log");
    append(&log, "one\ntwo\nthree\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    daemon.until("three lines", |l| l.len() == 3).await;
    // copytruncate: the file is emptied in place, same inode.
    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, "after\nmarker\n");
    daemon.expect_exactly(&["one", "two", "three", "after"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_followed_once_created() {
    let s = setup();
    let log = s.logs.join("later.log");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    fs::write(&log, "first\nmarker\n").unwrap();
    daemon.expect_exactly(&["first"], "marker").await;
    // Removed and created again: the new file is read from its start.
    fs::remove_file(&log).unwrap();
    fs::write(&log, "again\nmarker 2\n").unwrap();
    daemon.until("marker 2", |l| l.iter().any(|(_, t)| t == "marker 2")).await;
    assert_eq!(daemon.texts(), ["first", "marker", "again", "marker 2"]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_found_after_startup_are_read_from_their_start_whatever_read_from_says() {
    let s = setup();
    append(&s.logs.join("present.log"), "old\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.logs.join("*.log"), ReadFrom::End));
    // The position of the file present at startup is announced during the
    // startup scan; whatever is created after it is new.
    let announced = daemon.announced().await;
    assert_eq!(announced.offset, 4);
    fs::write(s.logs.join("later.log"), "first\nmarker\n").unwrap();
    daemon.expect_exactly(&["first"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_follows_every_match_including_new_ones() {
    let s = setup();
    let a = s.logs.join("a.log");
    let b = s.logs.join("b.log");
    append(&a, "from a\n");
    append(&s.logs.join("ignored.txt"), "not matched\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.logs.join("*.log"), ReadFrom::Start));
    daemon.until("a's line", |l| l.len() == 1).await;
    append(&b, "from b\n");
    append(&s.logs.join("other.txt"), "not matched either\n");
    daemon.until("b's line", |l| l.len() == 2).await;
    append(&a, "marker\n");
    daemon.expect_exactly(&["from a", "from b"], "marker").await;
    let paths: Vec<&PathBuf> = daemon.lines.iter().map(|(p, _)| p).collect();
    assert_eq!(paths, [&a, &b, &a]);
    daemon.stop().await;
}

/// A configuration that never rescans: what it sees, inotify reported.
fn events_only(pattern: &Path) -> FileSourceConfig {
    let mut cfg = config(pattern, ReadFrom::Start);
    cfg.rescan_interval = Duration::from_secs(3600);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_created_later_are_watched_at_once() {
    let s = setup();
    let pattern = s.logs.join("*").join("access.log");
    let mut daemon = Daemon::start(store_in(&s.state), events_only(&pattern));
    let site = s.logs.join("site-a");
    fs::create_dir(&site).unwrap();
    fs::write(site.join("access.log"), "hit\n").unwrap();
    daemon.until("the first line", |l| l.len() == 1).await;
    // Deeper: the literal part of the pattern does not exist yet either.
    let deep = s.logs.join("not").join("yet");
    let mut daemon2 =
        Daemon::start(store_in(&s.logs.join("..").join("state2")), events_only(&deep.join("app.log")));
    fs::create_dir_all(&deep).unwrap();
    append(&deep.join("app.log"), "deep\n");
    daemon2.until("the deep line", |l| l.len() == 1).await;
    append(&site.join("access.log"), "marker\n");
    daemon.expect_exactly(&["hit"], "marker").await;
    daemon.stop().await;
    daemon2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbolic_link_is_followed_to_a_file_elsewhere() {
    let s = setup();
    let elsewhere = s.logs.join("..").join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let target = elsewhere.join("real.log");
    append(&target, "one\n");
    let link = s.logs.join("app.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut daemon = Daemon::start(store_in(&s.state), events_only(&link));
    daemon.until("one", |l| l.len() == 1).await;
    append(&target, "marker\n");
    daemon.expect_exactly(&["one"], "marker").await;
    assert!(daemon.lines.iter().all(|(p, _)| p == &link), "lines are reported under the link");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_exactly_at_the_committed_cursor() {
    let s = setup();
    let log = s.logs.join("auth.log");
    append(&log, "1\n2\n3\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    daemon.until("three lines", |l| l.len() == 3).await;
    let store = daemon.stop().await;

    // Written while warden was down, including an unfinished line.
    append(&log, "4\n5\nhalf");
    let mut daemon = Daemon::start(store, config(&log, ReadFrom::Start));
    daemon.until("4 and 5", |l| l.len() == 2).await;
    assert_eq!(daemon.texts(), ["4", "5"]);
    // Not yet committed when warden stops: these lines come again.
    daemon.commit = false;
    append(&log, " line\n6\n");
    daemon.until("6", |l| l.len() == 4).await;
    let store = daemon.stop().await;

    append(&log, "marker\n");
    let mut daemon = Daemon::start(store, config(&log, ReadFrom::Start));
    daemon.expect_exactly(&["half line", "6"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rotated_while_down_is_read_from_its_start() {
    let s = setup();
    let log = s.logs.join("auth.log");
    append(&log, "old\n");
    let mut daemon = Daemon::start(store_in(&s.state), config(&log, ReadFrom::Start));
    daemon.until("old", |l| l.len() == 1).await;
    append(&log, "seen\n");
    daemon.until("seen", |l| l.len() == 2).await;
    let store = daemon.stop().await;

    fs::rename(&log, s.logs.join("auth.log.1")).unwrap();
    // A new inode, longer than the old cursor's offset: were the cursor
    // applied to it, lines would be skipped.
    append(&log, "new file first line\nmarker\n");
    let mut daemon = Daemon::start(store, config(&log, ReadFrom::End));
    daemon.expect_exactly(&["new file first line"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_binary_lines_do_not_break_the_stream() {
    let s = setup();
    let log = s.logs.join("noisy.log");
    let mut cfg = config(&log, ReadFrom::Start);
    cfg.max_line_bytes = 1024;
    let mut daemon = Daemon::start(store_in(&s.state), cfg);
    let mut file = File::create(&log).unwrap();
    file.write_all(&vec![b'x'; 100 * 1024]).unwrap();
    file.write_all(b"\n\x00\xff binary \xfe\nmarker\n").unwrap();
    daemon.until("marker", |l| l.iter().any(|(_, t)| t == "marker")).await;
    let texts = daemon.texts();
    assert_eq!(texts.len(), 3, "{:?}", texts.iter().map(|t| t.len()).collect::<Vec<_>>());
    assert_eq!(texts[0], "x".repeat(1024));
    assert_eq!(texts[1], "\0\u{FFFD} binary \u{FFFD}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_lines_arrive_in_large_batches_in_order() {
    let s = setup();
    let log = s.logs.join("big.log");
    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!("line {i}\n"));
    }
    fs::write(&log, &body).unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let task =
        tokio::spawn(file::run(config(&log, ReadFrom::Start), store_in(&s.state), tx, shutdown.clone()));
    let mut received = 0;
    let mut batches = 0;
    let deadline = Instant::now() + DEADLINE;
    while received < 20_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(SourceEvent::Lines(batch))) = tokio::time::timeout(left, rx.recv()).await else {
            panic!("timed out after {received} lines");
        };
        for line in &batch.lines {
            assert_eq!(line.text, format!("line {received}"));
            received += 1;
        }
        batches += 1;
    }
    assert!(batches <= 20_000 / 1000, "{batches} batches for 20,000 lines");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_invalid_pattern_is_reported_with_the_pattern() {
    let s = setup();
    let (tx, _rx) = mpsc::channel(1);
    let cfg = config(Path::new("/var/log/[unclosed"), ReadFrom::Start);
    let err = file::run(cfg, store_in(&s.state), tx, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("/var/log/[unclosed"), "{err}");
}
