//! Filter engine throughput on a synthetic OpenSSH auth log.
//!
//! Run: `cargo bench --bench filter` (release profile). Prints lines/s for
//! `Filter::process` with the shipped `sshd` filter, including date parsing.
//!
//! The log is generated deterministically (a fixed-seed xorshift, no external
//! data): syslog lines as Debian writes /var/log/auth.log, with password
//! brute force on root, invalid-user bots, key-offering clients, scanners
//! that never authenticate, legitimate logins and unrelated auth.log noise,
//! from many distinct addresses. Environment:
//! - `WARDEN_BENCH_LINES` (default 200000): lines to generate;
//! - `WARDEN_BENCH_WRITE=path`: also write the log there (to feed other tools);
//! - `WARDEN_BENCH_MODE=aggressive`: run the filter in aggressive mode.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use warden::core::Timestamp;
use warden::filter::{MatchState, Outcome, Registry};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const USERS: &[&str] = &[
    "admin",
    "test",
    "user",
    "oracle",
    "postgres",
    "ubuntu",
    "git",
    "ftpuser",
    "guest",
    "support",
    "pi",
    "deploy1",
    "hadoop",
    "minecraft",
    "steam",
    "www-data",
    "jenkins",
    "ansible",
    "mysql",
    "debian",
];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

struct Gen {
    rng: Rng,
    out: Vec<String>,
    secs: u64,
    pid: u64,
}

impl Gen {
    fn addr(&mut self) -> String {
        if self.rng.below(20) == 0 {
            format!(
                "2001:db8:{:x}:{:x}::{:x}",
                self.rng.below(65536),
                self.rng.below(65536),
                self.rng.below(65536)
            )
        } else {
            let v = self.rng.next();
            format!("{}.{}.{}.{}", 1 + (v >> 8) % 223, (v >> 16) % 256, (v >> 24) % 256, 1 + (v >> 32) % 254)
        }
    }

    fn stamp(&mut self) -> String {
        self.secs += self.rng.below(3);
        let day = 1 + (self.secs / 86_400) % 28;
        let month = MONTHS[((self.secs / (86_400 * 28)) % 11) as usize];
        let (h, m, s) = ((self.secs / 3600) % 24, (self.secs / 60) % 60, self.secs % 60);
        format!("{month} {day:>2} {h:02}:{m:02}:{s:02} web1")
    }

    fn line(&mut self, pid: u64, msg: &str) {
        let mut l = self.stamp();
        let _ = write!(l, " sshd[{pid}]: {msg}");
        self.out.push(l);
    }

    fn other(&mut self, prog: &str, msg: &str) {
        let mut l = self.stamp();
        let _ = write!(l, " {prog}: {msg}");
        self.out.push(l);
    }

    fn session(&mut self) {
        self.pid += 1 + self.rng.below(40);
        let pid = self.pid;
        let ip = self.addr();
        let port = 1024 + self.rng.below(60000);
        match self.rng.below(100) {
            // root password brute force, 1-3 attempts per connection
            0..=29 => {
                for _ in 0..1 + self.rng.below(3) {
                    self.line(pid, &format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"));
                    self.line(pid, &format!("Failed password for root from {ip} port {port} ssh2"));
                }
                if self.rng.below(2) == 0 {
                    self.line(pid, &format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"));
                    self.line(pid, &format!("Disconnected from authenticating user root {ip} port {port} [preauth]"));
                } else {
                    self.line(pid, &format!("Connection closed by authenticating user root {ip} port {port} [preauth]"));
                }
            }
            // invalid-user bots
            30..=54 => {
                let user = self.rng.pick(USERS);
                self.line(pid, &format!("Invalid user {user} from {ip} port {port}"));
                self.line(pid, "pam_unix(sshd:auth): check pass; user unknown");
                self.line(pid, &format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"));
                self.line(pid, &format!("Failed password for invalid user {user} from {ip} port {port} ssh2"));
                self.line(pid, &format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"));
                self.line(pid, &format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"));
            }
            // scanners and banner grabbers
            55..=69 => match self.rng.below(4) {
                0 => {
                    self.line(pid, "error: kex_exchange_identification: Connection closed by remote host");
                    self.line(pid, &format!("Connection closed by {ip} port {port}"));
                }
                1 => self.line(pid, &format!("Connection closed by {ip} port {port} [preauth]")),
                2 => {
                    self.line(pid, "error: kex_exchange_identification: client sent invalid protocol identifier \"GET / HTTP/1.1\"");
                    self.line(pid, &format!("banner exchange: Connection from {ip} port {port}: invalid format"));
                }
                _ => self.line(pid, &format!("Unable to negotiate with {ip} port {port}: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]")),
            },
            // a client offering too many keys
            70..=72 => {
                for _ in 0..6 {
                    self.line(pid, &format!("Failed publickey for root from {ip} port {port} ssh2: RSA SHA256:Qn3kPqWm9x1a2b3c4d5e6f7g8h9i0jKlMnOpQrStUv"));
                }
                self.line(pid, &format!("error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]"));
                self.line(pid, &format!("Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]"));
            }
            // legitimate logins
            73..=84 => {
                self.line(pid, &format!("Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 SHA256:x8Zq1Lw2Tb9Yc0Vn3Mk4Hj5Gf6Dd7Ss8Aa9Pp0Oo1Ii"));
                self.line(pid, "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)");
                self.other("systemd-logind[512]", "New session 42 of user deploy.");
                self.line(pid, &format!("Received disconnect from {ip} port {port}:11: disconnected by user"));
                self.line(pid, &format!("Disconnected from user deploy {ip} port {port}"));
                self.line(pid, "pam_unix(sshd:session): session closed for user deploy");
            }
            // unrelated auth.log noise
            _ => {
                self.other("CRON[2211]", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)");
                self.other("CRON[2211]", "pam_unix(cron:session): session closed for user root");
                self.other("sudo[3001]", "   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl status nginx");
            }
        }
    }
}

fn main() {
    let lines: usize =
        std::env::var("WARDEN_BENCH_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let mut g =
        Gen { rng: Rng(0x9e37_79b9_7f4a_7c15), out: Vec::with_capacity(lines + 16), secs: 0, pid: 1000 };
    while g.out.len() < lines {
        g.session();
    }
    g.out.truncate(lines);
    if let Ok(path) = std::env::var("WARDEN_BENCH_WRITE") {
        let mut text = g.out.join("\n");
        text.push('\n');
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        eprintln!("wrote {lines} lines to {path}");
    }
    let bytes: usize = g.out.iter().map(|l| l.len() + 1).sum();

    let mut params = BTreeMap::new();
    if let Ok(mode) = std::env::var("WARDEN_BENCH_MODE") {
        params.insert("mode".to_string(), mode);
    }
    let filter = Registry::shipped().load("sshd", &params).unwrap_or_else(|e| panic!("{e}"));
    let reference = Timestamp::from_secs(1_795_363_200); // 2026-11-22T00:00:00Z

    let mut best = f64::MAX;
    let mut best_cpu = f64::MAX;
    let (mut counted, mut matched) = (0usize, 0usize);
    for _ in 0..5 {
        let mut state = MatchState::new(reference);
        let (mut c, mut m) = (0, 0);
        let cpu_start = thread_cpu_ns();
        let start = Instant::now();
        for line in &g.out {
            if let Outcome::Match(hit) = filter.process(&mut state, black_box(line), None) {
                m += 1;
                c += usize::from(hit.counted);
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu_ns()) {
            best_cpu = best_cpu.min((b - a) as f64 / 1e9);
        }
        (counted, matched) = (c, m);
    }
    println!(
        "sshd filter: {lines} lines ({:.1} MB) in {:.1} ms: {:.0} lines/s ({:.0} ns/line); {matched} matched, {counted} counted failures",
        bytes as f64 / 1e6,
        best * 1e3,
        lines as f64 / best,
        best * 1e9 / lines as f64,
    );
    if best_cpu < f64::MAX {
        // On a shared machine wall time includes waiting for a core; the
        // thread's own CPU time does not.
        println!(
            "  on-CPU time: {:.1} ms: {:.0} lines/s ({:.0} ns/line)",
            best_cpu * 1e3,
            lines as f64 / best_cpu,
            best_cpu * 1e9 / lines as f64
        );
    }
}

/// Nanoseconds this thread has run on a CPU (Linux schedstat), if available.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
