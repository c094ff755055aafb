//! The packet lab of the namespace tests that prove bans with real packets:
//! a "server" namespace stands in for the host (iptables-nft rules, ipsets
//! and the connection tracker live there), and "attacker" and "bystander"
//! namespaces reach it over veth. The server runs an echo listener on
//! [`PORT`] (IPv4) and [`PORT6`] (IPv6).
//!
//! The server has a host firewall of its own, as hosts do: `INPUT` accepts
//! `ESTABLISHED` traffic first. warden's jump goes above it, which is why an
//! open connection stops at the ban. (That rule also switches the connection
//! tracker on in the namespace; without a rule needing it, a fresh
//! namespace tracks nothing.)
//!
//! Addresses are the tests' own, inside their own namespaces: attacker
//! 10.232.1.2 — server 10.232.1.1 / 10.232.2.1 — bystander 10.232.2.2. The
//! attacker also holds [`NEIGHBOUR_A`] and [`NEIGHBOUR_B`], two addresses of
//! 10.232.3.0/24, a /24 holding no server address, for subnet bans.
//!
//! Used together with `netns.rs` and `topology.rs` (as modules `netns` and
//! `topology`).

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use warden::firewall::conntrack::ConntrackHandle;
use warden::firewall::ipset::{Family, IpsetHandle};

use crate::netns;
use crate::netns::TestNetns;
use crate::topology::{exec, ip, iptables_state, link};

pub const SERVER_A: Ipv4Addr = Ipv4Addr::new(10, 232, 1, 1);
pub const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 232, 1, 2);
pub const SERVER_B: Ipv4Addr = Ipv4Addr::new(10, 232, 2, 1);
pub const BYSTANDER: Ipv4Addr = Ipv4Addr::new(10, 232, 2, 2);
/// Two more addresses of the attacker, in a /24 of their own.
pub const NEIGHBOUR_A: Ipv4Addr = Ipv4Addr::new(10, 232, 3, 2);
pub const NEIGHBOUR_B: Ipv4Addr = Ipv4Addr::new(10, 232, 3, 3);
pub const NEIGHBOURS: &str = "10.232.3.0/24";
pub const PORT: u16 = 9100;
/// IPv6 twins of the attacker link (on-link /64, no duplicate address
/// detection so they work at once) and the port their echo listens on.
pub const SERVER_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x232, 1, 0, 0, 0, 0, 1);
pub const ATTACKER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x232, 1, 0, 0, 0, 0, 2);
pub const PORT6: u16 = 9101;

/// How long an echo may take on a busy machine; a dropped one costs this much.
pub const ECHO_WITHIN: Duration = Duration::from_secs(2);
/// How long a dropped connection or connect attempt is watched for silence.
pub const SILENT_FOR: Duration = Duration::from_millis(500);

pub struct Lab {
    pub server: TestNetns,
    pub attacker: TestNetns,
    pub bystander: TestNetns,
    stop: Arc<AtomicBool>,
}

impl Lab {
    /// Three linked namespaces, an echo server on the server's `PORT`, and
    /// the host firewall's `ESTABLISHED` accept; `None` if the test must skip.
    pub fn new(tag: &str) -> Option<Lab> {
        let server = TestNetns::create(&format!("{tag}-srv"))?;
        let attacker = TestNetns::create(&format!("{tag}-att"))?;
        let bystander = TestNetns::create(&format!("{tag}-bys"))?;
        ip(&["-n", server.name(), "link", "set", "lo", "up"]);
        link(&server, &attacker, "v-att", SERVER_A, &[ATTACKER, NEIGHBOUR_A, NEIGHBOUR_B]);
        link(&server, &bystander, "v-bys", SERVER_B, &[BYSTANDER]);
        ip(&["-n", server.name(), "route", "add", NEIGHBOURS, "dev", "v-att"]);
        ip(&["-n", server.name(), "addr", "add", &format!("{SERVER_A6}/64"), "dev", "v-att", "nodad"]);
        ip(&["-n", attacker.name(), "addr", "add", &format!("{ATTACKER6}/64"), "dev", "eth0", "nodad"]);
        for iptables in ["iptables-nft", "ip6tables-nft"] {
            exec(
                &server,
                iptables,
                &["-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
            );
        }
        let lab = Lab { server, attacker, bystander, stop: Arc::new(AtomicBool::new(false)) };
        lab.serve_echo(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)));
        lab.serve_echo(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT6)));
        Some(lab)
    }

    /// Echoes every byte each client sends, one thread per client.
    fn serve_echo(&self, addr: SocketAddr) {
        let listener = self.server.run(|| TcpListener::bind(addr).expect("bind listener"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::clone(&self.stop);
        self.server.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd; the timeout only bounds how late we see `stop`.
                unsafe { libc::poll(&mut pfd, 1, 50) };
                if let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nonblocking(false).unwrap();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64];
                        while let Ok(n @ 1..) = stream.read(&mut buf) {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
    }

    /// A connection from `ns` to `server` (on `PORT`, or `PORT6` for
    /// IPv6), retried until the links are up (or a ban is lifted).
    pub fn open(&self, ns: &TestNetns, server: impl Into<IpAddr>) -> TcpStream {
        let server = server.into();
        wait_until(&format!("{} reaches {server}", ns.name()), Duration::from_secs(5), || {
            connect(ns, None, server, Duration::from_millis(300))
        })
    }

    /// Everything `iptables-save`/`ip6tables-save` show in the server
    /// namespace (counters dropped), and every set with its entries.
    pub fn kernel_state(&self) -> String {
        let mut state = iptables_state(&self.server);
        self.server.run(|| {
            let mut h = IpsetHandle::open().unwrap();
            let mut names = h.set_names().unwrap();
            names.sort();
            for name in names {
                let mut entries: Vec<IpNet> = h.list(&name).unwrap().entries.iter().map(|e| e.net).collect();
                entries.sort();
                state += &format!("set {name}: {entries:?}\n");
            }
        });
        state
    }

    /// The server's conntrack entries whose original source is `src`, as
    /// warden sees them.
    pub fn tracked_from(&self, src: impl Into<IpAddr>) -> usize {
        let src = src.into();
        let family = if src.is_ipv4() { Family::V4 } else { Family::V6 };
        self.server.run(|| {
            let mut ct = ConntrackHandle::open().unwrap();
            ct.entries(family).unwrap().iter().filter(|e| e.src == src).count()
        })
    }

    /// The same count as `conntrack -L` shows it, if the tool is installed.
    pub fn conntrack_tool_count(&self, src: impl Into<IpAddr>) -> Option<usize> {
        let src = src.into();
        if !netns::have_program("conntrack") {
            eprintln!("note: conntrack is not installed; checking with warden's own dump only");
            return None;
        }
        let family = if src.is_ipv4() { "ipv4" } else { "ipv6" };
        let listing = exec(&self.server, "conntrack", &["-L", "-f", family, "-s", &src.to_string()]);
        Some(listing.lines().filter(|l| l.contains(&format!("src={src} "))).count())
    }

    /// Open connections from the attacker and the bystander, both passing
    /// data, the attacker's with its conntrack entry in place.
    pub fn connected(&self) -> (TcpStream, TcpStream) {
        let mut attacker = self.open(&self.attacker, SERVER_A);
        let mut bystander = self.open(&self.bystander, SERVER_B);
        echo(&mut attacker, ECHO_WITHIN).expect("the attacker's connection echoes before the ban");
        echo(&mut bystander, ECHO_WITHIN).expect("the bystander's connection echoes");
        assert_eq!(self.tracked_from(ATTACKER), 1, "the attacker's connection is tracked");
        if let Some(n) = self.conntrack_tool_count(ATTACKER) {
            assert_eq!(n, 1, "conntrack -L sees the attacker's connection");
        }
        (attacker, bystander)
    }

    /// Connects from `ns` to `server` on `PORT` over and over, counting the
    /// attempts and the connections that got through, until stopped.
    pub fn probe(&self, ns: &TestNetns, server: Ipv4Addr) -> Prober {
        let attempts = Arc::new(AtomicUsize::new(0));
        let successes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (attempts, successes, stop) =
                (Arc::clone(&attempts), Arc::clone(&successes), Arc::clone(&stop));
            ns.spawn(move || {
                let server = SocketAddr::from((server, PORT));
                while !stop.load(Ordering::Relaxed) {
                    if TcpStream::connect_timeout(&server, Duration::from_millis(20)).is_ok() {
                        successes.fetch_add(1, Ordering::Relaxed);
                    }
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Prober { attempts, successes, stop, thread: Some(thread) }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A running [`Lab::probe`]; stops when dropped.
pub struct Prober {
    attempts: Arc<AtomicUsize>,
    successes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Waits until the prober has made `n` more attempts, so that it is
    /// known to have probed across whatever happened before.
    pub fn wait_for_more(&self, n: usize) {
        let target = self.attempts() + n;
        wait_until("the prober makes its next attempts", Duration::from_secs(5), || {
            let made = self.attempts();
            if made >= target { Ok(()) } else { Err(format!("{made} of {target} attempts")) }
        });
    }

    /// Stops probing; returns the attempts made and how many got through.
    pub fn stop(mut self) -> (usize, usize) {
        self.halt();
        (self.attempts(), self.successes.load(Ordering::Relaxed))
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the prober thread");
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One TCP connect from `ns` (from address `src`, or the one routing picks)
/// to `server` on `PORT` (`PORT6` for IPv6), given up after `within`.
pub fn connect(
    ns: &TestNetns,
    src: Option<IpAddr>,
    server: IpAddr,
    within: Duration,
) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((server, if server.is_ipv6() { PORT6 } else { PORT }));
    ns.run(|| {
        let Some(src) = src else { return TcpStream::connect_timeout(&addr, within) };
        // std cannot bind before connecting; tokio's socket can.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let socket = if server.is_ipv6() {
                tokio::net::TcpSocket::new_v6()?
            } else {
                tokio::net::TcpSocket::new_v4()?
            };
            socket.bind(SocketAddr::from((src, 0)))?;
            let stream = tokio::time::timeout(within, socket.connect(addr))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            Ok(stream)
        })
    })
}

/// Asserts that a connect from `ns` (from `src`, if given) to `server` is
/// dropped: no answer at all, as warden's DROP rule gives.
pub fn assert_dropped(ns: &TestNetns, src: Option<IpAddr>, server: IpAddr, who: &str) {
    match connect(ns, src, server, SILENT_FOR) {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => panic!("{who}'s connect to {server} should have been dropped, got {other:?}"),
    }
}

/// Sends one byte and waits for its echo.
pub fn echo(stream: &mut TcpStream, within: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(within))?;
    stream.write_all(b"x")?;
    let mut byte = [0u8];
    stream.read_exact(&mut byte)
}

pub fn assert_silent(stream: &mut TcpStream, who: &str) {
    match echo(stream, SILENT_FOR) {
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
        other => panic!("{who}'s open connection should have stopped passing data, got {other:?}"),
    }
}

/// Calls `check` every 20 ms until it succeeds; panics naming `what` and
/// the last failure if `within` passes first.
pub fn wait_until<T, E: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("gave up after {within:?} waiting until {what}; last: {last:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
