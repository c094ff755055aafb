//! warden's firewall proven with real packets, in network namespaces the
//! tests create and remove: a "server" namespace stands in for the host
//! (iptables-nft rules and ipsets live there), "attacker" and "bystander"
//! namespaces reach it over veth pairs, and for the DOCKER-USER path a
//! "container" namespace sits behind a DNAT, as Docker sets it up.
//!
//! Addresses are the tests' own, inside their own namespaces:
//! attacker 10.231.1.2 (and .3) — server 10.231.1.1 / 10.231.2.1 — bystander
//! 10.231.2.2; container 10.231.3.2 behind server 10.231.3.1.
//!
//! Root required; skipped with a reason elsewhere, never skipped with CI=true.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netns::TestNetns;
use topology::{exec, ip, iptables_state, link};
use warden::core::{Action, BanPrefix, PortRange, Protocol, Target};
use warden::firewall::backend::{self, Backend};
use warden::firewall::chains::Chains;
use warden::firewall::exec::Runner;
use warden::firewall::guard::{self, BanFloor, BanRefused};
use warden::firewall::ipset::{EntryTimeout, IpsetHandle};
use warden::firewall::rules::{JailRules, Ruleset};
use warden::firewall::sets;

const SERVER_A: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 1);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 2);
const ATTACKER_2: Ipv4Addr = Ipv4Addr::new(10, 231, 1, 3);
const SERVER_B: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 1);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(10, 231, 2, 2);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 231, 3, 2);

const HOST_PORT: u16 = 9000;
const PUBLISHED_PORT: u16 = 8080;
const CONTAINER_PORT: u16 = 80;

/// Long enough for a local connect on a busy machine; a dropped SYN costs this much.
const DROPPED_AFTER: Duration = Duration::from_millis(400);
const PASSES_WITHIN: Duration = Duration::from_secs(3);

struct Lab {
    server: TestNetns,
    attacker: TestNetns,
    bystander: TestNetns,
    stop: Arc<AtomicBool>,
}

impl Lab {
    /// The three namespaces, linked, with a listener on the server's
    /// `HOST_PORT` answering `H`; `None` if the test must skip.
    fn new(tag: &str) -> Option<Lab> {
        let server = TestNetns::create(&format!("{tag}-srv"))?;
        let attacker = TestNetns::create(&format!("{tag}-att"))?;
        let bystander = TestNetns::create(&format!("{tag}-bys"))?;
        ip(&["-n", server.name(), "link", "set", "lo", "up"]);
        link(&server, &attacker, "v-att", SERVER_A, &[ATTACKER, ATTACKER_2]);
        link(&server, &bystander, "v-bys", SERVER_B, &[BYSTANDER]);
        let lab = Lab { server, attacker, bystander, stop: Arc::new(AtomicBool::new(false)) };
        lab.serve(&lab.server, HOST_PORT, b'H');
        // The links come up asynchronously: wait until both clients get through.
        for (client, src) in [(&lab.attacker, ATTACKER), (&lab.bystander, BYSTANDER)] {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match connect(client, Some(src), SERVER_A, HOST_PORT, Duration::from_millis(200)) {
                    Ok(b'H') => break,
                    other if Instant::now() > deadline => panic!("{src} never reached the server: {other:?}"),
                    _ => {}
                }
            }
        }
        Some(lab)
    }

    /// A TCP listener in `ns` on `port` that writes `byte` to each client.
    fn serve(&self, ns: &TestNetns, port: u16, byte: u8) {
        let listener = ns.run(|| TcpListener::bind(("0.0.0.0", port)).expect("bind listener"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::clone(&self.stop);
        ns.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd; the timeout only bounds how late we see `stop`.
                unsafe { libc::poll(&mut pfd, 1, 50) };
                if let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.write_all(&[byte]);
                }
            }
        });
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP connect from `src` (inside `ns`) to `dst:port` that reads the
/// server's one-byte greeting: the byte, or why it failed.
fn connect(
    ns: &TestNetns,
    src: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> io::Result<u8> {
    ns.run(|| connect_here(src, SocketAddrV4::new(dst, port), timeout))
}

fn connect_here(src: Option<Ipv4Addr>, dst: SocketAddrV4, timeout: Duration) -> io::Result<u8> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on an fd we own (TcpStream closes it).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stream = TcpStream::from_raw_fd(fd);
        if let Some(src) = src {
            let sa = sockaddr(SocketAddrV4::new(src, 0));
            if libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let sa = sockaddr(dst);
        if libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), len) != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        if libc::poll(&mut pfd, 1, timeout.as_millis() as i32) == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
        if let Some(err) = stream.take_error()? {
            return Err(err);
        }
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut byte = [0u8];
        stream.read_exact(&mut byte)?;
        Ok(byte[0])
    }
}

fn assert_dropped(result: io::Result<u8>, who: &str) {
    match result {
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
        other => panic!("{who} should have been dropped (connect timing out), got {other:?}"),
    }
}

fn assert_refused(result: io::Result<u8>, who: &str) {
    match result {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!("{who} should have been rejected (connection refused), got {other:?}"),
    }
}

fn ports(list: &[u16]) -> Vec<PortRange> {
    list.iter().map(|&p| PortRange { first: p, last: p }).collect()
}

fn host_jail(name: &str) -> JailRules {
    JailRules {
        ports: ports(&[HOST_PORT]),
        protocol: Protocol::Tcp,
        target: Target::Host,
        action: Action::Drop,
        ..JailRules::new(name)
    }
}

fn chains() -> Chains {
    Chains::new(Runner::new(), Backend::Nft)
}

/// Sets up sets and chains for `ruleset`, as the daemon does on startup.
fn install(handle: &mut IpsetHandle, ruleset: &Ruleset) -> Vec<String> {
    sets::ensure_sets(handle, ruleset).expect("ensure sets");
    chains().apply(ruleset).expect("apply chains")
}

fn one_hour() -> EntryTimeout {
    EntryTimeout::after(Duration::from_secs(3600))
}

#[test]
fn host_ban_drops_the_attacker_spares_the_bystander_and_cleanup_restores_everything() {
    let Some(lab) = Lab::new("host") else { return };
    // The "host" has rules and a set of its own, which warden must leave alone.
    exec(&lab.server, "iptables-nft", &["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"]);
    exec(&lab.server, "iptables-nft", &["-N", "HOST-OWN"]);
    exec(&lab.server, "iptables-nft", &["-A", "HOST-OWN", "-j", "RETURN"]);
    exec(&lab.server, "ip6tables-nft", &["-A", "INPUT", "-p", "ipv6-icmp", "-j", "ACCEPT"]);
    exec(&lab.server, "ipset", &["create", "host-own", "hash:ip"]);
    let before = iptables_state(&lab.server);

    lab.server.run(|| {
        let detection = backend::detect(&Runner::new(), None);
        assert_eq!(detection.backend, Backend::Nft, "{detection}");

        let mut handle = IpsetHandle::open().unwrap();
        let sets_before = handle.set_names().unwrap();
        let jail = host_jail("sshd");
        let ruleset = Ruleset { allowlist: vec![], jails: vec![jail.clone()] };
        let changes = install(&mut handle, &ruleset);
        assert!(changes.iter().any(|c| c.contains("DOCKER-USER created")), "{changes:?}");
        assert_eq!(install(&mut handle, &ruleset), Vec::<String>::new(), "re-applying changes nothing");

        // The guard knows the host's own addresses.
        let own = guard::own_addresses().unwrap();
        assert!(own.contains(&IpAddr::V4(SERVER_A)) && own.contains(&IpAddr::V4(SERVER_B)), "{own:?}");
        let refused = guard::check_ban_target(IpNet::from(IpAddr::V4(SERVER_A)), BanFloor::default(), &own);
        assert!(matches!(refused, Err(BanRefused::OwnAddress { .. })), "{refused:?}");
        let attacker = IpNet::from(IpAddr::V4(ATTACKER));
        guard::check_ban_target(attacker, BanFloor::default(), &own).unwrap();

        handle.add(&jail.set_v4, attacker, one_hour()).unwrap();
        assert_dropped(
            connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, DROPPED_AFTER),
            "attacker",
        );
        let bystander = connect(&lab.bystander, Some(BYSTANDER), SERVER_B, HOST_PORT, PASSES_WITHIN);
        assert_eq!(bystander.unwrap(), b'H', "bystander");

        // Someone deletes warden's jump: the periodic check restores it, first in INPUT.
        exec(&lab.server, "iptables-nft", &["-D", "INPUT", "-j", "WARDEN-HOST"]);
        exec(&lab.server, "iptables-nft", &["-I", "INPUT", "1", "-p", "tcp", "-j", "ACCEPT"]);
        assert_eq!(connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, PASSES_WITHIN).unwrap(), b'H');
        let repairs = chains().check_jumps(&ruleset).unwrap();
        assert_eq!(repairs, ["iptables: jump INPUT -> WARDEN-HOST inserted at position 1"]);
        assert_dropped(
            connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, DROPPED_AFTER),
            "attacker",
        );
        exec(&lab.server, "iptables-nft", &["-D", "INPUT", "-p", "tcp", "-j", "ACCEPT"]);

        assert!(handle.del(&jail.set_v4, attacker).unwrap());
        assert_eq!(connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, PASSES_WITHIN).unwrap(), b'H');

        let removed = chains().cleanup().unwrap();
        assert!(removed.iter().any(|c| c.contains("DOCKER-USER deleted")), "{removed:?}");
        let destroyed = sets::destroy_sets(&mut handle).unwrap();
        assert_eq!(destroyed.len(), 4, "{destroyed:?}");
        assert_eq!(handle.set_names().unwrap(), sets_before);
        assert_eq!(chains().cleanup().unwrap(), Vec::<String>::new(), "a second cleanup finds nothing");
    });
    assert_eq!(iptables_state(&lab.server), before, "cleanup leaves the tables as they were");
}

#[test]
fn subnet_bans_reject_the_whole_range_but_never_the_allowlist() {
    let Some(lab) = Lab::new("net") else { return };
    lab.server.run(|| {
        let mut handle = IpsetHandle::open().unwrap();
        let jail = JailRules {
            ban_prefix: BanPrefix { v4: 24, v6: 64 },
            action: Action::Reject,
            ..host_jail("net")
        };
        let allowlist: Vec<IpNet> = vec!["10.231.1.3/32".parse().unwrap(), "10.231.2.2/32".parse().unwrap()];
        let ruleset = Ruleset { allowlist, jails: vec![jail.clone()] };
        install(&mut handle, &ruleset);

        handle.add(&jail.set_v4, "10.231.1.0/24".parse::<IpNet>().unwrap(), one_hour()).unwrap();
        // An allowlisted address is let through even when the jail's set holds it.
        handle.add(&jail.set_v4, IpNet::from(IpAddr::V4(BYSTANDER)), one_hour()).unwrap();
        assert!(handle.test(&jail.set_v4, IpAddr::V4(ATTACKER_2)).unwrap());

        assert_refused(
            connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, PASSES_WITHIN),
            "attacker",
        );
        assert_eq!(
            connect(&lab.attacker, Some(ATTACKER_2), SERVER_A, HOST_PORT, PASSES_WITHIN).unwrap(),
            b'H'
        );
        assert_eq!(
            connect(&lab.bystander, Some(BYSTANDER), SERVER_B, HOST_PORT, PASSES_WITHIN).unwrap(),
            b'H'
        );

        // Without the allowlist entry, the second address of the /24 is banned too.
        let narrower = Ruleset { allowlist: vec!["10.231.2.2/32".parse().unwrap()], ..ruleset };
        install(&mut handle, &narrower);
        assert_refused(
            connect(&lab.attacker, Some(ATTACKER_2), SERVER_A, HOST_PORT, PASSES_WITHIN),
            "attacker 2",
        );
        assert_eq!(
            connect(&lab.bystander, Some(BYSTANDER), SERVER_B, HOST_PORT, PASSES_WITHIN).unwrap(),
            b'H'
        );
    });
}

#[test]
fn docker_user_bans_match_the_published_port_before_dnat() {
    let Some(lab) = Lab::new("dock") else { return };
    let Some(container) = TestNetns::create("dock-ctr") else { return };
    link(&lab.server, &container, "v-ctr", Ipv4Addr::new(10, 231, 3, 1), &[CONTAINER]);
    lab.serve(&container, CONTAINER_PORT, b'C');
    // Docker's part: forwarding on, DNAT of the published port, FORWARD through DOCKER-USER.
    exec(&lab.server, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let dnat_to = format!("{CONTAINER}:{CONTAINER_PORT}");
    let published = PUBLISHED_PORT.to_string();
    exec(
        &lab.server,
        "iptables-nft",
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "--dport",
            &published,
            "-j",
            "DNAT",
            "--to-destination",
            &dnat_to,
        ],
    );
    exec(&lab.server, "iptables-nft", &["-N", "DOCKER-USER"]);
    exec(&lab.server, "iptables-nft", &["-A", "DOCKER-USER", "-j", "RETURN"]);
    exec(&lab.server, "iptables-nft", &["-A", "FORWARD", "-j", "DOCKER-USER"]);
    let reach = |ns: &TestNetns, src, port, timeout| connect(ns, Some(src), SERVER_A, port, timeout);
    let deadline = Instant::now() + Duration::from_secs(5);
    while reach(&lab.bystander, BYSTANDER, PUBLISHED_PORT, Duration::from_millis(200)).ok() != Some(b'C') {
        assert!(Instant::now() < deadline, "the published port never reached the container");
    }

    lab.server.run(|| {
        let mut handle = IpsetHandle::open().unwrap();
        let jail = JailRules { target: Target::Docker, ports: ports(&[PUBLISHED_PORT]), ..host_jail("web") };
        let ruleset = Ruleset { allowlist: vec![], jails: vec![jail.clone()] };
        let changes = install(&mut handle, &ruleset);
        assert!(
            !changes.iter().any(|c| c.starts_with("iptables: chain DOCKER-USER created")),
            "Docker's v4 chain is kept: {changes:?}"
        );
        let docker_user = exec(&lab.server, "iptables-nft", &["-S", "DOCKER-USER"]);
        assert_eq!(
            docker_user,
            "-N DOCKER-USER\n-A DOCKER-USER -j WARDEN-DOCKER\n-A DOCKER-USER -j RETURN\n"
        );

        assert_eq!(reach(&lab.attacker, ATTACKER, PUBLISHED_PORT, PASSES_WITHIN).unwrap(), b'C');
        handle.add(&jail.set_v4, IpAddr::V4(ATTACKER), one_hour()).unwrap();
        assert_dropped(reach(&lab.attacker, ATTACKER, PUBLISHED_PORT, DROPPED_AFTER), "attacker");
        assert_eq!(reach(&lab.bystander, BYSTANDER, PUBLISHED_PORT, PASSES_WITHIN).unwrap(), b'C');
        // A docker-target jail leaves the host's own services alone.
        assert_eq!(reach(&lab.attacker, ATTACKER, HOST_PORT, PASSES_WITHIN).unwrap(), b'H');
        handle.del(&jail.set_v4, IpAddr::V4(ATTACKER)).unwrap();
        assert_eq!(reach(&lab.attacker, ATTACKER, PUBLISHED_PORT, PASSES_WITHIN).unwrap(), b'C');

        chains().cleanup().unwrap();
        let docker_user = exec(&lab.server, "iptables-nft", &["-S", "DOCKER-USER"]);
        assert_eq!(docker_user, "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n", "Docker's chain stays");
    });
}

#[test]
fn a_restart_rebuilds_from_the_desired_bans_without_letting_the_attacker_through() {
    let Some(lab) = Lab::new("restart") else { return };
    let jail = host_jail("restart");
    let ruleset = Ruleset { allowlist: vec![], jails: vec![jail.clone()] };
    let stale: IpNet = "10.231.9.9/32".parse().unwrap();
    let kept: IpNet = "10.231.1.77/32".parse().unwrap();
    lab.server.run(|| {
        let mut handle = IpsetHandle::open().unwrap();
        install(&mut handle, &ruleset);
        for net in [IpNet::from(IpAddr::V4(ATTACKER)), stale] {
            handle.add(&jail.set_v4, net, one_hour()).unwrap();
        }
    });

    // The prober connects from the attacker continuously, counting attempts and successes.
    let attempts = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (attempts, successes, stop) = (Arc::clone(&attempts), Arc::clone(&successes), Arc::clone(&stop));
        lab.attacker.spawn(move || {
            let server = SocketAddrV4::new(SERVER_A, HOST_PORT);
            while !stop.load(Ordering::Relaxed) {
                if connect_here(Some(ATTACKER), server, Duration::from_millis(20)).is_ok() {
                    successes.fetch_add(1, Ordering::Relaxed);
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let wait_for_attempts = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while attempts.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the prober stalled");
            std::thread::yield_now();
        }
    };
    wait_for_attempts(2);

    // Restart three times: a fresh handle and runner each, rebuilt from the desired list only.
    let desired = [(IpNet::from(IpAddr::V4(ATTACKER)), one_hour()), (kept, one_hour())];
    let started_at = attempts.load(Ordering::Relaxed);
    for _ in 0..3 {
        lab.server.run(|| {
            let mut handle = IpsetHandle::open().unwrap();
            sets::ensure_sets(&mut handle, &ruleset).unwrap();
            let done = sets::reconcile(&mut handle, &jail, &desired).unwrap();
            assert_eq!((done.v4, done.v6), (2, 0));
            assert_eq!(chains().apply(&ruleset).unwrap(), Vec::<String>::new(), "the chains were intact");
        });
    }
    wait_for_attempts(attempts.load(Ordering::Relaxed) + 2);
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    let probes = attempts.load(Ordering::Relaxed) - started_at;
    assert!(probes >= 2, "the prober ran across the restarts ({probes} probes)");
    assert_eq!(successes.load(Ordering::Relaxed), 0, "the attacker got through during a restart");

    lab.server.run(|| {
        let mut handle = IpsetHandle::open().unwrap();
        let mut listed: Vec<IpNet> =
            handle.list(&jail.set_v4).unwrap().entries.iter().map(|e| e.net).collect();
        listed.sort();
        let mut expected = vec![IpNet::from(IpAddr::V4(ATTACKER)), kept];
        expected.sort();
        assert_eq!(listed, expected, "the stale entry is gone, the desired ones are there");
        assert!(!handle.exists("warden.swap-v4").unwrap(), "no scratch set is left behind");
        // The prober could get through: the ban, not a broken path, kept it out.
        handle.del(&jail.set_v4, IpAddr::V4(ATTACKER)).unwrap();
    });
    let back = connect(&lab.attacker, Some(ATTACKER), SERVER_A, HOST_PORT, PASSES_WITHIN);
    assert_eq!(back.unwrap(), b'H');
}
