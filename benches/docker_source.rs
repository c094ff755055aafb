//! Throughput of the Docker source: lines per second from one container.
//!
//! Run: `cargo bench --bench docker_source` (the last two need dockerd and
//! the test image, see `scripts/dockerd-up` and `scripts/test-image`).
//! Prints:
//! - **decode**: the in-process part alone (framing, reassembly, resume
//!   filter, building `LogLine`s) on an in-memory multiplexed stream, and
//!   the same for json-file lines as dockerd writes them to disk;
//! - **source, fake dockerd**: the whole source (HTTP, decoding, batches,
//!   the channel, a consumer committing each batch's cursor) reading one
//!   container's stream from a stand-in for dockerd that writes it as
//!   dockerd does (one HTTP chunk per message) but as fast as the socket
//!   takes it: what warden can take before it falls behind;
//! - **source, json-file on disk**: the same, with the stand-in serving
//!   only discovery (its inspect names a `LogPath`) and the lines read from
//!   a json-file log in a temporary directory;
//! - **backlog**: a container has logged `WARDEN_BENCH_LINES` (default
//!   500,000) sshd-style lines; a source with `read_from: start` reads them
//!   all, committing each batch's cursor as the daemon does. Wall time from
//!   source start to the last line, with the CPU time warden (this process)
//!   and dockerd spent; through the API, then (json-file only, as root)
//!   from the file;
//! - **live**: the source runs first and the container then writes the
//!   lines as fast as it can; wall time from the first line to the last.
//!   This is bounded by how fast dockerd's json-file logger takes them in.
//!   Both ways too.
//!
//! `WARDEN_BENCH_LINES` sets the line count, `WARDEN_BENCH_LOG_DRIVER` the
//! real container's log driver (default json-file; `local` is the other
//! one worth comparing).

#[path = "../tests/support/docker.rs"]
mod docker_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_support::{TestContainer, docker, docker_available};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden::config::ReadFiles;
use warden::core::{Clock, LogLine, SourceRef, SystemClock, Timestamp};
use warden::source::SourceEvent;
use warden::source::docker::cursor::{Position, Replay};
use warden::source::docker::decode::{Decoded, LogDecoder};
use warden::source::docker::jsonfile::JsonFileDecoder;
use warden::source::docker::{DockerSourceConfig, run};
use warden::store::Store;

const JAIL: &str = "bench-sshd";
const LINE: &str = "Failed password for invalid user admin from 203.0.113.7 port 52112 ssh2";

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too and
    // passes nothing, so only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let lines: usize =
        std::env::var("WARDEN_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
    decode_bench(lines);
    decode_json_bench(lines);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(fake_dockerd_bench(lines));
    runtime.block_on(json_file_bench(lines));
    if !docker_available() {
        println!("docker_source bench: the dockerd part skipped, see the reason above");
        return;
    }
    let mut ways = vec![ReadFiles::Never];
    if log_driver() == "json-file" {
        ways.push(ReadFiles::Auto);
    }
    for read_files in ways {
        runtime.block_on(backlog_bench(lines, read_files));
        runtime.block_on(live_bench(lines, read_files));
    }
}

/// How `read_files` reads a container's log, for the output.
fn way(read_files: ReadFiles) -> &'static str {
    match read_files {
        ReadFiles::Never => "through the API",
        ReadFiles::Auto => "from the json-file log",
    }
}

/// The first message's timestamp, in nanoseconds.
const BASE: i64 = 1_795_366_706_000_000_000;

/// Frames of a multiplexed log stream, one per message as dockerd writes
/// them: `lines` sshd-style lines 1 µs apart, then `done` when `done`.
fn frames(lines: usize, done: bool) -> Vec<Vec<u8>> {
    let message = |i: usize, text: &str| {
        let stamp = jiff::Timestamp::from_nanosecond(i128::from(BASE + i as i64 * 1000)).unwrap();
        let message = format!("{stamp:.9} {text}\n");
        let mut frame = vec![1, 0, 0, 0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message.as_bytes());
        frame
    };
    let mut frames: Vec<Vec<u8>> = (0..lines).map(|i| message(i, &format!("{LINE} {i}"))).collect();
    if done {
        frames.push(message(lines, "done"));
    }
    frames
}

/// `lines` sshd-style lines 1 µs apart (then `done` when `done`) as
/// dockerd's json-file driver writes them.
fn json_lines(lines: usize, done: bool) -> Vec<u8> {
    let entry = |i: usize, text: &str| {
        let stamp = jiff::Timestamp::from_nanosecond(i128::from(BASE + i as i64 * 1000)).unwrap();
        format!("{{\"log\":\"{text}\\n\",\"stream\":\"stdout\",\"time\":\"{stamp:.9}\"}}\n")
    };
    let mut text: String = (0..lines).map(|i| entry(i, &format!("{LINE} {i}"))).collect();
    if done {
        text.push_str(&entry(lines, "done"));
    }
    text.into_bytes()
}

/// The json-file decoding work of the source, without files.
fn decode_json_bench(lines: usize) {
    let log = json_lines(lines, false);
    let source = SourceRef::Docker { container_id: "0".repeat(64), container_name: "bench".into() };
    let jails: Arc<[Arc<str>]> = Arc::from([Arc::from(JAIL)]);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let mut decoder = JsonFileDecoder::new(64 * 1024);
        let mut replay = Replay::from_time(BASE);
        let mut position: Option<Position> = None;
        let mut out: Vec<LogLine> = Vec::with_capacity(4096);
        let mut count = 0usize;
        for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            decoder
                .entry(line, replay.since(), &mut |d| {
                    if let Decoded::Line { time, text, .. } = d
                        && replay.admit(time)
                    {
                        match &mut position {
                            Some(p) => p.advance(time),
                            None => position = Some(Position::first(time)),
                        }
                        out.push(LogLine {
                            source: source.clone(),
                            jails: jails.clone(),
                            time: Some(Timestamp(time.div_euclid(1_000_000))),
                            text: String::from_utf8_lossy(text).into_owned(),
                        });
                    }
                })
                .unwrap();
            if out.len() >= 4096 {
                count += out.len();
                out.clear();
            }
        }
        count += out.len();
        assert_eq!(count, lines);
        best = best.min(started.elapsed());
    }
    println!(
        "decode json-file: {lines} lines in {:.3} s (best of 5) = {:.0} lines/s",
        best.as_secs_f64(),
        lines as f64 / best.as_secs_f64()
    );
}

/// The decoding work of the source, without dockerd.
fn decode_bench(lines: usize) {
    let stream = frames(lines, false).concat();
    let base = BASE;
    let source = SourceRef::Docker { container_id: "0".repeat(64), container_name: "bench".into() };
    let jails: Arc<[Arc<str>]> = Arc::from([Arc::from(JAIL)]);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let mut decoder = LogDecoder::new(false, 64 * 1024);
        let mut replay = Replay::from_time(base);
        let mut position: Option<Position> = None;
        let mut out: Vec<LogLine> = Vec::with_capacity(4096);
        let mut count = 0usize;
        // The 64 KiB the source reads at a time.
        for chunk in stream.chunks(64 * 1024) {
            decoder.feed(chunk, &mut |d| {
                if let Decoded::Line { time, text, .. } = d
                    && replay.admit(time)
                {
                    match &mut position {
                        Some(p) => p.advance(time),
                        None => position = Some(Position::first(time)),
                    }
                    out.push(LogLine {
                        source: source.clone(),
                        jails: jails.clone(),
                        time: Some(Timestamp(time.div_euclid(1_000_000))),
                        text: String::from_utf8_lossy(text).into_owned(),
                    });
                }
            });
            count += out.len();
            out.clear();
        }
        assert_eq!(count, lines);
        best = best.min(started.elapsed());
    }
    println!(
        "decode: {lines} lines in {:.3} s (best of 5) = {:.0} lines/s",
        best.as_secs_f64(),
        lines as f64 / best.as_secs_f64()
    );
}

/// The whole source against a stand-in dockerd that is never the
/// bottleneck.
async fn fake_dockerd_bench(lines: usize) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let fake = fake_dockerd::serve(&socket, frames(lines, true), None);
    let mut cfg = DockerSourceConfig::new(Timestamp(BASE / 1_000_000));
    cfg.host = Some(format!("unix://{}", socket.display()));
    cfg.read_files = ReadFiles::Never;
    let cpu = CpuTimes::now();
    let (received, wall, _) = consume(cfg, lines, || fake_dockerd::ID.to_string()).await;
    let cpu = cpu.elapsed();
    fake.abort();
    println!(
        "source, fake dockerd: {received} lines in {:.2} s = {:.0} lines/s; CPU (warden and the stand-in): {:.2} s",
        wall.as_secs_f64(),
        received as f64 / wall.as_secs_f64(),
        cpu.warden,
    );
}

/// The whole source reading a json-file log from disk, with a stand-in
/// dockerd for discovery.
async fn json_file_bench(lines: usize) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let container_dir = dir.path().join(fake_dockerd::ID);
    std::fs::create_dir(&container_dir).unwrap();
    let log_path = container_dir.join(format!("{}-json.log", fake_dockerd::ID));
    std::fs::write(&log_path, json_lines(lines, true)).unwrap();
    let fake = fake_dockerd::serve(&socket, Vec::new(), Some(&log_path));
    let mut cfg = DockerSourceConfig::new(Timestamp(BASE / 1_000_000));
    cfg.host = Some(format!("unix://{}", socket.display()));
    let cpu = CpuTimes::now();
    let (received, wall, _) = consume(cfg, lines, || fake_dockerd::ID.to_string()).await;
    let cpu = cpu.elapsed();
    fake.abort();
    println!(
        "source, json-file on disk: {received} lines in {:.2} s = {:.0} lines/s; CPU: {:.2} s",
        wall.as_secs_f64(),
        received as f64 / wall.as_secs_f64(),
        cpu.warden,
    );
}

/// A stand-in for dockerd serving one labelled container whose log is
/// `frames`, each sent as its own HTTP chunk as dockerd does; its inspect
/// names `log_path` as the container's `LogPath` when given.
mod fake_dockerd {
    use std::path::Path;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};

    pub const ID: &str = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface";

    pub fn serve(
        socket: &Path,
        frames: Vec<Vec<u8>>,
        log_path: Option<&Path>,
    ) -> tokio::task::JoinHandle<()> {
        let mut body = Vec::new();
        for frame in frames {
            body.extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
            body.extend_from_slice(&frame);
            body.extend_from_slice(b"\r\n");
        }
        let body = Arc::new(body);
        let log_path: Arc<str> = log_path.map_or("", |p| p.to_str().unwrap()).into();
        let listener = UnixListener::bind(socket).unwrap();
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                connections.spawn(answer(conn, body.clone(), log_path.clone()));
            }
        })
    }

    async fn answer(mut conn: UnixStream, logs: Arc<Vec<u8>>, log_path: Arc<str>) {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // One request at a time on this connection.
            let end = loop {
                if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            };
            let request = String::from_utf8_lossy(&head[..end]).into_owned();
            head.drain(..end);
            let path = request.split_whitespace().nth(1).unwrap_or_default().to_string();
            let labels = r#"{"warden.jails":"bench-sshd"}"#;
            let json = if path.ends_with("/version") {
                r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.24"}"#.to_string()
            } else if path.contains("/containers/json") {
                format!(r#"[{{"Id":"{ID}","Names":["/bench"],"Labels":{labels},"State":"running"}}]"#)
            } else if path.contains(&format!("/containers/{ID}/json")) {
                format!(
                    r#"{{"Id":"{ID}","Name":"/bench","LogPath":"{log_path}","Config":{{"Image":"bench","Tty":false,"Labels":{labels}}},"HostConfig":{{"LogConfig":{{"Type":"json-file","Config":{{}}}}}},"State":{{"Running":true}},"NetworkSettings":{{"Ports":{{}}}}}}"#
                )
            } else if path.contains("/events") || path.contains("/logs") {
                let head =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if path.contains("/logs") {
                    let _ = conn.write_all(&logs).await;
                }
                // Streams stay open, as followed ones do.
                std::future::pending::<()>().await;
                return;
            } else {
                r#"{"message":"not in this stand-in"}"#.to_string()
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            );
            if conn.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// The script that logs `lines` sshd-style lines, then `done`.
fn writer_script(lines: usize) -> String {
    format!("seq 1 {lines} | sed 's/^/{LINE} /'; echo done; exec sleep 600")
}

fn log_driver() -> String {
    std::env::var("WARDEN_BENCH_LOG_DRIVER").unwrap_or_else(|_| "json-file".into())
}

async fn backlog_bench(lines: usize, read_files: ReadFiles) {
    let container = TestContainer::run(
        "dsrc-bench",
        "backlog",
        &["--label", &format!("warden.jails={JAIL}"), "--log-driver", &log_driver()],
        &writer_script(lines),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while docker(&["logs", "--tail", "1", &container.name]) != "done" {
        assert!(Instant::now() < deadline, "the container did not finish logging");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut cfg = DockerSourceConfig::new(SystemClock.now());
    cfg.read_from_start.insert(JAIL.into());
    cfg.read_files = read_files;
    let cpu = CpuTimes::now();
    let id = container.id.clone();
    let (received, wall, _) = consume(cfg, lines, move || id).await;
    let cpu = cpu.elapsed();
    println!(
        "backlog ({}, {}): {received} lines in {:.2} s = {:.0} lines/s; CPU: warden {:.2} s ({:.0} lines per CPU-second), dockerd {:.2} s",
        log_driver(),
        way(read_files),
        wall.as_secs_f64(),
        received as f64 / wall.as_secs_f64(),
        cpu.warden,
        received as f64 / cpu.warden,
        cpu.dockerd,
    );
}

async fn live_bench(lines: usize, read_files: ReadFiles) {
    let label = format!("warden.jails={JAIL}");
    let name = docker_support::unique_name("dsrc-bench", "live");
    let cfg = DockerSourceConfig { read_files, ..DockerSourceConfig::new(SystemClock.now()) };
    // The container starts once the source runs; consume() starts it.
    let container = TestContainer { name: name.clone(), id: String::new() };
    let cpu = CpuTimes::now();
    let script = writer_script(lines);
    let driver = log_driver();
    let (received, _, wall) = consume(cfg, lines, move || {
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--log-driver",
            &driver,
            docker_support::TEST_IMAGE,
            "sh",
            "-c",
            &script,
        ])
    })
    .await;
    let cpu = cpu.elapsed();
    drop(container);
    println!(
        "live ({}, {}): {received} lines in {:.2} s from the first line = {:.0} lines/s; CPU: warden {:.2} s, dockerd {:.2} s",
        log_driver(),
        way(read_files),
        wall.as_secs_f64(),
        received as f64 / wall.as_secs_f64(),
        cpu.warden,
        cpu.dockerd,
    );
}

/// Runs a source until the container's `lines` lines and `done` arrived;
/// `start` returns the container id (starting it if need be) once the
/// source runs. Returns the lines received, the time from the source's
/// start to the last line, and from the first line to the last.
async fn consume(
    cfg: DockerSourceConfig,
    lines: usize,
    start: impl FnOnce() -> String + Send + 'static,
) -> (usize, Duration, Duration) {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_in(dir.path()).unwrap());
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(cfg, store.clone(), tx, shutdown.clone()));
    let id = tokio::task::spawn_blocking(start).await.unwrap();
    let mut received = 0usize;
    let mut first = None;
    let mut last = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    'receive: while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let SourceEvent::Lines(batch) = event else { continue };
        let mine = batch
            .lines
            .iter()
            .filter(|l| matches!(&l.source, SourceRef::Docker { container_id, .. } if *container_id == id));
        for line in mine {
            first.get_or_insert_with(Instant::now);
            if line.text == "done" {
                last = Some(Instant::now());
                if let Some(cursor) = &batch.cursor {
                    store.put_cursors(&[(&*cursor.key, &cursor.value)]).unwrap();
                }
                break 'receive;
            }
            received += 1;
        }
        if let Some(cursor) = batch.cursor {
            store.put_cursors(&[(&*cursor.key, &cursor.value)]).unwrap();
        }
    }
    assert_eq!(received, lines, "lines received");
    shutdown.cancel();
    drop(rx);
    task.await.unwrap().unwrap();
    let last = last.expect("the done line");
    (received, last - began, last - first.unwrap_or(last))
}

/// CPU seconds used so far by this process and by dockerd.
struct CpuTimes {
    warden: f64,
    dockerd: f64,
}

impl CpuTimes {
    fn now() -> CpuTimes {
        CpuTimes { warden: own_cpu(), dockerd: dockerd_cpu() }
    }

    fn elapsed(&self) -> CpuTimes {
        CpuTimes { warden: own_cpu() - self.warden, dockerd: dockerd_cpu() - self.dockerd }
    }
}

fn own_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// dockerd's user and system time from /proc (0 when not found).
fn dockerd_cpu() -> f64 {
    let Ok(out) = std::process::Command::new("pidof").arg("dockerd").output() else { return 0.0 };
    let pid = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string();
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = if ticks > 0.0 { ticks } else { 100.0 };
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / ticks
}
