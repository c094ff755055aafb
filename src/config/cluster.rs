//! The `cluster:` section: how this host joins the others through Redis or
//! Valkey to share bans (see `crate::cluster`), and what it accepts from them.
//!
//! ```yaml
//! cluster:
//!   host_id: mx1                        # this host's name in key names
//!   redis: rediss://mx1@redis.example:6380/0
//!   password_file: /run/secrets/redis   # instead of a password in the URL
//!   tls: {ca: /etc/warden/ca.pem, cert: /etc/warden/mx1.pem, key: /etc/warden/mx1.key}
//!   remote_limits:
//!     max_until: 7d                     # longer remote bans are cut to this
//!     min_prefix: {v4: 24, v6: 48}      # broader remote bans are refused
//!     rate: 60/min                      # more bans from one host quarantine it
//!     max_active: 100000                # so do more active bans from one host
//! ```
//!
//! Errors name the file, line and key like the rest of the config, and never
//! show a password.

use std::path::PathBuf;
use std::time::Duration;

use super::fields::{Checker, Entry, Keys};
use super::yaml::{Node, Value, quote};
use crate::core::{BanPrefix, parse_duration};

const CLUSTER_KEYS: &[&str] = &["host_id", "redis", "password_file", "tls", "remote_limits"];
const TLS_KEYS: &[&str] = &["ca", "cert", "key"];
const LIMIT_KEYS: &[&str] = &["max_until", "min_prefix", "rate", "max_active"];
const PREFIX_KEYS: &[&str] = &["v4", "v6"];
/// Host ids appear in Redis key names (`warden:{w}:ev:<host_id>`) and in ACL
/// patterns, so they keep to characters neither treats specially.
const MAX_HOST_ID: usize = 64;

/// The validated `cluster:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This host's name among the others; its stream and hash carry it.
    pub host_id: String,
    /// `redis://`, `rediss://` (TLS), `valkey://`, `valkeys://` or
    /// `unix://`; may hold a user and password (kept out of logs).
    pub redis: String,
    /// A file whose content (trimmed) is the Redis password.
    pub password_file: Option<PathBuf>,
    /// TLS files for a `rediss://` URL.
    pub tls: TlsFiles,
    pub remote_limits: RemoteLimits,
}

/// PEM files for TLS: the CA to trust (else the system's roots) and a client
/// certificate and key (both or neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What this host accepts from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteLimits {
    /// A remote ban ends at most this long after it was decided.
    pub max_until: Duration,
    /// Remote bans broader than these prefixes are refused.
    pub min_prefix: BanPrefix,
    /// More bans than this from one host quarantines it.
    pub rate: Rate,
    /// More active bans than this from one host quarantines it.
    pub max_active: usize,
}

impl Default for RemoteLimits {
    fn default() -> Self {
        RemoteLimits {
            max_until: Duration::from_secs(7 * 24 * 3600),
            min_prefix: BanPrefix { v4: 24, v6: 48 },
            rate: Rate { count: 60, per: Duration::from_secs(60) },
            max_active: 100_000,
        }
    }
}

/// `count` events per `per` (`60/min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, crate::core::duration::format_duration(self.per))
    }
}

/// Parses `60/min`, `1000/h`, `5/10s`: a count, a slash and a unit or a
/// duration.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let invalid =
        || format!("invalid rate {}; expected a count per period like 60/min, 1000/h or 10/s", quote(text));
    let (count, per) = text.trim().split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => parse_duration(other).map_err(|_| invalid())?,
    };
    if count == 0 || per.is_zero() {
        return Err(format!("{}: a rate must allow at least 1 per period longer than 0s", invalid()));
    }
    Ok(Rate { count, per })
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            let hidden = if user_info.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// The password part of `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let user_info = authority.rsplit_once('@')?.0;
    user_info.split_once(':').map(|(_, password)| password)
}

/// Checks the `cluster:` section; `None` when it has errors (recorded in `cx`).
pub(crate) fn cluster_settings(cx: &mut Checker, entry: &Entry<'_>) -> Option<ClusterSettings> {
    let errors_before = cx.errors.len();
    let mut host_id = None;
    let mut redis = None;
    let mut password_file = None;
    let mut tls = TlsFiles::default();
    let mut tls_pos = None;
    let mut remote_limits = RemoteLimits::default();
    let mut url_has_password = false;
    for e in cx.entries(entry.value, &entry.path, Keys::Known(CLUSTER_KEYS)) {
        match e.key.as_str() {
            "host_id" => host_id = checked_host_id(cx, &e),
            "redis" => {
                if let Some((url, has_password)) = checked_url(cx, &e) {
                    url_has_password = has_password;
                    redis = Some((url, e.value.pos));
                }
            }
            "password_file" => {
                password_file = readable_file(cx, e.value, &e.path, "a file holding the Redis password")
                    .map(|p| (p, e.value.pos))
            }
            "tls" => {
                tls_pos = Some(e.value.pos);
                for f in cx.entries(e.value, &e.path, Keys::Known(TLS_KEYS)) {
                    let what = match f.key.as_str() {
                        "ca" => "the PEM certificate of the CA that signed the Redis server's",
                        "cert" => "this host's PEM client certificate",
                        _ => "this host's PEM client key",
                    };
                    let file = readable_file(cx, f.value, &f.path, what);
                    match f.key.as_str() {
                        "ca" => tls.ca = file,
                        "cert" => tls.cert = file,
                        _ => tls.key = file,
                    }
                }
            }
            _ => remote_limits = limits(cx, &e),
        }
    }
    let Some(host_id) = host_id else {
        if cx.errors.len() == errors_before {
            cx.error(
                entry.key_pos,
                &entry.path,
                "`host_id` is required: this host's name among the others (like mx1)",
            );
        }
        return None;
    };
    let Some((redis, redis_pos)) = redis else {
        if cx.errors.len() == errors_before {
            cx.error(
                entry.key_pos,
                &entry.path,
                "`redis` is required: the Redis or Valkey URL (like redis://redis.example:6379/0)",
            );
        }
        return None;
    };
    if let Some((_, pos)) = &password_file
        && url_has_password
    {
        cx.error(
            *pos,
            &format!("{}.password_file", entry.path),
            "the redis URL already holds a password; give it in one place only",
        );
    }
    if let Some(pos) = tls_pos {
        let path = format!("{}.tls", entry.path);
        if tls.cert.is_some() != tls.key.is_some() {
            cx.error(pos, &path, "a client certificate needs its key: set both `cert` and `key`, or neither");
        }
        if !(redis.starts_with("rediss://") || redis.starts_with("valkeys://")) {
            cx.error(
                redis_pos,
                &format!("{}.redis", entry.path),
                "`tls` is set, but this URL does not use TLS; use rediss:// (or valkeys://)",
            );
        }
    }
    (cx.errors.len() == errors_before).then(|| ClusterSettings {
        host_id,
        redis,
        password_file: password_file.map(|(p, _)| p),
        tls,
        remote_limits,
    })
}

fn checked_host_id(cx: &mut Checker, e: &Entry<'_>) -> Option<String> {
    let id = match &e.value.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => {
            cx.error(
                e.value.pos,
                &e.path,
                format!("expected a host name (like mx1), found {}", e.value.value.describe()),
            );
            return None;
        }
    };
    let chars_ok = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id.is_empty() && id.len() <= MAX_HOST_ID && chars_ok {
        return Some(id);
    }
    cx.error(
        e.value.pos,
        &e.path,
        format!(
            "invalid host_id {}: use 1 to {MAX_HOST_ID} letters, digits, `-`, `_` or `.` (it appears in Redis key names)",
            quote(&id)
        ),
    );
    None
}

/// The URL, checked by the redis client's own parser, and whether it holds a
/// password.
fn checked_url(cx: &mut Checker, e: &Entry<'_>) -> Option<(String, bool)> {
    const VALID: &str =
        "expected a URL like redis://host:6379/0, rediss://user@host:6380/0 (TLS) or unix:///run/redis.sock";
    let url = cx.string(e.value, &e.path, "a Redis URL (like redis://redis.example:6379/0)")?;
    let shown = quote(&redact_url(&url));
    let known_scheme = ["redis://", "rediss://", "valkey://", "valkeys://", "unix://", "redis+unix://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !known_scheme {
        cx.error(e.value.pos, &e.path, format!("invalid Redis URL {shown}: unknown scheme; {VALID}"));
        return None;
    }
    match redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
        Ok(info) => Some((url.clone(), info.redis_settings().password().is_some())),
        Err(err) => {
            // The client's message may quote the URL or its parts.
            let mut reason = err.to_string().replace(&url, &redact_url(&url));
            if let Some(password) = url_password(&url).filter(|p| !p.is_empty()) {
                reason = reason.replace(password, "***");
            }
            cx.error(e.value.pos, &e.path, format!("invalid Redis URL {shown} ({reason}); {VALID}"));
            None
        }
    }
}

fn readable_file(cx: &mut Checker, node: &Node, path: &str, what: &str) -> Option<PathBuf> {
    let file = cx.absolute_path(node, path, what)?;
    match std::fs::File::open(&file) {
        Ok(_) => Some(file),
        Err(err) => {
            cx.error(node.pos, path, format!("cannot read {}: {err}", quote(&file.to_string_lossy())));
            None
        }
    }
}

fn limits(cx: &mut Checker, entry: &Entry<'_>) -> RemoteLimits {
    let mut limits = RemoteLimits::default();
    for e in cx.entries(entry.value, &entry.path, Keys::Known(LIMIT_KEYS)) {
        match e.key.as_str() {
            "max_until" => {
                if let Some(d) = cx.duration(e.value, &e.path, false) {
                    limits.max_until = d;
                }
            }
            "min_prefix" => {
                for f in cx.entries(e.value, &e.path, Keys::Known(PREFIX_KEYS)) {
                    if f.key == "v4" {
                        if let Some(n) = cx.integer(f.value, &f.path, 1, 32) {
                            limits.min_prefix.v4 = n as u8;
                        }
                    } else if let Some(n) = cx.integer(f.value, &f.path, 1, 128) {
                        limits.min_prefix.v6 = n as u8;
                    }
                }
            }
            "rate" => match &e.value.value {
                Value::Str(s) => match parse_rate(s) {
                    Ok(rate) => limits.rate = rate,
                    Err(message) => cx.error(e.value.pos, &e.path, message),
                },
                other => cx.error(
                    e.value.pos,
                    &e.path,
                    format!("expected a rate like 60/min, found {}", other.describe()),
                ),
            },
            _ => {
                if let Some(n) = cx.integer(e.value, &e.path, 1, u64::from(u32::MAX)) {
                    limits.max_active = n as usize;
                }
            }
        }
    }
    limits
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FilterNames, parse};

    const ORIGIN: &str = "/etc/warden/warden.yaml";

    fn parse_text(text: &str) -> Result<crate::config::Config, Vec<String>> {
        parse(text, Path::new(ORIGIN), &FilterNames(&["sshd"]))
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_documented_section_parses_with_defaults_for_what_is_left_out() {
        let config = parse_text(
            "cluster:\n  host_id: mx1\n  redis: redis://10.0.0.5:6379/0\n  remote_limits:\n    max_until: 2d\n    \
             min_prefix: {v4: 28}\n    rate: 100/h\n",
        )
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.host_id, "mx1");
        assert_eq!(cluster.redis, "redis://10.0.0.5:6379/0");
        assert_eq!(cluster.remote_limits.max_until, Duration::from_secs(2 * 86_400));
        assert_eq!(cluster.remote_limits.min_prefix, BanPrefix { v4: 28, v6: 48 });
        assert_eq!(cluster.remote_limits.rate, Rate { count: 100, per: Duration::from_secs(3600) });
        assert_eq!(cluster.remote_limits.max_active, 100_000);
        assert!(parse_text("state_dir: /tmp\n").unwrap().cluster.is_none());
    }

    #[test]
    fn errors_name_line_and_key_and_hide_the_password() {
        let errors = parse_text(
            "cluster:\n  host_id: \"mx 1\"\n  redis: http://u:s3cret@x:1/0\n  remote_limits:\n    rate: often\n    \
             min_prefix: {v4: 40}\n    max_colour: 3\n",
        )
        .unwrap_err();
        let all = errors.join("\n");
        assert!(all.contains("warden.yaml:2:12: cluster.host_id: invalid host_id `mx 1`"), "{all}");
        assert!(
            all.contains(
                "warden.yaml:3:10: cluster.redis: invalid Redis URL `http://u:***@x:1/0`: unknown scheme"
            ),
            "{all}"
        );
        assert!(all.contains("cluster.remote_limits.rate: invalid rate `often`"), "{all}");
        assert!(
            all.contains("cluster.remote_limits.min_prefix.v4: expected a whole number from 1 to 32"),
            "{all}"
        );
        assert!(all.contains("unknown key `max_colour` in cluster.remote_limits"), "{all}");
        assert!(!all.contains("s3cret"), "{all}");
    }

    #[test]
    fn required_keys_and_combinations_are_checked() {
        let all = parse_text("cluster:\n  redis: redis://x/0\n").unwrap_err().join("\n");
        assert!(all.contains("warden.yaml:1:1: cluster: `host_id` is required"), "{all}");
        let all = parse_text("cluster: {host_id: a}\n").unwrap_err().join("\n");
        assert!(all.contains("`redis` is required"), "{all}");

        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let text = format!(
            "cluster:\n  host_id: a\n  redis: redis://:inline@x/0\n  password_file: {}\n  tls: {{cert: {}}}\n",
            pw.display(),
            pw.display()
        );
        let all = parse_text(&text).unwrap_err().join("\n");
        assert!(
            all.contains(":4:18: cluster.password_file: the redis URL already holds a password"),
            "{all}"
        );
        assert!(all.contains("cluster.tls: a client certificate needs its key"), "{all}");
        assert!(all.contains("cluster.redis: `tls` is set, but this URL does not use TLS"), "{all}");
        let all = parse_text("cluster: {host_id: a, redis: 'redis://x/0', password_file: /nonexistent/pw}\n")
            .unwrap_err()
            .join("\n");
        assert!(all.contains("cluster.password_file: cannot read `/nonexistent/pw`"), "{all}");
    }

    #[test]
    fn rates_and_redaction() {
        assert_eq!(parse_rate("60/min").unwrap(), Rate { count: 60, per: Duration::from_secs(60) });
        assert_eq!(parse_rate("5/10s").unwrap(), Rate { count: 5, per: Duration::from_secs(10) });
        assert_eq!(parse_rate(" 2 / h ").unwrap().per, Duration::from_secs(3600));
        for bad in ["", "60", "x/min", "0/min", "60/0s", "60/fortnight", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(Rate { count: 60, per: Duration::from_secs(60) }.to_string(), "60/1m");
        assert_eq!(redact_url("rediss://mx1:pw@h:6380/0"), "rediss://mx1:***@h:6380/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://mx1@h/0"), "redis://mx1@h/0");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
    }
}
