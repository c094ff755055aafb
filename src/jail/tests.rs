//! Unit tests of the jail rules, one scenario per rule, driven by explicit
//! times.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;

const T0: i64 = 1_800_000_000;

fn t(offset_secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + offset_secs)
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn failure(addr: &str, at: Timestamp) -> Failure {
    Failure { jail: "sshd".into(), addr: ip(addr), time: at, user: None }
}
fn no_jitter() -> f64 {
    0.0
}

/// maxretry 3, findtime 60s, bantime 600s.
fn settings() -> JailSettings {
    JailSettings {
        maxretry: 3,
        findtime: Duration::from_secs(60),
        bantime: BanTime::Finite(Duration::from_secs(600)),
        ..JailSettings::new("sshd")
    }
}

/// Feeds `addr` failures at the given offsets, each seen at its own time.
fn feed(jail: &mut Jail, history: &mut BanHistory, addr: &str, offsets: &[i64]) -> Vec<Decision> {
    offsets.iter().map(|&o| jail.on_failure(&failure(addr, t(o)), t(o), history, &mut no_jitter)).collect()
}

fn expect_ban(d: &Decision) -> &Ban {
    match d {
        Decision::Ban(ban) => ban,
        other => panic!("expected a ban, got {other:?}"),
    }
}

#[test]
fn maxretry_failures_within_findtime_ban_with_full_details() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[0, 10, 20]);
    assert_eq!(d[0], Decision::Counted { failures: 1 });
    assert_eq!(d[1], Decision::Counted { failures: 2 });
    let ban = expect_ban(&d[2]);
    assert_eq!(
        *ban,
        Ban {
            net: net("192.0.2.1/32"),
            jail: "sshd".into(),
            origin: BanOrigin::Jail,
            at: t(20),
            until: Some(t(620)),
            count: 1,
            failures: 3,
        }
    );
    assert!(jail.is_banned(ip("192.0.2.1"), t(619)));
    assert!(!jail.is_banned(ip("192.0.2.1"), t(620)));
    assert!(!jail.is_banned(ip("192.0.2.2"), t(30)));
    assert_eq!(jail.tracked(), 0, "the window is cleared by the ban");
}

#[test]
fn the_findtime_boundary_is_inclusive() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[0, 30, 60]);
    assert!(matches!(d[2], Decision::Ban(_)), "three failures spanning exactly findtime ban");

    let mut jail = Jail::new(settings());
    let first = Timestamp(t(0).0 - 1);
    assert_eq!(
        jail.on_failure(&failure("192.0.2.1", first), first, &mut h, &mut no_jitter),
        Decision::Counted { failures: 1 }
    );
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[30, 60]);
    assert_eq!(d[1], Decision::Counted { failures: 2 }, "one millisecond too wide does not");
}

#[test]
fn failures_spread_wider_than_findtime_never_ban() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[0, 31, 62, 93, 124, 155]);
    assert!(d.iter().all(|d| matches!(d, Decision::Counted { failures } if *failures <= 2)), "{d:?}");
}

#[test]
fn out_of_order_failures_count_by_their_own_time() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    let now = t(100);
    // Log times arrive shuffled; all within findtime of now.
    for (i, offset) in [90, 50, 70].into_iter().enumerate() {
        let d = jail.on_failure(&failure("192.0.2.1", t(offset)), now, &mut h, &mut no_jitter);
        if i < 2 {
            assert_eq!(d, Decision::Counted { failures: i as u32 + 1 });
        } else {
            assert_eq!(expect_ban(&d).at, now, "the ban starts now, not at the log time");
        }
    }
}

#[test]
fn stale_failures_are_dropped_and_future_ones_clamped() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    let now = t(1000);
    assert_eq!(jail.on_failure(&failure("192.0.2.1", t(939)), now, &mut h, &mut no_jitter), Decision::Stale);
    assert_eq!(jail.tracked(), 0);
    assert_eq!(
        jail.on_failure(&failure("192.0.2.1", t(940)), now, &mut h, &mut no_jitter),
        Decision::Counted { failures: 1 }
    );
    // A failure dated an hour ahead counts as now, so it ages out normally.
    jail.on_failure(&failure("192.0.2.1", t(4600)), now, &mut h, &mut no_jitter);
    assert_eq!(jail.failures(ip("192.0.2.1"), t(1060)), 1);
    assert_eq!(jail.failures(ip("192.0.2.1"), t(1061)), 0);
}

#[test]
fn maxretry_one_or_zero_bans_at_the_first_failure() {
    for maxretry in [0, 1] {
        let mut jail = Jail::new(JailSettings { maxretry, ..settings() });
        let d = feed(&mut jail, &mut BanHistory::new(), "192.0.2.1", &[0]);
        assert_eq!(expect_ban(&d[0]).failures, 1);
    }
}

#[test]
fn banned_addresses_are_not_counted_and_start_afresh_after_expiry() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1, 2]);
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[3, 4, 5, 6]);
    assert!(d.iter().all(|d| *d == Decision::AlreadyBanned { net: net("192.0.2.1/32") }), "{d:?}");
    assert_eq!(jail.tracked(), 0);
    let expired = jail.expire(t(602));
    assert_eq!(expired.len(), 1);
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[603, 604]);
    assert_eq!(d[1], Decision::Counted { failures: 2 }, "nothing carried over from before the ban");
    let ban = expect_ban(&feed(&mut jail, &mut h, "192.0.2.1", &[605])[0]).clone();
    assert_eq!(ban.count, 2);
}

#[test]
fn a_ban_past_its_time_but_not_yet_collected_does_not_block_a_new_one() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1, 2]);
    // No expire() call: the old ban lingers but no longer holds.
    let d = feed(&mut jail, &mut h, "192.0.2.1", &[700, 701, 702]);
    let ban = expect_ban(&d[2]);
    assert_eq!(ban.until, Some(t(1302)));
    assert_eq!(jail.bans().count(), 1, "the new ban replaced the old one");
    assert!(jail.expire(t(1301)).is_empty(), "the replaced ban is never reported");
    assert_eq!(jail.expire(t(1302)).len(), 1);
}

#[test]
fn ignored_addresses_and_networks_never_count() {
    let ignore = IgnoreList::parse(["127.0.0.0/8", "192.0.2.7", "2001:db8:aa::/48"]).unwrap();
    let mut jail = Jail::new(JailSettings { ignore, maxretry: 1, ..settings() });
    let mut h = BanHistory::new();
    for addr in ["127.0.0.1", "192.0.2.7", "::ffff:192.0.2.7", "2001:db8:aa:1::5"] {
        assert_eq!(feed(&mut jail, &mut h, addr, &[0]), vec![Decision::Ignored], "{addr}");
    }
    assert_eq!(jail.tracked(), 0);
    assert!(h.is_empty());
    assert!(matches!(feed(&mut jail, &mut h, "192.0.2.8", &[0])[0], Decision::Ban(_)));
}

#[test]
fn mapped_ipv4_counts_with_its_ipv4_twin() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0]);
    feed(&mut jail, &mut h, "::ffff:192.0.2.1", &[1]);
    let ban = expect_ban(&feed(&mut jail, &mut h, "192.0.2.1", &[2])[0]).clone();
    assert_eq!(ban.net, net("192.0.2.1/32"));
    assert!(jail.is_banned(ip("::ffff:192.0.2.1"), t(3)));
}

#[test]
fn v4_subnet_bans_count_the_whole_network() {
    let prefix = BanPrefix { v4: 24, v6: 128 };
    let mut jail = Jail::new(JailSettings { ban_prefix: prefix, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "198.51.100.1", &[0]);
    feed(&mut jail, &mut h, "198.51.100.2", &[1]);
    assert_eq!(feed(&mut jail, &mut h, "198.51.101.3", &[2]), vec![Decision::Counted { failures: 1 }]);
    assert_eq!(jail.failures(ip("198.51.100.200"), t(2)), 2);
    let ban = expect_ban(&feed(&mut jail, &mut h, "198.51.100.3", &[3])[0]).clone();
    assert_eq!(ban.net, net("198.51.100.0/24"));
    assert_eq!(ban.failures, 3);
    assert_eq!(
        feed(&mut jail, &mut h, "198.51.100.99", &[4]),
        vec![Decision::AlreadyBanned { net: net("198.51.100.0/24") }]
    );
    assert!(!jail.is_banned(ip("198.51.101.3"), t(4)));
}

#[test]
fn v6_failures_aggregate_per_64() {
    let prefix = BanPrefix { v4: 32, v6: 64 };
    let mut jail = Jail::new(JailSettings { ban_prefix: prefix, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "2001:db8:1:2::1", &[0]);
    feed(&mut jail, &mut h, "2001:db8:1:2:aaaa::9", &[1]);
    assert_eq!(feed(&mut jail, &mut h, "2001:db8:1:3::1", &[2]), vec![Decision::Counted { failures: 1 }]);
    let ban = expect_ban(&feed(&mut jail, &mut h, "2001:db8:1:2:ffff:ffff:ffff:ffff", &[3])[0]).clone();
    assert_eq!(ban.net, net("2001:db8:1:2::/64"));
    assert!(jail.is_banned(ip("2001:db8:1:2::77"), t(4)));
    // IPv4 keeps single-address counting under the same settings.
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1]);
    assert_eq!(feed(&mut jail, &mut h, "192.0.2.2", &[2]), vec![Decision::Counted { failures: 1 }]);
}

#[test]
fn history_across_jails_lengthens_bans_with_the_increment() {
    let increment = IncrementPolicy { enabled: true, ..IncrementPolicy::default() };
    let mut sshd = Jail::new(JailSettings { increment: increment.clone(), ..settings() });
    let mut web =
        Jail::new(JailSettings { increment, ..JailSettings { name: "webauth".into(), ..settings() } });
    let mut h = BanHistory::new();
    let first = expect_ban(&feed(&mut sshd, &mut h, "203.0.113.5", &[0, 1, 2])[2]).clone();
    assert_eq!((first.count, first.until), (1, Some(t(602))));
    let second = expect_ban(&feed(&mut web, &mut h, "203.0.113.5", &[10, 11, 12])[2]).clone();
    assert_eq!(second.jail, "webauth");
    assert_eq!((second.count, second.until), (2, Some(t(12 + 1200))), "a recidivist gets double");
    sshd.expire(t(700));
    let third = expect_ban(&feed(&mut sshd, &mut h, "203.0.113.5", &[700, 701, 702])[2]).clone();
    assert_eq!((third.count, third.until), (3, Some(t(702 + 2400))));
    // Another address starts at one.
    let other = expect_ban(&feed(&mut sshd, &mut h, "203.0.113.6", &[0, 1, 2])[2]).clone();
    assert_eq!((other.count, other.until), (1, Some(t(602))));
}

#[test]
fn increment_uses_multipliers_maxtime_and_injected_jitter() {
    let increment = IncrementPolicy {
        enabled: true,
        multipliers: vec![1, 3, 10],
        maxtime: Some(Duration::from_secs(5000)),
        rndtime: Some(Duration::from_secs(100)),
        ..IncrementPolicy::default()
    };
    let mut jail = Jail::new(JailSettings { increment, maxretry: 1, ..settings() });
    let mut h = BanHistory::new();
    let mut rng = SplitMix64::new(7);
    let mut draws = Vec::new();
    let mut lengths = Vec::new();
    for n in 0..4 {
        let now = t(n * 10_000);
        let mut jitter = || {
            let x = rng.next_f64();
            draws.push(x);
            x
        };
        let d = jail.on_failure(&failure("192.0.2.1", now), now, &mut h, &mut jitter);
        let ban = expect_ban(&d);
        lengths.push(ban.until.unwrap().0 - now.0);
        jail.expire(t(n * 10_000 + 9_999));
    }
    // First ban: exactly bantime, no jitter drawn. Then 3x, 10x capped at 5000, repeated.
    assert_eq!(lengths[0], 600_000);
    assert_eq!(draws.len(), 3);
    let expected = [1800.0, 5000.0, 5000.0];
    for i in 0..3 {
        let want = ((expected[i] + draws[i] * 100.0) * 1000.0) as i64;
        assert!((lengths[i + 1] - want).abs() <= 1, "ban {}: {} vs {want}", i + 2, lengths[i + 1]);
        assert!(lengths[i + 1] >= (expected[i] * 1000.0) as i64);
    }
}

#[test]
fn permanent_bans_never_expire() {
    let mut jail = Jail::new(JailSettings { bantime: BanTime::Permanent, ..settings() });
    let mut h = BanHistory::new();
    let ban = expect_ban(&feed(&mut jail, &mut h, "192.0.2.1", &[0, 1, 2])[2]).clone();
    assert_eq!(ban.until, None);
    assert_eq!(jail.next_expiry(), None);
    assert!(jail.expire(Timestamp(i64::MAX)).is_empty());
    assert!(jail.is_banned(ip("192.0.2.1"), Timestamp(i64::MAX)));
}

#[test]
fn expiry_returns_bans_in_order_of_their_end() {
    let mut jail = Jail::new(JailSettings { maxretry: 1, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.3", &[30]);
    feed(&mut jail, &mut h, "192.0.2.1", &[10]);
    feed(&mut jail, &mut h, "192.0.2.2", &[20]);
    assert_eq!(jail.next_expiry(), Some(t(610)));
    assert!(jail.expire(t(609)).is_empty());
    let order: Vec<IpNet> = jail.expire(t(630)).into_iter().map(|b| b.net).collect();
    assert_eq!(order, vec![net("192.0.2.1/32"), net("192.0.2.2/32"), net("192.0.2.3/32")]);
    assert_eq!(jail.bans().count(), 0);
}

#[test]
fn manual_bans_share_history_and_expiry() {
    let increment = IncrementPolicy { enabled: true, ..IncrementPolicy::default() };
    let mut jail = Jail::new(JailSettings { increment, ..settings() });
    let mut h = BanHistory::new();
    let ban = jail.ban_manual(net("::ffff:198.51.100.0/120"), None, t(0), &mut h, &mut no_jitter);
    assert_eq!(ban.net, net("198.51.100.0/24"));
    assert_eq!((ban.origin.clone(), ban.failures, ban.count), (BanOrigin::Manual, 0, 1));
    assert_eq!(ban.until, Some(t(600)));
    assert!(jail.is_banned(ip("198.51.100.42"), t(1)));
    // Again with no duration: incremented. With one: taken as given.
    let again = jail.ban_manual(net("198.51.100.0/24"), None, t(10), &mut h, &mut no_jitter);
    assert_eq!((again.count, again.until), (2, Some(t(1210))));
    let forever =
        jail.ban_manual(net("198.51.100.0/24"), Some(BanTime::Permanent), t(20), &mut h, &mut no_jitter);
    assert_eq!((forever.count, forever.until), (3, None));
    let short = Some(BanTime::Finite(Duration::from_secs(5)));
    let shortened = jail.ban_manual(net("198.51.100.0/24"), short, t(30), &mut h, &mut no_jitter);
    assert_eq!(shortened.until, Some(t(35)), "the operator's latest word wins");
    assert_eq!(jail.bans().count(), 1);
    assert_eq!(jail.expire(t(35)), vec![shortened]);
}

#[test]
fn a_manual_ban_clears_the_window_and_ignore_does_not_apply() {
    let ignore = IgnoreList::parse(["192.0.2.7"]).unwrap();
    let mut jail = Jail::new(JailSettings { ignore, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1]);
    jail.ban_manual(net("192.0.2.1/32"), None, t(2), &mut h, &mut no_jitter);
    assert_eq!(jail.tracked(), 0);
    jail.ban_manual(net("192.0.2.7/32"), None, t(2), &mut h, &mut no_jitter);
    assert!(jail.is_banned(ip("192.0.2.7"), t(3)));
    assert!(jail.settings().ignore.covers(net("192.0.2.0/24")));
}

#[test]
fn unban_lifts_overlapping_bans_and_counting_restarts() {
    let prefix = BanPrefix { v4: 24, v6: 64 };
    let mut jail = Jail::new(JailSettings { ban_prefix: prefix, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "198.51.100.1", &[0, 1, 2]);
    let lifted = jail.unban(net("198.51.100.1/32"));
    assert_eq!(lifted.iter().map(|b| b.net).collect::<Vec<_>>(), vec![net("198.51.100.0/24")]);
    assert!(!jail.is_banned(ip("198.51.100.1"), t(3)));
    assert!(jail.expire(t(10_000)).is_empty(), "an unbanned ban does not expire later");
    assert!(jail.unban(net("198.51.100.1/32")).is_empty());
    assert_eq!(feed(&mut jail, &mut h, "198.51.100.1", &[4]), vec![Decision::Counted { failures: 1 }]);
    assert_eq!(h.previous(net("198.51.100.0/24"), t(4)), 1, "history survives an unban");
}

#[test]
fn restore_reinstalls_bans_from_the_store() {
    let mut jail = Jail::new(settings());
    let stored = Ban {
        net: net("2001:db8::/64"),
        jail: "sshd".into(),
        origin: BanOrigin::Remote { host: "mx1".into() },
        at: t(-100),
        until: Some(t(500)),
        count: 4,
        failures: 9,
    };
    let expired = Ban { net: net("192.0.2.1/32"), until: Some(t(-1)), ..stored.clone() };
    assert_eq!(jail.restore(stored.clone()), None);
    jail.restore(expired.clone());
    assert!(jail.is_banned(ip("2001:db8::1"), t(0)));
    assert!(!jail.is_banned(ip("192.0.2.1"), t(0)));
    assert_eq!(
        feed(&mut jail, &mut BanHistory::new(), "2001:db8::9", &[0]),
        vec![Decision::AlreadyBanned { net: net("2001:db8::/64") }]
    );
    assert_eq!(jail.expire(t(0)), vec![expired]);
    assert_eq!(jail.expire(t(500)), vec![stored]);
}

#[test]
fn tracked_addresses_are_capped_evicting_the_least_recent() {
    let mut jail = Jail::new(JailSettings { max_tracked: 3, ..settings() });
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1]);
    feed(&mut jail, &mut h, "192.0.2.2", &[2]);
    feed(&mut jail, &mut h, "192.0.2.3", &[3]);
    feed(&mut jail, &mut h, "192.0.2.2", &[4]); // 1 is now the least recent
    feed(&mut jail, &mut h, "192.0.2.4", &[5]);
    assert_eq!(jail.tracked(), 3);
    assert_eq!(jail.failures(ip("192.0.2.1"), t(5)), 0, "evicted");
    assert_eq!(jail.failures(ip("192.0.2.2"), t(5)), 2);
    assert_eq!(feed(&mut jail, &mut h, "192.0.2.1", &[6]), vec![Decision::Counted { failures: 1 }]);
    assert_eq!(jail.failures(ip("192.0.2.3"), t(6)), 0, "3 went next");
}

#[test]
fn a_flood_of_unique_addresses_stays_within_the_cap() {
    const CAP: usize = 1_000;
    let mut jail = Jail::new(JailSettings { max_tracked: CAP, ..settings() });
    let mut h = BanHistory::new();
    let mut max_seen = 0;
    for i in 0..200_000u32 {
        let addr = IpAddr::V6(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64));
        let now = Timestamp(t(0).0 + i64::from(i));
        let f = Failure { jail: "sshd".into(), addr, time: now, user: None };
        assert_eq!(jail.on_failure(&f, now, &mut h, &mut no_jitter), Decision::Counted { failures: 1 });
        max_seen = max_seen.max(jail.tracked());
    }
    assert_eq!(max_seen, CAP);
    assert!(jail.windows.len() <= CAP);
    // The attacker that keeps failing within the flood is still tracked.
    let mut jail = Jail::new(JailSettings { max_tracked: CAP, ..settings() });
    let mut bans = 0;
    for i in 0..20_000u32 {
        let now = Timestamp(t(0).0 + i64::from(i));
        let addr = if i % 500 == 0 { ip("203.0.113.66") } else { IpAddr::V4(std::net::Ipv4Addr::from(i)) };
        let f = Failure { jail: "sshd".into(), addr, time: now, user: None };
        if let Decision::Ban(ban) = jail.on_failure(&f, now, &mut h, &mut no_jitter) {
            assert_eq!(ban.net, net("203.0.113.66/32"));
            bans += 1;
        }
    }
    assert_eq!(bans, 1, "its failures 0.5 s apart fill its window before eviction reaches it");
}

#[test]
fn reconfigure_keeps_bans_and_resets_windows_only_when_counting_changes() {
    let mut jail = Jail::new(settings());
    let mut h = BanHistory::new();
    feed(&mut jail, &mut h, "192.0.2.1", &[0, 1, 2]);
    feed(&mut jail, &mut h, "192.0.2.2", &[3]);
    jail.reconfigure(JailSettings { bantime: BanTime::Permanent, ..settings() });
    assert_eq!(jail.failures(ip("192.0.2.2"), t(3)), 1);
    jail.reconfigure(JailSettings { maxretry: 10, ..settings() });
    assert_eq!(jail.tracked(), 0);
    assert!(jail.is_banned(ip("192.0.2.1"), t(4)));
    assert_eq!(jail.settings().maxretry, 10);
}

#[test]
fn host_network_is_a_normalised_single_address() {
    assert_eq!(host_network(ip("::ffff:192.0.2.1")), net("192.0.2.1/32"));
    assert_eq!(host_network(ip("2001:db8::1")), net("2001:db8::1/128"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random failures (few addresses, shuffled times, a clock moving forward):
    /// bans never outnumber failures / maxretry, never exceed the failures
    /// counted, and the tracked count never passes the cap.
    #[test]
    fn random_failures_respect_maxretry_and_the_cap(
        maxretry in 1u32..6,
        max_tracked in 1usize..8,
        prefix_v4 in prop_oneof![Just(32u8), Just(24u8)],
        events in proptest::collection::vec((0u8..12, 0i64..120, 0i64..30), 1..300),
    ) {
        let mut jail = Jail::new(JailSettings {
            maxretry,
            max_tracked,
            ban_prefix: BanPrefix { v4: prefix_v4, v6: 128 },
            ..settings()
        });
        let mut h = BanHistory::new();
        let mut now = t(0);
        let (mut bans, mut failures) = (0u32, 0u32);
        for (host, back, step) in events {
            now = now.saturating_add(Duration::from_secs(step as u64));
            let addr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2 + host % 3, host));
            let f = Failure { jail: "sshd".into(), addr, time: now.saturating_sub(Duration::from_secs(back as u64)), user: None };
            failures += 1;
            match jail.on_failure(&f, now, &mut h, &mut no_jitter) {
                Decision::Ban(ban) => {
                    bans += 1;
                    prop_assert_eq!(ban.failures, maxretry);
                    prop_assert!(ban.until.is_some_and(|u| u > now));
                }
                Decision::Counted { failures } => prop_assert!(failures < maxretry),
                _ => {}
            }
            prop_assert!(jail.tracked() <= max_tracked);
            jail.expire(now);
        }
        prop_assert!(bans <= failures / maxretry, "{} bans from {} failures", bans, failures);
    }
}

#[test]
fn persisted_windows_restore_into_a_fresh_jail_and_count_on() {
    let mut history = BanHistory::new();
    let mut before = Jail::new(settings());
    feed(&mut before, &mut history, "192.0.2.7", &[0, 10]);
    let (key, times) = before.window(ip("192.0.2.7"));
    assert_eq!(key, net("192.0.2.7/32"));
    assert_eq!(times, &[t(0), t(10)]);
    let times = times.to_vec();

    // A restart: a new jail gets the stored times back, and the next
    // failure is the third within findtime.
    let mut after = Jail::new(settings());
    after.restore_failures(ip("192.0.2.7"), &times, t(20));
    assert_eq!(after.failures(ip("192.0.2.7"), t(20)), 2);
    let decisions = feed(&mut after, &mut history, "192.0.2.7", &[20]);
    assert_eq!(expect_ban(&decisions[0]).failures, 3);
    assert!(after.window(ip("192.0.2.7")).1.is_empty());
}
