"""The five workloads: what each one feeds every tool, and what it measures.

Each workload has `prepare(ctx)` (generate its input once, deterministically
from the seed) and `run_once(ctx, tool, index)` (one measured run of one tool,
returning a dict of metrics). The driver (bench/run) alternates tools run by
run, so drift on a shared machine hits every tool alike; `report.py` turns the
runs into medians, ranges and run-by-run ratios.

Metrics say which way is better: warden's advantage over a peer is
peer/warden for "lower" metrics and warden/peer for "higher" ones, so a ratio
above 1 always means warden is ahead.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import daemons
import netns
import procstat

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Metric:
    def __init__(self, key, label, unit, better, fmt="{:,.2f}"):
        self.key, self.label, self.unit, self.better, self.fmt = key, label, unit, better, fmt

    def as_json(self):
        return {"key": self.key, "label": self.label, "unit": self.unit, "better": self.better}


class Skip(Exception):
    """This tool cannot run this workload here (the message says why)."""


def wait_for(condition, timeout, interval=0.02):
    """Polls `condition` until it is true or `timeout` seconds pass; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def settled_cpu(daemon, quiet=0.5, limit=30.0):
    """The daemon's CPU seconds once it stops using CPU (work queued behind the
    last ban, such as fail2ban-rs's per-ban commands, counts too)."""
    last = daemon.cpu()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = daemon.cpu()
        if now - last < 0.01:
            return now
        last = now
    return last


def append_interleaved(sources, targets, chunk=1 << 20):
    """Appends each source file to its target in chunks cut at line ends, taking
    the files in turn, as several services writing at once would."""
    pending = []
    for src, dst in zip(sources, targets):
        with open(src, "rb") as f:
            data = f.read()
        pieces, start = [], 0
        while start < len(data):
            end = data.rfind(b"\n", start, start + chunk) + 1 if start + chunk < len(data) else len(data)
            if end <= start:
                end = data.find(b"\n", start) + 1 or len(data)
            pieces.append(data[start:end])
            start = end
        pending.append((open(dst, "ab", buffering=0), pieces))
    while any(pieces for _, pieces in pending):
        for f, pieces in pending:
            if pieces:
                f.write(pieces.pop(0))
    for f, _ in pending:
        f.close()


def gen_daemon_logs(out, **kw):
    cmd = [os.path.join(BENCH, "gen-daemon-logs"), "--out", out] + \
          [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    subprocess.run(cmd, check=True)
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)


# --------------------------------------------------------------------------
class FilterThroughput:
    """(a) bench/filter-throughput: warden test-filter vs fail2ban-regex vs fail2ban-rs dry-run."""

    key = "filter_throughput"
    title = "(a) Filter throughput: OpenSSH auth log"
    metrics = [
        Metric("lines_per_s", "lines/s (wall)", "lines/s", "higher", "{:,.0f}"),
        Metric("lines_per_cpu_s", "lines per CPU-second", "lines/s", "higher", "{:,.0f}"),
        Metric("peak_rss_mib", "peak RSS", "MiB", "lower", "{:,.1f}"),
    ]
    runs_inside = True  # filter-throughput alternates the tools itself

    def describe(self, ctx):
        return (f"`bench/gen-sshd-log --lines {ctx.size('filter_lines')} --seed {ctx.seed}`: a Debian 12 OpenSSH "
                "auth log (about 30 % failures, 20,000 attacking addresses), read by each tool's sshd filter: "
                "`warden test-filter sshd`, `fail2ban-regex` with fail2ban's sshd.conf, `fail2ban-rs dry-run` "
                "with its generated sshd jail. Whole process, start-up included.")

    def run_all(self, ctx, tools):
        out = os.path.join(ctx.work, "filter-throughput.json")
        cmd = [os.path.join(BENCH, "filter-throughput"), "--runs", str(ctx.runs), "--lines",
               str(ctx.size("filter_lines")), "--seed", str(ctx.seed), "--warden", ctx.binaries["warden"],
               "--work", ctx.work, "--json-out", out]
        for tool in ("fail2ban", "fail2ban-rs"):
            if tool not in tools:
                cmd += ["--skip", tool]
        if "fail2ban-rs" in tools:
            cmd += ["--fail2ban-rs", ctx.binaries["fail2ban-rs"]]
        ctx.log(" ".join(cmd))
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        with open(out) as f:
            data = json.load(f)
        per_tool = {}
        for row in data["throughput"]:
            per_tool[row["key"]] = [
                {"lines_per_s": data["lines"] / max(r["wall_s"], 1e-3),
                 "lines_per_cpu_s": data["lines"] / max(r["cpu_s"], 1e-3),
                 "peak_rss_mib": r["rss_kib"] / 1024, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"]}
                for r in row["raw_runs"]]
        return per_tool, {"detection": data["detection"], "lines": data["lines"]}


# --------------------------------------------------------------------------
INGEST_JAILS = ("sshd", "nginx", "postfix")


class DaemonIngest:
    """(b) A million lines appended to three watched files as fast as the daemon takes them."""

    key = "daemon_ingest"
    title = "(b) Daemon ingest: 3 jails, no-op actions"
    metrics = [
        Metric("time_to_last_ban_s", "time to last ban", "s", "lower"),
        Metric("cpu_s", "CPU seconds", "s", "lower"),
        Metric("peak_rss_mib", "peak RSS", "MiB", "lower", "{:,.1f}"),
        Metric("lines_per_s", "lines/s", "lines/s", "higher", "{:,.0f}"),
    ]

    def describe(self, ctx):
        m = self.manifest
        return (f"`bench/gen-daemon-logs --lines {m['lines']} --attackers {m['attackers']} --seed {ctx.seed}`: "
                f"{m['lines']:,} lines over auth.log (sshd), nginx-error.log (nginx basic auth) and mail.log "
                f"(postfix relay rejects); {m['attackers']:,} attacking addresses, each failing exactly "
                f"{m['maxretry']} times in one jail (maxretry {m['maxretry']}, findtime and bantime 1 d), half the "
                "lines benign noise. Each daemon starts on empty files; once it is ready the files are appended in "
                "1 MiB chunks, in turn. Measured from the first write to the last ban in the daemon's log; CPU is "
                "the daemon's (all threads and waited-for children) from the first write until it goes idle after "
                "the last ban. warden runs with `dry_run: true` and `flush_conntrack: false`, fail2ban-server with an action whose commands are "
                "empty (nothing runs), fail2ban-rs with a script backend running `true` (it has no no-op action: "
                "one process per ban remains).")

    def cleanup(self, ctx):
        shutil.rmtree(self.src, ignore_errors=True)

    def prepare(self, ctx):
        self.src = os.path.join(ctx.work, "ingest-input")
        shutil.rmtree(self.src, ignore_errors=True)
        self.manifest = gen_daemon_logs(self.src, lines=ctx.size("ingest_lines"), attackers=ctx.size("ingest_attackers"),
                                        seed=ctx.seed, maxretry=5)
        ctx.ingest_states = {}

    def run_once(self, ctx, tool, index):
        rundir = ctx.fresh_dir("ingest-run")
        jails, sources, targets = [], [], []
        for name in INGEST_JAILS:
            info = self.manifest["jails"][name]
            target = os.path.join(rundir, info["file"])
            open(target, "w").close()
            jails.append(daemons.Jail(name, target, maxretry=self.manifest["maxretry"]))
            sources.append(os.path.join(self.src, info["file"]))
            targets.append(target)
        expected = self.manifest["attackers"]
        with ctx.namespace() as ns:
            d = daemons.TOOLS[tool](ctx.binaries[tool], os.path.join(rundir, tool), jails, "detect", ns).start()
            try:
                startup = d.wait_ready()
                cpu0 = d.cpu()
                t0 = time.monotonic()
                append_interleaved(sources, targets)
                write_s = time.monotonic() - t0
                done = wait_for(lambda: d.count_bans() >= expected or not d.alive(), ctx.timeout("ingest"))
                elapsed = time.monotonic() - t0
                if not d.alive():
                    raise RuntimeError(f"{tool} died during ingest:\n{d.log_tail()}")
                cpu1 = settled_cpu(d)
                mem = d.memory()
                reported = d.banned_total() if isinstance(d, daemons.Warden) else None
            finally:
                d.stop()
        bans = d.count_bans()
        # Keep this run's state: the restart workload starts from it.
        ctx.ingest_states[tool] = keep_state(ctx, tool, d, jails, bans)
        result = {"time_to_last_ban_s": elapsed, "cpu_s": cpu1 - cpu0, "peak_rss_mib": mem["VmHWM"] / 1024,
                  "lines_per_s": self.manifest["lines"] / elapsed, "bans": bans, "expected_bans": expected,
                  "startup_s": startup, "append_s": write_s, "timed_out": not done}
        if reported is not None:
            result["bans_reported"] = reported
        return result


def keep_state(ctx, tool, d, jails, bans):
    """Moves what a stopped daemon persisted (its store, not its logs) aside for
    the restart workload; the run's directory is removed next."""
    keep = os.path.join(ctx.work, f"restart-state-{tool}")
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    for item in {"warden": ["state"], "fail2ban": ["fail2ban.sqlite3"], "fail2ban-rs": ["state.bin"]}[tool]:
        src = os.path.join(d.dir, item)
        if os.path.exists(src):
            shutil.move(src, os.path.join(keep, item))
    return {"dir": keep, "bans": bans, "jails": [j.name for j in jails]}


# --------------------------------------------------------------------------
IDLE_JAILS = ("sshd", "nginx", "postfix", "dovecot", "botsearch")


class Idle:
    """(c) Five jails, no traffic."""

    key = "idle"
    title = "(c) Idle: 5 jails, no traffic"
    metrics = [
        Metric("cpu_percent", "CPU", "%", "lower", "{:.3f}"),
        Metric("rss_mib", "RSS", "MiB", "lower", "{:,.1f}"),
        Metric("startup_s", "start-up until ready", "s", "lower", "{:.3f}"),
    ]

    def describe(self, ctx):
        mode = ("enforcing in a network namespace (warden's sets and rules, fail2ban's iptables-ipset-proto6-allports, "
                "fail2ban-rs's ipset backend)") if ctx.netns_ok else "detection only (no namespaces here)"
        return (f"Each daemon with five file jails (sshd, nginx-http-auth, postfix, dovecot, nginx-botsearch) on "
                f"empty files, {mode}. After it is ready and {ctx.size('idle_settle')} s more, CPU time over "
                f"{ctx.size('idle_seconds')} s of no traffic, and RSS at the end.")

    def prepare(self, ctx):
        pass

    def run_once(self, ctx, tool, index):
        rundir = ctx.fresh_dir("idle-run")
        jails = []
        for name in IDLE_JAILS:
            path = os.path.join(rundir, f"{name}.log")
            open(path, "w").close()
            jails.append(daemons.Jail(name, path))
        mode = "enforce" if ctx.netns_ok else "detect"
        with ctx.namespace() as ns:
            d = daemons.TOOLS[tool](ctx.binaries[tool], os.path.join(rundir, tool), jails, mode, ns).start()
            try:
                startup = d.wait_ready()
                time.sleep(ctx.size("idle_settle"))
                cpu0, t0 = d.cpu(), time.monotonic()
                time.sleep(ctx.size("idle_seconds"))
                cpu1, t1 = d.cpu(), time.monotonic()
                mem = d.memory()
                processes = 1 + len(procstat.descendants(d.pid))
            finally:
                d.stop()
        return {"cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_mib": mem["VmRSS"] / 1024,
                "startup_s": startup, "processes": processes, "mode": mode}


# --------------------------------------------------------------------------
class BanEnforcement:
    """(d) N bans into ipset, one failure per address, maxretry 1, in a namespace."""

    key = "ban_enforcement"
    title = "(d) Ban enforcement into ipset"
    metrics = [
        Metric("wall_s", "time until all in the kernel set", "s", "lower"),
        Metric("bans_per_s", "bans/s", "bans/s", "higher", "{:,.0f}"),
        Metric("peak_processes", "peak processes", "", "lower", "{:.0f}"),
        Metric("cpu_s", "CPU seconds", "s", "lower"),
    ]
    needs_netns = True

    def describe(self, ctx):
        n = self.manifest["attackers"]
        return (f"{n:,} addresses fail once each in auth.log (one sshd jail, maxretry 1), appended after the daemon "
                "is ready, in a fresh network namespace: warden adds to its ipset in-process over netlink; fail2ban "
                "runs `iptables-ipset-proto6-allports` (`ipset add` through a shell, per ban); fail2ban-rs its "
                "`ipset` backend (`ipset add`, per ban). Time from the first write until the kernel sets hold every "
                "address (polled with `ipset list -t`); the processes of the daemon's tree sampled every 5 ms "
                f"(the daemon counts as 1). Runs stop at {ctx.timeout('enforce'):.0f} s; a capped run shows the "
                "time for all bans extrapolated from its rate.")

    def cleanup(self, ctx):
        shutil.rmtree(self.src, ignore_errors=True)

    def prepare(self, ctx):
        self.src = os.path.join(ctx.work, "enforce-input")
        shutil.rmtree(self.src, ignore_errors=True)
        n = ctx.size("enforce_bans")
        self.manifest = gen_daemon_logs(self.src, lines=n, attackers=n, maxretry=1, jails="sshd=1", seed=ctx.seed,
                                        span=600)

    def run_once(self, ctx, tool, index):
        rundir = ctx.fresh_dir("enforce-run")
        target = os.path.join(rundir, "auth.log")
        open(target, "w").close()
        jails = [daemons.Jail("sshd", target, maxretry=1)]
        expected = self.manifest["attackers"]
        cap = ctx.timeout("enforce")
        with netns.Netns() as ns:
            d = daemons.TOOLS[tool](ctx.binaries[tool], os.path.join(rundir, tool), jails, "enforce", ns).start()
            try:
                startup = d.wait_ready()
                cpu0 = d.cpu()
                with procstat.ProcessSampler(d.pid) as sampler:
                    t0 = time.monotonic()
                    append_interleaved([os.path.join(self.src, "auth.log")], [target])
                    state = {"n": 0}

                    def all_enforced():
                        state["n"] = d.kernel_entries()
                        return state["n"] >= expected or not d.alive()
                    done = wait_for(all_enforced, cap, interval=0.05)
                    wall = time.monotonic() - t0
                cpu1 = d.cpu()
            finally:
                d.stop()
        enforced = state["n"]
        result = {"wall_s": wall, "bans_per_s": enforced / wall, "peak_processes": sampler.peak,
                  "cpu_s": cpu1 - cpu0, "enforced": enforced, "expected": expected, "startup_s": startup,
                  "timed_out": not done,
                  "child_processes_seen": sampler.most_seen(5)}
        if not done and enforced:
            result["extrapolated_wall_s"] = wall * expected / enforced
        return result


# --------------------------------------------------------------------------
class Restart:
    """(e) Restart with the bans persisted by the last ingest run: until all are enforced again."""

    def cleanup(self, ctx):
        for tool in list(getattr(ctx, "ingest_states", {})):
            shutil.rmtree(ctx.ingest_states.pop(tool)["dir"], ignore_errors=True)

    key = "restart"
    title = "(e) Restart: persisted bans enforced again"
    metrics = [
        Metric("restore_s", "start until all enforced", "s", "lower"),
        Metric("bans_per_s", "bans/s", "bans/s", "higher", "{:,.0f}"),
    ]
    needs_netns = True

    def describe(self, ctx):
        return ("The bans each daemon persisted in its last ingest run (b), "
                f"{ctx.size('ingest_attackers'):,} over 3 jails: its store is copied into a fresh directory and the "
                "daemon started enforcing (warden: its sets over netlink; fail2ban: iptables-ipset-proto6-allports, "
                "restoring from its sqlite dbfile; fail2ban-rs: its ipset backend, re-banning from its state file) in "
                "a fresh network namespace, so nothing of a previous run is in the kernel. Time from spawning the "
                "daemon until its sets hold every persisted ban. Runs stop at "
                f"{ctx.timeout('restart'):.0f} s; a capped run shows the time for all bans extrapolated from its rate.")

    def prepare(self, ctx):
        pass

    def run_once(self, ctx, tool, index):
        saved = getattr(ctx, "ingest_states", {}).get(tool)
        if not saved:
            raise Skip("no persisted bans: the ingest workload (b) did not run for this tool")
        rundir = ctx.fresh_dir("restart-run")
        home = os.path.join(rundir, tool)
        shutil.copytree(saved["dir"], home)
        jails = []
        for name in saved["jails"]:
            path = os.path.join(rundir, f"{name}.log")
            open(path, "w").close()
            jails.append(daemons.Jail(name, path))
        expected = saved["bans"]
        cap = ctx.timeout("restart")
        with netns.Netns() as ns:
            d = daemons.TOOLS[tool](ctx.binaries[tool], home, jails, "enforce", ns).start()
            try:
                state = {"n": 0}

                def all_enforced():
                    state["n"] = d.kernel_entries() if d.alive() else state["n"]
                    return state["n"] >= expected or not d.alive()
                done = wait_for(all_enforced, cap, interval=0.05)
                elapsed = time.monotonic() - d.spawned_at
                if not d.alive():
                    raise RuntimeError(f"{tool} exited during restart:\n{d.log_tail()}")
            finally:
                d.stop()
        enforced = state["n"]
        result = {"restore_s": elapsed, "bans_per_s": enforced / elapsed, "enforced": enforced,
                  "expected": expected, "timed_out": not done}
        if not done and enforced:
            result["extrapolated_s"] = elapsed * expected / enforced
        return result


ALL = [FilterThroughput(), DaemonIngest(), Idle(), BanEnforcement(), Restart()]
