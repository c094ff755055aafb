//! Ban replication across hosts, on one machine: a hub network namespace
//! runs Debian's `redis-server` (its own instance: no persistence, its
//! directory a temporary one) behind a bridge, and host namespaces join the
//! bridge over veth pairs, each running its own `warden run` with its own
//! state, socket and ipsets. The tests drive the wardens through the CLI
//! and Redis through `redis-cli`, and judge them by their ipsets (read over
//! netlink inside each namespace) and, for the enforcer-only host, by
//! packets from an attacker namespace on the same bridge.
//!
//! Addresses are the tests' own, inside their own namespaces: the hub
//! 10.77.0.1, host `hN` 10.77.0.1N, the attacker 10.77.0.99 (and banned
//! networks from the documentation ranges).
//!
//! Every daemon and every redis-server is killed and reaped when its guard
//! drops, also when a test fails, before the namespaces go.
//!
//! Root and `redis-server` required; skipped with a reason elsewhere, never
//! skipped with CI=true.

#[path = "support/cluster_lab.rs"]
mod cluster_lab;
#[path = "support/lab.rs"]
mod lab;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/topology.rs"]
mod topology;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_lab::{Cluster, FULL, HUB, Role, START_WITHIN, host_addr, net, origin};
use ipnet::IpNet;
use lab::{ECHO_WITHIN, assert_dropped, connect, echo, wait_until};
use netns::TestNetns;
use serde_json::Value;
use warden::firewall::ipset::Family;

const ATTACKER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 99);
/// The issue's promise: a ban decided on one host is enforced on every other
/// within a second.
const PROPAGATION: Duration = Duration::from_secs(1);
/// Reconnections after Redis or the network came back (capped backoff).
const RECOVERY: Duration = Duration::from_secs(30);

/// An echo listener in `ns` on `lab::PORT` until dropped.
struct Echo(Arc<AtomicBool>);

impl Echo {
    fn serve(ns: &TestNetns) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let listener =
            ns.run(|| TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, lab::PORT))).unwrap());
        listener.set_nonblocking(true).unwrap();
        let flag = stop.clone();
        ns.spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
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
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Echo(stop)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_ban_reaches_every_host_within_a_second_and_admin_unbans_propagate() {
    let enforcer = Role { enforcer_only: true, ..FULL };
    let Some(cluster) = Cluster::new("cl-rep", &[FULL, FULL, FULL, enforcer]) else { return };
    let attacker = TestNetns::create("cl-rep-att").expect("a namespace");
    cluster.hub.join(&attacker, "vatt", ATTACKER);
    let enforcer_host = cluster.host(4);
    let _echo = Echo::serve(&enforcer_host.ns);
    let server = IpAddr::V4(host_addr(4));
    let mut open = wait_until("the attacker reaches the enforcer-only host", START_WITHIN, || {
        connect(&attacker, None, server, ECHO_WITHIN)
    });
    echo(&mut open, ECHO_WITHIN).expect("echo before the ban");

    // Decided on h1: on every other host within a second, h4 (no jails) included.
    let target = net(&ATTACKER.to_string());
    let decided = Instant::now();
    cluster.host(1).ok(&["ban", "web", &ATTACKER.to_string(), "--for", "1h"]);
    cluster.wait_remote(
        &[2, 3, 4],
        &[target],
        true,
        PROPAGATION.saturating_sub(decided.elapsed()),
        "the ban",
    );
    let took = decided.elapsed();
    assert!(took <= PROPAGATION, "propagation took {took:?}");
    assert!(cluster.host(1).remote().is_empty(), "a host never applies its own stream");
    assert_dropped(&attacker, None, server, "the attacker, banned on h1, at the enforcer-only host");

    // Operators see where it came from.
    let listed = cluster.host(2).bans();
    assert_eq!(listed, [(ATTACKER.to_string(), "remote:h1".to_string(), "h1".to_string())]);
    assert_eq!(cluster.host(1).bans(), [(ATTACKER.to_string(), "manual".to_string(), "h1".to_string())]);
    let status = cluster.host(4).cluster();
    assert_eq!(status["remote_bans"], 1, "{status}");
    assert_eq!(status["local_bans"], 0, "{status}");
    let h1 = origin(&status, "h1");
    assert_eq!((h1["bans"].as_u64(), h1["quarantined"].is_null()), (Some(1), true), "{status}");
    assert!(h1["lag_ms"].as_u64().is_some_and(|lag| lag < 1000), "{status}");
    let text = cluster.host(4).ok(&["status"]);
    assert!(text.contains("cluster: host h4 via redis://10.77.0.1:6379/0: connected"), "{text}");

    // A plain unban on h2 only lifts h2's own decisions: none here.
    let out = cluster.host(2).ok(&["unban", &ATTACKER.to_string()]);
    assert!(out.contains("still banned here by other hosts (h1); `warden unban --cluster"), "{out}");
    assert!(cluster.host(2).remote().contains(&target));

    // h3 bans it too; an admin's cluster-wide unban on h2 (which never
    // banned it) lifts the replicated bans everywhere, but each host's own
    // decision stays: h1's and h3's jails keep theirs.
    cluster.host(3).ok(&["ban", "web", &ATTACKER.to_string(), "--for", "1h"]);
    wait_until("h2 holds h3's ban too", PROPAGATION, || {
        let status = cluster.host(2).cluster();
        if origin(&status, "h1")["bans"] == 1 && origin(&status, "h3")["bans"] == 1 {
            Ok(())
        } else {
            Err(status)
        }
    });
    assert_eq!(cluster.host(2).bans().len(), 1, "one network, held by two hosts");
    let out = cluster.host(2).ok(&["unban", "--cluster", &ATTACKER.to_string()]);
    assert!(out.contains("queued a cluster-wide unban of 10.77.0.99 for every host"), "{out}");
    cluster.wait_remote(&[1, 2, 3, 4], &[target], false, PROPAGATION, "the cluster-wide unban");
    let web = warden::firewall::ipset::set_name("warden", "web", Family::V4);
    assert!(cluster.host(1).set(&web).contains(&target), "h1's own ban stays");
    assert!(cluster.host(3).set(&web).contains(&target), "h3's own ban stays");
    connect(&attacker, None, server, ECHO_WITHIN).expect("after the unban the attacker reaches h4 again");

    // A ban decided after the tombstone holds again; its origin lifting it
    // (a plain unban on h1) lifts it everywhere.
    let later = net("198.51.100.23");
    cluster.host(1).ok(&["ban", "web", "198.51.100.23"]);
    cluster.wait_remote(&[2, 3, 4], &[later], true, PROPAGATION, "a later ban");
    cluster.host(1).ok(&["unban", "198.51.100.23"]);
    cluster.wait_remote(&[2, 3, 4], &[later], false, PROPAGATION, "its origin's unban");

    // A remote /8 is refused, the origin keeps its standing: a ban after it
    // arrives, the /8 does not.
    cluster.host(1).ok(&["ban", "wide", "203.0.0.0/8"]);
    let sentinel = net("198.51.100.77");
    cluster.host(1).ok(&["ban", "web", "198.51.100.77"]);
    cluster.wait_remote(&[2, 3, 4], &[sentinel], true, PROPAGATION, "the ban after the /8");
    for index in [2, 3, 4] {
        let host = cluster.host(index);
        assert!(!host.remote().contains(&net("203.0.0.0/8")), "{} refused the /8", host.name);
        let status = host.cluster();
        assert!(status["refused"].as_u64() >= Some(1), "{status}");
        assert!(status["origins"].as_array().unwrap().iter().all(|o| o["quarantined"].is_null()), "{status}");
    }
    assert!(cluster.host(4).log().contains("refusing h1's ban of 203.0.0.0/8: broader than /24"));

    // `warden cleanup` removes the remote sets with everything else.
    let mut cluster = cluster;
    cluster.host_mut(2).stop();
    let host = cluster.host(2);
    assert!(!host.remote().is_empty(), "the remote bans outlive the daemon");
    let out = topology::exec(&host.ns, cluster_lab::WARDEN, &["cleanup", "--iptables-backend", "nft"]);
    assert!(out.contains("set warden.remote-v4 destroyed"), "{out}");
    let names = host.ns.run(|| warden::firewall::ipset::IpsetHandle::open().unwrap().set_names().unwrap());
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_host_catches_up_after_downtime_a_partition_heals_and_a_redis_restart_resyncs() {
    let Some(mut cluster) = Cluster::new("cl-up", &[FULL, FULL, FULL]) else { return };

    // h3 is down while h1 bans 100 addresses, half of them for a moment.
    cluster.host_mut(3).stop();
    let short: Vec<String> = (1..=50).map(|i| format!("198.51.100.{i}")).collect();
    let long: Vec<String> = (1..=50).map(|i| format!("203.0.113.{i}")).collect();
    let mut args = vec!["ban", "web", "--for", "2s"];
    args.extend(short.iter().map(String::as_str));
    cluster.host(1).ok(&args);
    let mut args = vec!["ban", "web", "--for", "1h"];
    args.extend(long.iter().map(String::as_str));
    cluster.host(1).ok(&args);
    let short: Vec<IpNet> = short.iter().map(|s| net(s)).collect();
    let long: Vec<IpNet> = long.iter().map(|s| net(s)).collect();
    cluster.wait_remote(&[2], &long, true, PROPAGATION * 5, "the long bans");
    // The short ones run out (in h2's kernel too) before h3 comes back.
    cluster.wait_remote(&[2], &short, false, Duration::from_secs(10), "the short bans' end");
    cluster.host_mut(3).start();
    cluster.wait_remote(&[3], &long, true, Duration::from_secs(10), "the catch-up");
    let listed = cluster.host(3).bans();
    assert_eq!(listed.len(), 50, "only the 50 unexpired bans: {listed:?}");
    let h1 = origin(&cluster.host(3).cluster(), "h1");
    assert_eq!(h1["applied"], 50, "the 50 expired entries were read and skipped: {h1}");

    // A silent partition: h2 drops everything to and from the hub.
    let hub = HUB.to_string();
    let partition = |action: &str| {
        for rule in [["OUTPUT", "-d"], ["INPUT", "-s"]] {
            topology::exec(
                &cluster.host(2).ns,
                "iptables-nft",
                &[action, rule[0], rule[1], &hub, "-j", "DROP"],
            );
        }
    };
    partition("-A");
    let during = net("198.51.100.201");
    cluster.host(1).ok(&["ban", "web", "198.51.100.201"]);
    cluster.wait_remote(&[3], &[during], true, PROPAGATION, "a ban during the partition, on h3");
    // h2 still decides and enforces locally.
    let local = net("198.51.100.202");
    cluster.host(2).ok(&["ban", "web", "198.51.100.202"]);
    let web = warden::firewall::ipset::set_name("warden", "web", Family::V4);
    assert!(cluster.host(2).set(&web).contains(&local), "local enforcement goes on");
    wait_until("h2 notices the partition", RECOVERY, || {
        match cluster.host(2).cluster()["connected"].clone() {
            Value::Bool(false) => Ok(()),
            other => Err(other),
        }
    });
    partition("-D");
    cluster.wait_remote(&[2], &[during], true, RECOVERY, "the missed ban after the heal");
    cluster.wait_remote(&[1, 3], &[local], true, RECOVERY, "h2's ban from the partition");

    // h1's hash in Redis sheds the 50 bans that ran out (pruned by h1).
    wait_until("h1's expired bans pruned from its hash", RECOVERY, || {
        match cluster.hub.redis_cli(&["HLEN", "warden:{w}:bans:h1"]).trim().parse::<usize>() {
            Ok(51) => Ok(()),
            other => Err(other),
        }
    });

    // Redis restarts with nothing: a new epoch, every host publishes again,
    // nothing was lifted meanwhile, and replication goes on. h3 is down
    // meanwhile, and h1 lifted a ban h3 still holds: the lift was only in
    // the lost data, yet h3 drops the ban once h1 has published again.
    let lifted = net("192.0.2.60");
    cluster.host(1).ok(&["ban", "web", "192.0.2.60"]);
    cluster.wait_remote(&[2, 3], &[lifted], true, PROPAGATION, "a ban h1 will lift");
    cluster.host_mut(3).stop();
    cluster.host(1).ok(&["unban", "192.0.2.60"]);
    cluster.wait_remote(&[2], &[lifted], false, PROPAGATION, "its lift on h2");
    let epoch = cluster.host(2).cluster()["epoch"].clone();
    cluster.hub.stop_redis();
    cluster.hub.start_redis();
    wait_until("h2 sees the new epoch", RECOVERY, || {
        let now = cluster.host(2).cluster()["epoch"].clone();
        if now != epoch && now.is_string() { Ok(()) } else { Err(now) }
    });
    cluster.wait_remote(&[2], &long, true, Duration::ZERO, "the long bans right after the restart");
    wait_until("h1's bans are back in Redis (anti-entropy)", RECOVERY, || {
        match cluster.hub.redis_cli(&["HLEN", "warden:{w}:bans:h1"]).trim().parse::<usize>() {
            Ok(n) if n >= 51 => Ok(()),
            other => Err(other),
        }
    });
    cluster.host_mut(3).start();
    cluster.wait_remote(&[3], &long, true, Duration::ZERO, "h3's long bans right after its start");
    cluster.wait_remote(&[3], &[lifted], false, RECOVERY, "the lift lost with Redis's data, on h3");
    let log = cluster.host(3).log();
    assert!(log.contains("Redis lost its data (new epoch)"), "h3 noticed the new epoch");
    assert!(
        log.contains("it published its bans again after Redis lost its data: reading a snapshot host=h1")
    );
    cluster.wait_remote(&[3], &long, true, Duration::ZERO, "h3's long bans after the resync");
    cluster.wait_until_all_follow_all();
    let after = net("192.0.2.50");
    cluster.host(3).ok(&["ban", "web", "192.0.2.50"]);
    cluster.wait_remote(&[1, 2], &[after], true, PROPAGATION, "a ban after the restart");
}

#[test]
fn a_forged_origin_and_a_flood_get_their_hosts_quarantined() {
    // Both hosts connect as their own Redis users under the README's ACL.
    let own_user = Role { acl: true, ..FULL };
    let strict = Role { enforcer_only: false, limits: "{rate: 20/min, max_active: 1000}", acl: true };
    let Some(cluster) = Cluster::new("cl-bad", &[own_user, strict]) else { return };
    let h1 = |args: &[&str]| {
        let password = std::fs::read_to_string(cluster.host(1).path("redis.pw")).unwrap();
        let mut all = vec!["--user", "h1", "--pass", password.trim(), "--no-auth-warning"];
        all.extend_from_slice(args);
        cluster.hub.redis_cli(&all)
    };
    assert!(h1(&["HSET", "warden:{w}:bans:h2", "x", "y"]).contains("NOPERM"), "h1 may not write h2's keys");
    assert!(h1(&["XADD", "warden:{w}:ctl", "*", "e", "x"]).contains("NOPERM"), "nor the control stream");

    // A host "h9" that is no warden joins, then writes an entry claiming
    // to be h1's.
    cluster.hub.redis_cli(&["SADD", "warden:{w}:hosts", "h9"]);
    wait_until("h2 follows h9", START_WITHIN, || {
        let status = cluster.host(2).cluster();
        if origin(&status, "h9").is_object() { Ok(()) } else { Err(status) }
    });
    let forged = r#"{"v":1,"origin":"h1","seq":1,"op":"ban","net":"192.0.2.66/32","jail":"web","at":1,"until":null,"reason":"x"}"#;
    cluster.hub.redis_cli(&["XADD", "warden:{w}:ev:h9", "*", "e", forged]);
    wait_until("h2 quarantines h9", RECOVERY, || {
        let status = cluster.host(2).cluster();
        match origin(&status, "h9")["quarantined"].as_str() {
            Some(reason) if reason.contains("forged origin") => Ok(()),
            _ => Err(status),
        }
    });
    assert!(!cluster.host(2).remote().contains(&net("192.0.2.66")));
    assert!(cluster.host(2).log().contains("QUARANTINED host h9"));
    let text = cluster.host(2).ok(&["status"]);
    assert!(text.contains("QUARANTINED until"), "{text}");

    // h1 floods: 30 bans at once, over h2's 20/min. h2 quarantines h1 and
    // drops all of h1's bans, including those under the limit.
    let flood: Vec<String> = (1..=30).map(|i| format!("203.0.113.{i}")).collect();
    let mut args = vec!["ban", "web", "--for", "1h"];
    args.extend(flood.iter().map(String::as_str));
    cluster.host(1).ok(&args);
    wait_until("h2 quarantines h1", RECOVERY, || {
        let status = cluster.host(2).cluster();
        match origin(&status, "h1")["quarantined"].as_str() {
            Some(reason) if reason.contains("remote_limits.rate") => Ok(()),
            _ => Err(status),
        }
    });
    assert!(cluster.host(2).remote().is_empty(), "a quarantined origin's bans are dropped");
    assert_eq!(cluster.host(2).cluster()["remote_bans"], 0);
    // h1 itself enforces what it decided; h2's own bans still replicate to h1.
    assert_eq!(
        cluster.host(1).set(&warden::firewall::ipset::set_name("warden", "web", Family::V4)).len(),
        30
    );
    // h2's user may not write the control stream: its cluster-wide unban is
    // refused by Redis, said loudly, and does not hold back what follows.
    cluster.host(2).ok(&["unban", "--cluster", "203.0.113.1"]);
    cluster.host(2).ok(&["ban", "web", "192.0.2.80"]);
    cluster.wait_remote(&[1], &[net("192.0.2.80")], true, PROPAGATION * 3, "h2's ban on h1");
    assert!(cluster.host(2).log().contains("a cluster-wide unban was not published"));
    assert_eq!(cluster.host(2).cluster()["outbox"], 0);
}

#[test]
fn hosts_replicate_over_tls_with_client_certificates() {
    let Some(cluster) = Cluster::with_tls("cl-tls", &[FULL, FULL]) else { return };
    let status = cluster.host(2).cluster();
    assert_eq!(status["redis"], "rediss://10.77.0.1:6379/0", "{status}");
    cluster.host(1).ok(&["ban", "web", "198.51.100.90"]);
    cluster.wait_remote(&[2], &[net("198.51.100.90")], true, PROPAGATION, "a ban over TLS");
    // Without a client certificate Redis refuses the connection.
    let out = cluster
        .hub
        .ns
        .exec("redis-cli", &["-h", &HUB.to_string(), "-p", "6379", "--tls", "--insecure", "PING"])
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "a client without a certificate is refused"
    );
}
