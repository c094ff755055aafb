//! The [`Enforcer`] proven with real packets and the real kernel, in the
//! namespace lab of `support/lab.rs`: a "server" namespace standing in for
//! the host, with "attacker" and "bystander" namespaces reaching it over
//! veth, and the host's own `ESTABLISHED` accept below warden's jump.
//!
//! Root required; skipped with a reason elsewhere, never skipped with CI=true.

#[path = "support/lab.rs"]
mod lab;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lab::{ATTACKER, ATTACKER6, ECHO_WITHIN, Lab, PORT, PORT6, SERVER_A, SERVER_A6, assert_silent, echo};
use netns::TestNetns;
use topology::exec;
use warden::core::{Ban, BanOrigin, BanPrefix, PortRange, Protocol, Target, Timestamp};
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{ConntrackOutcome, EnforceError, Enforcer, EnforcerConfig};
use warden::firewall::ipset::{EntryTimeout, IpsetHandle, MAX_TIMEOUT_SECS};
use warden::firewall::rules::JailRules;
use warden::store::Store;

/// A fixed "now": bans carry absolute times, the kernel only their remainder.
const NOW: Timestamp = Timestamp::from_secs(2_000_000_000);
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn host_jail(name: &str) -> JailRules {
    JailRules {
        ports: vec![PortRange { first: PORT, last: PORT }, PortRange { first: PORT6, last: PORT6 }],
        protocol: Protocol::Tcp,
        target: Target::Host,
        ..JailRules::new(name)
    }
}

fn config() -> EnforcerConfig {
    EnforcerConfig { backend: Some(Backend::Nft), ..EnforcerConfig::default() }
}

fn ban(net: impl Into<IpNet>, jail: &str, until: Option<Timestamp>) -> Ban {
    Ban { net: net.into(), jail: jail.into(), origin: BanOrigin::Jail, at: NOW, until, count: 1, failures: 5 }
}

fn in_hours(h: i64) -> Option<Timestamp> {
    Some(Timestamp::from_secs(NOW.as_secs() + h * HOUR))
}

#[test]
fn an_open_connection_stops_at_the_ban_and_its_conntrack_entries_are_deleted() {
    let Some(lab) = Lab::new("ct") else { return };
    let (mut attacker, mut bystander) = lab.connected();

    let outcome = lab.server.run(|| {
        let mut enforcer = Enforcer::new(config(), vec![host_jail("ct")], vec![]);
        enforcer.start(&[], NOW).unwrap();
        enforcer.ban(&ban(IpAddr::V4(ATTACKER), "ct", in_hours(1)), NOW).unwrap()
    });
    assert!(matches!(outcome.conntrack, ConntrackOutcome::Deleted(1)), "{:?}", outcome.conntrack);

    assert_silent(&mut attacker, "the attacker");
    echo(&mut bystander, ECHO_WITHIN).expect("the bystander's connection still echoes");
    assert_eq!(lab.tracked_from(ATTACKER), 0, "the attacker's conntrack entries are gone");
    if let Some(n) = lab.conntrack_tool_count(ATTACKER) {
        assert_eq!(n, 0, "conntrack -L finds none either");
    }
}

#[test]
fn an_open_ipv6_connection_stops_at_the_ban_and_its_conntrack_entries_are_deleted() {
    let Some(lab) = Lab::new("ct6") else { return };
    let mut attacker = lab.open(&lab.attacker, SERVER_A6);
    echo(&mut attacker, ECHO_WITHIN).expect("the attacker's IPv6 connection echoes before the ban");
    assert_eq!(lab.tracked_from(ATTACKER6), 1, "the attacker's IPv6 connection is tracked");
    if let Some(n) = lab.conntrack_tool_count(ATTACKER6) {
        assert_eq!(n, 1, "conntrack -L sees it");
    }

    let outcome = lab.server.run(|| {
        let jail = JailRules { ban_prefix: BanPrefix { v4: 32, v6: 64 }, ..host_jail("ct6") };
        let mut enforcer = Enforcer::new(config(), vec![jail], vec![]);
        enforcer.start(&[], NOW).unwrap();
        // The attacker's /64, as a ban_prefix of 64 bans it.
        let net: IpNet = "fd00:232:1::/64".parse().unwrap();
        let err = enforcer.ban(&ban(net, "ct6", in_hours(1)), NOW).unwrap_err();
        assert!(err.to_string().contains("an address of this host"), "the server's own /64: {err}");
        enforcer.ban(&ban(IpAddr::V6(ATTACKER6), "ct6", in_hours(1)), NOW).unwrap()
    });
    assert!(matches!(outcome.conntrack, ConntrackOutcome::Deleted(1)), "{:?}", outcome.conntrack);
    assert_silent(&mut attacker, "the IPv6 attacker");
    assert_eq!(lab.tracked_from(ATTACKER6), 0, "the attacker's IPv6 conntrack entries are gone");
    if let Some(n) = lab.conntrack_tool_count(ATTACKER6) {
        assert_eq!(n, 0, "conntrack -L finds none either");
    }
}

/// During a burst, bans queue their conntrack deletions and one walk of the
/// table serves them all; the rules stop the flow meanwhile.
#[test]
fn conntrack_deletions_in_a_burst_wait_for_one_walk() {
    let Some(lab) = Lab::new("burst") else { return };
    let (mut attacker, _bystander) = lab.connected();
    let mut enforcer = lab.server.run(|| {
        // An interval no test outlasts: every walk after the first is explicit.
        let config = EnforcerConfig { conntrack_interval: Duration::from_secs(3600), ..config() };
        let mut enforcer = Enforcer::new(config, vec![host_jail("burst")], vec![]);
        enforcer.start(&[], NOW).unwrap();
        let first = enforcer.ban(&ban("10.232.1.99".parse::<IpAddr>().unwrap(), "burst", in_hours(1)), NOW);
        assert!(
            matches!(first.unwrap().conntrack, ConntrackOutcome::Deleted(0)),
            "the first ban walks at once"
        );
        let second = enforcer.ban(&ban(IpAddr::V4(ATTACKER), "burst", in_hours(1)), NOW).unwrap();
        assert!(matches!(second.conntrack, ConntrackOutcome::Pending), "{:?}", second.conntrack);
        enforcer
    });
    assert_silent(&mut attacker, "the attacker");
    assert_eq!(lab.tracked_from(ATTACKER), 1, "the deletion waits for the next walk");
    // The queued walk is due an interval after the last one, not now: the
    // firewall task waits for it.
    let due = enforcer.conntrack_due().expect("a walk is queued");
    assert!(due > Instant::now() + Duration::from_secs(3000), "due {:?} from now", due - Instant::now());
    let flushed = lab.server.run(|| enforcer.flush_conntrack());
    assert!(matches!(flushed, ConntrackOutcome::Deleted(1)), "{flushed:?}");
    assert_eq!(enforcer.conntrack_due(), None, "nothing is left to walk for");
    assert_eq!(lab.tracked_from(ATTACKER), 0, "the walk deleted the attacker's entry");
}

/// With `keep_conntrack`, the rules alone stop the open connection (warden's
/// jump comes before the `ESTABLISHED` accept), and the entry stays in the
/// table, still `ESTABLISHED`, until its own timeout (5 days for TCP) or
/// until the peers give up: dropped packets never reach the tracker's
/// confirmation, so they neither refresh nor replace it.
#[test]
fn without_conntrack_flushing_the_rules_still_stop_the_connection_but_entries_remain() {
    let Some(lab) = Lab::new("keep") else { return };
    let (mut attacker, mut bystander) = lab.connected();

    let outcome = lab.server.run(|| {
        let config = EnforcerConfig { keep_conntrack: ["keep".to_string()].into(), ..config() };
        let mut enforcer = Enforcer::new(config, vec![host_jail("keep")], vec![]);
        enforcer.start(&[], NOW).unwrap();
        enforcer.ban(&ban(IpAddr::V4(ATTACKER), "keep", in_hours(1)), NOW).unwrap()
    });
    assert!(matches!(outcome.conntrack, ConntrackOutcome::Kept), "{:?}", outcome.conntrack);

    assert_silent(&mut attacker, "the attacker");
    echo(&mut bystander, ECHO_WITHIN).expect("the bystander's connection still echoes");
    assert_eq!(lab.tracked_from(ATTACKER), 1, "the attacker's entry remains");
    if let Some(n) = lab.conntrack_tool_count(ATTACKER) {
        assert_eq!(n, 1, "conntrack -L still lists it");
        let listing = exec(&lab.server, "conntrack", &["-L", "-s", &ATTACKER.to_string()]);
        assert!(listing.contains("ESTABLISHED"), "{listing}");
    }
}

#[test]
fn bans_that_would_lock_out_everything_or_the_host_are_refused_with_their_reason() {
    let Some(lab) = Lab::new("guard") else { return };
    lab.server.run(|| {
        let allow: IpNet = "10.232.2.0/24".parse().unwrap();
        let mut enforcer = Enforcer::new(config(), vec![host_jail("guard")], vec![allow]);
        enforcer.start(&[], NOW).unwrap();
        let refuse = |enforcer: &mut Enforcer, net: &str| {
            let net: IpNet = net.parse().unwrap_or_else(|_| IpNet::from(net.parse::<IpAddr>().unwrap()));
            let err = enforcer.ban(&ban(net, "guard", in_hours(1)), NOW).unwrap_err();
            err.to_string()
        };
        assert_eq!(
            refuse(&mut enforcer, "0.0.0.0/0"),
            "jail guard: refusing to ban 0.0.0.0/0: it covers every address"
        );
        assert_eq!(
            refuse(&mut enforcer, "::/0"),
            "jail guard: refusing to ban ::/0: it covers every address"
        );
        assert_eq!(
            refuse(&mut enforcer, "10.0.0.0/8"),
            "jail guard: refusing to ban 10.0.0.0/8: /8 is broader than the floor /16; ban a /16 or narrower \
             (or lower the floor in the configuration)"
        );
        assert_eq!(
            refuse(&mut enforcer, "127.0.0.1"),
            "jail guard: refusing to ban 127.0.0.1/32: it covers loopback, which the host itself uses"
        );
        assert_eq!(
            refuse(&mut enforcer, "::1"),
            "jail guard: refusing to ban ::1/128: it covers loopback, which the host itself uses"
        );
        assert_eq!(
            refuse(&mut enforcer, "10.232.1.0/24"),
            "jail guard: refusing to ban 10.232.1.0/24: it covers 10.232.1.1, an address of this host"
        );
        assert_eq!(
            refuse(&mut enforcer, "10.232.3.0/24"),
            "jail guard: cannot ban the network 10.232.3.0/24: this jail bans single addresses (its sets are \
             hash:ip); ban it in a jail whose ban_prefix is /24 or shorter"
        );
        assert_eq!(
            refuse(&mut enforcer, "10.232.2.2"),
            "jail guard: refusing to ban 10.232.2.2/32: the allowlist (ignoreip) holds 10.232.2.0/24, which \
             covers it; remove it from ignoreip to ban it"
        );

        // A batch enforces what it may and names what it refused.
        let batch = [
            ban("0.0.0.0/0".parse::<IpNet>().unwrap(), "guard", in_hours(1)),
            ban(IpAddr::V4(ATTACKER), "guard", in_hours(1)),
            ban(IpAddr::V4(SERVER_A), "guard", in_hours(1)),
            ban(IpAddr::V4(ATTACKER), "no-such-jail", in_hours(1)),
        ];
        let done = enforcer.ban_batch(&batch, NOW).unwrap();
        assert_eq!(done.applied, 1);
        let rejected: Vec<_> = done.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(rejected, [0, 2, 3]);
        assert!(matches!(done.rejected[2].1, EnforceError::UnknownJail { .. }));

        let mut h = IpsetHandle::open().unwrap();
        let jail = host_jail("guard");
        let listed: Vec<IpNet> = h.list(&jail.set_v4).unwrap().entries.iter().map(|e| e.net).collect();
        assert_eq!(listed, [IpNet::from(IpAddr::V4(ATTACKER))], "only the ordinary ban reached the kernel");
        assert!(h.list(&jail.set_v6).unwrap().entries.is_empty());
    });
}

#[test]
fn kernel_timeouts_are_the_remaining_time_permanent_or_clamped_and_refreshed() {
    let Some(ns) = TestNetns::create("timeouts") else { return };
    ns.run(|| {
        let jail = host_jail("time");
        let mut enforcer = Enforcer::new(config(), vec![jail.clone()], vec![]);
        enforcer.start(&[], NOW).unwrap();
        let hour = "203.0.113.1".parse::<IpAddr>().unwrap();
        let forever = "203.0.113.2".parse::<IpAddr>().unwrap();
        let month = "2001:db8::3".parse::<IpAddr>().unwrap();
        enforcer.ban(&ban(hour, "time", in_hours(1)), NOW).unwrap();
        enforcer.ban(&ban(forever, "time", None), NOW).unwrap();
        let done =
            enforcer.ban(&ban(month, "time", Some(Timestamp::from_secs(NOW.as_secs() + 30 * DAY))), NOW);
        let done = done.unwrap();
        assert_eq!(done.timeout, EntryTimeout::MAX, "30 days is clamped to the kernel's cap");
        assert_eq!(enforcer.next_refresh(), done.refresh_at);
        let refresh_at = done.refresh_at.expect("a clamped ban is refreshed");

        let mut h = IpsetHandle::open().unwrap();
        let timeout_of = |h: &mut IpsetHandle, set: &str, addr: IpAddr| {
            let listing = h.list(set).unwrap();
            let entry = listing.entries.iter().find(|e| e.net == IpNet::from(addr)).unwrap();
            entry.timeout.unwrap()
        };
        let secs = |t: EntryTimeout| t.secs();
        assert!((3590..=3600).contains(&secs(timeout_of(&mut h, &jail.set_v4, hour))));
        assert_eq!(timeout_of(&mut h, &jail.set_v4, forever), EntryTimeout::PERMANENT);
        assert!(secs(timeout_of(&mut h, &jail.set_v6, month)) > MAX_TIMEOUT_SECS - 10);

        assert_eq!(
            enforcer.refresh(Timestamp::from_secs(refresh_at.as_secs() - 1)).unwrap(),
            0,
            "not yet due"
        );
        // At the refresh, 30 days - (cap - 1 day) remain: about 6.1 days, within the cap.
        assert_eq!(enforcer.refresh(refresh_at).unwrap(), 1);
        let left = (NOW.as_secs() + 30 * DAY - refresh_at.as_secs()) as u32;
        let now_listed = secs(timeout_of(&mut h, &jail.set_v6, month));
        assert!((left - 10..=left).contains(&now_listed), "{now_listed} s listed, {left} s left");
        assert_eq!(enforcer.next_refresh(), None, "the ban now fits the kernel's cap");
    });
}

#[test]
fn a_restart_from_the_store_keeps_the_attacker_blocked_and_dropping_changes_nothing() {
    let Some(lab) = Lab::new("store") else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let stale: IpNet = "10.232.9.9/32".parse().unwrap();
    store
        .put_bans(&[
            ban(IpAddr::V4(ATTACKER), "web", in_hours(1)),
            ban("10.232.7.0/24".parse::<IpNet>().unwrap(), "web", None),
            ban("10.232.8.8/32".parse::<IpNet>().unwrap(), "web", in_hours(-1)),
        ])
        .unwrap();
    // Subnet bans need hash:net sets.
    let web = JailRules { ban_prefix: BanPrefix { v4: 24, v6: 64 }, ..host_jail("web") };
    let jails = || vec![web.clone()];
    let start = || {
        lab.server.run(|| {
            let active = store.active_bans(NOW).unwrap();
            assert_eq!(active.len(), 2, "the expired ban is not active");
            let mut enforcer = Enforcer::new(config(), jails(), vec![]);
            enforcer.start(&active, NOW).unwrap();
            enforcer
        })
    };
    // A first run, which also left an entry the store no longer lists.
    let first = start();
    lab.server
        .run(|| {
            IpsetHandle::open().unwrap().add(&host_jail("web").set_v4, stale, EntryTimeout::from_secs(600))
        })
        .unwrap();
    let before_drop = lab.kernel_state();
    drop(first);
    assert_eq!(lab.kernel_state(), before_drop, "dropping the enforcer leaves sets and rules in place");

    let prober = lab.probe(&lab.attacker, SERVER_A);
    prober.wait_for_more(2);
    let started_at = prober.attempts();
    for _ in 0..3 {
        drop(start());
    }
    prober.wait_for_more(2);
    let (attempts, successes) = prober.stop();
    assert!(attempts - started_at >= 2, "the prober ran across the restarts");
    assert_eq!(successes, 0, "the attacker got through during a restart");

    lab.server.run(|| {
        let mut h = IpsetHandle::open().unwrap();
        let mut listed: Vec<IpNet> =
            h.list(&host_jail("web").set_v4).unwrap().entries.iter().map(|e| e.net).collect();
        listed.sort();
        let expected: Vec<IpNet> = vec!["10.232.1.2/32".parse().unwrap(), "10.232.7.0/24".parse().unwrap()];
        assert_eq!(listed, expected, "exactly the store's active bans, the stale entry gone");
    });
    // The ban, not a broken path, kept the prober out.
    lab.server.run(|| {
        let mut enforcer = start();
        assert!(enforcer.unban(&IpNet::from(IpAddr::V4(ATTACKER)), "web").unwrap());
    });
    let mut back = lab.open(&lab.attacker, SERVER_A);
    echo(&mut back, ECHO_WITHIN).expect("after the unban the attacker gets through");
}

/// Collects what tracing writes, for checking a dry run's log.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_dry_run_logs_every_change_and_makes_none() {
    let Some(lab) = Lab::new("dry") else { return };
    let (mut attacker, _bystander) = lab.connected();
    let before = lab.kernel_state();

    let log = Captured::default();
    let writer = log.clone();
    lab.server.run(move || {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let config = EnforcerConfig { dry_run: true, ..config() };
            let mut enforcer =
                Enforcer::new(config, vec![host_jail("dry")], vec!["10.232.2.2/32".parse().unwrap()]);
            let stored = [ban("10.232.5.5/32".parse::<IpNet>().unwrap(), "dry", in_hours(1))];
            let changes = enforcer.start(&stored, NOW).unwrap();
            assert!(
                changes.iter().any(|c| c.contains("would change: chain WARDEN-HOST created")),
                "{changes:?}"
            );
            let done = enforcer.ban(&ban(IpAddr::V4(ATTACKER), "dry", in_hours(1)), NOW).unwrap();
            assert!(matches!(done.conntrack, ConntrackOutcome::WouldDelete(1)), "{:?}", done.conntrack);
            let month = Some(Timestamp::from_secs(NOW.as_secs() + 30 * DAY));
            let batch =
                enforcer.ban_batch(&[ban("10.232.6.6/32".parse::<IpNet>().unwrap(), "dry", month)], NOW);
            assert_eq!(batch.unwrap().applied, 1);
            assert_eq!(enforcer.refresh(Timestamp::from_secs(NOW.as_secs() + 29 * DAY)).unwrap(), 1);
            assert!(!enforcer.unban(&IpNet::from(IpAddr::V4(ATTACKER)), "dry").unwrap());
            enforcer.check().unwrap();
            enforcer.cleanup().unwrap();
        });
    });

    assert_eq!(lab.kernel_state(), before, "a dry run changes no set and no rule");
    assert_eq!(lab.tracked_from(ATTACKER), 1, "nor any conntrack entry");
    echo(&mut attacker, ECHO_WITHIN).expect("the attacker's connection still passes data");

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let set = host_jail("dry").set_v4;
    for expected in [
        format!("dry run: would create set {set}"),
        "dry run: would put 10.232.2.2/32 in the allowlist set warden.allow-v4".to_string(),
        format!("dry run: would add 10.232.5.5/32 to {set} (timeout 3600s)"),
        "jail=dry ip=10.232.1.2/32".to_string(),
        "dry run: would delete conntrack entry tcp 10.232.1.2:".to_string(),
        "would re-add 10.232.6.6/32".to_string(),
        format!("dry run: would delete 10.232.1.2/32 from {set}"),
        "iptables: would change: chain WARDEN-HOST created".to_string(),
    ] {
        assert!(log.contains(&expected), "the log lacks {expected:?}:\n{log}");
    }
}
