//! `warden check-config`: validates a configuration file and says either
//! `ok` with one line per jail, or every error found, one per line.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, Config, FilterCatalog, JailConfig};

/// The filters a check may reference: the caller's predicate (which knows
/// shipped and loaded filters) plus the names to suggest in messages.
struct Catalog<'a> {
    exists: &'a dyn Fn(&str) -> bool,
    names: &'a [&'a str],
}

impl FilterCatalog for Catalog<'_> {
    fn contains(&self, name: &str) -> bool {
        (self.exists)(name) || self.names.contains(&name)
    }

    fn names(&self) -> Vec<String> {
        self.names.iter().map(|n| n.to_string()).collect()
    }
}

/// Checks the file at `path`. Returns the text to print and whether the
/// configuration is valid (the exit status follows it).
pub fn check_config(
    path: &Path,
    filter_exists: &dyn Fn(&str) -> bool,
    filter_names: &[&str],
) -> (String, bool) {
    let catalog = Catalog { exists: filter_exists, names: filter_names };
    match config::load(path, &catalog) {
        Ok(config) => (summary(path, &config), true),
        Err(errors) => {
            let mut out = errors.to_string();
            out.push('\n');
            let n = errors.len();
            let _ = writeln!(out, "{n} error{} in {}", if n == 1 { "" } else { "s" }, path.display());
            (out, false)
        }
    }
}

/// `ok`, then one aligned line per jail.
fn summary(path: &Path, config: &Config) -> String {
    let n = config.jails.len();
    let mut out = format!("ok: {} ({n} jail{})\n", path.display(), if n == 1 { "" } else { "s" });
    let width = config.jails.keys().map(String::len).max().unwrap_or(0);
    for jail in config.jails.values() {
        let _ = writeln!(out, "  {:width$}  {}", jail.name, jail_line(jail));
    }
    if let Some(cluster) = &config.cluster {
        let limits = &cluster.remote_limits;
        let _ = writeln!(
            out,
            "  cluster: host {} via {}; remote bans at most {}, no broader than /{} (v4) /{} (v6), {} bans per host, {} active",
            cluster.host_id,
            config::redact_url(&cluster.redis),
            crate::core::duration::format_duration(limits.max_until),
            limits.min_prefix.v4,
            limits.min_prefix.v6,
            limits.rate,
            limits.max_active
        );
    }
    out
}

fn jail_line(jail: &JailConfig) -> String {
    let sources: Vec<String> = jail.sources.iter().map(ToString::to_string).collect();
    let ports = if jail.ports.is_empty() {
        "all".to_string()
    } else {
        jail.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    };
    let protocol = format!("{:?}", jail.protocol).to_lowercase();
    let target = format!("{:?}", jail.target).to_lowercase();
    format!(
        "filter={} sources={} maxretry={} findtime={} bantime={}{} target={} ports={} protocol={} {}",
        jail.filter,
        sources.join(","),
        jail.maxretry,
        crate::core::duration::format_duration(jail.findtime),
        jail.bantime,
        if jail.increment.enabled { "+increment" } else { "" },
        target,
        ports,
        protocol,
        if jail.enabled { "enabled" } else { "disabled" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    const NAMES: &[&str] = &["sshd", "nginx-http-auth", "mailu-front"];

    #[test]
    fn ok_lists_each_jail_on_one_line() {
        let file = write(
            "jails:\n  sshd:\n    filter: sshd\n    sources: [{file: {path: /var/log/auth.log}}]\n    bantime: 1w\n    ports: [22, '8000:8100']\n  web:\n    filter: nginx-http-auth\n    sources: [{docker: {}}]\n    enabled: false\n",
        );
        let (out, ok) = check_config(file.path(), &|_| false, NAMES);
        assert!(ok, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ok: "), "{out}");
        assert_eq!(lines.len(), 3, "{out}");
        let sshd = lines.iter().find(|l| l.trim_start().starts_with("sshd")).unwrap();
        for part in [
            "filter=sshd",
            "sources=file(/var/log/auth.log)",
            "maxretry=5",
            "findtime=10m",
            "bantime=1w",
            "target=docker",
            "ports=22,8000:8100 protocol=tcp",
            "enabled",
        ] {
            assert!(sshd.contains(part), "{part} missing in {sshd}");
        }
        let web = lines.iter().find(|l| l.trim_start().starts_with("web")).unwrap();
        assert!(web.contains("sources=docker") && web.ends_with("disabled"), "{web}");
    }

    #[test]
    fn the_cluster_is_summarised_without_its_password() {
        let file = write("cluster: {host_id: mx1, redis: 'redis://mx1:s3cret@10.0.0.5:6379/0'}\n");
        let (out, ok) = check_config(file.path(), &|_| false, NAMES);
        assert!(ok, "{out}");
        assert!(out.starts_with("ok: ") && out.contains("(0 jails)"), "{out}");
        assert!(
            out.contains(
                "  cluster: host mx1 via redis://mx1:***@10.0.0.5:6379/0; remote bans at most 1w, no broader than \
                 /24 (v4) /48 (v6), 60/1m bans per host, 100000 active"
            ),
            "{out}"
        );
        assert!(!out.contains("s3cret"));
    }

    #[test]
    fn errors_are_listed_one_per_line_with_location() {
        let file = write("jails:\n  sshd:\n    filter: sshdd\n    sources: [{docker: {}}]\n    bantim: 1w\n");
        let (out, ok) = check_config(file.path(), &|_| false, NAMES);
        assert!(!ok);
        let name = file.path().display().to_string();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with(&format!("{name}:3:13: jails.sshd.filter: unknown filter `sshdd`")),
            "{out}"
        );
        assert!(lines[0].contains("did you mean `sshd`?"), "{out}");
        assert!(
            lines[1].starts_with(&format!("{name}:5:5: jails.sshd.bantim: unknown key `bantim`")),
            "{out}"
        );
        assert_eq!(lines[2], format!("2 errors in {name}"));
    }

    #[test]
    fn unreadable_file_is_one_error() {
        let (out, ok) = check_config(Path::new("/nonexistent/warden.yaml"), &|_| true, NAMES);
        assert!(!ok);
        assert!(out.starts_with("/nonexistent/warden.yaml: cannot read the configuration file"), "{out}");
    }
}
