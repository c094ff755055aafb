//! The journald source end to end, on real journal files.
//!
//! Journal files are written by `systemd-journal-remote` (Debian's
//! `systemd-journal-remote` package), fed entries in journal export format,
//! so they are exactly what systemd 252 writes: compact, keyed hashes,
//! zstd-compressed large fields. Each call appends to the same file, which
//! is how the tests make the journal grow while the source follows it.
//! One more test reads the live journald that `scripts/journald-up` starts,
//! through the system journal directories.
//!
//! The test plays the daemon: it receives the batches and commits their
//! cursors to a real store, as `warden run` does. Without journal-remote,
//! libsystemd or root (for the live test) the tests skip, saying why;
//! with `CI=true` they fail instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warden::config::ReadFrom;
use warden::core::{LogLine, SourceRef, Timestamp};
use warden::source::SourceEvent;
use warden::source::journald::{self, JournalLocation, JournaldError, JournaldSourceConfig};
use warden::store::Store;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const DEADLINE: Duration = Duration::from_secs(20);
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";
/// 2026-11-21T15:00:00Z, in µs.
const T0: u64 = 1_795_273_200_000_000;

/// Says why a test cannot run: a failure with `CI=true`, a skip elsewhere.
fn unavailable(reason: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this test cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
    true
}

/// Whether journal files can be written and read here.
fn journal_tools_missing() -> bool {
    if !Path::new(JOURNAL_REMOTE).exists() {
        return unavailable("systemd-journal-remote is missing (apt-get install systemd-journal-remote)");
    }
    let probe = journald::sys::Journal::open_directory(Path::new("/nonexistent-for-probe"));
    if let Err(journald::sys::JournalError::Load(e)) = probe {
        return unavailable(&e.to_string());
    }
    false
}

/// One journal entry, as export format fields.
struct Entry(Vec<(String, String)>);

impl Entry {
    /// An entry at `T0 + seq` seconds with the given fields.
    fn new(seq: u64, fields: &[(&str, &str)]) -> Entry {
        let mut all = vec![
            ("__REALTIME_TIMESTAMP".to_string(), (T0 + seq * 1_000_000).to_string()),
            ("__MONOTONIC_TIMESTAMP".to_string(), (1_000_000 + seq * 1_000_000).to_string()),
            ("_BOOT_ID".to_string(), BOOT_ID.to_string()),
        ];
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Entry(all)
    }

    /// A syslog-style entry from `ident[pid]` on host `mx1`.
    fn syslog(seq: u64, ident: &str, message: &str) -> Entry {
        Entry::new(
            seq,
            &[("_HOSTNAME", "mx1"), ("SYSLOG_IDENTIFIER", ident), ("_PID", "42"), ("MESSAGE", message)],
        )
    }
}

/// Appends `entries` to `dir/remote.journal` through systemd-journal-remote.
fn append_journal(dir: &Path, entries: &[Entry]) {
    let mut export = Vec::new();
    for entry in entries {
        for (k, v) in &entry.0 {
            if v.contains('\n') {
                // Export format's binary field form: name, newline, le64
                // length, data, newline.
                export.extend_from_slice(k.as_bytes());
                export.push(b'\n');
                export.extend_from_slice(&(v.len() as u64).to_le_bytes());
                export.extend_from_slice(v.as_bytes());
                export.push(b'\n');
            } else {
                writeln!(export, "{k}={v}").unwrap();
            }
        }
        export.push(b'\n');
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-journal-remote");
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "journal-remote failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn group(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn jails() -> Arc<[Arc<str>]> {
    Arc::from(vec![Arc::<str>::from("test")])
}

fn config(dir: &Path, matches: Vec<BTreeMap<String, String>>, read_from: ReadFrom) -> JournaldSourceConfig {
    let mut cfg = JournaldSourceConfig::new(matches, jails(), read_from);
    cfg.location = JournalLocation::Directory(dir.to_path_buf());
    cfg
}

/// A running journald source and the test's side of its channel.
struct Daemon {
    store: Arc<Store>,
    rx: mpsc::Receiver<SourceEvent>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), JournaldError>>,
    lines: Vec<LogLine>,
    /// Batches without lines (announced positions) received.
    announced: usize,
}

impl Daemon {
    fn start(store: Arc<Store>, cfg: JournaldSourceConfig) -> Daemon {
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(journald::run(cfg, Arc::clone(&store), tx, shutdown.clone()));
        Daemon { store, rx, shutdown, task, lines: Vec::new(), announced: 0 }
    }

    async fn stop(self) -> Arc<Store> {
        self.shutdown.cancel();
        self.task.await.expect("source task joins").expect("source ends cleanly");
        self.store
    }

    fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }

    /// Receives (committing each batch's cursor) until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(SourceEvent::Lines(batch))) => {
                    let cursor = batch.cursor.expect("journald batches carry a cursor");
                    assert!(cursor.key.starts_with("journald:"), "{}", cursor.key);
                    if batch.lines.is_empty() {
                        self.announced += 1;
                    }
                    self.lines.extend(batch.lines);
                    self.store.put_cursors(&[(cursor.key.as_ref(), &cursor.value)]).expect("commit cursor");
                }
                Ok(Some(other)) => panic!("unexpected event {other:?}"),
                Ok(None) => panic!("source ended while waiting for {what}; got {:?}", self.texts()),
                Err(_) => panic!("timed out waiting for {what}; got {:?}", self.texts()),
            }
        }
    }

    /// Waits for a line ending in `marker`, then checks the lines received
    /// are exactly `want` and the marker's line.
    async fn expect_exactly(&mut self, want: &[&str], marker: &str) {
        self.until(marker, |d| d.lines.iter().any(|l| l.text.ends_with(marker))).await;
        let texts = self.texts();
        let (last, rest) = texts.split_last().expect("the marker");
        assert!(last.ends_with(marker), "{texts:?}");
        assert_eq!(rest, want);
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    journal: PathBuf,
    state: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    let state = tmp.path().join("state");
    std::fs::create_dir(&journal).unwrap();
    std::fs::create_dir(&state).unwrap();
    Setup { _tmp: tmp, journal, state }
}

fn store_in(dir: &Path) -> Arc<Store> {
    Arc::new(Store::open_in(dir).expect("open store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_or_groups_and_renders_lines_as_fail2ban_does() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    append_journal(
        &s.journal,
        &[
            Entry::syslog(1, "sshd", "Failed password for root from 192.0.2.1 port 22 ssh2"),
            Entry::new(
                2,
                &[
                    ("_HOSTNAME", "mx1"),
                    ("CONTAINER_TAG", "mailu-front"),
                    ("CONTAINER_NAME", "mailu-front-1"),
                    ("SYSLOG_IDENTIFIER", "mailu-front"),
                    ("MESSAGE", "AUTH not supported from 198.51.100.7"),
                ],
            ),
            Entry::new(
                3,
                &[
                    ("_HOSTNAME", "mx1"),
                    ("_SYSTEMD_UNIT", "nginx.service"),
                    ("_COMM", "nginx"),
                    ("_PID", "99"),
                    ("MESSAGE", "multi\nline"),
                ],
            ),
            Entry::syslog(4, "cron", "not matched"),
            // Same identifier, other host: the sshd group needs both fields.
            Entry::new(
                5,
                &[("_HOSTNAME", "other"), ("SYSLOG_IDENTIFIER", "sshd"), ("MESSAGE", "other host")],
            ),
            // The compressed kind of field: large values are stored zstd-compressed.
            Entry::syslog(6, "sshd", &format!("big {}", "x".repeat(20_000))),
            Entry::new(7, &[("_HOSTNAME", "mx1"), ("CONTAINER_TAG", "mailu-front"), ("MESSAGE", "marker")]),
        ],
    );
    let matches = vec![
        group(&[("CONTAINER_TAG", "mailu-front")]),
        group(&[("SYSLOG_IDENTIFIER", "sshd"), ("_HOSTNAME", "mx1")]),
        group(&[("_SYSTEMD_UNIT", "nginx.service")]),
    ];
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.journal, matches, ReadFrom::Start));
    let big = format!("mx1 sshd[42]: big {}", "x".repeat(20_000));
    daemon
        .expect_exactly(
            &[
                "mx1 sshd[42]: Failed password for root from 192.0.2.1 port 22 ssh2",
                "mx1 mailu-front: AUTH not supported from 198.51.100.7",
                "mx1 nginx[99]: multi\\nline",
                &big,
            ],
            "marker",
        )
        .await;
    let first = &daemon.lines[0];
    assert_eq!(first.time, Some(Timestamp((T0 + 1_000_000) as i64 / 1000)));
    assert_eq!(first.jails.as_ref(), jails().as_ref());
    assert_eq!(first.source, SourceRef::Journald { unit: None, tag: Some("sshd".into()) });
    assert_eq!(daemon.lines[1].source, SourceRef::Journald { unit: None, tag: Some("mailu-front".into()) });
    assert_eq!(daemon.lines[2].source, SourceRef::Journald { unit: Some("nginx.service".into()), tag: None });
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_appends_and_resumes_exactly_after_a_restart() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    append_journal(
        &s.journal,
        &[Entry::syslog(1, "app", "old, before warden"), Entry::syslog(2, "other", "x")],
    );
    let matches = vec![group(&[("SYSLOG_IDENTIFIER", "app")])];
    let cfg = || config(&s.journal, matches.clone(), ReadFrom::End);
    let mut daemon = Daemon::start(store_in(&s.state), cfg());
    // From the end: the last matching entry's position is announced first.
    daemon.until("the announced position", |d| d.announced == 1).await;
    append_journal(&s.journal, &[Entry::syslog(3, "app", "live one"), Entry::syslog(4, "app", "live two")]);
    daemon.until("two live lines", |d| d.lines.len() == 2).await;
    let store = daemon.stop().await;

    append_journal(&s.journal, &[Entry::syslog(5, "other", "y"), Entry::syslog(6, "app", "while down")]);
    let mut daemon = Daemon::start(store, cfg());
    append_journal(
        &s.journal,
        &[Entry::syslog(7, "app", "after restart"), Entry::syslog(8, "app", "marker")],
    );
    daemon.expect_exactly(&["mx1 app[42]: while down", "mx1 app[42]: after restart"], "marker").await;
    assert_eq!(daemon.announced, 0, "a stored cursor is resumed, not re-announced");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_cursor_that_is_not_valid_is_ignored() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    append_journal(&s.journal, &[Entry::syslog(1, "app", "one"), Entry::syslog(2, "app", "marker")]);
    let matches = vec![group(&[("SYSLOG_IDENTIFIER", "app")])];
    let store = store_in(&s.state);
    store.put_cursors(&[(journald::cursor_key(&matches), b"not a cursor")]).unwrap();
    let mut daemon = Daemon::start(store, config(&s.journal, matches, ReadFrom::Start));
    daemon.expect_exactly(&["mx1 app[42]: one"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_rotated_into_a_new_file_is_followed() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    append_journal(&s.journal, &[Entry::syslog(1, "app", "in the first file")]);
    let matches = vec![group(&[("SYSLOG_IDENTIFIER", "app")])];
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.journal, matches, ReadFrom::Start));
    daemon.until("the first line", |d| d.lines.len() == 1).await;
    // journald rotates by renaming the file aside and starting a new one.
    std::fs::rename(s.journal.join("remote.journal"), s.journal.join("remote@0001-0002.journal")).unwrap();
    append_journal(
        &s.journal,
        &[Entry::syslog(2, "app", "in the new file"), Entry::syslog(3, "app", "marker")],
    );
    daemon
        .expect_exactly(&["mx1 app[42]: in the first file", "mx1 app[42]: in the new file"], "marker")
        .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_files_created_after_start_are_read() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    let matches = vec![group(&[("SYSLOG_IDENTIFIER", "app")])];
    let mut daemon = Daemon::start(store_in(&s.state), config(&s.journal, matches, ReadFrom::Start));
    append_journal(&s.journal, &[Entry::syslog(1, "app", "first ever"), Entry::syslog(2, "app", "marker")]);
    daemon.expect_exactly(&["mx1 app[42]: first ever"], "marker").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_are_truncated_to_the_cap() {
    if journal_tools_missing() {
        return;
    }
    let s = setup();
    append_journal(
        &s.journal,
        &[Entry::syslog(1, "app", &"y".repeat(5000)), Entry::syslog(2, "app", "marker")],
    );
    let mut cfg = config(&s.journal, vec![group(&[("SYSLOG_IDENTIFIER", "app")])], ReadFrom::Start);
    cfg.max_line_bytes = 100;
    let mut daemon = Daemon::start(store_in(&s.state), cfg);
    let want = format!("mx1 app[42]: {}", "y".repeat(100));
    daemon.expect_exactly(&[&want], "marker").await;
    daemon.stop().await;
}

/// Reads what `systemd-cat` logs through the live journald, as the Mailu
/// case does with Docker's journald log driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_live_system_journal() {
    if journal_tools_missing() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        unavailable("starting journald needs root");
        return;
    }
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/journald-up")).output().unwrap();
    if !up.status.success() {
        unavailable(&format!("scripts/journald-up failed: {}", String::from_utf8_lossy(&up.stderr)));
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let tag = format!("warden-test-{}", std::process::id());
    let matches = vec![group(&[("SYSLOG_IDENTIFIER", &tag)])];
    // From the start: the tag is new, so only this test's entries match,
    // whenever the source gets to look.
    let cfg = JournaldSourceConfig::new(matches, jails(), ReadFrom::Start);
    let mut daemon = Daemon::start(store_in(state.path()), cfg);
    let log = |text: &str| {
        let mut child = Command::new("systemd-cat").args(["-t", &tag]).stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    };
    log("Failed password for root from 203.0.113.9 port 22 ssh2\n");
    daemon.until("the first line", |d| !d.lines.is_empty()).await;
    log("marker\n");
    daemon.until("the marker", |d| d.lines.len() == 2).await;
    let first = &daemon.lines[0];
    // systemd-cat's pid becomes _PID; the host name is this machine's.
    let suffix = "]: Failed password for root from 203.0.113.9 port 22 ssh2";
    assert!(first.text.contains(&format!(" {tag}[")) && first.text.ends_with(suffix), "{}", first.text);
    assert_eq!(first.source, SourceRef::Journald { unit: None, tag: Some(tag.clone()) });
    assert!(first.time.is_some());
    assert!(daemon.lines[1].text.ends_with(": marker"));
    daemon.stop().await;
}
