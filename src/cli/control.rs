//! The CLI commands that talk to a running daemon (`ban`, `unban`,
//! `status`, `bans`, `reload`, `version`): send one request over the control
//! socket and print the answer as a table, or as JSON with `--json`.
//!
//! Exit codes: 0 done, 1 the daemon failed to do it, 2 bad input (unknown
//! jail, malformed address or duration, refused target, a user other than
//! root), 3 no daemon.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::control::{BanInfo, Client, ClientError, ClusterReport, Request, Response, StatusReport};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

/// Sends `request` and prints the answer; returns the exit code.
pub fn call(client: &Client, request: Request, json: bool) -> ExitCode {
    let kind = request.clone();
    match client.call(request) {
        Err(e @ ClientError::Unreachable { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(e @ ClientError::Denied { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Ok(Response::Err { error }) => {
            eprintln!("error: {}", error.message);
            let code = match error.kind {
                crate::control::ErrorKind::BadInput => EXIT_BAD_INPUT,
                crate::control::ErrorKind::Failed => EXIT_FAILED,
            };
            ExitCode::from(code)
        }
        Ok(Response::Ok { data }) => {
            // The daemon sent valid JSON (the client parsed the line).
            let data: serde_json::Value = serde_json::from_str(data.get()).unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&data).unwrap_or_default());
            } else {
                print!("{}", render(&kind, data));
            }
            ExitCode::SUCCESS
        }
    }
}

/// The human-readable form of an answer to `request`.
pub fn render(request: &Request, data: serde_json::Value) -> String {
    match request {
        Request::Ban { .. } => match serde_json::from_value::<BanInfo>(data.clone()) {
            Ok(ban) => ban_line(&ban),
            Err(_) => format!("{data}\n"),
        },
        Request::BanMany { .. } => {
            let banned: Vec<BanInfo> =
                serde_json::from_value(data.get("banned").cloned().unwrap_or_default()).unwrap_or_default();
            banned.iter().map(ban_line).collect()
        }
        Request::Unban { target, cluster, .. } => {
            let lifted: Vec<BanInfo> =
                serde_json::from_value(data.get("unbanned").cloned().unwrap_or_default()).unwrap_or_default();
            let mut out = if lifted.is_empty() {
                format!("{target} was not banned here\n")
            } else {
                lifted.iter().map(|b| format!("unbanned {} in {}\n", b.net, b.jail)).collect()
            };
            if *cluster {
                out.push_str(&format!("queued a cluster-wide unban of {target} for every host\n"));
            }
            let remote = list(&data["remote"]);
            if remote != "none" {
                out.push_str(&format!(
                    "still banned here by other hosts ({remote}); `warden unban --cluster {target}` lifts it everywhere\n"
                ));
            }
            out
        }
        Request::Bans { .. } => match serde_json::from_value::<Vec<BanInfo>>(data.clone()) {
            Ok(bans) => bans_table(&bans),
            Err(_) => format!("{data}\n"),
        },
        Request::Status { .. } => match serde_json::from_value::<StatusReport>(data.clone()) {
            Ok(status) => status_text(&status),
            Err(_) => format!("{data}\n"),
        },
        Request::Reload => format!(
            "reloaded: {} jails (added: {}, removed: {})\n",
            data["jails"],
            list(&data["added"]),
            list(&data["removed"])
        ),
        Request::Version => format!(
            "warden {} (daemon), control protocol v{}\n",
            data["version"].as_str().unwrap_or("?"),
            data["protocol"]
        ),
    }
}

fn ban_line(ban: &BanInfo) -> String {
    format!("banned {} in {} until {}\n", ban.net, ban.jail, ban.until.as_deref().unwrap_or("forever"))
}

fn list(value: &serde_json::Value) -> String {
    let items: Vec<&str> =
        value.as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// Aligned columns, the first row a header.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().enumerate().map(|(i, cell)| format!("{cell:w$}", w = widths[i])).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

pub fn bans_table(bans: &[BanInfo]) -> String {
    if bans.is_empty() {
        return "no active bans\n".into();
    }
    // In a cluster every ban names the host that decided it.
    let hosts = bans.iter().any(|b| b.host.is_some());
    let mut header = vec!["ADDRESS", "JAIL", "SINCE", "UNTIL", "ORIGIN", "COUNT"];
    if hosts {
        header.push("HOST");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for b in bans {
        let mut row = vec![
            b.net.clone(),
            b.jail.clone(),
            b.since.clone(),
            b.until.clone().unwrap_or_else(|| "permanent".into()),
            b.origin.clone(),
            b.count.to_string(),
        ];
        if hosts {
            row.push(b.host.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    table(&rows)
}

pub fn status_text(s: &StatusReport) -> String {
    let mut out = String::new();
    let backend = s.backend.as_deref().unwrap_or("not started");
    let _ = writeln!(
        out,
        "warden {} up {}s, firewall {backend}{}",
        s.version,
        s.uptime_secs,
        if s.dry_run { " (dry run: nothing is enforced)" } else { "" }
    );
    if let Some(error) = &s.firewall_error {
        let _ = writeln!(out, "firewall error (retrying): {error}");
    }
    let mut rows = vec![
        ["JAIL", "FILTER", "FAILED", "TOTAL FAILED", "BANNED", "TOTAL BANNED", "SOURCES"]
            .map(String::from)
            .to_vec(),
    ];
    for j in &s.jails {
        rows.push(vec![
            j.name.clone(),
            j.filter.clone(),
            j.currently_failed.to_string(),
            j.total_failed.to_string(),
            j.currently_banned.to_string(),
            j.total_banned.to_string(),
            j.sources.join(", "),
        ]);
    }
    out.push_str(&table(&rows));
    if let Some(cluster) = &s.cluster {
        out.push('\n');
        out.push_str(&cluster_text(cluster));
    }
    if !s.containers.is_empty() {
        out.push('\n');
        let mut rows = vec![["CONTAINER", "ID", "STATE", "LOGS", "JAILS"].map(String::from).to_vec()];
        for c in &s.containers {
            let state = if c.attached { "attached" } else { "stopped" };
            let logs = c.logs.clone().unwrap_or_else(|| "-".into());
            rows.push(vec![c.name.clone(), c.id.clone(), state.into(), logs, c.jails.join(", ")]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// The cluster part of `warden status`.
pub fn cluster_text(c: &ClusterReport) -> String {
    let mut out = String::new();
    let state = match (c.connected, c.publishing) {
        (true, true) => "connected",
        (true, false) => "following, but publishing fails",
        (false, true) => "publishing, but not following",
        (false, false) => "DISCONNECTED (local bans go on; replication resumes by itself)",
    };
    let _ = writeln!(out, "cluster: host {} via {}: {state}", c.host_id, c.redis);
    if let Some(error) = &c.error {
        let _ = writeln!(out, "cluster error (retrying): {error}");
    }
    let _ = writeln!(
        out,
        "bans: {} local, {} remote; {} waiting to be published; {} remote entries refused",
        c.local_bans, c.remote_bans, c.outbox, c.refused
    );
    if c.origins.is_empty() {
        return out;
    }
    let mut rows = vec![["HOST", "BANS", "LAG", "APPLIED", "STATE"].map(String::from).to_vec()];
    for o in &c.origins {
        let state = match (&o.quarantined, &o.quarantined_until) {
            (Some(reason), until) => {
                format!("QUARANTINED until {}: {reason}", until.as_deref().unwrap_or("?"))
            }
            _ => "ok".to_string(),
        };
        let lag = o.lag_ms.map_or_else(|| "-".to_string(), |ms| format!("{ms}ms"));
        rows.push(vec![o.host.clone(), o.bans.to_string(), lag, o.applied.to_string(), state]);
    }
    out.push_str(&table(&rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_render_as_an_aligned_table() {
        let ban = BanInfo {
            net: "203.0.113.7".into(),
            jail: "sshd".into(),
            origin: "manual".into(),
            since: "2026-11-21T10:00:00Z".into(),
            until: None,
            count: 2,
            failures: 0,
            host: None,
        };
        let text = bans_table(std::slice::from_ref(&ban));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ADDRESS      JAIL  SINCE                 UNTIL      ORIGIN  COUNT");
        assert_eq!(lines[1], "203.0.113.7  sshd  2026-11-21T10:00:00Z  permanent  manual  2");
        assert_eq!(bans_table(&[]), "no active bans\n");

        let remote = BanInfo { origin: "remote:mx2".into(), host: Some("mx2".into()), ..ban.clone() };
        let local = BanInfo { host: Some("mx1".into()), ..ban };
        let text = bans_table(&[local, remote]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("COUNT  HOST"), "{text}");
        assert!(lines[1].ends_with("manual      2      mx1"), "{text}");
        assert!(lines[2].ends_with("remote:mx2  2      mx2"), "{text}");
    }

    #[test]
    fn cluster_status_names_each_host_and_quarantines_loudly() {
        let report = ClusterReport {
            host_id: "mx1".into(),
            redis: "redis://h:6379/0".into(),
            connected: true,
            publishing: true,
            error: None,
            epoch: Some("e".into()),
            outbox: 0,
            local_bans: 3,
            remote_bans: 7,
            refused: 1,
            origins: vec![
                crate::control::OriginReport {
                    host: "mx2".into(),
                    bans: 7,
                    lag_ms: Some(4),
                    applied: 9,
                    quarantined: None,
                    quarantined_until: None,
                },
                crate::control::OriginReport {
                    host: "mx3".into(),
                    bans: 0,
                    lag_ms: None,
                    applied: 0,
                    quarantined: Some("a forged origin".into()),
                    quarantined_until: Some("2026-01-01T00:00:00Z".into()),
                },
            ],
        };
        let text = cluster_text(&report);
        assert!(text.starts_with("cluster: host mx1 via redis://h:6379/0: connected\n"), "{text}");
        assert!(
            text.contains("bans: 3 local, 7 remote; 0 waiting to be published; 1 remote entries refused")
        );
        assert!(text.contains("mx2   7     4ms  9        ok"), "{text}");
        assert!(
            text.contains(
                "mx3   0     -    0        QUARANTINED until 2026-01-01T00:00:00Z: a forged origin"
            ),
            "{text}"
        );
    }
}
