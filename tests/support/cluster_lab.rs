//! A Redis cluster of wardens on one machine, for tests and benches: a hub
//! network namespace with a bridge and its own `redis-server` (no
//! persistence, a temporary directory), and host namespaces on the bridge,
//! each with its own `warden run`, state, socket and ipsets.
//!
//! Addresses are the caller's own, inside its own namespaces: the hub
//! 10.77.0.1, host `hN` 10.77.0.(10+N). Every daemon and redis-server is
//! killed and reaped when its guard drops, also on a panic, before the
//! namespaces go.
//!
//! Used together with `netns.rs`, `topology.rs` and `lab.rs` (as modules
//! `netns`, `topology` and `lab`).

// Shared by a test and a bench, each using part of it.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;
use warden::firewall::ipset::{Family, IpsetHandle};
use warden::firewall::rules::remote_set_name;

use crate::lab::wait_until;
use crate::netns::{self, TestNetns};
use crate::topology::{self, ip};

pub const WARDEN: &str = env!("CARGO_BIN_EXE_warden");
pub const HUB: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const REDIS_PORT: u16 = 6379;
/// How long a daemon may take to start on a busy machine.
pub const START_WITHIN: Duration = Duration::from_secs(15);

/// Whether this machine can run these tests; in CI it must.
pub fn prerequisites() -> bool {
    if netns::have_program("redis-server") {
        return true;
    }
    let reason = "redis-server is not installed (apt-get install redis-server; scripts/test does)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but this test cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
    false
}

/// The hub: a namespace with the bridge and a redis-server on it.
pub struct Hub {
    redis: Option<Child>,
    dir: tempfile::TempDir,
    /// Redis speaks only TLS and wants client certificates (see [`Hub::tls`]).
    tls: bool,
    pub ns: TestNetns,
}

impl Hub {
    /// A hub whose Redis speaks plain RESP, or with `tls` only TLS with
    /// client certificates from a CA the hub makes (with `openssl`).
    pub fn new(tag: &str, tls: bool) -> Option<Hub> {
        let ns = TestNetns::create(&format!("{tag}-hub"))?;
        ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
        ip(&["-n", ns.name(), "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", ns.name(), "addr", "add", &format!("{HUB}/24"), "dev", "br0"]);
        ip(&["-n", ns.name(), "link", "set", "br0", "up"]);
        let mut hub = Hub { redis: None, dir: tempfile::tempdir().expect("a temporary directory"), tls, ns };
        if tls {
            hub.make_certificates();
        }
        hub.start_redis();
        Some(hub)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// (CA, client certificate, client key) for a TLS hub.
    pub fn tls(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        self.tls.then(|| (self.path("ca.pem"), self.path("client.pem"), self.path("client.key")))
    }

    /// A CA, a server certificate for the hub's address and a client
    /// certificate, all P-256, valid for a day.
    fn make_certificates(&self) {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"],
                &key[..],
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=warden test CA"],
            ]
            .concat(),
        );
        openssl(
            &[&["req"], &key[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=hub"]]
                .concat(),
        );
        openssl(
            &[&["req"], &key[..], &["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=warden"]]
                .concat(),
        );
        std::fs::write(
            self.path("server.ext"),
            format!("subjectAltName=IP:{HUB}\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        std::fs::write(self.path("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.pem"),
                "-days",
                "1",
                "-extfile",
                &format!("{who}.ext"),
            ]);
        }
    }

    /// A fresh redis-server without persistence: a restart loses everything.
    pub fn start_redis(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("redis.log")).unwrap();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.ns.name(), "redis-server"]);
        if self.tls {
            command.args(["--port", "0", "--tls-port", &REDIS_PORT.to_string(), "--tls-auth-clients", "yes"]);
            for (option, file) in [
                ("--tls-cert-file", "server.pem"),
                ("--tls-key-file", "server.key"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                command.arg(option).arg(self.path(file));
            }
        } else {
            command.args(["--port", &REDIS_PORT.to_string()]);
        }
        let child = command
            .args(["--bind", &HUB.to_string(), "--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        self.redis = Some(child);
        wait_until("redis-server answers PING", START_WITHIN, || {
            let args = self.cli_args(&["PING"]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.ns.exec("redis-cli", &args).expect("run redis-cli");
            match String::from_utf8_lossy(&out.stdout).trim() {
                "PONG" => Ok(()),
                other => Err(format!("{other}{}", String::from_utf8_lossy(&out.stderr))),
            }
        });
    }

    /// redis-cli's arguments to reach the hub's Redis, then `args`.
    fn cli_args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut all: Vec<String> = vec!["-h".into(), HUB.to_string(), "-p".into(), REDIS_PORT.to_string()];
        if let Some((ca, cert, key)) = self.tls() {
            all.push("--tls".into());
            for (flag, file) in [("--cacert", ca), ("--cert", cert), ("--key", key)] {
                all.push(flag.into());
                all.push(file.display().to_string());
            }
        }
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    pub fn stop_redis(&mut self) {
        if let Some(mut child) = self.redis.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli ARGS` against the hub's Redis; its output.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        let all = self.cli_args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        topology::exec(&self.ns, "redis-cli", &all)
    }

    /// Links namespace `ns` to the bridge with address `addr`/24 on its eth0.
    pub fn join(&self, ns: &TestNetns, dev: &str, addr: Ipv4Addr) {
        let hub = self.ns.name();
        ip(&["-n", hub, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        ip(&["-n", hub, "link", "set", dev, "master", "br0"]);
        ip(&["-n", hub, "link", "set", dev, "up"]);
        ip(&["-n", ns.name(), "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        ip(&["-n", ns.name(), "link", "set", "eth0", "up"]);
        ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop_redis();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
            eprintln!("--- redis-server log ---\n{log}--- end of log ---");
        }
    }
}

/// What a host runs: its jails and its remote limits.
#[derive(Clone)]
pub struct Role {
    /// No jails: it only enforces what the others decide.
    pub enforcer_only: bool,
    /// The `remote_limits` mapping, in YAML flow style.
    pub limits: &'static str,
    /// Connects as its own Redis user, limited by the README's ACL, with its
    /// password in a file.
    pub acl: bool,
}

pub const FULL: Role = Role { enforcer_only: false, limits: "{rate: 1000/min}", acl: false };

/// The README's Redis 7 ACL for host `host`: it reads every warden key and
/// writes only its own (plus `SADD` to the hosts set and `SET` of the
/// epoch); the control stream is not opened to it (admins only).
pub fn acl_setuser(host: &str, password: &str) -> Vec<String> {
    let mut args: Vec<String> =
        ["ACL", "SETUSER", host, "on", &format!(">{password}"), "resetkeys", "resetchannels", "-@all"]
            .map(String::from)
            .to_vec();
    args.extend(
        "+ping +select +multi +exec +get +smembers +hget +hgetall +hkeys +xread +xrevrange +xinfo|stream \
         +zrangebyscore +xadd +hset +hdel +zadd +zrem"
            .split_whitespace()
            .map(String::from),
    );
    args.push("%R~warden:{w}:*".into());
    for key in ["ev", "bans", "exp", "host"] {
        args.push(format!("~warden:{{w}}:{key}:{host}"));
    }
    args.push("(~warden:{w}:hosts +sadd)".into());
    args.push("(~warden:{w}:epoch +set)".into());
    args
}

/// One host: a namespace on the bridge and its `warden run`.
pub struct Host {
    pub name: String,
    pub daemon: Option<Child>,
    dir: tempfile::TempDir,
    pub ns: TestNetns,
}

impl Host {
    pub fn new(hub: &Hub, tag: &str, index: u8, role: &Role) -> Option<Host> {
        let name = format!("h{index}");
        let ns = TestNetns::create(&format!("{tag}-{name}"))?;
        hub.join(&ns, &format!("v{name}"), host_addr(index));
        let host = Host { name, daemon: None, dir: tempfile::tempdir().expect("a temporary directory"), ns };
        if role.acl {
            let password = format!("pw-{}-{}", host.name, std::process::id());
            std::fs::write(host.path("redis.pw"), format!("{password}\n")).unwrap();
            let args = acl_setuser(&host.name, &password);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(hub.redis_cli(&args).trim(), "OK", "ACL SETUSER {}", host.name);
        }
        std::fs::write(host.path("auth.log"), "").unwrap();
        std::fs::write(host.path("warden.yaml"), host.config(role, hub.tls())).unwrap();
        Some(host)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The host's config; with `tls` (CA, certificate, key), Redis is
    /// reached over TLS with that client certificate.
    pub fn config(&self, role: &Role, tls: Option<(PathBuf, PathBuf, PathBuf)>) -> String {
        let dir = self.dir.path().display();
        let scheme = if tls.is_some() { "rediss" } else { "redis" };
        let mut redis = if role.acl {
            format!("{scheme}://{}@{HUB}:{REDIS_PORT}/0\n  password_file: {dir}/redis.pw", self.name)
        } else {
            format!("{scheme}://{HUB}:{REDIS_PORT}/0")
        };
        if let Some((ca, cert, key)) = tls {
            redis += &format!(
                "\n  tls: {{ca: {}, cert: {}, key: {}}}",
                ca.display(),
                cert.display(),
                key.display()
            );
        }
        let jails = if role.enforcer_only {
            String::new()
        } else {
            let source = format!("sources: [{{file: {{path: {dir}/auth.log}}}}], target: host");
            format!(
                "jails:\n  web: {{filter: sshd, {source}}}\n  wide: {{filter: sshd, {source}, ban_prefix: {{v4: 8}}}}\n"
            )
        };
        format!(
            "state_dir: {dir}/state\nsocket: {dir}/run/warden.sock\nfirewall: {{backend: nft, ban_floor: {{v4: 8}}}}\n\
             cluster:\n  host_id: {}\n  redis: {redis}\n  remote_limits: {}\n{jails}",
            self.name, role.limits
        )
    }

    /// Starts `warden run` in the namespace and waits until its firewall
    /// is in place.
    pub fn start(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.path("daemon.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns.name(), WARDEN, "run", "--config"])
            .arg(self.path("warden.yaml"))
            // WARDEN_TEST_LOG=debug (say) for a closer look at a failure.
            .env("WARDEN_LOG", std::env::var("WARDEN_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn warden run");
        self.daemon = Some(child);
        wait_until(&format!("{} answers with its firewall in place", self.name), START_WITHIN, || {
            if let Some(status) = self.daemon.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("warden run on {} exited early ({status}):\n{}", self.name, self.log());
            }
            match self.status() {
                Some(report) if report["backend"].is_string() => Ok(()),
                other => Err(other),
            }
        });
    }

    /// SIGTERM, then waits for the daemon to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.daemon.take() else { return };
        // SAFETY: plain kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        wait_until(&format!("{} exits after SIGTERM", self.name), START_WITHIN, || {
            child.try_wait().unwrap().ok_or("still running")
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// `warden ARGS --socket …`; (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(WARDEN)
            .args(args)
            .arg("--socket")
            .arg(self.path("run/warden.sock"))
            .output()
            .expect("run the warden CLI");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// Runs the CLI and insists it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.cli(args);
        assert_eq!(code, 0, "{} {args:?}: {stdout}{stderr}", self.name);
        stdout
    }

    pub fn status(&self) -> Option<Value> {
        let (code, stdout, _) = self.cli(&["status", "--json"]);
        if code != 0 {
            return None;
        }
        serde_json::from_str(&stdout).ok()
    }

    pub fn cluster(&self) -> Value {
        self.status().map(|s| s["cluster"].clone()).unwrap_or(Value::Null)
    }

    /// The entries of one of this host's sets (empty if it does not exist).
    pub fn set(&self, name: &str) -> Vec<IpNet> {
        let name = name.to_string();
        self.ns.run(move || {
            let mut handle = IpsetHandle::open().expect("open an ipset socket");
            match handle.list(&name) {
                Ok(listing) => listing.entries.iter().map(|e| e.net).collect(),
                Err(e) if e.is_missing_set() => Vec::new(),
                Err(e) => panic!("list {name}: {e}"),
            }
        })
    }

    pub fn remote(&self) -> Vec<IpNet> {
        self.set(&remote_set_name(Family::V4))
    }

    /// `warden bans --json` as (address, origin, host) rows.
    pub fn bans(&self) -> Vec<(String, String, String)> {
        let listed: Value =
            serde_json::from_str(&self.ok(&["bans", "--json"])).expect("bans --json prints JSON");
        let field = |b: &Value, k: &str| b[k].as_str().unwrap_or_default().to_string();
        listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|b| (field(b, "net"), field(b, "origin"), field(b, "host")))
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- warden run log of {} ---\n{}--- end of log ---", self.name, self.log());
        }
    }
}

/// One origin's line in a `cluster` status (null if absent).
pub fn origin(status: &Value, host: &str) -> Value {
    status["origins"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["host"] == host).cloned())
        .unwrap_or(Value::Null)
}

pub fn host_addr(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + index)
}

pub fn net(s: &str) -> IpNet {
    warden::core::parse_ip_or_net(s).unwrap()
}

/// A hub and hosts h1…hN (roles in order). Hosts drop before the hub.
pub struct Cluster {
    pub hosts: Vec<Host>,
    pub hub: Hub,
}

impl Cluster {
    pub fn new(tag: &str, roles: &[Role]) -> Option<Cluster> {
        Cluster::with_hub(tag, roles, false)
    }

    /// A cluster whose Redis speaks only TLS and checks client certificates.
    pub fn with_tls(tag: &str, roles: &[Role]) -> Option<Cluster> {
        Cluster::with_hub(tag, roles, true)
    }

    fn with_hub(tag: &str, roles: &[Role], tls: bool) -> Option<Cluster> {
        if !prerequisites() {
            return None;
        }
        let hub = Hub::new(tag, tls)?;
        let mut hosts = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            hosts.push(Host::new(&hub, tag, i as u8 + 1, role)?);
        }
        for host in &mut hosts {
            host.start();
        }
        let cluster = Cluster { hosts, hub };
        cluster.wait_until_all_follow_all();
        Some(cluster)
    }

    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index - 1]
    }

    pub fn host_mut(&mut self, index: usize) -> &mut Host {
        &mut self.hosts[index - 1]
    }

    /// Every running host follows every other host (so a ban is not missed
    /// for lack of discovery).
    pub fn wait_until_all_follow_all(&self) {
        let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        for host in self.hosts.iter().filter(|h| h.daemon.is_some()) {
            wait_until(&format!("{} follows every other host", host.name), START_WITHIN, || {
                let cluster = host.cluster();
                let followed: Vec<String> = cluster["origins"]
                    .as_array()
                    .map(|o| o.iter().filter_map(|o| o["host"].as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let all = names.iter().filter(|n| **n != host.name).all(|n| followed.iter().any(|f| f == n));
                if all && cluster["connected"] == true && cluster["publishing"] == true {
                    Ok(())
                } else {
                    Err(cluster)
                }
            });
        }
    }

    /// Waits until each of `hosts` holds (or, with `held` false, lacks)
    /// every one of `nets` in its remote set; returns how long it took.
    pub fn wait_remote(
        &self,
        hosts: &[usize],
        nets: &[IpNet],
        held: bool,
        within: Duration,
        what: &str,
    ) -> Duration {
        let started = Instant::now();
        for &index in hosts {
            let host = self.host(index);
            let left = within.saturating_sub(started.elapsed());
            wait_until(&format!("{what} on {}", host.name), left, || {
                let set = host.remote();
                let wrong: Vec<&IpNet> = nets.iter().filter(|n| set.contains(n) != held).collect();
                if wrong.is_empty() { Ok(()) } else { Err(format!("not yet for {wrong:?}")) }
            });
        }
        started.elapsed()
    }
}
