//! The daemon side of the control socket.
//!
//! [`Server::serve`] accepts connections until shutdown. Each connection is
//! a small task: check the peer's credentials, read one bounded request
//! line, hand it to the daemon as a [`Call`] and write the answer back. The
//! daemon's engine owns all state; this module owns none.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, RequestEnvelope, Response, encode_response,
};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// A client gets this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request for the daemon, with where to send the answer.
#[derive(Debug)]
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// A bound control socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Binds the socket at `path`, mode 0600, creating its directory (mode
    /// 0700) when missing. A stale socket file left by a crash is replaced;
    /// a live one (another daemon answers) is an error.
    pub fn bind(path: &Path) -> io::Result<Server> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; remove it or choose another `socket`",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another warden daemon already listens on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Server { listener, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until `shutdown`, then removes the socket file.
    pub async fn serve(self, calls: mpsc::Sender<Call>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    continue;
                }
            };
            let Ok(permit) = slots.clone().acquire_owned().await else { break };
            let calls = calls.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_one(stream, &calls).await {
                    tracing::debug!(error = %e, "control connection ended early");
                }
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_one(mut stream: UnixStream, calls: &mpsc::Sender<Call>) -> io::Result<()> {
    let response = match authorised(&stream) {
        Err(why) => Response::bad_input(why),
        Ok(()) => match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
            Err(_) => Response::bad_input("no request within 10s"),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Err(why))) => Response::bad_input(why),
            Ok(Ok(Ok(request))) => dispatch(request, calls).await,
        },
    };
    let mut line = encode_response(&response);
    drop(response);
    line.push('\n');
    let large = line.len() > LARGE_ANSWER;
    stream.write_all(line.as_bytes()).await?;
    drop(line);
    if large {
        give_back_memory();
    }
    stream.shutdown().await
}

/// An answer this long (a ban list of thousands) leaves freed memory behind.
const LARGE_ANSWER: usize = 1 << 20;

/// Returns freed heap memory to the kernel. glibc keeps what a large answer
/// freed (on the engine's and this worker's malloc arenas) as the
/// process's RSS for good otherwise: `warden bans` with 100,000 bans left
/// some 50 MB behind per arena it ran on.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Root may use the socket, and so may the daemon's own user (for running
/// it unprivileged in tests). The 0600 mode already keeps others out; this
/// also holds when the socket's mode was loosened by hand.
fn authorised(stream: &UnixStream) -> Result<(), String> {
    let cred = stream.peer_cred().map_err(|e| format!("cannot read peer credentials: {e}"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    if cred.uid() == 0 || cred.uid() == own {
        Ok(())
    } else {
        Err(format!("permission denied: uid {} may not control warden; run as root", cred.uid()))
    }
}

async fn read_request(stream: &mut UnixStream) -> io::Result<Result<Request, String>> {
    let mut reader = BufReader::new(stream).take(MAX_REQUEST_BYTES as u64 + 1);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    if line.len() > MAX_REQUEST_BYTES {
        return Ok(Err(format!("request longer than {MAX_REQUEST_BYTES} bytes")));
    }
    let Ok(text) = std::str::from_utf8(&line) else {
        return Ok(Err("request is not UTF-8".into()));
    };
    let value: serde_json::Value = match serde_json::from_str(text.trim_end()) {
        Ok(value) => value,
        Err(e) => return Ok(Err(format!("request is not JSON: {e}"))),
    };
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Ok(Err(format!(
                "this daemon speaks control protocol v{PROTOCOL_VERSION}, the request v{v}: use the CLI of the same version"
            )));
        }
        None => return Ok(Err("request has no protocol version `v`".into())),
    }
    Ok(serde_json::from_value::<RequestEnvelope>(value)
        .map(|e| e.request)
        .map_err(|e| format!("malformed request: {e}")))
}

async fn dispatch(request: Request, calls: &mpsc::Sender<Call>) -> Response {
    let (reply, answer) = oneshot::channel();
    if calls.send(Call { request, reply }).await.is_err() {
        return Response::failed("the daemon is shutting down");
    }
    answer.await.unwrap_or_else(|_| Response::failed("the daemon dropped the request (shutting down?)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Client;

    /// A daemon stand-in that answers every call with its request echoed.
    async fn echo(mut calls: mpsc::Receiver<Call>) {
        while let Some(call) = calls.recv().await {
            let _ = call.reply.send(Response::ok(&call.request));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_requests_refuses_garbage_and_survives_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/warden.sock");
        let server = Server::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        tokio::spawn(echo(rx));
        let serving = tokio::spawn(server.serve(tx, stop.clone()));

        // A second daemon cannot steal a live socket.
        assert_eq!(Server::bind(&path).unwrap_err().kind(), io::ErrorKind::AddrInUse);

        let client = Client::new(&path, Duration::from_secs(5));
        let p = path.clone();
        let answer = tokio::task::spawn_blocking(move || {
            Client::new(&p, Duration::from_secs(5)).call(Request::Version)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(answer, Response::ok(Request::Version));

        for garbage in [&b"{not json\n"[..], b"{\"v\":99,\"cmd\":\"version\"}\n", &vec![b'x'; 70_000][..]] {
            let mut raw = UnixStream::connect(&path).await.unwrap();
            raw.write_all(garbage).await.unwrap();
            let mut reply = String::new();
            BufReader::new(raw).read_line(&mut reply).await.unwrap();
            assert!(reply.contains(r#""kind":"bad_input""#), "{reply}");
        }
        // Still serving after all that.
        let again = tokio::task::spawn_blocking(move || client.call(Request::Reload)).await.unwrap().unwrap();
        assert_eq!(again, Response::ok(Request::Reload));

        stop.cancel();
        serving.await.unwrap();
        assert!(!path.exists(), "the socket file is removed on shutdown");
        // A stale socket file (daemon killed) is replaced on the next bind.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        Server::bind(&path).unwrap();
    }
}
