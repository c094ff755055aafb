//! The native ipset client against the real kernel, each test in its own
//! network namespace (root required; skipped with a reason elsewhere, never
//! skipped with CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netns::TestNetns;
use warden::firewall::ipset::{
    Created, EntryTimeout, ErrorKind, Family, IpsetHandle, ListedEntry, SetSpec, SetType, set_name,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
}

fn spec(name: &str, set_type: SetType, family: Family, default_secs: u32) -> SetSpec {
    SetSpec { default_timeout: EntryTimeout::from_secs(default_secs), ..SetSpec::new(name, set_type, family) }
}

fn entry_of(list: &[ListedEntry], n: IpNet) -> Option<ListedEntry> {
    list.iter().copied().find(|e| e.net == n)
}

/// Runs `f` with a fresh handle inside a fresh namespace, or skips.
fn in_netns(tag: &str, f: impl FnOnce(&TestNetns, &mut IpsetHandle) + Send) {
    let Some(ns) = TestNetns::create(tag) else { return };
    ns.run(|| {
        let mut h = IpsetHandle::open().expect("open ipset handle");
        f(&ns, &mut h);
    });
}

#[test]
fn negotiates_a_protocol_we_speak() {
    in_netns("proto", |_, h| {
        assert!(h.kernel_protocol() >= 6, "kernel protocol {}", h.kernel_protocol());
        assert!(h.set_names().unwrap().is_empty(), "a fresh namespace has no sets");
    });
}

#[test]
fn creates_v4_and_v6_sets_of_both_types_idempotently() {
    in_netns("create", |ns, h| {
        let specs = [
            SetSpec { maxelem: 1000, ..spec("t-ip4", SetType::HashIp, Family::V4, 600) },
            spec("t-ip6", SetType::HashIp, Family::V6, 0),
            spec("t-net4", SetType::HashNet, Family::V4, 60),
            spec("t-net6", SetType::HashNet, Family::V6, 3600),
        ];
        for s in &specs {
            assert_eq!(h.create(s).unwrap(), Created::New, "{}", s.name);
            let header = h.header(&s.name).unwrap();
            assert_eq!(header.name, s.name);
            assert_eq!(header.set_type(), Some(s.set_type));
            assert_eq!(header.family, Some(s.family));
            assert_eq!(header.default_timeout, Some(s.default_timeout));
            assert_eq!(header.maxelem, Some(s.maxelem));
            assert_eq!(header.elements, 0);
            // Again: the existing set is adopted, not an error.
            match h.create(s).unwrap() {
                Created::Existing(again) => assert_eq!(again.set_type(), Some(s.set_type)),
                other => panic!("second create of {} gave {other:?}", s.name),
            }
            assert!(h.exists(&s.name).unwrap());
        }
        // A compatible set with other settings is adopted and its settings reported.
        let resized = SetSpec { maxelem: 5000, ..specs[0].clone() };
        match h.create(&resized).unwrap() {
            Created::Existing(header) => assert_eq!(header.maxelem, Some(1000)),
            other => panic!("expected the existing set, got {other:?}"),
        }
        assert!(!h.exists("t-none").unwrap());

        // Optional cross-check with the ipset tool, when installed.
        if netns::have_program("ipset") {
            let out = ns.exec("ipset", &["list", "-t", "t-net6"]).unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Type: hash:net"), "{text}");
            assert!(text.contains("family inet6") && text.contains("timeout 3600"), "{text}");
        }
    });
}

#[test]
fn an_incompatible_existing_set_is_an_error() {
    in_netns("incompat", |_, h| {
        h.create(&spec("t-x", SetType::HashIp, Family::V4, 10)).unwrap();
        for wrong in
            [spec("t-x", SetType::HashNet, Family::V4, 10), spec("t-x", SetType::HashIp, Family::V6, 10)]
        {
            let err = h.create(&wrong).unwrap_err();
            assert!(matches!(err.kind, ErrorKind::Incompatible(_)), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("create set t-x") && msg.contains("hash:ip family inet"), "{msg}");
        }
    });
}

#[test]
fn adds_tests_and_deletes_entries() {
    in_netns("adt", |_, h| {
        h.create(&spec("t4", SetType::HashIp, Family::V4, 600)).unwrap();
        h.create(&spec("t6", SetType::HashIp, Family::V6, 600)).unwrap();
        for (set, a, b) in [("t4", "192.0.2.1", "192.0.2.2"), ("t6", "2001:db8::1", "2001:db8::2")] {
            h.add(set, net(a), EntryTimeout::from_secs(300)).unwrap();
            assert!(h.test(set, net(a)).unwrap());
            assert!(!h.test(set, net(b)).unwrap());
            assert!(h.del(set, net(a)).unwrap(), "first delete finds it");
            assert!(!h.del(set, net(a)).unwrap(), "second delete: absent is fine");
            assert!(!h.test(set, net(a)).unwrap());
        }
    });
}

#[test]
fn timeouts_are_listed_and_count_down() {
    in_netns("timeout", |_, h| {
        h.create(&spec("t", SetType::HashIp, Family::V4, 600)).unwrap();
        let a = net("198.51.100.1");
        h.add("t", a, EntryTimeout::from_secs(100)).unwrap();
        let first = entry_of(&h.list("t").unwrap().entries, a).unwrap().timeout.unwrap();
        assert!((1..=100).contains(&first.secs()), "{first}");
        // Wait (bounded) until the kernel reports less time left.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = entry_of(&h.list("t").unwrap().entries, a).unwrap().timeout.unwrap();
            if now < first {
                break;
            }
            assert!(Instant::now() < deadline, "timeout stuck at {now} (started at {first})");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

#[test]
fn permanent_entries_and_the_set_default() {
    in_netns("perm", |_, h| {
        h.create(&spec("t", SetType::HashNet, Family::V4, 600)).unwrap();
        let forever = net("192.0.2.0/24");
        let long = net("198.51.100.0/24");
        h.add("t", forever, EntryTimeout::PERMANENT).unwrap();
        h.add("t", long, EntryTimeout::after(Duration::from_secs(400 * 24 * 3600))).unwrap();
        let list = h.list("t").unwrap().entries;
        assert_eq!(entry_of(&list, forever).unwrap().timeout, Some(EntryTimeout::PERMANENT));
        // A year-long ban is clamped to the kernel's cap, not wrapped or made permanent.
        let clamped = entry_of(&list, long).unwrap().timeout.unwrap();
        assert!(clamped.secs() > EntryTimeout::MAX.secs() - 10 && clamped <= EntryTimeout::MAX, "{clamped}");
    });
}

#[test]
fn re_adding_refreshes_the_timeout() {
    in_netns("refresh", |_, h| {
        h.create(&spec("t", SetType::HashIp, Family::V6, 0)).unwrap();
        let a = net("2001:db8::7");
        let remaining =
            |h: &mut IpsetHandle| entry_of(&h.list("t").unwrap().entries, a).unwrap().timeout.unwrap();
        h.add("t", a, EntryTimeout::from_secs(10)).unwrap();
        assert!(remaining(h).secs() <= 10);
        h.add("t", a, EntryTimeout::from_secs(5000)).unwrap();
        assert!(remaining(h).secs() > 4900, "{}", remaining(h));
        h.add("t", a, EntryTimeout::PERMANENT).unwrap();
        assert_eq!(remaining(h), EntryTimeout::PERMANENT);
        h.add("t", a, EntryTimeout::from_secs(30)).unwrap();
        assert!(remaining(h).secs() <= 30);
        assert_eq!(h.list("t").unwrap().entries.len(), 1);
    });
}

#[test]
fn a_network_matches_the_addresses_inside_it() {
    in_netns("net", |_, h| {
        h.create(&spec("n4", SetType::HashNet, Family::V4, 600)).unwrap();
        h.create(&spec("n6", SetType::HashNet, Family::V6, 600)).unwrap();
        h.add("n4", net("198.51.100.0/24"), EntryTimeout::from_secs(60)).unwrap();
        h.add("n6", net("2001:db8:1::/48"), EntryTimeout::from_secs(60)).unwrap();
        assert!(h.test("n4", net("198.51.100.77")).unwrap(), "second address in the /24");
        assert!(h.test("n4", net("198.51.100.0/24")).unwrap());
        assert!(!h.test("n4", net("198.51.101.1")).unwrap());
        assert!(h.test("n6", net("2001:db8:1:ffff::5")).unwrap());
        assert!(!h.test("n6", net("2001:db8:2::5")).unwrap());
        let listed: Vec<IpNet> = h.list("n4").unwrap().entries.iter().map(|e| e.net).collect();
        assert_eq!(listed, [net("198.51.100.0/24")]);
        // Deleting the network is by the network, not an address inside it.
        assert!(!h.del("n4", net("198.51.100.77")).unwrap());
        assert!(h.del("n4", net("198.51.100.0/24")).unwrap());
        assert!(!h.test("n4", net("198.51.100.77")).unwrap());
    });
}

#[test]
fn swaps_flushes_renames_and_destroys() {
    in_netns("admin", |_, h| {
        h.create(&spec("a", SetType::HashIp, Family::V4, 600)).unwrap();
        h.create(&spec("b", SetType::HashIp, Family::V4, 600)).unwrap();
        h.create(&spec("n", SetType::HashNet, Family::V4, 600)).unwrap();
        h.add("a", net("192.0.2.1"), EntryTimeout::PERMANENT).unwrap();
        h.add("b", net("192.0.2.2"), EntryTimeout::PERMANENT).unwrap();
        h.add("b", net("192.0.2.3"), EntryTimeout::PERMANENT).unwrap();

        h.swap("a", "b").unwrap();
        let members = |h: &mut IpsetHandle, s: &str| -> HashSet<IpNet> {
            h.list(s).unwrap().entries.iter().map(|e| e.net).collect()
        };
        assert_eq!(members(h, "a"), HashSet::from([net("192.0.2.2"), net("192.0.2.3")]));
        assert_eq!(members(h, "b"), HashSet::from([net("192.0.2.1")]));

        let mismatch = h.swap("a", "n").unwrap_err();
        assert!(mismatch.to_string().contains("differ in type or family"), "{mismatch}");
        let missing = h.swap("a", "zz").unwrap_err();
        assert!(
            missing.to_string().contains("swap set a with zz: the second set does not exist"),
            "{missing}"
        );

        h.flush("a").unwrap();
        assert!(members(h, "a").is_empty());
        assert_eq!(h.header("a").unwrap().elements, 0);

        h.rename("b", "c").unwrap();
        assert!(!h.exists("b").unwrap());
        assert_eq!(members(h, "c"), HashSet::from([net("192.0.2.1")]));
        let taken = h.rename("c", "a").unwrap_err();
        assert!(taken.to_string().contains("a set with the new name already exists"), "{taken}");

        let mut names = h.set_names().unwrap();
        names.sort();
        assert_eq!(names, ["a", "c", "n"]);

        assert!(h.destroy("c").unwrap());
        assert!(!h.exists("c").unwrap());
        assert!(!h.destroy("c").unwrap(), "destroying twice is fine");
    });
}

#[test]
fn errors_name_the_operation_set_entry_and_cause() {
    in_netns("errors", |_, h| {
        let a = net("203.0.113.9");
        let err = h.add("nope", a, EntryTimeout::from_secs(5)).unwrap_err();
        assert!(err.is_missing_set());
        assert_eq!(
            err.to_string(),
            "ipset: cannot add 203.0.113.9/32 to set nope: set does not exist (ENOENT)"
        );
        assert!(h.list("nope").unwrap_err().is_missing_set());
        assert!(h.test("nope", a).unwrap_err().is_missing_set());
        assert!(h.flush("nope").unwrap_err().is_missing_set());

        h.create(&spec("v4", SetType::HashIp, Family::V4, 5)).unwrap();
        h.create(&spec("n4", SetType::HashNet, Family::V4, 5)).unwrap();
        let wrong_family = h.add("v4", net("2001:db8::1"), EntryTimeout::from_secs(5)).unwrap_err();
        assert_eq!(
            wrong_family.to_string(),
            "ipset: cannot add 2001:db8::1/128 to set v4: the set holds inet entries but this entry is inet6; \
             use the set of its family"
        );
        let zero_prefix = h.add("n4", net("0.0.0.0/0"), EntryTimeout::from_secs(5)).unwrap_err();
        assert!(zero_prefix.to_string().contains("invalid prefix length"), "{zero_prefix}");

        let long = "x".repeat(32);
        let bad_name = h.create(&spec(&long, SetType::HashIp, Family::V4, 5)).unwrap_err();
        assert!(matches!(bad_name.kind, ErrorKind::InvalidName(_)), "{bad_name}");

        // The handle keeps working after refusals.
        h.add("v4", a, EntryTimeout::from_secs(5)).unwrap();
        assert!(h.test("v4", a).unwrap());
    });
}

#[test]
fn a_full_set_refuses_more_and_says_why() {
    in_netns("full", |_, h| {
        h.create(&SetSpec { maxelem: 4, ..spec("t", SetType::HashIp, Family::V4, 60) }).unwrap();
        let entries: Vec<(IpNet, EntryTimeout)> =
            (1..=6).map(|i| (net(&format!("192.0.2.{i}")), EntryTimeout::from_secs(60))).collect();
        let report = h.add_batch("t", &entries).unwrap();
        assert_eq!(report.applied, 4);
        let failed: Vec<usize> = report.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [4, 5]);
        let msg = report.failures[0].error.to_string();
        assert!(msg.contains("add 192.0.2.5/32 to set t") && msg.contains("maxelem"), "{msg}");
    });
}

#[test]
fn long_jail_names_make_valid_distinct_sets() {
    in_netns("names", |_, h| {
        let jails = ["mailu-front-authentication-smtp-submission", "mailu-front-authentication-imap-login"];
        let mut names = HashSet::new();
        for jail in jails {
            for family in [Family::V4, Family::V6] {
                let name = set_name("warden", jail, family);
                assert!(name.len() <= 31, "{name}");
                h.create(&spec(&name, SetType::HashNet, family, 60)).unwrap();
                names.insert(name);
            }
        }
        assert_eq!(names.len(), 4);
        for name in &names {
            assert!(h.exists(name).unwrap(), "{name}");
        }
    });
}

#[test]
fn a_batch_of_ten_thousand_adds_lists_back_whole() {
    in_netns("batch", |ns, h| {
        h.create(&SetSpec { maxelem: 20_000, ..spec("big", SetType::HashIp, Family::V4, 600) }).unwrap();
        // 10.0.0.0/8 addresses, with timeouts cycling through permanent and 1..=999 s.
        let entries: Vec<(IpNet, EntryTimeout)> = (0..10_000u32)
            .map(|i| {
                (IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))), EntryTimeout::from_secs(i % 1000))
            })
            .collect();
        let report = h.add_batch("big", &entries).unwrap();
        assert!(report.is_complete(), "{:?}", report.failures.first());
        assert_eq!(report.applied, 10_000);

        let listing = h.list("big").unwrap();
        assert_eq!(listing.header.elements, 10_000);
        let listed: HashSet<IpNet> = listing.entries.iter().map(|e| e.net).collect();
        let wanted: HashSet<IpNet> = entries.iter().map(|(n, _)| *n).collect();
        assert_eq!(listing.entries.len(), 10_000);
        assert_eq!(listed, wanted);
        let permanent = listing.entries.iter().filter(|e| e.timeout == Some(EntryTimeout::PERMANENT)).count();
        assert_eq!(permanent, 10, "one in a thousand was added with timeout 0");

        // Re-adding the whole batch refreshes instead of failing.
        assert_eq!(h.add_batch("big", &entries).unwrap().applied, 10_000);

        let half: Vec<IpNet> = entries.iter().step_by(2).map(|(n, _)| *n).collect();
        let removed = h.del_batch("big", &half).unwrap();
        assert_eq!(removed.applied, 5_000);
        assert_eq!(h.list("big").unwrap().entries.len(), 5_000);
        if netns::have_program("ipset") {
            let out = ns.exec("ipset", &["list", "-t", "big"]).unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Number of entries: 5000"), "{text}");
        }
    });
}

#[test]
fn a_batch_reports_each_refused_entry_and_applies_the_rest() {
    in_netns("batcherr", |_, h| {
        h.create(&spec("t", SetType::HashIp, Family::V4, 600)).unwrap();
        let mut entries: Vec<(IpNet, EntryTimeout)> =
            (1..=10).map(|i| (net(&format!("192.0.2.{i}")), EntryTimeout::from_secs(60))).collect();
        entries[3].0 = net("2001:db8::3");
        entries[7].0 = net("2001:db8::7");
        let report = h.add_batch("t", &entries).unwrap();
        assert_eq!(report.applied, 8);
        let failed: Vec<(usize, IpNet)> =
            report.failures.iter().map(|f| (f.index, f.error.entry.unwrap())).collect();
        assert_eq!(failed, [(3, net("2001:db8::3")), (7, net("2001:db8::7"))]);
        assert_eq!(h.list("t").unwrap().entries.len(), 8);
        let missing = h.add_batch("nope", &entries[..2]).unwrap();
        assert_eq!(missing.applied, 0);
        assert!(missing.failures.iter().all(|f| f.error.is_missing_set()));
    });
}

/// Drops CAP_NET_ADMIN from the calling thread's effective set (capabilities
/// are per thread, so the rest of the test process keeps it).
fn drop_net_admin_from_this_thread() {
    const CAP_NET_ADMIN: u32 = 12;
    const VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are live, correctly laid out capability structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_ADMIN);
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn without_cap_net_admin_operations_fail_clearly_and_batches_do_not_hang() {
    in_netns("eperm", |_, h| {
        h.create(&spec("t", SetType::HashIp, Family::V4, 60)).unwrap();
        drop_net_admin_from_this_thread();
        let err = h.add("t", net("192.0.2.1"), EntryTimeout::from_secs(60)).unwrap_err();
        assert!(err.is_permission_denied(), "{err}");
        assert!(err.to_string().contains("needs CAP_NET_ADMIN"), "{err}");
        // nfnetlink answers only the first request of a datagram; the batch
        // must still account for every entry instead of waiting for replies.
        let entries: Vec<(IpNet, EntryTimeout)> =
            (1..=50).map(|i| (net(&format!("192.0.2.{i}")), EntryTimeout::from_secs(60))).collect();
        let report = h.add_batch("t", &entries).unwrap();
        assert_eq!(report.applied, 0);
        assert_eq!(report.failures.len(), 50);
        assert!(report.failures.iter().all(|f| f.error.is_permission_denied()));
    });
}

#[test]
fn a_v6_network_batch_lists_back_with_prefixes_and_timeouts() {
    in_netns("batch6", |_, h| {
        h.create(&spec("n6", SetType::HashNet, Family::V6, 0)).unwrap();
        // 2,000 distinct /64s under 2001:db8::/32, some as /48s, timeouts 1..=2000 s.
        let entries: Vec<(IpNet, EntryTimeout)> = (0..2_000u32)
            .map(|i| {
                let prefix = if i % 10 == 0 { 48 } else { 64 };
                let n =
                    net(&format!("2001:db8:{:x}:{:x}::/{prefix}", i, if prefix == 64 { i % 7 } else { 0 }));
                (n, EntryTimeout::from_secs(i + 1))
            })
            .collect();
        let report = h.add_batch("n6", &entries).unwrap();
        assert!(report.is_complete(), "{:?}", report.failures.first());
        let listed = h.list("n6").unwrap().entries;
        assert_eq!(listed.len(), entries.len());
        for (n, t) in &entries {
            let got = entry_of(&listed, *n).unwrap_or_else(|| panic!("{n} missing from the listing"));
            let left = got.timeout.unwrap();
            assert!(left <= *t && left.secs() + 5 >= t.secs(), "{n}: added {t}, listed {left}");
        }
    });
}
