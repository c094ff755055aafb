//! The connection to dockerd: where it listens, the API version both sides
//! speak, and the one request bollard cannot serve as warden needs it.
//!
//! bollard handles everything but the log stream: its log decoder keeps a
//! TTY container's output in memory until a newline comes, which a
//! container can put off forever, and it hands over one message at a time.
//! So [`Client::open_logs`] sends that request itself ([`super::http`], on a
//! connection of its own) and hands back the raw body for
//! [`super::decode`] to read in large pieces with bounded memory.

use std::path::PathBuf;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

use super::http::{Connection, HttpError, Response};
use super::timestamp::{Nanos, format_since};

/// dockerd's default socket.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long a plain request (not a stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error response is read for its message.
const ERROR_BODY_MAX: usize = 4096;

/// Where dockerd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP (TLS is not supported).
    Tcp(String),
}

impl Endpoint {
    /// `configured`, else `$DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub fn resolve(configured: Option<&str>) -> Result<Endpoint, ClientError> {
        let from_env = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        Endpoint::parse(configured.or(from_env.as_deref()).unwrap_or(DEFAULT_HOST))
    }

    /// Reads `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`.
    pub fn parse(host: &str) -> Result<Endpoint, ClientError> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            let addr = addr.trim_end_matches('/');
            if addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                return Ok(Endpoint::Tcp(addr.to_string()));
            }
        }
        Err(ClientError::BadHost { host: host.to_string() })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// Why talking to dockerd failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "invalid Docker host {host:?}: use unix:///path/to/docker.sock or tcp://host:port (TLS is not supported)"
    )]
    BadHost { host: String },
    #[error("cannot reach dockerd at {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("dockerd has no container {id}")]
    NotFound { id: String },
    /// `501 Not Implemented`: the log driver cannot be read back.
    #[error("dockerd cannot read the logs of container {id}: {message}")]
    NotReadable { id: String, message: String },
    #[error("dockerd answered {status} for {what}: {message}")]
    Status { what: String, status: u16, message: String },
    #[error("the log stream broke: {message}")]
    Stream { message: String },
    #[error("{what} took longer than {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { what: String },
}

impl ClientError {
    fn unreachable(endpoint: &Endpoint, err: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable { endpoint: endpoint.to_string(), message: err.to_string() }
    }
}

/// A connection to dockerd with a negotiated API version.
#[derive(Debug, Clone)]
pub struct Client {
    pub docker: Docker,
    endpoint: Endpoint,
    /// `1.41` and so on: the lower of dockerd's and bollard's.
    api_version: String,
}

impl Client {
    /// Connects and negotiates the API version (one `GET /version`).
    pub async fn connect(endpoint: &Endpoint) -> Result<Client, ClientError> {
        let timeout = REQUEST_TIMEOUT.as_secs();
        let docker = match endpoint {
            Endpoint::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), timeout, API_DEFAULT_VERSION)
            }
            Endpoint::Tcp(addr) => Docker::connect_with_http(addr, timeout, API_DEFAULT_VERSION),
        }
        .map_err(|e| ClientError::unreachable(endpoint, e))?;
        let docker = tokio::time::timeout(REQUEST_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("negotiating the API version with {endpoint}"),
            })?
            .map_err(|e| ClientError::unreachable(endpoint, e))?;
        let api_version = docker.client_version().to_string();
        Ok(Client { docker, endpoint: endpoint.clone(), api_version })
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Follows a container's stdout and stderr with timestamps, from
    /// `since` (inclusive) or from the beginning.
    pub async fn open_logs(&self, id: &str, since: Option<Nanos>) -> Result<LogStream, ClientError> {
        // The id comes from dockerd, but it goes into a request line.
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
            return Err(ClientError::NotFound { id: id.to_string() });
        }
        let mut path =
            format!("/v{}/containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1", self.api_version);
        if let Some(since) = since {
            path.push_str("&since=");
            path.push_str(&format_since(since));
        }
        let what = format!("the logs of container {id}");
        let request = async {
            let conn = match &self.endpoint {
                Endpoint::Unix(socket) => Connection::Unix(tokio::net::UnixStream::connect(socket).await?),
                Endpoint::Tcp(addr) => Connection::Tcp(tokio::net::TcpStream::connect(addr).await?),
            };
            Response::get(conn, &path).await
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| ClientError::Timeout { what: what.clone() })?
            .map_err(|e: HttpError| self.unreachable(e))?;
        let status = response.status;
        if status == 200 {
            return Ok(response);
        }
        let body = tokio::time::timeout(REQUEST_TIMEOUT, response.read_to_string(ERROR_BODY_MAX))
            .await
            .unwrap_or_default();
        let message = error_message(&body);
        Err(match status {
            404 => ClientError::NotFound { id: id.to_string() },
            501 => ClientError::NotReadable { id: id.to_string(), message },
            status => ClientError::Status { what, status, message },
        })
    }

    fn unreachable(&self, err: impl std::fmt::Display) -> ClientError {
        ClientError::unreachable(&self.endpoint, err)
    }
}

/// dockerd's `{"message": "..."}`, or whatever it sent.
fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_str::<Message>(body) {
        Ok(m) => m.message,
        Err(_) if body.trim().is_empty() => "(no message)".into(),
        Err(_) => body.trim().to_string(),
    }
}

/// A followed log stream: the response, body still to read.
pub type LogStream = Response;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hosts() {
        assert_eq!(
            Endpoint::parse("unix:///run/docker.sock").unwrap(),
            Endpoint::Unix("/run/docker.sock".into())
        );
        assert_eq!(Endpoint::parse("/x.sock").unwrap(), Endpoint::Unix("/x.sock".into()));
        assert_eq!(Endpoint::parse("tcp://127.0.0.1:2375").unwrap(), Endpoint::Tcp("127.0.0.1:2375".into()));
        assert_eq!(Endpoint::parse("http://docker:2375/").unwrap(), Endpoint::Tcp("docker:2375".into()));
        for bad in ["ssh://me@host", "tcp://nohost", "npipe:////./pipe/docker_engine", ""] {
            let err = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(err.contains("use unix:///path/to/docker.sock or tcp://host:port"), "{err}");
        }
        assert_eq!(Endpoint::parse("tcp://[::1]:2375").unwrap().to_string(), "tcp://[::1]:2375");
    }
}
