//! Connecting to Redis: the client built from the `cluster:` settings
//! (password from a file, TLS with rustls and optional client certificates),
//! the two kinds of connection warden uses, and reading replies.
//!
//! - **Writes** go through a [`ConnectionManager`], which reconnects by
//!   itself; each command times out after [`WRITE_TIMEOUT`].
//! - **Blocking reads** (`XREAD BLOCK`) get a connection of their own whose
//!   response timeout is longer than the block ([`BLOCK`] +
//!   [`READ_MARGIN`]): the client's default of 500 ms would kill every
//!   blocking read, and a write queued behind a blocked read would wait.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, Value};

use crate::config::{ClusterSettings, redact_url};

/// How long one `XREAD` blocks waiting for entries.
pub const BLOCK: Duration = Duration::from_secs(2);
/// How much longer than [`BLOCK`] a blocking read may take before the
/// connection counts as dead (a silent partition shows up this way).
pub const READ_MARGIN: Duration = Duration::from_secs(3);
/// Longest a write (or a non-blocking read) may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the cluster cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cluster.password_file: cannot read {}: {source}", path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster.tls.{key}: cannot read {}: {source}", path.display())]
    TlsFile {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster.redis: cannot use {url}: {detail}")]
    Client { url: String, detail: String },
}

/// The Redis client for `settings`. Reads the password and TLS files now,
/// so a missing file is reported at startup.
pub fn client(settings: &ClusterSettings) -> Result<Client, ConnectError> {
    // redis' rustls needs a process-wide crypto provider; installing it a
    // second time fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shown = redact_url(&settings.redis);
    let fail = |detail: String| ConnectError::Client { url: shown.clone(), detail };
    let mut info = settings.redis.as_str().into_connection_info().map_err(|e| fail(e.to_string()))?;
    // No CLIENT SETINFO on connect: the README's ACL need not allow it.
    let mut redis = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(path) = &settings.password_file {
        let password = std::fs::read_to_string(path)
            .map_err(|source| ConnectError::PasswordFile { path: path.clone(), source })?;
        redis = redis.set_password(password.trim());
    }
    info = info.set_redis_settings(redis);
    // Small requests answered at once: with Nagle's algorithm on (the
    // client's default), a command written in several pieces waits for the
    // server's delayed ACK, about 40 ms, before its last piece leaves.
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info = info.set_tcp_settings(tcp);
    let tls = &settings.tls;
    if tls.ca.is_none() && tls.cert.is_none() {
        return Client::open(info).map_err(|e| fail(e.to_string()));
    }
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| ConnectError::TlsFile { key, path: path.to_path_buf(), source })
    };
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            Some(redis::ClientTlsConfig { client_cert: read("cert", cert)?, client_key: read("key", key)? })
        }
        _ => None,
    };
    let root_cert = tls.ca.as_deref().map(|ca| read("ca", ca)).transpose()?;
    Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert })
        .map_err(|e| fail(e.to_string()))
}

/// The connection for writes; it connects on first use and reconnects by
/// itself, so Redis may be down when warden starts.
pub fn writer(client: &Client) -> Result<ConnectionManager, redis::RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(WRITE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// A connection for blocking reads (see the module documentation).
pub async fn reader(client: &Client) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(BLOCK + READ_MARGIN));
    client.get_multiplexed_async_connection_with_config(&config).await
}

/// The Redis server's addresses, so no remote ban covers them: the URL's
/// host if it is an address, else what it resolves to now.
pub async fn endpoint_addresses(client: &Client) -> Vec<IpAddr> {
    let (host, port) = match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
        _ => return Vec::new(),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// Reading replies: Redis answers in nested arrays of bulk strings.
pub mod reply {
    use super::Value;

    /// The items of an array (or of a RESP3 set); empty for nil.
    pub fn items(value: Value) -> Vec<Value> {
        match value {
            Value::Array(items) | Value::Set(items) => items,
            _ => Vec::new(),
        }
    }

    /// A bulk or simple string as text.
    pub fn text(value: &Value) -> Option<String> {
        match value {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            Value::VerbatimString { text, .. } => Some(text.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The bytes of a bulk string.
    pub fn bytes(value: Value) -> Option<Vec<u8>> {
        match value {
            Value::BulkString(bytes) => Some(bytes),
            Value::SimpleString(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    /// Pairs from a flat `[k, v, k, v…]` array or a RESP3 map.
    pub fn pairs(value: Value) -> Vec<(Value, Value)> {
        match value {
            Value::Map(pairs) => pairs,
            Value::Array(items) => {
                let mut items = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RemoteLimits, TlsFiles};

    fn settings(url: &str) -> ClusterSettings {
        ClusterSettings {
            host_id: "a".into(),
            redis: url.into(),
            password_file: None,
            tls: TlsFiles::default(),
            remote_limits: RemoteLimits::default(),
        }
    }

    #[test]
    fn the_password_file_is_read_and_trimmed_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let client =
            client(&ClusterSettings { password_file: Some(pw.clone()), ..settings("redis://h:1/2") })
                .unwrap();
        assert_eq!(client.get_connection_info().redis_settings().password(), Some("s3cret"));
        assert_eq!(client.get_connection_info().redis_settings().db(), 2);

        let missing = dir.path().join("nope");
        let err = client_err(ClusterSettings { password_file: Some(missing), ..settings("redis://h:1/2") });
        assert!(err.starts_with("cluster.password_file: cannot read /"), "{err}");
        let tls = TlsFiles { ca: Some(dir.path().join("ca.pem")), ..TlsFiles::default() };
        let err = client_err(ClusterSettings { tls, ..settings("rediss://h:1/0") });
        assert!(err.starts_with("cluster.tls.ca: cannot read /"), "{err}");
    }

    fn client_err(settings: ClusterSettings) -> String {
        match client(&settings) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn replies_are_read_from_arrays_and_maps() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![bulk("k1"), bulk("v1"), bulk("k2"), bulk("v2")]);
        let pairs = reply::pairs(flat);
        assert_eq!(reply::text(&pairs[1].1).as_deref(), Some("v2"));
        assert_eq!(reply::items(Value::Nil).len(), 0);
        assert_eq!(reply::text(&Value::Int(7)).as_deref(), Some("7"));
        assert_eq!(reply::bytes(bulk("x")), Some(b"x".to_vec()));
    }

    #[tokio::test]
    async fn an_address_endpoint_needs_no_lookup() {
        let client = client(&settings("redis://192.0.2.9:6379/0")).unwrap();
        assert_eq!(endpoint_addresses(&client).await, ["192.0.2.9".parse::<IpAddr>().unwrap()]);
        let unix = client_for("unix:///run/redis.sock");
        assert!(endpoint_addresses(&unix).await.is_empty());
    }

    fn client_for(url: &str) -> Client {
        client(&settings(url)).unwrap()
    }
}
