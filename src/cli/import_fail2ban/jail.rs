//! One fail2ban jail in warden's terms (the parent module's table says
//! what maps to what), and `[DEFAULT]`'s shared settings as `defaults:`.
//!
//! [`Context`] owns the warnings collected along the way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ports::{self, Ports};
use super::yaml::{block_scalar, flow_list, flow_map, scalar};
use super::{Field, JailOut, Origin};
use crate::core::duration::format_duration;
use crate::core::{Action, PortRange, Protocol, Target, parse_ip_or_net};
use crate::filter::Registry;
use crate::filter::fail2ban::jails::{
    ActionFile, JailFiles, JailsError, Place, Setting, extract_options, filter_sets_logtype, parse_bool,
    split_with_options, split_words, str2seconds,
};
use crate::filter::fail2ban::{self, Options};

/// fail2ban's built-in values, for jails where no file sets them.
const FAIL2BAN_MAXRETRY: &str = "3";
const FAIL2BAN_FINDTIME: &str = "10m";
const FAIL2BAN_BANTIME: &str = "10m";

/// The backends that read files.
const FILE_BACKENDS: &[&str] = &["auto", "polling", "pyinotify", "gamin"];

/// State of one import: where fail2ban's files are, and the warnings.
pub(super) struct Context<'a> {
    files: &'a JailFiles,
    filter_dir: PathBuf,
    action_dir: PathBuf,
    shipped: Registry,
    pub warnings: Vec<String>,
}

/// A shared setting (`maxretry`, `bantime`, …) and the warnings that go
/// with it, emitted only where the field is written.
struct Shared {
    field: Field,
    warnings: Vec<String>,
}

/// What one banning action enforces, in warden's terms.
#[derive(Debug, Clone)]
struct Enforcement {
    ports: Ports,
    protocol: Protocol,
    target: Target,
    action: Action,
    /// The fail2ban actions with this enforcement, described for a comment.
    via: Vec<String>,
}

impl Enforcement {
    fn same(&self, other: &Enforcement) -> bool {
        (&self.ports, self.protocol, self.target, self.action)
            == (&other.ports, other.protocol, other.target, other.action)
    }
}

/// How warden treats a fail2ban action.
enum Kind {
    /// Bans in the kernel firewall, as warden does.
    Firewall,
    /// Blocks on this host by other means; warden's own rules replace it
    /// (every port and protocol). The text says what differs.
    OtherBlock(String),
    /// Nothing warden does; the text says why and what to do instead.
    NotCarried(String),
    /// fail2ban's `dummy`: does nothing.
    Nothing,
}

fn classify(name: &str) -> Kind {
    const NOTIFY: &str = "warden sends no notifications (it runs no process per ban): follow bans with `warden bans --json` or warden's log, and alert from there";
    const REPORT: &str =
        "warden reports bans to no one: send them from `warden bans --json` with a script if you need to";
    let lower = name.to_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| lower.starts_with(p));
    if starts(&["iptables", "ip6tables", "nftables", "firewallcmd"]) {
        return Kind::Firewall;
    }
    if lower == "dummy" {
        return Kind::Nothing;
    }
    if starts(&["sendmail", "mail", "smtp", "apprise"]) {
        return Kind::NotCarried(NOTIFY.to_string());
    }
    if starts(&[
        "abuseipdb",
        "blocklist_de",
        "dshield",
        "mynetwatchman",
        "badips",
        "xarf",
        "complain",
        "ipthreat",
    ]) {
        return Kind::NotCarried(REPORT.to_string());
    }
    if starts(&["cloudflare"]) {
        return Kind::NotCarried(
            "warden bans in this host's firewall, not at Cloudflare (behind Cloudflare, clients reach this host from Cloudflare's addresses): keep banning at Cloudflare with Cloudflare's own tools"
                .to_string(),
        );
    }
    if starts(&["nginx-block-map", "netscaler", "nsupdate"]) {
        return Kind::NotCarried(format!(
            "warden updates no other system ({name} blocks outside this host's firewall); it bans in its own iptables chains only"
        ));
    }
    let host_blockers = [
        "ufw",
        "shorewall",
        "route",
        "hostsdeny",
        "pf",
        "ipfw",
        "bsd-ipfw",
        "osx-ipfw",
        "osx-afctl",
        "ipfilter",
        "npf",
        "apf",
        "csf-ip-deny",
        "symbiosis-blacklist",
    ];
    if host_blockers.iter().any(|b| lower == *b || lower.starts_with(&format!("{b}-"))) {
        return Kind::OtherBlock(format!(
            "warden does not drive {name}: it bans in its own iptables chains instead, on every port and protocol ({name}'s own block list is no longer updated)"
        ));
    }
    if lower.ends_with(".py") {
        return Kind::NotCarried(format!(
            "warden runs no Python actions: port what action.d/{name} does to a script that follows `warden bans --json`"
        ));
    }
    Kind::NotCarried(format!(
        "custom actions are not carried over (warden bans in its own firewall chains and runs no command per ban): port what action.d/{name}.conf does to a script that follows `warden bans --json`"
    ))
}

fn origin(s: &Setting, section: &str, option: &str) -> Option<Origin> {
    Some(Origin { place: s.place.clone(), section: section.to_string(), option: option.to_string() })
}

fn bad(s: &Setting, section: &str, option: &str, message: impl Into<String>) -> JailsError {
    JailsError::Value {
        place: s.place.clone(),
        section: section.to_string(),
        option: option.to_string(),
        message: message.into(),
    }
}

/// Whole seconds as a warden duration (`90s`, `10m`, `1w`).
fn duration_text(secs: f64) -> String {
    format_duration(Duration::from_secs(secs.round().max(0.0) as u64))
}

/// `ip`, `ip/prefix` or `ip/netmask` (`192.168.0.0/255.255.0.0`) as
/// warden reads it; `None` for anything else (host names).
fn address(item: &str) -> Option<String> {
    if parse_ip_or_net(item).is_ok() {
        return Some(item.to_string());
    }
    let (ip, mask) = item.split_once('/')?;
    let mask: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    // A netmask is contiguous ones; anything else is no prefix.
    (bits.checked_shl(len).unwrap_or(0) == 0 && ip.parse::<std::net::Ipv4Addr>().is_ok())
        .then(|| format!("{ip}/{len}"))
}

fn port_list(ranges: &[PortRange]) -> String {
    let items: Vec<String> = ranges
        .iter()
        .map(|r| if r.first == r.last { r.first.to_string() } else { scalar(&r.to_string()) })
        .collect();
    flow_list(&items)
}

impl<'a> Context<'a> {
    pub(super) fn new(dir: &Path, files: &'a JailFiles, shipped: Registry) -> Context<'a> {
        Context {
            files,
            filter_dir: dir.join("filter.d"),
            action_dir: dir.join("action.d"),
            shipped,
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, section: &str, message: impl AsRef<str>) {
        self.warnings.push(format!("[{section}] {}", message.as_ref()));
    }

    fn get(&self, section: &str, option: &str) -> Result<Option<Setting>, JailsError> {
        self.files.get(section, option)
    }

    /// A set option with a non-empty value (fail2ban treats `x =` as unset
    /// for most options).
    fn get_set(&self, section: &str, option: &str) -> Result<Option<Setting>, JailsError> {
        Ok(self.get(section, option)?.filter(|s| !s.value.trim().is_empty()))
    }

    /// An error for an option no file sets, placed at the jail's section.
    fn missing(&self, section: &str, option: &str, message: impl Into<String>) -> JailsError {
        let path = self.files.section_files(section).into_iter().next().unwrap_or_default();
        JailsError::Value {
            place: Place { path, line: 0 },
            section: section.to_string(),
            option: option.to_string(),
            message: message.into(),
        }
    }

    /// `[DEFAULT]`'s shared settings as `defaults:`, and `target: host`.
    pub(super) fn defaults(&mut self) -> Result<Vec<Field>, JailsError> {
        let mut out = Vec::new();
        for shared in self.shared("DEFAULT", true)? {
            for w in shared.warnings {
                self.warnings.push(format!("[DEFAULT] {w}"));
            }
            out.push(shared.field);
        }
        if let Some(first) = out.first_mut() {
            first.notes.push("fail2ban's [DEFAULT]".to_string());
        }
        let ignoreself = match self.get_set("DEFAULT", "ignoreself") {
            Ok(Some(s)) => parse_bool(&s.value).unwrap_or(true),
            _ => true,
        };
        let mut target = Field::new("target", "host".to_string());
        target.notes.push(
            "fail2ban protects services on this host, so bans go to INPUT (`target: host`). For ports"
                .to_string(),
        );
        target
            .notes
            .push("that Docker containers publish, use `target: docker` (DOCKER-USER) instead.".to_string());
        if ignoreself {
            target.notes.push(
                "fail2ban's ignoreself (never ban this host's own addresses) has no warden equivalent: add them to ignoreip."
                    .to_string(),
            );
        }
        out.push(target);
        Ok(out)
    }

    /// `maxretry`, `findtime`, `bantime`, `bantime_increment` and
    /// `ignoreip` of `section`, those it sets. With `lenient` (for
    /// `[DEFAULT]`), a value that cannot be read is left out: jails that
    /// inherit it report it.
    fn shared(&self, section: &str, lenient: bool) -> Result<Vec<Shared>, JailsError> {
        type Reader<'r> = fn(&Context<'r>, &str) -> Result<Option<Shared>, JailsError>;
        let readers: [Reader<'a>; 5] =
            [Context::maxretry, Context::findtime, Context::bantime, Context::increment, Context::ignoreip];
        let mut out = Vec::new();
        for read in readers {
            match read(self, section) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(_) if lenient => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn maxretry(&self, section: &str) -> Result<Option<Shared>, JailsError> {
        let Some(s) = self.get_set(section, "maxretry")? else { return Ok(None) };
        let n: i64 = s.value.trim().parse().map_err(|_| {
            bad(&s, section, "maxretry", format!("{:?} is not a whole number of failures (like 5)", s.value))
        })?;
        let mut warnings = Vec::new();
        if n < 1 {
            warnings.push(format!(
                "maxretry {n} ({}): fail2ban bans at the first failure then; warden says so with maxretry: 1",
                s.place
            ));
        }
        let n =
            u32::try_from(n.max(1)).map_err(|_| bad(&s, section, "maxretry", "the number is too large"))?;
        let field = Field::new("maxretry", n.to_string()).from(origin(&s, section, "maxretry"));
        Ok(Some(Shared { field, warnings }))
    }

    fn seconds(&self, s: &Setting, section: &str, option: &str) -> Result<f64, JailsError> {
        str2seconds(&s.value).map_err(|why| {
            bad(
                s,
                section,
                option,
                format!(
                    "{:?} is not a time ({why}); fail2ban writes times like 600, 10m, 1h30m, 1d or 1w",
                    s.value
                ),
            )
        })
    }

    fn findtime(&self, section: &str) -> Result<Option<Shared>, JailsError> {
        let Some(s) = self.get_set(section, "findtime")? else { return Ok(None) };
        let secs = self.seconds(&s, section, "findtime")?;
        if secs.round() < 1.0 {
            return Err(bad(
                &s,
                section,
                "findtime",
                format!("{:?}: the window must be at least 1s", s.value),
            ));
        }
        let field = Field::new("findtime", duration_text(secs)).from(origin(&s, section, "findtime"));
        Ok(Some(Shared { field, warnings: Vec::new() }))
    }

    fn bantime(&self, section: &str) -> Result<Option<Shared>, JailsError> {
        let Some(s) = self.get_set(section, "bantime")? else { return Ok(None) };
        let secs = self.seconds(&s, section, "bantime")?;
        let text = if secs < 0.0 {
            "permanent".to_string()
        } else if secs.round() < 1.0 {
            return Err(bad(
                &s,
                section,
                "bantime",
                format!(
                    "{:?} bans for no time: use a time of 1s or more, or a negative one for permanent bans",
                    s.value
                ),
            ));
        } else {
            duration_text(secs)
        };
        let field = Field::new("bantime", text).from(origin(&s, section, "bantime"));
        Ok(Some(Shared { field, warnings: Vec::new() }))
    }

    fn increment(&self, section: &str) -> Result<Option<Shared>, JailsError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut first: Option<Origin> = None;
        let mut warnings = Vec::new();
        let mut formula = None;
        for option in [
            "bantime.increment",
            "bantime.factor",
            "bantime.multipliers",
            "bantime.maxtime",
            "bantime.rndtime",
            "bantime.formula",
            "bantime.overalljails",
        ] {
            let Some(s) = self.get_set(section, option)? else { continue };
            if first.is_none() {
                first = origin(&s, section, option);
            }
            let v = s.value.trim();
            match option {
                "bantime.increment" | "bantime.overalljails" => {
                    let on = parse_bool(v).ok_or_else(|| {
                        bad(&s, section, option, format!("{v:?} is not a boolean: write true or false"))
                    })?;
                    if option == "bantime.increment" {
                        pairs.push(("enabled".into(), on.to_string()));
                    } else if on {
                        warnings.push(format!(
                            "bantime.overalljails ({}): warden counts a repeat offender's earlier bans in the same jail only",
                            s.place
                        ));
                    }
                }
                "bantime.factor" => {
                    let f = v.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0).ok_or_else(|| {
                        bad(&s, section, option, format!("{v:?} is not a number above 0 (like 1 or 2)"))
                    })?;
                    pairs.push(("factor".into(), f.to_string()));
                }
                "bantime.multipliers" => {
                    let mut list = Vec::new();
                    for item in split_words(v) {
                        match item.parse::<u32>() {
                            Ok(n) if n >= 1 => list.push(n.to_string()),
                            _ => {
                                return Err(bad(
                                    &s,
                                    section,
                                    option,
                                    format!(
                                        "{item:?}: multipliers are whole numbers of 1 or more (like 1 2 4 8)"
                                    ),
                                ));
                            }
                        }
                    }
                    pairs.push(("multipliers".into(), flow_list(&list)));
                }
                "bantime.maxtime" | "bantime.rndtime" => {
                    let secs = self.seconds(&s, section, option)?;
                    let key = option.trim_start_matches("bantime.");
                    if secs < 0.0 || (key == "maxtime" && secs.round() < 1.0) {
                        return Err(bad(
                            &s,
                            section,
                            option,
                            format!("{v:?}: expected a time above 0 (like 1w)"),
                        ));
                    }
                    pairs.push((key.into(), duration_text(secs)));
                }
                _ => formula = Some(s.place.clone()),
            }
        }
        let enabled = pairs.iter().any(|(k, v)| k == "enabled" && v == "true");
        if let Some(place) = formula.filter(|_| enabled && !pairs.iter().any(|(k, _)| k == "multipliers")) {
            warnings.push(format!(
                "bantime.formula ({place}) is not carried over: warden grows bans by bantime.factor (doubling each time) or bantime.multipliers"
            ));
        }
        if pairs.is_empty() {
            return Ok(None);
        }
        let field = Field::new("bantime_increment", flow_map(&pairs)).from(first);
        Ok(Some(Shared { field, warnings }))
    }

    fn ignoreip(&self, section: &str) -> Result<Option<Shared>, JailsError> {
        let Some(s) = self.get(section, "ignoreip")? else { return Ok(None) };
        let mut items = Vec::new();
        let mut warnings = Vec::new();
        for word in split_words(&s.value) {
            let looks_numeric = word.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/'));
            match address(word) {
                Some(a) => items.push(scalar(&a)),
                None if looks_numeric => warnings.push(format!(
                    "ignoreip {word} ({}): not a valid address or network (like 192.0.2.7, 198.51.100.0/24 or 2001:db8::/32); left out",
                    s.place
                )),
                None => warnings.push(format!(
                    "ignoreip {word} ({}): warden never resolves host names, so list the addresses to spare instead; left out",
                    s.place
                )),
            }
        }
        let field = Field::new("ignoreip", flow_list(&items)).from(origin(&s, section, "ignoreip"));
        Ok(Some(Shared { field, warnings }))
    }

    /// Imports enabled jail `section`: one warden jail, or one per distinct
    /// enforcement when its actions ban differently; none when it has no
    /// filter.
    pub(super) fn jail(&mut self, section: &str, defaults: &[Field]) -> Result<Vec<JailOut>, JailsError> {
        let Some(fs) = self.get_set(section, "filter")? else {
            self.warn(section, "has no filter, so it never bans in fail2ban either; not imported");
            return Ok(Vec::new());
        };
        let (filter, mut params) =
            extract_options(&fs.value).map_err(|why| bad(&fs, section, "filter", why))?;
        if !fail2ban::exists(&self.filter_dir, &filter) {
            return Err(bad(
                &fs,
                section,
                "filter",
                format!(
                    "no filter {filter:?} in {} (no {filter}.conf or {filter}.local): fail2ban would not start this jail",
                    self.filter_dir.display()
                ),
            ));
        }

        let backend = self.get_set(section, "backend")?;
        let (backend_name, backend_opts) = match &backend {
            Some(b) => extract_options(&b.value).map_err(|why| bad(b, section, "backend", why))?,
            None => ("auto".to_string(), BTreeMap::new()),
        };
        let journal = backend_name.starts_with("systemd");
        if let Some(b) =
            backend.as_ref().filter(|_| !journal && !FILE_BACKENDS.contains(&backend_name.as_str()))
        {
            return Err(bad(
                b,
                section,
                "backend",
                format!(
                    "unknown backend {backend_name:?}: fail2ban's are auto, polling, pyinotify, gamin and systemd"
                ),
            ));
        }
        if journal && !backend_opts.is_empty() {
            let keys: Vec<&str> = backend_opts.keys().map(String::as_str).collect();
            self.warn(
                section,
                format!(
                    "backend {backend_name}: its options ({}) are not carried over; warden reads the journal in journal_dirs (default /var/log/journal and /run/log/journal)",
                    keys.join(", ")
                ),
            );
        }
        // fail2ban derives the filter's logtype from the backend.
        if journal && !params.contains_key("logtype") && !filter_sets_logtype(&self.filter_dir, &filter) {
            params.insert("logtype".to_string(), "journal".to_string());
        }
        self.filter_options(section, &filter, &mut params)?;
        if filter == "recidive" {
            self.warn(
                section,
                "filter recidive reads fail2ban's own log, which stops growing once warden replaces fail2ban: warden's bantime_increment lengthens repeat offenders' bans instead (or remove this jail)",
            );
        }

        let loaded = fail2ban::load(&self.filter_dir, &filter, &params, &Options::default());
        let (journalmatch, unloadable) = match loaded {
            Ok(f) => (f.journalmatch().to_vec(), None),
            Err(e) => {
                self.warn(
                    section,
                    format!(
                        "warden cannot load filter {filter}, so the jail is imported with enabled: false: {e}"
                    ),
                );
                (Vec::new(), Some(e.to_string()))
            }
        };
        let sources = if journal {
            self.journald_source(section, &filter, journalmatch, unloadable.is_none())?
        } else {
            self.file_sources(section, !journalmatch.is_empty())?
        };

        let mut fields = vec![{
            let mut comment = format!("fail2ban's filter.d/{filter}.conf");
            if self.shipped.contains(&filter) {
                comment
                    .push_str(&format!("; warden also ships a native `{filter}` filter (filter: {filter})"));
            }
            Field::new("filter", block_scalar(&format!("fail2ban:{filter}")))
                .comment(comment)
                .from(origin(&fs, section, "filter"))
        }];
        if !params.is_empty() {
            let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (scalar(k), scalar(v))).collect();
            fields.push(Field::new("filter_params", flow_map(&pairs)).from(origin(&fs, section, "filter")));
        }
        fields.push(sources);
        fields.extend(self.jail_shared(section, defaults)?);

        let (groups, ran) = self.enforcements(section)?;
        let base = JailOut {
            name: section.to_string(),
            section: section.to_string(),
            comments: vec![format!("[{section}] from {}", self.files.section_files(section).join(", "))],
            fields,
        };
        if groups.is_empty() {
            let why = if ran.is_empty() {
                "fail2ban runs no action for it".to_string()
            } else {
                format!("fail2ban only runs {} for it", ran.join(", "))
            };
            self.warn(
                section,
                format!("no action of this jail bans addresses ({why}); imported with enabled: false, set enabled: true to let warden ban"),
            );
            let mut jail = base;
            jail.fields
                .push(Field::new("enabled", "false".into()).comment(format!("no banning action: {why}")));
            return Ok(vec![jail]);
        }
        let protocols: Vec<Protocol> = groups.iter().map(|g| g.protocol).collect();
        let by_protocol = (1..protocols.len()).all(|i| !protocols[..i].contains(&protocols[i]));
        let mut out = Vec::new();
        for (i, group) in groups.iter().enumerate() {
            let mut jail = base.clone();
            if groups.len() > 1 {
                let suffix =
                    if by_protocol { protocol_name(group.protocol).to_string() } else { (i + 1).to_string() };
                jail.name = format!("{section}-{suffix}");
                jail.comments.push(format!(
                    "fail2ban's [{section}] bans through {} differing actions: one warden jail each",
                    groups.len()
                ));
            }
            jail.comments.push(format!("bans as fail2ban's {}", group.via.join("; ")));
            if let Ports::List(ranges) = &group.ports {
                jail.fields.push(Field::new("ports", port_list(ranges)));
            }
            if group.protocol != Protocol::Tcp {
                jail.fields.push(Field::new("protocol", protocol_name(group.protocol).to_string()));
            }
            if group.target == Target::Docker {
                jail.fields.push(
                    Field::new("target", "docker".into()).comment("fail2ban banned in DOCKER-USER/FORWARD"),
                );
            }
            if group.action == Action::Reject {
                jail.fields.push(Field::new("action", "reject".into()));
            }
            if let Some(why) = &unloadable {
                jail.fields.push(
                    Field::new("enabled", "false".into())
                        .comment(format!("warden cannot load the filter: {why}")),
                );
            }
            out.push(jail);
        }
        Ok(out)
    }

    /// Filter options a jail may set for its filter: `maxlines`,
    /// `datepattern` and `prefregex` replace the filter's (as filter
    /// parameters); added patterns and the rest are warned about.
    fn filter_options(
        &mut self,
        section: &str,
        filter: &str,
        params: &mut BTreeMap<String, String>,
    ) -> Result<(), JailsError> {
        for option in ["maxlines", "datepattern", "prefregex"] {
            if let Some(s) = self.get_set(section, option)?
                && !params.contains_key(option)
            {
                params.insert(option.to_string(), s.value);
            }
        }
        for option in ["failregex", "ignoreregex"] {
            if let Some(s) = self.get_set(section, option)? {
                self.warn(
                    section,
                    format!(
                        "{option} ({}) adds patterns to filter {filter}; warden adds none per jail: put them in filter.d/{filter}.local as `{option} = %(known/{option})s` followed by yours, then import again",
                        s.place
                    ),
                );
            }
        }
        if let Some(s) = self.get_set(section, "usedns")?
            && s.value.trim().eq_ignore_ascii_case("yes")
        {
            self.warn(
                section,
                format!(
                    "usedns = yes ({}): warden never resolves host names, so a line naming a host instead of an address does not count",
                    s.place
                ),
            );
        }
        if let Some(s) = self.get_set(section, "logtimezone")? {
            self.warn(
                section,
                format!(
                    "logtimezone {} ({}) is not carried over: warden reads dates without a zone as UTC",
                    s.value, s.place
                ),
            );
        }
        if let Some(s) = self.get_set(section, "logencoding")? {
            let enc = s.value.trim().to_lowercase();
            if !matches!(enc.as_str(), "auto" | "utf-8" | "utf8" | "ascii") {
                self.warn(
                    section,
                    format!(
                        "logencoding {} ({}) is not carried over: warden reads logs as UTF-8",
                        s.value, s.place
                    ),
                );
            }
        }
        if let Some(s) = self.get_set(section, "ignorecommand")? {
            self.warn(
                section,
                format!(
                    "ignorecommand ({}) is not carried over: warden runs no commands; list the addresses to spare in ignoreip",
                    s.place
                ),
            );
        }
        Ok(())
    }

    /// `sources` for a journal backend: the filter's `journalmatch` plus
    /// the jail's own.
    fn journald_source(
        &mut self,
        section: &str,
        filter: &str,
        mut journalmatch: Vec<String>,
        loaded: bool,
    ) -> Result<Field, JailsError> {
        let backend = self.get(section, "backend")?;
        if let Some(own) = self.get_set(section, "journalmatch")? {
            journalmatch.extend(
                own.value
                    .lines()
                    .flat_map(|l| l.split(" + "))
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty()),
            );
        }
        let groups: Vec<String> = journalmatch
            .iter()
            .filter_map(|item| {
                let pairs: Vec<(String, String)> = item
                    .split_whitespace()
                    .filter(|w| *w != "+")
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (scalar(k), scalar(v)))
                    .collect();
                (!pairs.is_empty()).then(|| flow_map(&pairs))
            })
            .collect();
        let item = if groups.is_empty() {
            if loaded {
                self.warn(
                    section,
                    format!("filter {filter} has no journalmatch, so warden reads every journal entry for this jail (as fail2ban does); add a match to the journald source to narrow it"),
                );
            }
            "journald: {}".to_string()
        } else {
            format!("journald: {{match: {}}}", flow_list(&groups))
        };
        let mut field =
            Field::new("sources", String::new()).from(backend.and_then(|b| origin(&b, section, "backend")));
        field.items.push(item);
        Ok(field)
    }

    /// `sources` for a file backend: one `file` source per `logpath` line.
    fn file_sources(&mut self, section: &str, has_journalmatch: bool) -> Result<Field, JailsError> {
        let Some(lp) = self.get_set(section, "logpath")? else {
            return Err(self.missing(
                section,
                "logpath",
                "no log file to read: set logpath, or backend = systemd to read the journal",
            ));
        };
        let mut items: Vec<String> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        let mut found = false;
        for line in lp.value.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (path, from_end) = match line.rsplit_once(char::is_whitespace) {
                Some((p, "tail")) => (p.trim(), true),
                Some((p, "head")) => (p.trim(), false),
                _ => (line, false),
            };
            if !path.starts_with('/') {
                return Err(bad(
                    &lp,
                    section,
                    "logpath",
                    format!("{path:?}: warden needs absolute paths (starting with /)"),
                ));
            }
            if glob::glob(path).is_ok_and(|mut paths| paths.any(|p| p.is_ok_and(|p| p.exists()))) {
                found = true;
            } else {
                missing.push(path);
            }
            let item = if from_end {
                format!("file: {{path: {}, read_from: end}}", scalar(path))
            } else {
                format!("file: {{path: {}}}", scalar(path))
            };
            if !items.contains(&item) {
                items.push(item);
            }
        }
        if !missing.is_empty() {
            let (what, it) = if missing.len() == 1 { ("file", "it") } else { ("files", "them") };
            let mut message =
                format!("logpath {} ({}): no such {what} on this host now", missing.join(", "), lp.place);
            if !found {
                message.push_str(" (fail2ban would not start the jail)");
            }
            message.push_str(&format!("; warden follows {it} once created"));
            if !found && has_journalmatch {
                message.push_str(
                    "; if the service logs to the journal instead, set backend = systemd for this jail in jail.local and import again",
                );
            }
            self.warn(section, message);
        }
        let mut field = Field::new("sources", String::new()).from(origin(&lp, section, "logpath"));
        field.items = items;
        Ok(field)
    }

    /// The shared settings a jail writes: those that differ from
    /// `defaults`, and fail2ban's built-in values where no file sets one.
    fn jail_shared(&mut self, section: &str, defaults: &[Field]) -> Result<Vec<Field>, JailsError> {
        let mut out = Vec::new();
        let shared = self.shared(section, false)?;
        let keys: [(&'static str, Option<&str>); 5] = [
            ("maxretry", Some(FAIL2BAN_MAXRETRY)),
            ("findtime", Some(FAIL2BAN_FINDTIME)),
            ("bantime", Some(FAIL2BAN_BANTIME)),
            ("bantime_increment", None),
            ("ignoreip", None),
        ];
        for (key, builtin) in keys {
            let default = defaults.iter().find(|f| f.key == key);
            match (shared.iter().find(|s| s.field.key == key), default, builtin) {
                (Some(s), _, _) if default.is_none_or(|d| d.value != s.field.value) => {
                    for w in &s.warnings {
                        self.warn(section, w);
                    }
                    out.push(s.field.clone());
                }
                (None, None, Some(value)) => {
                    out.push(Field::new(key, value.to_string()).comment("fail2ban's built-in value"));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// What the jail's actions enforce, merged where equal, and the names
    /// of all its actions (for messages).
    fn enforcements(&mut self, section: &str) -> Result<(Vec<Enforcement>, Vec<String>), JailsError> {
        let Some(actions) = self.get_set(section, "action")? else { return Ok((Vec::new(), Vec::new())) };
        let mut groups: Vec<Enforcement> = Vec::new();
        let mut ran = Vec::new();
        for spec in split_with_options(&actions.value) {
            let (name, params) =
                extract_options(spec).map_err(|why| bad(&actions, section, "action", why))?;
            ran.push(name.clone());
            let enforcement = match classify(&name) {
                Kind::Firewall => match self.firewall(section, &actions, &name, &params)? {
                    Some(e) => e,
                    None => continue,
                },
                Kind::OtherBlock(why) => {
                    let file = self.action_file(section, &actions, &name, &params)?;
                    let Some((action, blocktype)) = self.blocktype(section, &name, &file)? else { continue };
                    self.warn(section, format!("action {name}: {why}"));
                    Enforcement {
                        ports: Ports::All,
                        protocol: Protocol::All,
                        target: Target::Host,
                        action,
                        via: vec![format!("{name} (every port and protocol{blocktype})")],
                    }
                }
                Kind::NotCarried(why) => {
                    self.warn(section, format!("action {name} is not carried over: {why}"));
                    continue;
                }
                Kind::Nothing => continue,
            };
            match groups.iter_mut().find(|g| g.same(&enforcement)) {
                Some(g) => g.via.extend(enforcement.via),
                None => groups.push(enforcement),
            }
        }
        Ok((groups, ran))
    }

    fn action_file(
        &self,
        section: &str,
        actions: &Setting,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<ActionFile, JailsError> {
        ActionFile::read(&self.action_dir, name, params)?.ok_or_else(|| {
            bad(
                actions,
                section,
                "action",
                format!(
                    "no action {name:?} in {} (no {name}.conf): fail2ban would not start this jail",
                    self.action_dir.display()
                ),
            )
        })
    }

    /// `drop` or `reject` from the action's `blocktype`, and a note on it;
    /// `None` when the action lets the address through instead (port
    /// knocking: `blocktype = RETURN`).
    fn blocktype(
        &mut self,
        section: &str,
        name: &str,
        file: &ActionFile,
    ) -> Result<Option<(Action, String)>, JailsError> {
        let Some(blocktype) = file.get("blocktype")? else { return Ok(Some((Action::Drop, String::new()))) };
        let lower = blocktype.trim().to_lowercase();
        // The spellings of fail2ban's actions: iptables' REJECT, nftables'
        // reject, ipfw's `unreach port`, ipfilter's `return-icmp`, route's
        // `unreachable`/`prohibit` (refusals), and DROP or a blackhole.
        let refuses = ["reject", "unreach", "return-icmp", "prohibit"];
        let action = if refuses.iter().any(|r| lower.contains(r)) {
            Action::Reject
        } else if lower.contains("drop") || lower.contains("blackhole") {
            Action::Drop
        } else if lower == "return" || lower == "accept" {
            self.warn(
                section,
                format!(
                    "action {name} is not carried over: its blocktype {blocktype} lets the address through rather than blocking it (port knocking); warden only bans"
                ),
            );
            return Ok(None);
        } else {
            self.warn(
                section,
                format!(
                    "action {name}: blocktype {blocktype:?} has no warden equivalent; warden drops the banned address's packets"
                ),
            );
            Action::Drop
        };
        Ok(Some((action, format!(", blocktype {blocktype}"))))
    }

    /// What an iptables, nftables or firewalld action bans.
    fn firewall(
        &mut self,
        section: &str,
        actions: &Setting,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Enforcement>, JailsError> {
        let file = self.action_file(section, actions, name, params)?;
        let Some((action, blocktype)) = self.blocktype(section, name, &file)? else { return Ok(None) };
        let jail_value = |cx: &Self, option: &str| -> Result<Option<String>, JailsError> {
            Ok(cx.get_set(section, option)?.map(|s| s.value))
        };
        let kind = file.get("type")?.unwrap_or_default();
        let all_ports = kind.trim() == "allports" || name.contains("allports");
        let port_text = match file.get("port")? {
            Some(p) => Some(p),
            None => jail_value(self, "port")?,
        };
        let mut ports = match (&port_text, all_ports) {
            (_, true) | (None, _) => Ports::All,
            (Some(p), false) => ports::parse(p).unwrap_or_else(|why| {
                self.warn(
                    section,
                    format!("action {name}: port {p:?}: {why}; warden bans every port instead"),
                );
                Ports::All
            }),
        };
        let protocol_text = match file.get("protocol")? {
            Some(p) => p,
            None => jail_value(self, "protocol")?.unwrap_or_else(|| "tcp".to_string()),
        };
        let protocol = match protocol_text.trim().to_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "all" => Protocol::All,
            other => {
                self.warn(
                    section,
                    format!("action {name}: protocol {other:?}: warden bans tcp, udp or all protocols; it bans all"),
                );
                Protocol::All
            }
        };
        if protocol == Protocol::All {
            // Ports mean nothing without a protocol; warden refuses both.
            ports = Ports::All;
        }
        let chain = file.get("chain")?.or(jail_value(self, "chain")?).unwrap_or_default();
        let hook = file.get("chain_hook")?.unwrap_or_default();
        let forwarded = ["DOCKER-USER", "FORWARD"].iter().any(|c| chain.trim().eq_ignore_ascii_case(c))
            || hook.trim().eq_ignore_ascii_case("forward");
        let mut via = format!("{name} (");
        match (&ports, &port_text) {
            (Ports::All, _) => via.push_str("every port"),
            (Ports::List(_), Some(p)) => via.push_str(&format!("port {}", p.trim())),
            (Ports::List(_), None) => {}
        }
        via.push_str(&format!(", protocol {}", protocol_text.trim()));
        if !chain.trim().is_empty() {
            via.push_str(&format!(", chain {}", chain.trim()));
        }
        via.push_str(&blocktype);
        via.push(')');
        Ok(Some(Enforcement {
            ports,
            protocol,
            target: if forwarded { Target::Docker } else { Target::Host },
            action,
            via: vec![via],
        }))
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::All => "all",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_netmasks() {
        assert_eq!(address("127.0.0.1/8").as_deref(), Some("127.0.0.1/8"));
        assert_eq!(address("::1").as_deref(), Some("::1"));
        assert_eq!(address("192.168.0.0/255.255.0.0").as_deref(), Some("192.168.0.0/16"));
        assert_eq!(address("10.0.0.0/255.0.255.0"), None);
        assert_eq!(address("host.example.org"), None);
    }

    #[test]
    fn actions_by_kind() {
        for firewall in ["iptables-multiport", "nftables", "firewallcmd-ipset", "iptables-allports"] {
            assert!(matches!(classify(firewall), Kind::Firewall), "{firewall}");
        }
        for other in ["ufw", "shorewall-ipset-proto6", "route", "hostsdeny"] {
            assert!(matches!(classify(other), Kind::OtherBlock(_)), "{other}");
        }
        for not in [
            "sendmail-whois",
            "mail-whois-lines",
            "abuseipdb",
            "cloudflare",
            "smtp.py",
            "my-own",
            "badips.py",
        ] {
            assert!(matches!(classify(not), Kind::NotCarried(_)), "{not}");
        }
        assert!(matches!(classify("dummy"), Kind::Nothing));
    }
}
