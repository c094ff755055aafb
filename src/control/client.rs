//! The CLI side of the control socket: connect, send one request, read one
//! answer. Blocking, with timeouts, so a wedged daemon cannot hang
//! `docker exec warden warden status` (the health check) forever.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{PROTOCOL_VERSION, Request, RequestEnvelope, Response, decode_response};

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the warden daemon at {path}: {source} (is `warden run` running, and is this the socket \
         it listens on? --socket or the config's `socket` set it)"
    )]
    Unreachable { path: PathBuf, source: std::io::Error },
    #[error(
        "permission denied on the warden control socket {path}: only root may control warden (run it with \
         sudo, or as `docker exec warden warden …`)"
    )]
    Denied { path: PathBuf },
    #[error("the warden daemon at {path} did not answer: {source}")]
    NoAnswer { path: PathBuf, source: std::io::Error },
    #[error("the warden daemon at {path} sent something this CLI does not understand: {line:?}")]
    Garbled { path: PathBuf, line: String },
    #[error(
        "the warden daemon at {path} speaks control protocol v{daemon}, this CLI v{ours}: run the CLI of the \
         same version (`docker exec warden warden …` does)"
    )]
    Version { path: PathBuf, daemon: u32, ours: u32 },
}

/// A connection target.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client of the socket at `path`; answers are awaited for `timeout`.
    pub fn new(path: impl AsRef<Path>, timeout: Duration) -> Client {
        Client { path: path.as_ref().to_path_buf(), timeout }
    }

    /// Sends `request` and returns the daemon's answer.
    pub fn call(&self, request: Request) -> Result<Response, ClientError> {
        let path = self.path.clone();
        let mut stream = UnixStream::connect(&self.path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::Denied { path: path.clone() }
            } else {
                ClientError::Unreachable { path: path.clone(), source }
            }
        })?;
        let io = |source| ClientError::NoAnswer { path: path.clone(), source };
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let envelope = RequestEnvelope { v: PROTOCOL_VERSION, request };
        // Serialising plain strings and options cannot fail.
        let mut line = serde_json::to_string(&envelope).unwrap_or_default();
        line.push('\n');
        // The daemon may answer before reading the request (it refuses a
        // peer it does not trust at once) and close: the write then fails,
        // but its answer is waiting to be read, and says more.
        let written = stream.write_all(line.as_bytes());
        let mut answer = String::new();
        let read = BufReader::new(&stream).read_line(&mut answer);
        match (decode_response(answer.trim_end()), written, read) {
            (Some((v, response)), _, _) if v == PROTOCOL_VERSION => Ok(response),
            (Some((v, _)), _, _) => Err(ClientError::Version { path, daemon: v, ours: PROTOCOL_VERSION }),
            (None, Err(e), _) | (None, Ok(()), Err(e)) => Err(io(e)),
            (None, Ok(()), Ok(_)) => Err(ClientError::Garbled { path, line: answer }),
        }
    }
}
