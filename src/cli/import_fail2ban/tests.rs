//! The import on small synthetic fail2ban trees (written here, not copied
//! from fail2ban): what each jail becomes, checked through warden's own
//! configuration parser, and what is warned about or refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{ImportError, Imported, import};
use crate::config::{self, Config, JailConfig, SourceSpec};
use crate::core::{Action, BanTime, PortRange, Protocol, Target};

/// A fail2ban directory with a filter, a few actions and a `jail.conf`
/// shaped like fail2ban's (a `[DEFAULT]` building `action` and `filter`).
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        let tree = Tree(tempfile::tempdir().expect("a temporary directory"));
        tree.write("filter.d/base.conf", "[DEFAULT]\nlogtype = file\n");
        tree.write(
            "filter.d/demo.conf",
            "[INCLUDES]\nbefore = base.conf\n[Definition]\nmode = normal\n\
             failregex = ^login failed for \\S+ from <HOST>$\n\
             journalmatch = _SYSTEMD_UNIT=demo.service + _COMM=demo\n",
        );
        tree.write("filter.d/nojournal.conf", "[Definition]\nfailregex = ^bad request from <HOST>$\n");
        tree.write("filter.d/broken.conf", "[Definition]\nfailregex = ^no address here$\n");
        tree.write(
            "action.d/iptables-multiport.conf",
            "[Definition]\ntype = multiport\nactionban = add <ip>\n[Init]\nchain = INPUT\nport = 1:65535\nprotocol = tcp\nblocktype = REJECT --reject-with <how>\nhow = icmp-port-unreachable\n",
        );
        tree.write(
            "action.d/iptables-allports.conf",
            "[INCLUDES]\nbefore = iptables-multiport.conf\n[Definition]\ntype = allports\n",
        );
        tree.write("action.d/nftables.conf", "[Definition]\ntype = multiport\n[Init]\nchain = f2b\nchain_hook = input\nport = 1:65535\nprotocol = tcp\nblocktype = drop\n");
        tree.write("action.d/sendmail-whois.conf", "[Definition]\nactionban = mail <ip>\n");
        tree.write("action.d/mine.conf", "[Definition]\nactionban = my-script <ip>\n");
        tree.write(
            "jail.conf",
            "[INCLUDES]\nbefore = paths-test.conf\n\
             [DEFAULT]\nbantime = 10m\nfindtime = 10m\nmaxretry = 5\nbackend = auto\nenabled = false\nmode = normal\n\
             filter = %(__name__)s[mode=%(mode)s]\nprotocol = tcp\nchain = <known/chain>\nport = 0:65535\n\
             banaction = iptables-multiport\nbanaction_allports = iptables-allports\n\
             action_ = %(banaction)s[port=\"%(port)s\", protocol=\"%(protocol)s\", chain=\"%(chain)s\"]\n\
             action_mw = %(action_)s\n            sendmail-whois[dest=\"root@localhost\"]\n\
             action = %(action_)s\n\
             [demo]\nport = ssh\nlogpath = %(demo_log)s\nbackend = %(demo_backend)s\n\
             [other]\nfilter = nojournal\nport = http,https\nlogpath = /srv/www/*.log\n",
        );
        tree.write(
            "paths-test.conf",
            "[DEFAULT]\ndemo_log = /var/log/demo.log\ndemo_backend = %(default/backend)s\n",
        );
        tree
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("files are inside the tree"))
            .expect("directory created");
        std::fs::write(path, text).expect("file written");
    }

    fn import(&self) -> Imported {
        match import(self.path()) {
            Ok(imported) => imported,
            Err(e) => panic!("import failed: {e}"),
        }
    }

    fn error(&self) -> String {
        match import(self.path()) {
            Ok(imported) => panic!("import succeeded:\n{}", imported.yaml),
            Err(e) => e.to_string(),
        }
    }
}

/// The imported text as warden reads it (it must be valid).
fn parsed(imported: &Imported) -> Config {
    let no_native = |_: &str| false;
    match config::parse(&imported.yaml, Path::new("imported.yaml"), &no_native) {
        Ok(c) => c,
        Err(e) => panic!("invalid import: {e}\n{}", imported.yaml),
    }
}

fn jail<'c>(config: &'c Config, name: &str) -> &'c JailConfig {
    config.jails.get(name).unwrap_or_else(|| panic!("no jail {name}: {:?}", config.jails.keys()))
}

fn warned<'w>(imported: &'w Imported, jail: &str, needle: &str) -> Vec<&'w String> {
    let prefix = format!("[{jail}] ");
    imported.warnings.iter().filter(|w| w.starts_with(&prefix) && w.contains(needle)).collect()
}

fn ports(list: &[(u16, u16)]) -> Vec<PortRange> {
    list.iter().map(|&(first, last)| PortRange { first, last }).collect()
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn an_enabled_jail_keeps_its_filter_settings_and_ban() {
    let tree = Tree::new();
    tree.write("jail.d/demo.conf", "[demo]\nenabled = true\nmaxretry = 3\n");
    tree.write(
        "jail.local",
        "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 10.0.0.0/255.0.0.0\n[demo]\nmode = aggressive\nbantime = 1h 30m\nfindtime = 1d12h\n\
         bantime.increment = true\nbantime.factor = 2\nbantime.maxtime = 4w\nbantime.rndtime = 5m\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    assert_eq!(imported.jails, ["demo"]);
    assert_eq!(config.fail2ban_filter_dir, tree.path().join("filter.d"));
    let demo = jail(&config, "demo");
    assert_eq!(demo.filter.to_string(), "fail2ban:demo");
    assert_eq!(demo.filter_params, params(&[("mode", "aggressive")]));
    assert_eq!(
        demo.sources,
        [SourceSpec::File { path: "/var/log/demo.log".into(), read_from: Default::default() }]
    );
    assert_eq!(demo.maxretry, 3);
    assert_eq!(demo.findtime, Duration::from_secs(36 * 3600));
    assert_eq!(demo.bantime, BanTime::Finite(Duration::from_secs(5400)));
    assert!(demo.increment.enabled);
    assert_eq!(demo.increment.factor, 2.0);
    assert_eq!(demo.increment.maxtime, Some(Duration::from_secs(28 * 86_400)));
    assert_eq!(demo.increment.rndtime, Some(Duration::from_secs(300)));
    let ignored: Vec<String> = demo.ignoreip.iter().map(ToString::to_string).collect();
    assert_eq!(ignored, ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
    assert_eq!(demo.ports, ports(&[(22, 22)]));
    assert_eq!((demo.protocol, demo.target, demo.action), (Protocol::Tcp, Target::Host, Action::Reject));
    assert!(demo.enabled);
    // The source file does not exist here: said once, naming the option.
    assert_eq!(warned(&imported, "demo", "logpath /var/log/demo.log").len(), 1, "{:?}", imported.warnings);
    // Where it came from is in the text.
    assert!(imported.yaml.contains("# [demo] from "), "{}", imported.yaml);
    assert!(imported.yaml.contains("other"), "the disabled jail is listed as not imported");
}

#[test]
fn shared_settings_go_to_defaults_and_jails_state_what_differs() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[DEFAULT]\nbantime = 2h\n[demo]\nenabled = true\n[other]\nenabled = true\nbantime = -1\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    assert_eq!(jail(&config, "demo").bantime, BanTime::Finite(Duration::from_secs(7200)));
    assert_eq!(jail(&config, "other").bantime, BanTime::Permanent);
    let defaults =
        &imported.yaml[imported.yaml.find("defaults:").unwrap()..imported.yaml.find("jails:").unwrap()];
    assert!(defaults.contains("bantime: 2h") && defaults.contains("target: host"), "{defaults}");
    assert_eq!(imported.yaml.matches("bantime: 2h").count(), 1, "{}", imported.yaml);
    let other = jail(&config, "other");
    assert_eq!(other.ports, ports(&[(80, 80), (443, 443)]));
    assert_eq!(
        other.sources,
        [SourceSpec::File { path: "/srv/www/*.log".into(), read_from: Default::default() }]
    );
}

#[test]
fn a_systemd_backend_reads_the_journal_with_the_filters_journalmatch() {
    let tree = Tree::new();
    tree.write("jail.local", "[demo]\nenabled = true\nbackend = systemd[journalflags=1]\n");
    let imported = tree.import();
    let demo = jail(&parsed(&imported), "demo").clone();
    assert_eq!(demo.filter_params, params(&[("logtype", "journal"), ("mode", "normal")]));
    let SourceSpec::Journald { matches, .. } = &demo.sources[0] else { panic!("{:?}", demo.sources) };
    let groups: Vec<BTreeMap<String, String>> =
        vec![params(&[("_SYSTEMD_UNIT", "demo.service")]), params(&[("_COMM", "demo")])];
    assert_eq!(matches, &groups);
    assert_eq!(warned(&imported, "demo", "journalflags").len(), 1, "{:?}", imported.warnings);
    assert!(warned(&imported, "demo", "logpath").is_empty(), "no file is read: {:?}", imported.warnings);

    // Without a journalmatch, the whole journal, with a warning.
    tree.write("jail.local", "[other]\nenabled = true\nbackend = systemd\n");
    let imported = tree.import();
    let other = jail(&parsed(&imported), "other").clone();
    assert_eq!(
        other.sources,
        [SourceSpec::Journald { matches: Vec::new(), read_from: crate::config::ReadFrom::End }]
    );
    assert_eq!(warned(&imported, "other", "every journal entry").len(), 1, "{:?}", imported.warnings);
}

#[test]
fn actions_warden_cannot_carry_are_each_warned_about() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[demo]\nenabled = true\naction = %(action_mw)s\n  abuseipdb[key=\"x\"]\n  mine\n  cloudflare\n\
         [other]\nenabled = true\naction = sendmail-whois\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    for action in ["sendmail-whois", "abuseipdb", "mine", "cloudflare"] {
        assert_eq!(
            warned(&imported, "demo", &format!("action {action} ")).len(),
            1,
            "{action}: {:?}",
            imported.warnings
        );
    }
    assert!(jail(&config, "demo").enabled, "iptables-multiport still bans");
    // A jail that only sends mail in fail2ban bans nothing in warden either.
    let other = jail(&config, "other");
    assert!(!other.enabled);
    assert_eq!(warned(&imported, "other", "enabled: false").len(), 1, "{:?}", imported.warnings);
}

#[test]
fn tcp_and_udp_actions_become_one_jail_each() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[demo]\nenabled = true\nport = 5060,5061\n\
         action = %(banaction)s[name=%(__name__)s-tcp, port=\"%(port)s\", protocol=\"tcp\"]\n\
         \x20        %(banaction)s[name=%(__name__)s-udp, port=\"%(port)s\", protocol=\"udp\"]\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    assert_eq!(imported.jails, ["demo-tcp", "demo-udp"]);
    for (name, protocol) in [("demo-tcp", Protocol::Tcp), ("demo-udp", Protocol::Udp)] {
        let j = jail(&config, name);
        assert_eq!((j.protocol, j.ports.clone()), (protocol, ports(&[(5060, 5060), (5061, 5061)])));
        assert_eq!(j.filter.to_string(), "fail2ban:demo");
    }
}

#[test]
fn allports_nftables_docker_chains_and_blocktypes() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[demo]\nenabled = true\nbanaction = %(banaction_allports)s\n\
         [other]\nenabled = true\naction = iptables-multiport[port=\"8000:8100\", chain=\"DOCKER-USER\", blocktype=DROP]\n\
         [third]\nenabled = true\nfilter = nojournal\nlogpath = /srv/third.log tail\naction = nftables[type=allports, protocol=udp]\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    let demo = jail(&config, "demo");
    assert!(demo.ports.is_empty(), "every port");
    assert_eq!((demo.protocol, demo.action), (Protocol::Tcp, Action::Reject));
    let other = jail(&config, "other");
    assert_eq!(
        (other.ports.clone(), other.target, other.action),
        (ports(&[(8000, 8100)]), Target::Docker, Action::Drop)
    );
    let third = jail(&config, "third");
    assert_eq!((third.ports.is_empty(), third.protocol, third.action), (true, Protocol::Udp, Action::Drop));
    assert_eq!(
        third.sources,
        [SourceSpec::File { path: "/srv/third.log".into(), read_from: crate::config::ReadFrom::End }]
    );
}

#[test]
fn port_knocking_and_unloadable_filters_are_imported_disabled() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[demo]\nenabled = true\naction = %(action_)s[blocktype=RETURN]\n[other]\nenabled = true\nfilter = broken\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    assert!(!jail(&config, "demo").enabled);
    assert_eq!(warned(&imported, "demo", "RETURN").len(), 1, "{:?}", imported.warnings);
    assert!(!jail(&config, "other").enabled);
    assert_eq!(warned(&imported, "other", "cannot load filter broken").len(), 1, "{:?}", imported.warnings);
}

#[test]
fn names_and_addresses_warden_cannot_take_are_changed_with_a_warning() {
    let tree = Tree::new();
    tree.write(
        "jail.local",
        "[my demo.jail]\nenabled = true\nfilter = demo\nlogpath = /var/log/demo.log\nignoreip = 192.0.2.1 gateway.example.org\n",
    );
    let imported = tree.import();
    let config = parsed(&imported);
    let j = jail(&config, "my-demo-jail");
    assert_eq!(j.ignoreip.len(), 1);
    assert_eq!(
        warned(&imported, "my demo.jail", "imported as `my-demo-jail`").len(),
        1,
        "{:?}",
        imported.warnings
    );
    assert_eq!(warned(&imported, "my demo.jail", "gateway.example.org").len(), 1, "{:?}", imported.warnings);
}

#[test]
fn no_enabled_jail_is_a_valid_empty_configuration() {
    let tree = Tree::new();
    let imported = tree.import();
    assert!(parsed(&imported).jails.is_empty());
    assert!(imported.warnings.iter().any(|w| w.contains("no jail is enabled")), "{:?}", imported.warnings);
}

#[test]
fn bad_input_names_the_file_section_and_option() {
    let tree = Tree::new();
    let cases: &[(&str, &[&str])] = &[
        ("[demo]\nenabled = perhaps\n", &["jail.local:2", "[demo] enabled", "true or false"]),
        (
            "[demo]\nenabled = true\nbantime = ten minutes\n",
            &["jail.local:3", "[demo] bantime", "not a time"],
        ),
        ("[demo]\nenabled = true\nbantime = 0\n", &["[demo] bantime", "no time"]),
        ("[demo]\nenabled = true\nmaxretry = many\n", &["[demo] maxretry", "whole number"]),
        (
            "[demo]\nenabled = true\nbantime = %(other)s\nother = %(bantime)s\n",
            &["jail.local:3", "[demo] bantime", "loop"],
        ),
        ("[demo]\nenabled = true\nfilter = nothere\n", &["[demo] filter", "nothere"]),
        ("[demo]\nenabled = true\naction = iptables-nothere\n", &["[demo] action", "iptables-nothere"]),
        ("[demo]\nenabled = true\nlogpath = relative.log\n", &["[demo] logpath", "absolute"]),
        ("[demo]\nenabled = true\nbackend = carrier-pigeon\n", &["[demo] backend", "carrier-pigeon"]),
        ("[demo]\nenabled = true\nfilter = demo[mode=\n", &["[demo] filter"]),
        ("[demo]\nenabled = true\nbantime.multipliers = 1 0 4\n", &["[demo] bantime.multipliers", "\"0\""]),
        ("[INCLUDES]\nbefore = paths-missing.conf\n", &["jail.local:2", "paths-missing.conf"]),
        ("[demo]\nenabled = true\nlogpath = /var/log/[x\n", &["[demo] logpath", "warden cannot use"]),
    ];
    for (local, needles) in cases {
        tree.write("jail.local", local);
        let e = tree.error();
        for needle in *needles {
            assert!(e.contains(needle), "{local:?}: {needle:?} not in {e}");
        }
    }
    // A file that cannot be read (not UTF-8), and a directory that is not there.
    std::fs::write(tree.path().join("jail.local"), b"[demo]\nenabled = \xff\n").unwrap();
    let e = tree.error();
    assert!(e.contains("cannot read") && e.contains("jail.local"), "{e}");
    let gone = tree.path().join("nothere");
    let e = import(&gone).unwrap_err();
    assert!(matches!(e, ImportError::Dir { .. }) && e.to_string().contains("nothere"), "{e}");
}

#[test]
fn options_no_file_sets_take_fail2bans_built_in_values() {
    let tree = Tree::new();
    tree.write(
        "jail.conf",
        "[bare]\nenabled = true\nfilter = nojournal\nlogpath = /srv/bare.log\naction = iptables-multiport[port=http]\n",
    );
    let imported = tree.import();
    let bare = jail(&parsed(&imported), "bare").clone();
    assert_eq!((bare.maxretry, bare.findtime), (3, Duration::from_secs(600)));
    assert_eq!(bare.bantime, BanTime::Finite(Duration::from_secs(600)));
    assert_eq!(bare.ports, ports(&[(80, 80)]));
    assert!(bare.filter_params.is_empty());
}

#[test]
fn other_host_blockers_become_bans_on_every_port_with_one_warning() {
    let tree = Tree::new();
    tree.write(
        "action.d/route.conf",
        "[Definition]\nactionban = ip route add <blocktype> <ip>\n[Init]\nblocktype = unreachable\n",
    );
    tree.write("jail.local", "[demo]\nenabled = true\naction = route\n");
    let imported = tree.import();
    let demo = jail(&parsed(&imported), "demo").clone();
    assert_eq!((demo.ports.is_empty(), demo.protocol, demo.action), (true, Protocol::All, Action::Reject));
    assert_eq!(warned(&imported, "demo", "route").len(), 1, "{:?}", imported.warnings);
}
