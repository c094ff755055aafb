//! `warden run`: wires sources → filters → jails → store → firewall, and
//! serves the control socket.
//!
//! Threads and tasks, all joined by bounded channels:
//! - **sources** (tokio tasks on the main runtime) send [`SourceEvent`]s;
//! - the **control server** (a tokio task) sends [`Call`]s;
//! - the **engine** (its own thread, [`engine::Engine`]) owns filters, jails
//!   and the store, and answers calls;
//! - the **firewall** (its own thread, [`firewall`]) owns the enforcer;
//! - with a `cluster:` section, the **cluster**'s publisher and follower
//!   (tokio tasks, see [`crate::cluster`]): the engine hands them its bans and
//!   unbans, the follower hands the firewall other hosts' bans.
//!
//! **Shutdown** (SIGTERM, SIGINT): the control server stops, sources are
//! stopped while the engine keeps processing what they already sent, then
//! the engine commits failures and cursors and the store is flushed. Bans
//! were persisted when made; sets and rules stay in the kernel.
//!
//! **Reload** (`warden reload`, SIGHUP): the new config and its filters are
//! built first; if anything is wrong the old config keeps running and the
//! error is returned. Otherwise sources are stopped and drained, jails are
//! reconfigured in place (bans and failure windows kept), the firewall is
//! rebuilt without a window, and sources start again from their cursors.

pub mod containers;
pub mod engine;
pub mod firewall;
pub mod requests;
pub mod setup;
pub mod sources;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cluster::{ApplyFn, Cluster, ClusterHandle, ClusterTasks};
use crate::config::Config;
use crate::control::{Call, Request, Response, Server};
use crate::core::{Clock, SystemClock};
use crate::filter::Registry;
use crate::firewall::backend::Backend;
use crate::source::SourceEvent;
use crate::store::Store;

use engine::Engine;
use requests::Answer;
use sources::Sources;

/// Events sources may have in flight before they wait for the engine. An
/// event is a batch of up to 1024 (files) or 4096 lines (Docker, journald;
/// about 1.6 MB with their `LogLine`s), so this bounds what waits here to a
/// MB or two, 6.5 MB at worst. More would not go faster: under a flood the
/// engine is the bottleneck and the queue is full whatever its length.
const SOURCE_QUEUE: usize = 4;
/// How long queued source events are taken in before the bans they decided
/// are committed (see "Group commit" in [`engine`]).
const GROUP_COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// How `warden run` was invoked.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    /// `--dry-run`: log bans and firewall changes without making them.
    pub dry_run: bool,
    /// `--iptables-backend`: skip detection.
    pub backend: Option<Backend>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("warden")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(options))
}

/// Loads and validates the config and its filter registry.
pub fn load_config(path: &Path) -> anyhow::Result<(Config, Registry)> {
    // A first pass with the shipped filters finds filter_dirs; the second
    // checks jails against every filter those directories add.
    let shipped = Registry::shipped();
    let first = crate::config::load(path, &setup::Catalog(&shipped));
    let dirs = match &first {
        Ok(config) => config.filter_dirs.clone(),
        Err(_) => Vec::new(),
    };
    let registry = Registry::with_dirs(&dirs).context("cannot read filter_dirs")?;
    let config = crate::config::load(path, &setup::Catalog(&registry))
        .map_err(|errors| anyhow::anyhow!("{errors}\n{} error(s) in {}", errors.len(), path.display()))?;
    let registry = registry.with_fail2ban_dir(&config.fail2ban_filter_dir);
    Ok((config, registry))
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let (config, registry) = load_config(&options.config)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("cannot create state_dir {}", config.state_dir.display()))?;
    let store = Arc::new(Store::open_in(&config.state_dir)?);
    let now = SystemClock.now();
    let filters = setup::compile_filters(&registry, &config)?;
    let label_jails = containers::restore_label_jails(&config, &registry, &store)?;
    let restored = engine::restore(&config, filters, &store, label_jails, now)?;
    let cluster = match &config.cluster {
        Some(settings) => Some(Cluster::open(settings.clone(), store.clone(), now)?),
        None => None,
    };
    let remote: Vec<_> = cluster
        .iter()
        .flat_map(|c| c.restored(now))
        .map(|ban| firewall::remote_ban(ban.net, ban.until))
        .collect();
    let enforcer =
        engine::build_enforcer(&config, &restored.jails, cluster.is_some(), options.dry_run, options.backend);
    tracing::info!(
        jails = restored.jails.len(),
        bans = restored.active.len(),
        remote_bans = remote.len(),
        dry_run = enforcer.is_dry_run(),
        "starting"
    );
    let (firewall, firewall_thread) =
        firewall::spawn(enforcer, restored.active.clone(), remote, config.firewall.check_interval)
            .context("cannot start the firewall thread")?;
    let server = Server::bind(&config.socket)
        .with_context(|| format!("cannot listen on the control socket {}", config.socket.display()))?;

    let shutdown = CancellationToken::new();
    let (source_tx, source_rx) = mpsc::channel(SOURCE_QUEUE);
    let (call_tx, call_rx) = mpsc::channel(64);
    let server_task = tokio::spawn(server.serve(call_tx.clone(), shutdown.clone()));
    tokio::spawn(watch_signals(shutdown.clone(), call_tx));

    let cluster = match cluster {
        Some(cluster) => Some(start_cluster(cluster, &config, &firewall, shutdown.clone())?),
        None => None,
    };
    let (cluster, cluster_tasks) = cluster.unzip();
    let sources = Sources::new(tokio::runtime::Handle::current(), source_tx, store.clone(), now);
    let engine = Engine::new(
        config,
        registry,
        store.clone(),
        restored,
        firewall,
        containers::Containers::default(),
        options.dry_run,
        options.backend,
        cluster,
    );
    let config_path = options.config.clone();
    let stop = shutdown.clone();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || -> anyhow::Result<()> {
            // However the engine ends, a panic included, the daemon stops
            // with it (and says why) instead of running on without one.
            let _stop_daemon = stop.clone().drop_guard();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(engine_loop(engine, sources, source_rx, call_rx, config_path, stop));
            Ok(())
        })
        .context("cannot start the engine thread")?;

    shutdown.cancelled().await;
    let _ = server_task.await;
    let joined = tokio::task::spawn_blocking(move || engine_thread.join()).await;
    match joined {
        Ok(Ok(result)) => result?,
        _ => anyhow::bail!("the engine thread panicked"),
    }
    // The cluster's follower holds a firewall handle too: it ends first.
    if let Some(tasks) = cluster_tasks {
        tasks.stopped().await;
    }
    // The engine dropped its firewall handle: the firewall thread ends.
    let _ = tokio::task::spawn_blocking(move || firewall_thread.join()).await;
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close()?;
    }
    tracing::info!("stopped; bans stay enforced in the kernel");
    Ok(())
}

/// Starts the cluster's tasks: remote bans go to the firewall thread; no
/// remote ban may cover this host's addresses or any allowlist.
fn start_cluster(
    cluster: Cluster,
    config: &Config,
    firewall: &firewall::FirewallHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<(ClusterHandle, ClusterTasks)> {
    let own = crate::firewall::guard::own_addresses().unwrap_or_else(|e| {
        tracing::warn!("cannot read this host's addresses (the firewall refuses to ban them anyway): {e}");
        Vec::new()
    });
    let mut protected: Vec<ipnet::IpNet> = own.iter().map(|ip| ipnet::IpNet::from(*ip)).collect();
    protected.extend(config.jail_template.ignoreip.iter().copied());
    protected.extend(config.jails.values().flat_map(|j| j.ignoreip.iter().copied()));
    // Peers protect the addresses others reach this host at.
    let registered: Vec<std::net::IpAddr> = own
        .into_iter()
        .filter(|ip| {
            !ip.is_loopback()
                && !ip.is_unspecified()
                && !matches!(ip, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
        })
        .collect();
    let firewall = firewall.clone();
    let apply: ApplyFn = Arc::new(move |effects| {
        if !effects.is_empty() {
            firewall.send(firewall::FirewallCmd::Remote { effects });
        }
    });
    Ok(cluster.start(protected, registered, apply, shutdown)?)
}

/// SIGTERM and SIGINT stop the daemon; SIGHUP reloads it.
async fn watch_signals(shutdown: CancellationToken, calls: mpsc::Sender<Call>) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stop warden with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let (reply, answer) = oneshot::channel();
                if calls.send(Call { request: Request::Reload, reply }).await.is_ok()
                    && let Ok(Response::Err { error }) = answer.await
                {
                    tracing::error!("reload on SIGHUP failed, the old config keeps running: {}", error.message);
                }
            }
        }
    }
    tracing::info!("stopping");
    shutdown.cancel();
}

async fn engine_loop(
    mut engine: Engine,
    mut sources: Sources,
    mut source_rx: mpsc::Receiver<SourceEvent>,
    mut call_rx: mpsc::Receiver<Call>,
    config_path: PathBuf,
    shutdown: CancellationToken,
) {
    sources.start(sources::plan(&engine.config, &engine.jails), &engine.config);
    loop {
        let deadline = tokio::time::Instant::from_std(engine.next_tick());
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(call) = call_rx.recv() => {
                if call.request == Request::Reload {
                    let response = reload(&mut engine, &mut sources, &mut source_rx, &config_path).await;
                    let _ = call.reply.send(response);
                } else {
                    answer(&mut engine, call);
                }
            }
            Some(event) = source_rx.recv() => {
                // What is already queued shares one durable commit of its
                // bans, within a bound that keeps control calls answered.
                let started = std::time::Instant::now();
                engine.on_source_event(event);
                while started.elapsed() < GROUP_COMMIT_WINDOW {
                    let Ok(event) = source_rx.try_recv() else { break };
                    engine.on_source_event(event);
                }
                engine.flush_bans();
            }
            _ = tokio::time::sleep_until(deadline) => engine.tick(),
        }
    }
    drain_sources(&mut engine, &mut sources, &mut source_rx).await;
    engine.commit();
    if let Err(e) = engine.store.flush() {
        tracing::error!("cannot flush the store: {e}");
    }
}

/// Answers a call; a ban's or unban's answer waits for the firewall, off this loop.
fn answer(engine: &mut Engine, call: Call) {
    match engine.answer(call.request) {
        Answer::Now(response) => {
            let _ = call.reply.send(response);
        }
        Answer::AfterFirewall { done, ok } => {
            tokio::spawn(async move {
                let response = match done.await {
                    Ok(Ok(())) => ok,
                    Ok(Err(e)) => Response::failed(e),
                    Err(_) => Response::failed("the firewall task stopped"),
                };
                let _ = call.reply.send(response);
            });
        }
    }
}

/// Stops the sources and processes everything they had sent.
async fn drain_sources(engine: &mut Engine, sources: &mut Sources, rx: &mut mpsc::Receiver<SourceEvent>) {
    let stopped = sources.stop();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(event) = rx.recv() => {
                engine.on_source_event(event);
                engine.flush_bans();
            }
        }
    }
    while let Ok(event) = rx.try_recv() {
        engine.on_source_event(event);
    }
    engine.flush_bans();
}

async fn reload(
    engine: &mut Engine,
    sources: &mut Sources,
    rx: &mut mpsc::Receiver<SourceEvent>,
    path: &Path,
) -> Response {
    let built = load_config(path).and_then(|(config, registry)| {
        let filters = setup::compile_filters(&registry, &config)?;
        Ok((config, registry, filters))
    });
    let (config, registry, filters) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::error!("reload refused, the running config stays: {e:#}");
            return Response::bad_input(format!("reload refused, the running config stays:\n{e:#}"));
        }
    };
    drain_sources(engine, sources, rx).await;
    engine.commit();
    let summary = engine.apply_config(config, registry, filters);
    sources.start(sources::plan(&engine.config, &engine.jails), &engine.config);
    tracing::info!(jails = engine.jails.len(), "reloaded");
    Response::ok(summary)
}
