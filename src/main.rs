//! The `warden` command line: every subcommand parses its arguments here and
//! hands off to the library (`warden::cli` for the command implementations).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use warden::cli::{check_config, control, import_fail2ban, json, test_filter};
use warden::control::{Client, Request};
use warden::filter::Registry;
use warden::firewall::backend::Backend;
use warden::firewall::enforcer::{Enforcer, EnforcerConfig};

/// Default location of the configuration file inside warden's container.
const DEFAULT_CONFIG: &str = "/etc/warden/warden.yaml";
/// Default control socket (the config's `socket` changes it for the daemon).
const DEFAULT_SOCKET: &str = "/run/warden/warden.sock";

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Docker-native intrusion prevention: fail2ban for container hosts"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WARDEN_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where the daemon's control socket is, and how long to wait for it.
#[derive(clap::Args)]
struct SocketArgs {
    /// The daemon's control socket.
    #[arg(long, default_value = DEFAULT_SOCKET, env = "WARDEN_SOCKET")]
    socket: PathBuf,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: follow the configured sources, ban, enforce.
    Run {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "WARDEN_CONFIG")]
        config: PathBuf,
        /// Log every ban and firewall change instead of making it.
        #[arg(long)]
        dry_run: bool,
        /// Use this iptables backend instead of detecting the host's.
        #[arg(long, value_name = "nft|legacy")]
        iptables_backend: Option<Backend>,
    },
    /// Ban addresses or networks in a jail (persisted and enforced before this returns).
    Ban {
        jail: String,
        /// An address (203.0.113.7) or a network (198.51.100.0/24); several (up to 1000) are banned
        /// together, all or none.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// How long: 90s, 10m, 1h, 1d, 1w, or permanent (default: the jail's bantime).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Lift bans covering an address or network (in every jail unless --jail).
    Unban {
        target: String,
        #[arg(long, conflicts_with = "all")]
        jail: Option<String>,
        /// Every jail (the default; for clarity in scripts).
        #[arg(long)]
        all: bool,
        /// Also lift it on every host of the cluster: the bans other hosts
        /// replicated are dropped everywhere (each host's own jails keep theirs).
        #[arg(long)]
        cluster: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Jails, sources, attached containers, failure and ban counts.
    Status {
        jail: Option<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// The active bans.
    Bans {
        #[arg(long)]
        jail: Option<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Reload the configuration and filters; a bad new config is refused and the old one keeps running.
    Reload {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// The versions of this CLI and of the running daemon.
    Version {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Run a filter over a log file (or `-` for stdin) and report what it matches.
    TestFilter {
        /// A shipped filter's name (see `warden filters`), a path to a filter
        /// .yaml, or `fail2ban:<name>` for fail2ban's own filter (like
        /// `fail2ban-regex`: every failregex is tried on every line).
        filter: String,
        /// The log file to read, or `-` for standard input.
        input: PathBuf,
        /// Set a filter parameter, e.g. `--param mode=aggressive` (repeatable).
        #[arg(short, long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Also look for filters in this directory (repeatable).
        #[arg(long = "filter-dir", value_name = "DIR")]
        filter_dirs: Vec<PathBuf>,
        /// fail2ban's filter.d, for `fail2ban:<name>` filters.
        #[arg(long, value_name = "DIR", default_value = warden::filter::fail2ban::DEFAULT_FILTER_DIR)]
        fail2ban_filter_dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print every matched line.
        #[arg(long)]
        print_matches: bool,
        /// Print every line no failregex matched.
        #[arg(long)]
        print_missed: bool,
        /// Print every line an ignoreregex dropped.
        #[arg(long)]
        print_ignored: bool,
    },
    /// Validate a configuration file and summarise its jails.
    CheckConfig {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "WARDEN_CONFIG")]
        config: PathBuf,
    },
    /// Remove every ipset, chain and jump warden created, and nothing else.
    Cleanup {
        /// Print what would be removed without removing it.
        #[arg(long)]
        dry_run: bool,
        /// Use this iptables backend instead of detecting the host's.
        #[arg(long, value_name = "nft|legacy")]
        iptables_backend: Option<Backend>,
    },
    /// Print a warden.yaml equivalent to fail2ban's enabled jails (jail.conf, jail.local,
    /// jail.d/*); what cannot be carried over is warned about on standard error.
    ImportFail2ban {
        /// fail2ban's configuration directory.
        #[arg(default_value = import_fail2ban::DEFAULT_DIR)]
        dir: PathBuf,
        /// Write the configuration to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the shipped filters (and those in --filter-dir) with their descriptions.
    Filters {
        #[arg(long = "filter-dir", value_name = "DIR")]
        filter_dirs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { config, dry_run, iptables_backend } => {
            warden::daemon::run(warden::daemon::Options { config, dry_run, backend: iptables_backend })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ban { jail, mut targets, duration, socket } => {
            let request = match targets.len() {
                1 => Request::Ban { jail, target: targets.remove(0), duration },
                n if n > warden::control::MAX_BAN_TARGETS => {
                    eprintln!(
                        "error: {n} addresses; at most {} per command (split the list, e.g. with xargs -n {})",
                        warden::control::MAX_BAN_TARGETS,
                        warden::control::MAX_BAN_TARGETS
                    );
                    return Ok(ExitCode::from(control::EXIT_BAD_INPUT));
                }
                _ => Request::BanMany { jail, targets, duration },
            };
            Ok(control::call(&client(&socket), request, socket.json))
        }
        Command::Unban { target, jail, all: _, cluster, socket } => {
            Ok(control::call(&client(&socket), Request::Unban { target, jail, cluster }, socket.json))
        }
        Command::Status { jail, socket } => {
            Ok(control::call(&client(&socket), Request::Status { jail }, socket.json))
        }
        Command::Bans { jail, socket } => {
            Ok(control::call(&client(&socket), Request::Bans { jail }, socket.json))
        }
        Command::Reload { socket } => Ok(control::call(&client(&socket), Request::Reload, socket.json)),
        Command::Version { socket } => {
            println!("warden {} (cli)", env!("CARGO_PKG_VERSION"));
            Ok(control::call(&client(&socket), Request::Version, socket.json))
        }
        Command::TestFilter {
            filter,
            input,
            params,
            filter_dirs,
            fail2ban_filter_dir,
            json,
            print_matches,
            print_missed,
            print_ignored,
        } => {
            let registry = registry(&filter_dirs)?.with_fail2ban_dir(fail2ban_filter_dir);
            let params = parse_params(&params)?;
            let like_fail2ban_regex =
                warden::filter::fail2ban::Options { check_all: true, ..Default::default() };
            let filter = registry.load_with(&filter, &params, &like_fail2ban_regex)?;
            let print = test_filter::PrintOptions {
                matches: print_matches,
                missed: print_missed,
                ignored: print_ignored,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
            let report = if input.as_os_str() == "-" {
                test_filter::run(&filter, io::stdin().lock(), "-", print, &mut out)?
            } else {
                let file = File::open(&input)
                    .with_context(|| format!("cannot read log file {}", input.display()))?;
                test_filter::run(&filter, file, &input.display().to_string(), print, &mut out)?
            };
            if json {
                // Hosts (thousands of them) one per line.
                json::write_shallow_pretty(&mut out, &report, 3)?;
                writeln!(out)?;
            } else {
                if print_matches || print_missed || print_ignored {
                    writeln!(out)?;
                }
                write!(out, "{}", test_filter::render(&report, 10))?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let registry = Registry::shipped();
            let names = registry.names();
            let (text, ok) = check_config::check_config(&config, &|name| registry.contains(name), &names);
            print!("{text}");
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Cleanup { dry_run, iptables_backend } => {
            let config = EnforcerConfig { backend: iptables_backend, dry_run, ..EnforcerConfig::default() };
            let removed = Enforcer::new(config, Vec::new(), Vec::new()).cleanup()?;
            if removed.is_empty() {
                println!("nothing to remove: no warden chains, jumps or sets found");
            }
            for change in removed {
                println!("{change}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportFail2ban { dir, output } => {
            let imported = import_fail2ban::import(&dir)?;
            for warning in &imported.warnings {
                eprintln!("warning: {warning}");
            }
            match output {
                Some(path) => std::fs::write(&path, &imported.yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    let mut out = io::stdout().lock();
                    out.write_all(imported.yaml.as_bytes())?;
                    out.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Filters { filter_dirs } => {
            let registry = registry(&filter_dirs)?;
            let names = registry.names();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            for name in names {
                println!("{name:width$}  {}", registry.description(name).unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn client(socket: &SocketArgs) -> Client {
    // Reload rebuilds every filter and the firewall: allow it time.
    Client::new(&socket.socket, std::time::Duration::from_secs(60))
}

fn registry(dirs: &[PathBuf]) -> Result<Registry> {
    if dirs.is_empty() { Ok(Registry::shipped()) } else { Ok(Registry::with_dirs(dirs)?) }
}

/// Parses `NAME=VALUE` pairs from `--param`.
fn parse_params(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?} is not NAME=VALUE (for example --param mode=aggressive)");
        };
        params.insert(k.trim().to_string(), v.to_string());
    }
    Ok(params)
}
