//! How a journal entry becomes a log line: the way fail2ban's journal
//! backend (`filtersystemd.py`, `formatJournalEntry`) renders it, so filters
//! written for fail2ban's journal mode match warden's lines too.
//!
//! `HOST IDENT[PID]: MESSAGE`, where:
//! - `HOST` is `_HOSTNAME`, left out when empty;
//! - `IDENT` is `SYSLOG_IDENTIFIER`, else `_COMM`; `[PID]` comes from
//!   `SYSLOG_PID`, else `_PID`, and is left out when neither is set; the
//!   whole `IDENT[PID]:` is left out when there is no identifier;
//! - kernel messages (`kernel:` without a pid) get the monotonic time as
//!   `[%12.6f]` seconds after the identifier, as the kernel ring buffer
//!   shows it;
//! - newlines inside `MESSAGE` become the two characters `\n`, so one entry
//!   stays one line.

use std::fmt::Write;

/// The fields of an entry that the line is made of.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EntryFields {
    pub hostname: Option<String>,
    /// `SYSLOG_IDENTIFIER`, else `_COMM`.
    pub identifier: Option<String>,
    /// `SYSLOG_PID`, else `_PID`.
    pub pid: Option<String>,
    /// µs since boot: `_SOURCE_MONOTONIC_TIMESTAMP`, else the entry's own
    /// monotonic time. Only used for kernel messages.
    pub monotonic_usec: Option<u64>,
    pub message: String,
}

/// Renders an entry as fail2ban's journal backend does.
pub fn format_line(entry: &EntryFields) -> String {
    let mut line = String::with_capacity(entry.message.len() + 48);
    if let Some(host) = entry.hostname.as_deref().filter(|h| !h.is_empty()) {
        line.push_str(host);
    }
    if let Some(ident) = entry.identifier.as_deref().filter(|i| !i.is_empty()) {
        push_separated(&mut line, ident);
        let pid = entry.pid.as_deref().filter(|p| !p.is_empty());
        if let Some(pid) = pid {
            let _ = write!(line, "[{pid}]");
        }
        line.push(':');
        if ident == "kernel"
            && pid.is_none()
            && let Some(usec) = entry.monotonic_usec
        {
            let _ = write!(line, " [{:12.6}]", usec as f64 / 1e6);
        }
    }
    if !line.is_empty() {
        line.push(' ');
    }
    for (i, part) in entry.message.split('\n').enumerate() {
        if i > 0 {
            line.push_str("\\n");
        }
        line.push_str(part);
    }
    line
}

fn push_separated(line: &mut String, part: &str) {
    if !line.is_empty() {
        line.push(' ');
    }
    line.push_str(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, ident: Option<&str>, pid: Option<&str>, message: &str) -> EntryFields {
        EntryFields {
            hostname: Some(host.into()),
            identifier: ident.map(Into::into),
            pid: pid.map(Into::into),
            monotonic_usec: None,
            message: message.into(),
        }
    }

    #[test]
    fn renders_host_identifier_pid_and_message() {
        let e = entry("mx1", Some("sshd"), Some("1234"), "Failed password for root from 192.0.2.1");
        assert_eq!(format_line(&e), "mx1 sshd[1234]: Failed password for root from 192.0.2.1");
    }

    #[test]
    fn leaves_out_what_is_missing() {
        assert_eq!(format_line(&entry("mx1", Some("mailu-front"), None, "AUTH")), "mx1 mailu-front: AUTH");
        assert_eq!(format_line(&entry("", Some("app"), Some("7"), "hi")), "app[7]: hi");
        assert_eq!(format_line(&entry("mx1", None, Some("7"), "bare")), "mx1 bare");
        assert_eq!(format_line(&EntryFields { message: "only".into(), ..EntryFields::default() }), "only");
    }

    #[test]
    fn a_pid_is_shown_as_logged() {
        assert_eq!(format_line(&entry("h", Some("x"), Some("abc"), "m")), "h x[abc]: m");
    }

    #[test]
    fn kernel_lines_carry_the_monotonic_time() {
        let mut e = entry("h", Some("kernel"), None, "IN=eth0 SRC=192.0.2.1");
        e.monotonic_usec = Some(12_345_678);
        assert_eq!(format_line(&e), "h kernel: [   12.345678] IN=eth0 SRC=192.0.2.1");
    }

    #[test]
    fn newlines_in_the_message_are_escaped() {
        assert_eq!(format_line(&entry("h", Some("x"), None, "a\nb")), "h x: a\\nb");
    }
}
