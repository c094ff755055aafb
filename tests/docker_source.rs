//! The Docker source against a real dockerd: discovery by label, TTY and
//! multiplexed streams, long and split lines, resuming without duplicates
//! after a container restart and after a source restart, reconnecting when
//! dockerd goes away, and the warnings for bad labels and log drivers.
//!
//! Logs are read from the json-file logs on disk by default (the tests run
//! as root, so the files are readable); the tests of long lines and of
//! resuming run both ways, and one test follows a json-file log across
//! rotations (plain and compressed), restarts of the source and switches
//! between the two ways.
//!
//! Each test drives [`warden::source::docker::run`] directly with a temp
//! store and a channel, and commits cursors the way the daemon does. Tests
//! skip without dockerd (see `support/docker.rs`), except with `CI=true`.
//! Every other warden Docker source on the host sees these test containers
//! too, so each test looks only at its own containers.

#[path = "support/docker.rs"]
mod docker_support;

use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use docker_support::{TestContainer, docker, docker_available, unique_name};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden::config::ReadFiles;
use warden::core::{Clock, SourceRef, SystemClock, Timestamp};
use warden::source::docker::{ClientError, DockerSourceConfig, run};
use warden::source::{ContainerInfo, LogAccess, SourceEvent};
use warden::store::{Batch, Store};

const TAG: &str = "dsrc";
const DEADLINE: Duration = Duration::from_secs(40);

/// Taken for writing by the test that restarts dockerd, for reading by the
/// others, so that one never runs during the others.
static DOCKERD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// What a source sent, as the test keeps it.
#[derive(Debug, Clone)]
enum Seen {
    Up(ContainerInfo),
    Line { id: String, name: String, jails: Vec<String>, time: Option<Timestamp>, text: String },
    Down(String),
    Gone { id: String, cursor_key: String },
    Connected,
}

/// A running Docker source and everything it sent.
struct Source {
    /// Set for sources that talk through their own proxy, so that their
    /// log output is told apart by its `endpoint=` span field.
    proxy: Option<(docker_support::DockerProxy, tempfile::TempDir)>,
    store: Arc<Store>,
    rx: mpsc::Receiver<SourceEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ClientError>>,
    seen: Vec<Seen>,
}

impl Source {
    fn start(store: Arc<Store>, cfg: DockerSourceConfig) -> Source {
        capture_logs();
        let (tx, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(cfg, store.clone(), tx, shutdown.clone()));
        Source { proxy: None, store, rx, shutdown, task, seen: Vec::new() }
    }

    /// A source reaching dockerd through a proxy of its own, so that its
    /// warnings can be told from those of the other tests' sources.
    fn start_private(store: Arc<Store>, mut cfg: DockerSourceConfig) -> Source {
        let dir = tempfile::tempdir().unwrap();
        let proxy = docker_support::DockerProxy::start(&dir.path().join("docker.sock"));
        cfg.host = Some(proxy.host());
        Source { proxy: Some((proxy, dir)), ..Source::start(store, cfg) }
    }

    /// The `endpoint=…` field of this source's log lines.
    fn endpoint(&self) -> String {
        let (proxy, _) = self.proxy.as_ref().expect("a source started with start_private");
        format!("endpoint={}", proxy.host())
    }

    /// Receives (and processes, as the daemon would) until `done` holds,
    /// panicking at the deadline.
    async fn wait_for(&mut self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !done(&self.seen) {
            let event = tokio::select! {
                event = self.rx.recv() => event,
                // Conditions on captured logs change without an event.
                () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                () = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            };
            let Some(event) = event else { panic!("the source ended while waiting for {what}") };
            self.process(event);
        }
    }

    /// Commits cursors and forgets removed containers as the daemon does.
    fn process(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Lines(batch) => {
                for line in batch.lines {
                    let SourceRef::Docker { container_id, container_name } = line.source else {
                        panic!("not a Docker line: {line:?}")
                    };
                    self.seen.push(Seen::Line {
                        id: container_id,
                        name: container_name,
                        jails: line.jails.iter().map(|j| j.to_string()).collect(),
                        time: line.time,
                        text: line.text,
                    });
                }
                if let Some(cursor) = batch.cursor {
                    self.store.put_cursors(&[(&*cursor.key, &cursor.value)]).unwrap();
                }
            }
            SourceEvent::ContainerUp(info) => self.seen.push(Seen::Up(info)),
            SourceEvent::ContainerDown { id } => self.seen.push(Seen::Down(id)),
            SourceEvent::ContainerGone { id, cursor_key } => {
                let batch = Batch { removed_cursors: vec![cursor_key.to_string()], ..Batch::default() };
                self.store.commit_batch(&batch).unwrap();
                self.seen.push(Seen::Gone { id, cursor_key: cursor_key.to_string() });
            }
            SourceEvent::DockerConnected => self.seen.push(Seen::Connected),
        }
    }

    /// Waits until `container` has logged `last`.
    async fn wait_for_line(&mut self, container: &TestContainer, last: &str) {
        let id = container.id.clone();
        self.wait_for(&format!("{last:?} from {}", container.name), |seen| texts(seen, &id).contains(&last))
            .await;
    }

    /// Stops the source the way the daemon does at shutdown.
    async fn stop(mut self) -> Arc<Store> {
        self.shutdown.cancel();
        let ended = tokio::time::timeout(DEADLINE, async {
            // Keep receiving so that no send blocks the shutdown.
            while let Some(event) = self.rx.recv().await {
                self.process(event);
            }
        })
        .await;
        assert!(ended.is_ok(), "the source did not stop");
        self.task.await.unwrap().unwrap();
        self.store
    }
}

/// The texts of `id`'s lines, in order.
fn texts<'a>(seen: &'a [Seen], id: &str) -> Vec<&'a str> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Line { id: i, text, .. } if i == id => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn up<'a>(seen: &'a [Seen], id: &str) -> Option<&'a ContainerInfo> {
    seen.iter().rev().find_map(|s| match s {
        Seen::Up(info) if info.id == id => Some(info),
        _ => None,
    })
}

fn mentions(seen: &[Seen], id: &str) -> bool {
    seen.iter().any(|s| match s {
        Seen::Up(info) => info.id == id,
        Seen::Line { id: i, .. } | Seen::Down(i) | Seen::Gone { id: i, .. } => i == id,
        Seen::Connected => false,
    })
}

fn temp_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    (dir, Arc::new(store))
}

fn config_from_now() -> DockerSourceConfig {
    let mut cfg = DockerSourceConfig::new(SystemClock.now());
    cfg.retry_max = Duration::from_secs(1);
    cfg
}

fn config_reading(read_files: ReadFiles) -> DockerSourceConfig {
    DockerSourceConfig { read_files, ..config_from_now() }
}

/// How the logs are expected to be read with `read_files`.
fn expected_access(read_files: ReadFiles) -> LogAccess {
    match read_files {
        ReadFiles::Auto => LogAccess::File,
        ReadFiles::Never => LogAccess::Api,
    }
}

/// Whether this process can read dockerd's json-file logs (as root can);
/// the tests of reading them skip otherwise, except with `CI=true`.
fn log_files_readable() -> bool {
    let root = docker(&["info", "-f", "{{.DockerRootDir}}"]);
    let dir = format!("{root}/containers");
    match std::fs::read_dir(&dir) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but dockerd's log files in {dir} cannot be read: {e} (run the tests as root)")
        }
        Err(e) => {
            eprintln!("skipping: cannot read dockerd's log files in {dir}: {e} (run the tests as root)");
            false
        }
    }
}

/// Whether a test reading logs the `read_files` way can run here.
fn can_read(read_files: ReadFiles) -> bool {
    docker_available() && (read_files == ReadFiles::Never || log_files_readable())
}

// ---- captured tracing output, for the warnings ----

static CAPTURED: Mutex<String> = Mutex::new(String::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
    });
}

/// Captured log lines containing every one of `parts`.
fn logged(parts: &[&str]) -> Vec<String> {
    let captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
    captured.lines().filter(|line| parts.iter().all(|p| line.contains(p))).map(String::from).collect()
}

// ---- tests ----

#[tokio::test]
async fn follows_labelled_and_named_containers_and_nothing_else() {
    let _shared = DOCKERD.read().await;
    if !docker_available() {
        return;
    }
    let (_dir, store) = temp_store();
    let mut cfg = config_from_now();
    let named = unique_name(TAG, "named");
    cfg.named.insert(named.clone(), vec!["from-config".into()]);

    // Running before the source starts: found by listing.
    let before = TestContainer::run(
        TAG,
        "before",
        &[
            "--label",
            "warden.jails=sshd, web",
            "--label",
            "warden.jail.web.maxretry=3",
            "-p",
            "127.0.0.1::8080",
        ],
        "echo before-out; echo before-err >&2; exec sleep 600",
    );
    let mut source = Source::start(store, cfg);
    let before_id = before.id.clone();
    source.wait_for("both lines of the container running before", |s| texts(s, &before_id).len() == 2).await;

    // Started after: found through events.
    let unlabelled = TestContainer::run(TAG, "unlabelled", &[], "echo unlabelled; exec sleep 600");
    let opted_out = TestContainer::run(
        TAG,
        "optout",
        &["--label", "warden.jails=sshd", "--label", "warden.enable=false"],
        "echo opted-out; exec sleep 600",
    );
    let by_name = TestContainer::run_named(&named, &[], "echo by-name; exec sleep 600");
    let after =
        TestContainer::run(TAG, "after", &["--label", "warden.jails=sshd"], "echo after; exec sleep 600");
    source.wait_for_line(&by_name, "by-name").await;
    source.wait_for_line(&after, "after").await;

    let mut before_texts = texts(&source.seen, &before.id);
    before_texts.sort_unstable();
    assert_eq!(before_texts, ["before-err", "before-out"]);
    let info = up(&source.seen, &before.id).expect("ContainerUp for the container running before");
    assert_eq!(info.name, before.name);
    assert_eq!(info.image, docker_support::TEST_IMAGE);
    assert_eq!(info.jails, ["sshd", "web"]);
    assert_eq!(info.labels["warden.jail.web.maxretry"], "3");
    assert!(!info.tty);
    let host_port: u16 =
        docker(&["port", &before.name, "8080/tcp"]).rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        info.published,
        [warden::source::PublishedPort { port: host_port, protocol: warden::core::Protocol::Tcp }]
    );
    let now = SystemClock.now();
    for seen in &source.seen {
        if let Seen::Line { id, name, jails, time, .. } = seen
            && id == &before.id
        {
            assert_eq!(name, &before.name);
            assert_eq!(jails, &["sshd", "web"]);
            let time = time.expect("Docker's timestamp");
            assert!(
                now.since(time) < Duration::from_secs(120) && time.since(now) < Duration::from_secs(5),
                "{time:?}"
            );
        }
    }
    assert_eq!(up(&source.seen, &by_name.id).unwrap().jails, ["from-config"]);
    assert_eq!(texts(&source.seen, &after.id), ["after"]);
    // Both started before `after`, whose line has arrived.
    assert!(!mentions(&source.seen, &unlabelled.id), "{:#?}", source.seen);
    assert!(!mentions(&source.seen, &opted_out.id), "{:#?}", source.seen);
    source.stop().await;
}

#[tokio::test]
async fn split_lines_are_joined_and_long_lines_capped_with_and_without_tty_from_files() {
    split_lines_are_joined_and_long_lines_capped(ReadFiles::Auto).await;
}

#[tokio::test]
async fn split_lines_are_joined_and_long_lines_capped_with_and_without_tty_through_the_api() {
    split_lines_are_joined_and_long_lines_capped(ReadFiles::Never).await;
}

async fn split_lines_are_joined_and_long_lines_capped(read_files: ReadFiles) {
    let _shared = DOCKERD.read().await;
    if !can_read(read_files) {
        return;
    }
    let (_dir, store) = temp_store();
    let mut source = Source::start_private(store, config_reading(read_files));
    // 40,000 bytes: Docker splits it at 16 KiB. 100 KiB: over the 64 KiB cap.
    let script = "head -c 40000 /dev/zero | tr '\\0' a; echo; head -c 102400 /dev/zero | tr '\\0' b; echo; \
                  printf 'invalid \\377 utf-8\\n'; echo after; exec sleep 600";
    let label = ["--label", "warden.jails=sshd"];
    let plain = TestContainer::run(TAG, "long", &label, script);
    let tty = TestContainer::run(TAG, "long-tty", &[&label[..], &["-t"]].concat(), script);
    for container in [&plain, &tty] {
        source.wait_for_line(container, "after").await;
        let texts = texts(&source.seen, &container.id);
        assert_eq!(
            texts.len(),
            4,
            "{}: {:?}",
            container.name,
            texts.iter().map(|t| t.len()).collect::<Vec<_>>()
        );
        assert_eq!(texts[0], "a".repeat(40_000), "{}", container.name);
        assert_eq!(texts[1], "b".repeat(64 * 1024), "{}", container.name);
        assert_eq!(texts[2], "invalid \u{fffd} utf-8", "{}", container.name);
        assert_eq!(texts[3], "after");
        let name = format!("container={}", container.name);
        let warning = [source.endpoint(), name, "truncated".into()];
        let warning: Vec<&str> = warning.iter().map(String::as_str).collect();
        source.wait_for("the truncation warning", |_| !logged(&warning).is_empty()).await;
    }
    assert!(up(&source.seen, &tty.id).unwrap().tty);
    for container in [&plain, &tty] {
        assert_eq!(up(&source.seen, &container.id).unwrap().logs, expected_access(read_files));
    }
    source.stop().await;
}

#[tokio::test]
async fn resumes_after_container_and_source_restarts_without_repeats_or_gaps_from_files() {
    resumes_after_container_and_source_restarts(ReadFiles::Auto).await;
}

#[tokio::test]
async fn resumes_after_container_and_source_restarts_without_repeats_or_gaps_through_the_api() {
    resumes_after_container_and_source_restarts(ReadFiles::Never).await;
}

async fn resumes_after_container_and_source_restarts(read_files: ReadFiles) {
    let _shared = DOCKERD.read().await;
    if !can_read(read_files) {
        return;
    }
    let (_dir, store) = temp_store();
    let container = TestContainer::idle(TAG, "resume", &["--label", "warden.jails=sshd"]);
    let mut source = Source::start(store, config_reading(read_files));
    let id = container.id.clone();
    source.wait_for("ContainerUp", |s| up(s, &id).is_some()).await;
    container.log(&["one", "two"]);
    // Stopped at once: its last lines come before the news that it stopped.
    container.stop();
    source.wait_for("ContainerDown", |s| s.iter().any(|e| matches!(e, Seen::Down(i) if *i == id))).await;
    assert_eq!(texts(&source.seen, &container.id), ["one", "two"]);
    container.start();
    container.log(&["three"]);
    source.wait_for_line(&container, "three").await;
    assert_eq!(texts(&source.seen, &container.id), ["one", "two", "three"]);

    // warden stops; the container logs, restarts and logs on meanwhile.
    let store = source.stop().await;
    container.log(&["four"]);
    container.stop();
    container.start();
    container.log(&["five"]);
    let mut source = Source::start(store, config_reading(read_files));
    source.wait_for_line(&container, "five").await;
    assert_eq!(up(&source.seen, &container.id).unwrap().logs, expected_access(read_files));
    container.log(&["six"]);
    source.wait_for_line(&container, "six").await;
    assert_eq!(texts(&source.seen, &container.id), ["four", "five", "six"]);

    let key = format!("docker:{}", container.id);
    assert!(source.store.cursor(&key).unwrap().is_some());
    container.remove();
    source
        .wait_for("ContainerGone", |s| {
            s.iter().any(|e| matches!(e, Seen::Gone { id: i, cursor_key } if *i == id && *cursor_key == key))
        })
        .await;
    assert_eq!(source.store.cursor(&key).unwrap(), None);
    source.stop().await;
}

#[tokio::test]
async fn without_a_cursor_only_new_lines_are_read_unless_the_jail_reads_from_start() {
    let _shared = DOCKERD.read().await;
    if !docker_available() {
        return;
    }
    let container =
        TestContainer::run(TAG, "old", &["--label", "warden.jails=oldjail"], "echo old-line; exec sleep 600");
    let deadline = std::time::Instant::now() + DEADLINE;
    while !docker(&["logs", &container.name]).contains("old-line") {
        assert!(std::time::Instant::now() < deadline, "old-line never reached the log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Docker's timestamps have nanoseconds, warden's start milliseconds.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let started = SystemClock.now();

    let (_dir, store) = temp_store();
    let mut from_now = Source::start(store, DockerSourceConfig::new(started));
    let (_dir2, store2) = temp_store();
    let mut cfg = DockerSourceConfig::new(started);
    cfg.read_from_start.insert("oldjail".into());
    let mut from_start = Source::start(store2, cfg);
    let id = container.id.clone();
    from_now.wait_for("ContainerUp", |s| up(s, &id).is_some()).await;
    from_start.wait_for_line(&container, "old-line").await;
    container.log(&["new-line"]);
    from_now.wait_for_line(&container, "new-line").await;
    from_start.wait_for_line(&container, "new-line").await;
    assert_eq!(texts(&from_now.seen, &container.id), ["new-line"]);
    assert_eq!(texts(&from_start.seen, &container.id), ["old-line", "new-line"]);
    from_now.stop().await;
    from_start.stop().await;
}

#[tokio::test]
async fn renaming_relabels_lines_and_bad_labels_and_log_drivers_are_reported() {
    let _shared = DOCKERD.read().await;
    if !docker_available() {
        return;
    }
    let (_dir, store) = temp_store();
    let mut source = Source::start_private(store, config_from_now());
    let endpoint = source.endpoint();
    let mut container = TestContainer::idle(TAG, "labels", &["--label", "warden.jails=sshd,,bad name"]);
    let unreadable =
        TestContainer::idle(TAG, "nolog", &["--log-driver", "none", "--label", "warden.jails=sshd"]);
    container.log(&["first"]);
    source.wait_for_line(&container, "first").await;
    assert_eq!(up(&source.seen, &container.id).unwrap().jails, ["sshd"]);
    let name = format!("container={}", container.name);
    let label_warning = [
        endpoint.as_str(),
        name.as_str(),
        "warden.jails=\"sshd,,bad name\"",
        "valid form: warden.jails=<jail>",
    ];
    source.wait_for("the label warning", |_| !logged(&label_warning).is_empty()).await;

    let name = format!("container={}", unreadable.name);
    let driver_warning =
        [endpoint.as_str(), name.as_str(), "none driver", "--log-driver json-file, local or journald"];
    source.wait_for("the log driver warning", |_| !logged(&driver_warning).is_empty()).await;
    assert_eq!(logged(&driver_warning).len(), 1, "warned once");
    assert!(!mentions(&source.seen, &unreadable.id));

    container.rename(TAG, "renamed");
    let (id, new_name) = (container.id.clone(), container.name.clone());
    source
        .wait_for("ContainerUp with the new name", |s| up(s, &id).is_some_and(|i| i.name == new_name))
        .await;
    container.log(&["second"]);
    source.wait_for_line(&container, "second").await;
    let last_name = source.seen.iter().rev().find_map(|s| match s {
        Seen::Line { id: i, name, .. } if *i == id => Some(name.clone()),
        _ => None,
    });
    assert_eq!(last_name.as_deref(), Some(container.name.as_str()));
    assert_eq!(logged(&label_warning).len(), 1, "warned once, not again after the rename");
    source.stop().await;
}

#[tokio::test]
async fn reconnects_when_dockerd_goes_away_and_misses_nothing() {
    let _shared = DOCKERD.read().await;
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = docker_support::DockerProxy::start(&dir.path().join("docker.sock"));
    let (_store_dir, store) = temp_store();
    let mut cfg = config_from_now();
    cfg.host = Some(proxy.host());
    let container = TestContainer::idle(TAG, "reconnect", &["--label", "warden.jails=sshd"]);
    let mut source = Source::start(store, cfg);
    container.log(&["before"]);
    source.wait_for_line(&container, "before").await;

    proxy.down().await;
    container.log(&["during-1", "during-2"]);
    let endpoint = format!("endpoint={}", proxy.host());
    source
        .wait_for("the source to notice", |_| !logged(&[&endpoint, "dockerd is not reachable"]).is_empty())
        .await;
    proxy.up();
    source.wait_for_line(&container, "during-2").await;
    container.log(&["after"]);
    source.wait_for_line(&container, "after").await;
    assert_eq!(texts(&source.seen, &container.id), ["before", "during-1", "during-2", "after"]);
    let connected = source.seen.iter().filter(|s| matches!(s, Seen::Connected)).count();
    assert_eq!(connected, 2, "the daemon hears of the first connection and of the reconnection");
    source.stop().await;
}

/// Restarts the shared dockerd, so it runs only where asked to (CI does).
#[tokio::test]
async fn reattaches_after_a_real_dockerd_restart() {
    let asked = ["CI", "WARDEN_TEST_DOCKERD_RESTART"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v == "true" || v == "1"));
    if !asked {
        eprintln!("skipping: restarts the shared dockerd; set WARDEN_TEST_DOCKERD_RESTART=1 to run it");
        return;
    }
    let _exclusive = DOCKERD.write().await;
    if !docker_available() {
        return;
    }
    let (_dir, store) = temp_store();
    let container =
        TestContainer::idle(TAG, "dockerd", &["--restart", "always", "--label", "warden.jails=sshd"]);
    let mut source = Source::start(store, config_from_now());
    container.log(&["before"]);
    source.wait_for_line(&container, "before").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dockerd-up");
    let restarted = std::process::Command::new(script).arg("--restart").status().unwrap();
    assert!(restarted.success(), "scripts/dockerd-up --restart failed");
    let deadline = std::time::Instant::now() + DEADLINE;
    while docker(&["inspect", "-f", "{{.State.Running}}", &container.name]) != "true" {
        assert!(std::time::Instant::now() < deadline, "the container did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    container.log(&["after"]);
    source.wait_for_line(&container, "after").await;
    assert_eq!(texts(&source.seen, &container.id), ["before", "after"]);
    source.stop().await;
}

/// Padding that makes each numbered line about 100 bytes, so that a log
/// with `max-size=10k` rotates about every 60 lines.
const PAD: &str = "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";

fn numbered(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line-{i:06} {PAD}")).collect()
}

/// Writes lines `from..to` as [`numbered`] gives them to the container's
/// stdout, in bursts of at most 50 (less than one rotation each), waiting
/// after each for `source`, when given, to have read it.
async fn write_numbered(container: &TestContainer, from: usize, to: usize, mut source: Option<&mut Source>) {
    let mut at = from;
    while at < to {
        let end = (at + 50).min(to);
        let script = format!(
            "i={at}; while [ $i -lt {end} ]; do printf 'line-%06d %s\\n' $i {PAD} > /proc/1/fd/1; i=$((i + 1)); done"
        );
        docker(&["exec", &container.name, "sh", "-c", &script]);
        if let Some(source) = source.as_deref_mut() {
            source.wait_for_line(container, &numbered(end - 1, end)[0]).await;
        }
        at = end;
    }
}

#[tokio::test]
async fn a_json_file_log_is_followed_across_rotations_restarts_and_switches_to_and_from_the_api() {
    follows_rotations_restarts_and_switches(false).await;
}

#[tokio::test]
async fn a_compressed_json_file_log_is_followed_across_rotations_restarts_and_switches_to_and_from_the_api() {
    follows_rotations_restarts_and_switches(true).await;
}

/// Every line of a rotating log arrives exactly once: read from the file
/// while it rotates, after a restart of the source that missed rotations
/// (resumed through the API, then from the files again), with the same
/// cursor all along.
async fn follows_rotations_restarts_and_switches(compress: bool) {
    let _shared = DOCKERD.read().await;
    if !can_read(ReadFiles::Auto) {
        return;
    }
    let (_dir, store) = temp_store();
    let mut options =
        vec!["--label", "warden.jails=sshd", "--log-opt", "max-size=10k", "--log-opt", "max-file=3"];
    if compress {
        options.extend(["--log-opt", "compress=true"]);
    }
    let container = TestContainer::idle(TAG, if compress { "rotate-gz" } else { "rotate" }, &options);
    let id = container.id.clone();
    let log_path = docker(&["inspect", "-f", "{{.LogPath}}", &container.name]);
    let rotated = format!("{log_path}.1{}", if compress { ".gz" } else { "" });

    // From the file, while it rotates about five times.
    let mut source = Source::start(store, config_reading(ReadFiles::Auto));
    source.wait_for("ContainerUp", |s| up(s, &id).is_some()).await;
    assert_eq!(up(&source.seen, &id).unwrap().logs, LogAccess::File);
    write_numbered(&container, 0, 300, Some(&mut source)).await;
    assert_eq!(texts(&source.seen, &id), numbered(0, 300));
    assert!(std::path::Path::new(&rotated).exists(), "{rotated} exists: the log rotated");

    // Stopped while the log rotates twice; resumed through the API. (Not
    // followed live there: dockerd 20.10 repeats lines when a log it
    // follows rotates, which is one more reason to read the files.)
    let store = source.stop().await;
    write_numbered(&container, 300, 420, None).await;
    let mut source = Source::start_private(store, config_reading(ReadFiles::Never));
    source.wait_for_line(&container, &numbered(419, 420)[0]).await;
    assert_eq!(up(&source.seen, &id).unwrap().logs, LogAccess::Api);
    assert_eq!(texts(&source.seen, &id), numbered(300, 420));
    let name = format!("container={}", container.name);
    let said =
        [&source.endpoint(), &name, "reading its logs through the Docker API: docker.read_files is never"];
    assert_eq!(logged(&said).len(), 1, "said once which way its logs are read");

    // Stopped while it rotates twice again; resumed from the files, and
    // followed while it rotates on.
    let store = source.stop().await;
    write_numbered(&container, 420, 540, None).await;
    let mut source = Source::start_private(store, config_reading(ReadFiles::Auto));
    // Once it follows: rotating meanwhile would remove the oldest file.
    source.wait_for("ContainerUp", |s| up(s, &id).is_some()).await;
    write_numbered(&container, 540, 700, Some(&mut source)).await;
    assert_eq!(up(&source.seen, &id).unwrap().logs, LogAccess::File);
    assert_eq!(texts(&source.seen, &id), numbered(420, 700));
    let said = [&source.endpoint(), &name, "reading its logs from its json-file log", &log_path];
    assert_eq!(logged(&said).len(), 1, "said once which way its logs are read");
    source.stop().await;
}
