//! What warden needs to know about one container, read from
//! `GET /containers/{id}/json`: its name, labels, TTY, published ports,
//! whether it runs, whether its log driver can be read back, and where its
//! json-file log is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::models::{ContainerInspectResponse, PortMap};

use crate::core::Protocol;
use crate::source::PublishedPort;

/// A container as inspected, before the jails it feeds are worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    pub running: bool,
    pub published: Vec<PublishedPort>,
    pub log_driver: LogDriver,
    /// Where the json-file driver writes (`LogPath`), on dockerd's host.
    pub log_path: Option<PathBuf>,
}

impl Inspected {
    /// Reads an inspect response; `None` when it lacks the container's id.
    pub fn from_response(response: ContainerInspectResponse) -> Option<Inspected> {
        let id = response.id?;
        let config = response.config.unwrap_or_default();
        let host_config = response.host_config.unwrap_or_default();
        let log_config = host_config.log_config.unwrap_or_default();
        let ports = response.network_settings.and_then(|n| n.ports).unwrap_or_default();
        Some(Inspected {
            name: response.name.map(|n| n.trim_start_matches('/').to_string()).unwrap_or_else(|| id.clone()),
            id,
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            tty: config.tty.unwrap_or(false),
            log_path: response.log_path.filter(|p| !p.is_empty()).map(PathBuf::from),
            running: response.state.and_then(|s| s.running).unwrap_or(false),
            published: published_ports(&ports),
            log_driver: LogDriver::new(
                log_config.typ.as_deref().unwrap_or("json-file"),
                log_config.config.unwrap_or_default().get("cache-disabled").map(String::as_str),
            ),
        })
    }
}

/// The host ports Docker publishes, each once (IPv4 and IPv6 bindings of
/// one port are the same port to a firewall rule), in order.
pub fn published_ports(ports: &PortMap) -> Vec<PublishedPort> {
    let mut published: Vec<PublishedPort> = ports
        .iter()
        .filter_map(|(spec, bindings)| {
            let protocol = match spec.rsplit_once('/').map(|(_, p)| p) {
                Some("udp") => Protocol::Udp,
                // Docker writes `80/tcp`; a bare port is TCP too.
                Some("tcp") | None => Protocol::Tcp,
                // sctp: warden's firewall rules do not cover it.
                Some(_) => return None,
            };
            Some(bindings.iter().flatten().filter_map(move |binding| {
                let port = binding.host_port.as_deref()?.parse::<u16>().ok().filter(|p| *p != 0)?;
                Some(PublishedPort { port, protocol })
            }))
        })
        .flatten()
        .collect();
    published.sort_by_key(|p| (p.port, p.protocol == Protocol::Udp));
    published.dedup();
    published
}

/// A container's log driver, as far as reading logs back goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDriver {
    pub name: String,
    /// `--log-opt cache-disabled=true`: no dual-logging cache to read from.
    pub cache_disabled: bool,
}

/// Whether the logs API can serve a driver's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readability {
    /// json-file, local and journald store logs dockerd reads back.
    Native,
    /// Other drivers are readable only through the dual-logging cache
    /// (Docker 20.10 and later), which keeps just the recent logs.
    ThroughCache,
    /// `none`, or the cache is disabled.
    Unreadable,
}

impl LogDriver {
    pub fn new(name: &str, cache_disabled: Option<&str>) -> LogDriver {
        LogDriver {
            name: name.to_string(),
            cache_disabled: cache_disabled.is_some_and(|v| v.trim() == "true"),
        }
    }

    pub fn readability(&self) -> Readability {
        match self.name.as_str() {
            "json-file" | "local" | "journald" => Readability::Native,
            "none" => Readability::Unreadable,
            _ if self.cache_disabled => Readability::Unreadable,
            _ => Readability::ThroughCache,
        }
    }
}

/// What to tell the operator about a container whose logs cannot be read
/// (fully) through the API; `None` when there is nothing to say.
pub fn log_driver_warning(name: &str, driver: &LogDriver, docker_said: Option<&str>) -> Option<String> {
    const FIX: &str = "run it with --log-driver json-file, local or journald (or, for journald, follow it with a journald source)";
    let said = docker_said.map(|m| format!(" (dockerd: {m})")).unwrap_or_default();
    match (driver.readability(), docker_said) {
        (Readability::Native, None) => None,
        (Readability::ThroughCache, None) => Some(format!(
            "container {name} logs with the {} driver; warden reads it through Docker's dual-logging cache, which keeps only recent logs and is absent before Docker 20.10 or with cache-disabled=true; to be sure nothing is missed, {FIX}",
            driver.name
        )),
        _ => Some(format!(
            "container {name} logs with the {} driver, which cannot be read back through the Docker API{said}, so warden cannot follow it; {FIX}",
            driver.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerConfig, ContainerState, HostConfig, HostConfigLogConfig, NetworkSettings, PortBinding,
    };

    use super::*;

    fn binding(host_port: &str) -> PortBinding {
        PortBinding { host_ip: Some("0.0.0.0".into()), host_port: Some(host_port.into()) }
    }

    #[test]
    fn published_ports_are_host_ports_once_each() {
        let ports: PortMap = [
            ("80/tcp".to_string(), Some(vec![binding("8080"), binding("8080")])),
            ("53/udp".to_string(), Some(vec![binding("5353")])),
            ("443/tcp".to_string(), None),
            ("9/sctp".to_string(), Some(vec![binding("9")])),
            ("25/tcp".to_string(), Some(vec![binding(""), binding("25")])),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            published_ports(&ports),
            [
                PublishedPort { port: 25, protocol: Protocol::Tcp },
                PublishedPort { port: 5353, protocol: Protocol::Udp },
                PublishedPort { port: 8080, protocol: Protocol::Tcp },
            ]
        );
    }

    #[test]
    fn reads_an_inspect_response() {
        let response = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web".into()),
            config: Some(ContainerConfig {
                image: Some("nginx:1".into()),
                tty: Some(true),
                labels: Some([("warden.jails".to_string(), "web".to_string())].into_iter().collect()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                log_config: Some(HostConfigLogConfig { typ: Some("gelf".into()), config: None }),
                ..Default::default()
            }),
            state: Some(ContainerState { running: Some(true), ..Default::default() }),
            network_settings: Some(NetworkSettings {
                ports: Some([("80/tcp".to_string(), Some(vec![binding("80")]))].into_iter().collect()),
                ..Default::default()
            }),
            log_path: Some("/var/lib/docker/containers/abc/abc-json.log".into()),
            ..Default::default()
        };
        let c = Inspected::from_response(response).unwrap();
        assert_eq!((c.id.as_str(), c.name.as_str(), c.image.as_str()), ("abc", "web", "nginx:1"));
        assert!(c.tty && c.running);
        assert_eq!(c.labels["warden.jails"], "web");
        assert_eq!(c.published, [PublishedPort { port: 80, protocol: Protocol::Tcp }]);
        assert_eq!(c.log_driver.readability(), Readability::ThroughCache);
        assert_eq!(c.log_path, Some(PathBuf::from("/var/lib/docker/containers/abc/abc-json.log")));
        assert_eq!(Inspected::from_response(ContainerInspectResponse::default()), None);
    }

    #[test]
    fn log_drivers_and_their_warnings() {
        let native = LogDriver::new("journald", None);
        assert_eq!(log_driver_warning("web", &native, None), None);
        let none = LogDriver::new("none", None);
        let warning = log_driver_warning("web", &none, None).unwrap();
        for part in [
            "container web",
            "none driver",
            "cannot be read back",
            "--log-driver json-file, local or journald",
        ] {
            assert!(warning.contains(part), "{warning}\nlacks {part}");
        }
        let cached = LogDriver::new("syslog", Some("false"));
        assert!(log_driver_warning("web", &cached, None).unwrap().contains("dual-logging cache"));
        let uncached = LogDriver::new("syslog", Some("true"));
        assert_eq!(uncached.readability(), Readability::Unreadable);
        let refused =
            log_driver_warning("web", &cached, Some("configured logging driver does not support reading"));
        assert!(refused.unwrap().contains("(dockerd: configured logging driver does not support reading)"));
    }
}
