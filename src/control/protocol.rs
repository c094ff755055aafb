//! The wire format of the control socket, shared by daemon and CLI.
//!
//! A request is one line: `{"v":1,"cmd":"ban","jail":"sshd","target":"203.0.113.7","for":"1h"}`.
//! The answer is one line: `{"v":1,"ok":true,"data":…}` or
//! `{"v":1,"ok":false,"error":{"kind":"bad_input","message":"…"}}`.
//! `v` lets a newer CLI notice an older daemon (and the reverse) instead of
//! misreading it. Addresses and durations travel as text and are checked by
//! the daemon, so every client gets the same errors.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::core::{Ban, Timestamp};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon reads; anything longer is refused.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Most addresses one [`Request::BanMany`] may carry: 1,000 of the longest
/// (an IPv6 network, 43 characters) stay well under [`MAX_REQUEST_BYTES`].
pub const MAX_BAN_TARGETS: usize = 1000;

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Ban `target` (an address or CIDR) in `jail`, for `for` (a duration
    /// like `1h`, or `permanent`) or the jail's bantime.
    Ban {
        jail: String,
        target: String,
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
    },
    /// Ban several addresses or networks in `jail` at once (`warden ban
    /// JAIL A B C…`), all or none: one bad target refuses the request. One
    /// durable commit and one batch of kernel updates for all of them. At
    /// most [`MAX_BAN_TARGETS`].
    BanMany {
        jail: String,
        targets: Vec<String>,
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
    },
    /// Lift bans overlapping `target`: in `jail` only, or in every jail.
    /// With `cluster`, also publish a tombstone: every host in the cluster
    /// lifts the replicated bans of `target` decided until now.
    Unban {
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cluster: bool,
    },
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    Bans {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    Reload,
    Version,
}

/// A request with its protocol version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// Why a request failed; the CLI turns it into its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong: unknown jail, malformed address,
    /// refused target. Fix the command.
    BadInput,
    /// The daemon could not do it (store or firewall failure).
    Failed,
}

/// The daemon's answer.
#[derive(Debug, Clone)]
pub enum Response {
    /// `data` is the answer's JSON text, encoded once where it is made: a
    /// list of 100,000 bans is about 16 MB of text, and ten times that as a
    /// `serde_json::Value` tree.
    Ok {
        data: Box<RawValue>,
    },
    Err {
        error: ResponseError,
    },
}

impl PartialEq for Response {
    fn eq(&self, other: &Response) -> bool {
        match (self, other) {
            (Response::Ok { data: a }, Response::Ok { data: b }) => a.get() == b.get(),
            (Response::Err { error: a }, Response::Err { error: b }) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseError {
    pub kind: ErrorKind,
    pub message: String,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        match serde_json::value::to_raw_value(&data) {
            Ok(data) => Response::Ok { data },
            Err(e) => Response::failed(format!("cannot encode the answer: {e}")),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Response {
        Response::Err { error: ResponseError { kind: ErrorKind::BadInput, message: message.into() } }
    }

    pub fn failed(message: impl Into<String>) -> Response {
        Response::Err { error: ResponseError { kind: ErrorKind::Failed, message: message.into() } }
    }
}

/// A response line with its protocol version (keys in sorted order:
/// `{"data":…,"ok":true,"v":1}`). Written by hand so the data's text is
/// copied as it is, never parsed again.
pub fn encode_response(response: &Response) -> String {
    match response {
        Response::Ok { data } => {
            // Sized once: the data can be megabytes.
            let mut line = String::with_capacity(data.get().len() + 32);
            line.push_str(r#"{"data":"#);
            line.push_str(data.get());
            line.push_str(&format!(r#","ok":true,"v":{PROTOCOL_VERSION}}}"#));
            line
        }
        Response::Err { error } => {
            // A struct of two strings always serialises.
            let error = serde_json::to_string(error).unwrap_or_else(|_| "null".into());
            format!(r#"{{"error":{error},"ok":false,"v":{PROTOCOL_VERSION}}}"#)
        }
    }
}

/// Parses a response line; `None` when it is not one.
pub fn decode_response(line: &str) -> Option<(u32, Response)> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        v: u32,
        ok: bool,
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<ResponseError>,
    }
    let wire: Wire = serde_json::from_str(line).ok()?;
    let response = match wire.ok {
        true => Response::Ok { data: wire.data.unwrap_or(RawValue::NULL).to_owned() },
        false => Response::Err { error: wire.error? },
    };
    Some((wire.v, response))
}

/// One ban, as `warden bans` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub net: String,
    pub jail: String,
    /// `jail`, `manual` or `remote:<host>`.
    pub origin: String,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339, or `None` for a permanent ban.
    pub until: Option<String>,
    /// How many times the network has been banned, this ban included.
    pub count: u32,
    pub failures: u32,
    /// In a cluster: the host that decided the ban (this one for local bans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl BanInfo {
    pub fn from_ban(ban: &Ban) -> BanInfo {
        let origin = match &ban.origin {
            crate::core::BanOrigin::Jail => "jail".to_string(),
            crate::core::BanOrigin::Manual => "manual".to_string(),
            crate::core::BanOrigin::Remote { host } => format!("remote:{host}"),
        };
        BanInfo {
            net: host_form(ban.net),
            jail: ban.jail.clone(),
            origin,
            since: ban.at.to_rfc3339(),
            until: ban.until.map(Timestamp::to_rfc3339),
            count: ban.count,
            failures: ban.failures,
            host: match &ban.origin {
                crate::core::BanOrigin::Remote { host } => Some(host.clone()),
                _ => None,
            },
        }
    }
}

/// `203.0.113.7` for a single address, `198.51.100.0/24` for a network.
pub fn host_form(net: ipnet::IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

/// `warden status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub uptime_secs: u64,
    pub dry_run: bool,
    /// `nft` or `legacy`, once the firewall has started.
    pub backend: Option<String>,
    /// The firewall's last error, while it is retrying.
    pub firewall_error: Option<String>,
    pub jails: Vec<JailStatus>,
    pub containers: Vec<ContainerStatus>,
    /// Present when the daemon is in a cluster (`cluster:` in its config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
}

/// `warden status`: the cluster as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub host_id: String,
    /// The Redis URL, password hidden.
    pub redis: String,
    /// Following the other hosts' streams now.
    pub connected: bool,
    /// The last publish to Redis succeeded.
    pub publishing: bool,
    /// The last error, while reconnecting.
    pub error: Option<String>,
    pub epoch: Option<String>,
    /// This host's entries waiting to be published.
    pub outbox: u64,
    /// Active bans decided here (by jails and operators).
    pub local_bans: u64,
    /// Networks banned by other hosts, enforced here.
    pub remote_bans: u64,
    /// Remote entries refused by remote_limits since the daemon started.
    pub refused: u64,
    pub origins: Vec<OriginReport>,
}

/// One other host of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginReport {
    pub host: String,
    /// Its live bans, as held here.
    pub bans: u64,
    /// How long after Redis took its last entry this host applied it.
    pub lag_ms: Option<u64>,
    /// Entries applied from it since the daemon started.
    pub applied: u64,
    /// Why it is quarantined, while it is.
    pub quarantined: Option<String>,
    /// RFC 3339: when the quarantine ends.
    pub quarantined_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailStatus {
    pub name: String,
    pub filter: String,
    pub sources: Vec<String>,
    /// Addresses with failures in the window now.
    pub currently_failed: u64,
    /// Failures counted since the daemon started.
    pub total_failed: u64,
    pub currently_banned: u64,
    /// Bans made since the daemon started.
    pub total_banned: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub jails: Vec<String>,
    pub attached: bool,
    /// How its logs are read: `file` (its json-file log on disk) or `api`
    /// (the Docker API's log stream). Absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_the_documented_field_names() {
        let ban =
            Request::Ban { jail: "sshd".into(), target: "203.0.113.7".into(), duration: Some("1h".into()) };
        let line = serde_json::to_string(&RequestEnvelope { v: 1, request: ban.clone() }).unwrap();
        assert_eq!(line, r#"{"v":1,"cmd":"ban","jail":"sshd","target":"203.0.113.7","for":"1h"}"#);
        let back: RequestEnvelope = serde_json::from_str(&line).unwrap();
        assert_eq!(back.request, ban);
        let many = Request::BanMany {
            jail: "sshd".into(),
            targets: vec!["203.0.113.7".into(), "198.51.100.0/24".into()],
            duration: None,
        };
        let line = serde_json::to_string(&RequestEnvelope { v: 1, request: many.clone() }).unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"cmd":"ban_many","jail":"sshd","targets":["203.0.113.7","198.51.100.0/24"]}"#
        );
        assert_eq!(serde_json::from_str::<RequestEnvelope>(&line).unwrap().request, many);
        // `cluster` is optional both ways: older clients never send it.
        let unban: RequestEnvelope =
            serde_json::from_str(r#"{"v":1,"cmd":"unban","target":"192.0.2.1"}"#).unwrap();
        assert_eq!(unban.request, Request::Unban { target: "192.0.2.1".into(), jail: None, cluster: false });
        let line = serde_json::to_string(&unban).unwrap();
        assert_eq!(line, r#"{"v":1,"cmd":"unban","target":"192.0.2.1"}"#);
        let cluster = Request::Unban { target: "192.0.2.1".into(), jail: None, cluster: true };
        let line = serde_json::to_string(&RequestEnvelope { v: 1, request: cluster }).unwrap();
        assert_eq!(line, r#"{"v":1,"cmd":"unban","target":"192.0.2.1","cluster":true}"#);
        let reload: RequestEnvelope = serde_json::from_str(r#"{"v":1,"cmd":"reload"}"#).unwrap();
        assert_eq!(reload.request, Request::Reload);
        assert!(serde_json::from_str::<RequestEnvelope>(r#"{"v":1,"cmd":"explode"}"#).is_err());
    }

    #[test]
    fn the_most_targets_of_the_longest_form_fit_in_one_request() {
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120".to_string();
        let request =
            Request::BanMany { jail: "sshd".into(), targets: vec![longest; MAX_BAN_TARGETS], duration: None };
        let line = serde_json::to_string(&RequestEnvelope { v: 1, request }).unwrap();
        assert!(line.len() < MAX_REQUEST_BYTES, "{} bytes", line.len());
    }

    #[test]
    fn container_status_reads_old_daemons_and_writes_how_logs_are_read() {
        let old: ContainerStatus =
            serde_json::from_str(r#"{"id":"abc","name":"web","jails":["sshd"],"attached":true}"#).unwrap();
        assert_eq!(old.logs, None);
        let new = ContainerStatus { logs: Some("file".into()), ..old };
        let line = serde_json::to_string(&new).unwrap();
        assert_eq!(line, r#"{"id":"abc","name":"web","jails":["sshd"],"attached":true,"logs":"file"}"#);
        assert_eq!(serde_json::from_str::<ContainerStatus>(&line).unwrap(), new);
    }

    #[test]
    fn responses_round_trip_both_ways() {
        let ok = Response::ok(serde_json::json!({"banned": 1}));
        let line = encode_response(&ok);
        assert_eq!(line, r#"{"data":{"banned":1},"ok":true,"v":1}"#);
        assert_eq!(decode_response(&line), Some((1, ok)));
        let err = Response::bad_input("unknown jail \"x\"");
        let (v, back) = decode_response(&encode_response(&err)).unwrap();
        assert_eq!((v, back), (1, err));
        assert_eq!(decode_response("not json"), None);
    }
}
