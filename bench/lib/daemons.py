"""The three daemons under test, each configured from the same jail list into
its own private directory (config, state, socket, log), started, watched and
stopped the same way.

A daemon runs in one of two modes:
- **detect**: bans are decided and persisted but not enforced, so only
  detection is timed: warden with `dry_run: true` and `flush_conntrack:
  false` (else the dry run still walks the conntrack table on every burst of
  bans, to log what it would delete), fail2ban with an action
  whose commands are all empty (fail2ban runs nothing for an empty command),
  fail2ban-rs with a script backend running `true` (it has no dry run; this is
  the cheapest action it offers, still one process per ban);
- **enforce**: bans go into kernel ipsets matched by iptables rules, as each
  tool does it in production: warden in-process over netlink, fail2ban with
  `iptables-ipset-proto6-allports` (one `ipset add` process per ban),
  fail2ban-rs with its `ipset` backend (one `ipset add` process per ban).
  Only ever inside a throwaway network namespace.

Each daemon's own log is how the harness sees bans as they happen (a line per
ban for every tool); the kernel sets are the truth for enforcement.
"""

import os
import signal
import subprocess
import time

import procstat

# Jail kinds the workloads use, and the filter each tool ships for them.
FILTERS = {
    #  kind        warden              fail2ban            fail2ban-rs template
    "sshd":      ("sshd",             "sshd",             "sshd"),
    "nginx":     ("nginx-http-auth",  "nginx-http-auth",  "nginx-auth"),
    "postfix":   ("postfix",          "postfix",          "postfix"),
    "dovecot":   ("dovecot",          "dovecot",          "dovecot"),
    "botsearch": ("nginx-botsearch",  "nginx-botsearch",  "nginx-botsearch"),
}


class Jail:
    """One jail: a name (also its kind, see FILTERS), the log file it watches and its limits."""

    def __init__(self, kind, log, maxretry=5, findtime=86400, bantime=86400):
        self.name = kind
        self.kind = kind
        self.log = log
        self.maxretry = maxretry
        self.findtime = findtime
        self.bantime = bantime


class Daemon:
    """Base: subclasses say how to configure, start, recognise readiness and bans."""

    tool = "?"
    #: Byte string that marks a ban in the daemon's log (one per ban).
    ban_marker = b""
    #: ipsets of this tool start with this.
    set_prefix = ""

    def __init__(self, binary, workdir, jails, mode, ns):
        assert mode in ("detect", "enforce")
        self.binary = binary
        self.dir = workdir
        self.jails = jails
        self.mode = mode
        self.ns = ns
        self.proc = None
        self.log_path = os.path.join(workdir, "daemon.log")
        self._log_pos = 0
        self._log_carry = b""
        self.bans_seen = 0
        self.spawned_at = None
        os.makedirs(workdir, exist_ok=True)

    # --- lifecycle -------------------------------------------------------
    def write_config(self):
        raise NotImplementedError

    def command(self):
        raise NotImplementedError

    def is_ready(self):
        raise NotImplementedError

    def start(self):
        self.write_config()
        env = dict(os.environ, TZ="UTC")
        self._logfile = open(self.log_path, "ab")
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(self.ns.prefix() + self.command(), stdout=self._logfile,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=60):
        """Waits until the daemon is ready for input; returns the seconds since spawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.tool} exited with {self.proc.returncode} while starting; "
                                   f"its log: {self.log_path}\n{self.log_tail()}")
            if self.is_ready():
                return time.monotonic() - self.spawned_at
            time.sleep(0.02)
        raise RuntimeError(f"{self.tool} not ready after {timeout} s; its log: {self.log_path}\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logfile.close()
        return self.proc.returncode

    # --- observation -------------------------------------------------------
    def log_tail(self, lines=15):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def read_new_log(self):
        """Complete log lines written since the last call, as bytes."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_pos)
            data = f.read()
        self._log_pos += len(data)
        data = self._log_carry + data
        cut = data.rfind(b"\n") + 1
        self._log_carry = data[cut:]
        return data[:cut]

    def count_bans(self):
        """Bans logged so far (reads only what is new)."""
        self.bans_seen += self.read_new_log().count(self.ban_marker)
        return self.bans_seen

    def kernel_entries(self):
        """Entries in this tool's ipsets in its namespace."""
        return sum(n for name, n in self.ns.ipset_entries().items() if name.startswith(self.set_prefix))

    def cpu(self):
        own, kids = procstat.cpu_seconds(self.pid)
        return own + kids

    def memory(self):
        return procstat.memory_kib(self.pid)


class Warden(Daemon):
    tool = "warden"
    ban_marker = b'"message":"banned"'
    set_prefix = "warden-"

    @property
    def socket(self):
        return os.path.join(self.dir, "run", "warden.sock")

    def write_config(self):
        lines = [
            f"state_dir: {self.dir}/state",
            f"socket: {self.socket}",
            f"dry_run: {'true' if self.mode == 'detect' else 'false'}",
            "firewall: {backend: nft}",
            'defaults: {ignoreip: [127.0.0.0/8, "::1"]}',
            "jails:",
        ]
        for j in self.jails:
            lines += [
                f"  {j.name}:",
                f"    filter: {FILTERS[j.kind][0]}",
                f"    sources: [{{file: {{path: {j.log}}}}}]",
                f"    maxretry: {j.maxretry}",
                f"    findtime: {j.findtime}",
                f"    bantime: {j.bantime}",
                "    target: host",
            ]
            if self.mode == "detect":
                # A dry run still walks the kernel's connection table to log which
                # entries a ban would delete: work no no-op action does.
                lines.append("    flush_conntrack: false")
        with open(os.path.join(self.dir, "warden.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def command(self):
        return [self.binary, "--log-format", "json", "run", "--config", os.path.join(self.dir, "warden.yaml")]

    def is_ready(self):
        # The control socket answers before the firewall thread has set up its
        # sets and chains (external commands, once): ready after both.
        if not os.path.exists(self.socket):
            return False
        with open(self.log_path, "rb") as f:
            if b'"message":"firewall in place"' not in f.read():
                return False
        return subprocess.run([self.binary, "status", "--socket", self.socket], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def banned_total(self):
        """Bans the daemon reports (`warden bans --json`), for a final cross-check."""
        import json
        out = subprocess.run([self.binary, "bans", "--json", "--socket", self.socket], capture_output=True, text=True)
        if out.returncode != 0:
            return None
        data = json.loads(out.stdout)
        return len(data["bans"] if isinstance(data, dict) else data)


class Fail2ban(Daemon):
    tool = "fail2ban"
    ban_marker = b"] Ban "
    set_prefix = "f2b-"
    NOOP_ACTION = ("[Definition]\n# Every command empty: fail2ban runs nothing for an empty command.\n"
                   "actionstart =\nactionstop =\nactioncheck =\nactionban =\nactionunban =\n")

    def __init__(self, binary, workdir, jails, mode, ns, etc="/etc/fail2ban"):
        super().__init__(binary, workdir, jails, mode, ns)
        self.etc = etc
        self.conf = os.path.join(workdir, "conf")

    def write_config(self):
        os.makedirs(os.path.join(self.conf, "action.d"), exist_ok=True)
        for name in os.listdir(self.etc):
            src, dst = os.path.join(self.etc, name), os.path.join(self.conf, name)
            if name in ("filter.d",) or (name.startswith("paths-") and name.endswith(".conf")):
                if not os.path.lexists(dst):
                    os.symlink(src, dst)
        for name in os.listdir(os.path.join(self.etc, "action.d")):
            dst = os.path.join(self.conf, "action.d", name)
            if not os.path.lexists(dst):
                os.symlink(os.path.join(self.etc, "action.d", name), dst)
        with open(os.path.join(self.conf, "action.d", "noop.conf"), "w") as f:
            f.write(self.NOOP_ACTION)
        with open(os.path.join(self.conf, "fail2ban.conf"), "w") as f:
            f.write(f"[DEFAULT]\nloglevel = INFO\nlogtarget = {self.log_path}\nsyslogsocket = auto\n"
                    f"socket = {self.dir}/fail2ban.sock\npidfile = {self.dir}/fail2ban.pid\n"
                    f"dbfile = {self.dir}/fail2ban.sqlite3\ndbpurgeage = 2d\ndbmaxmatches = 10\n"
                    "[Definition]\n[Thread]\n")
        out = ["[INCLUDES]", "before = paths-debian.conf", "", "[DEFAULT]",
               "ignoreip = 127.0.0.1/8 ::1", "ignoreself = true", "usedns = no", "backend = auto",
               "logencoding = utf-8", "enabled = false", ""]
        for j in self.jails:
            if self.mode == "detect":
                action = "noop"
            else:
                action = f"iptables-ipset-proto6-allports[name={j.name}, protocol=tcp, chain=INPUT]"
            out += [f"[{j.name}]", "enabled = true", f"filter = {FILTERS[j.kind][1]}", f"logpath = {j.log}",
                    f"maxretry = {j.maxretry}", f"findtime = {j.findtime}", f"bantime = {j.bantime}",
                    f"action = {action}", ""]
        with open(os.path.join(self.conf, "jail.conf"), "w") as f:
            f.write("\n".join(out))

    def command(self):
        # -f: the server in the foreground, in this process; -x: take over a stale socket.
        return [self.binary, "-c", self.conf, "-f", "-x"]

    def is_ready(self):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read()
        except OSError:
            return False
        return all(f"Jail '{j.name}' started".encode() in text for j in self.jails)

    def count_restored(self):
        return self.read_new_log().count(b"] Restore Ban ")


class Fail2banRs(Daemon):
    tool = "fail2ban-rs"
    ban_marker = b" banned ip="
    set_prefix = "f2b-"

    def write_config(self):
        out = ["[global]", f'state_file = "{self.dir}/state.bin"', f'socket_path = "{self.dir}/fail2ban-rs.sock"', ""]
        for j in self.jails:
            template = subprocess.run([self.binary, "gen-config", FILTERS[j.kind][2]], capture_output=True,
                                      text=True, check=True).stdout
            for line in template.splitlines():
                if line.startswith("[jail."):
                    out.append(f"[jail.{j.name}]")
                elif line.startswith("log_path"):
                    out.append(f'log_path = "{j.log}"')
                elif not line.startswith(("enabled", "max_retry", "find_time", "ban_time", "backend")):
                    out.append(line)
            out += [f"max_retry = {j.maxretry}", f'find_time = "{j.findtime}"', f'ban_time = "{j.bantime}"',
                    "bantime_increment = false", 'ignoreip = ["127.0.0.1/8", "::1/128"]']
            # A backend table takes every key after it, so it comes last.
            if self.mode == "detect":
                out += [f"[jail.{j.name}.backend.script]", 'ban_cmd = "true"', 'unban_cmd = "true"', ""]
            else:
                out += [f"[jail.{j.name}.backend.ipset]", "maxelem = 1048576", ""]
        with open(os.path.join(self.dir, "fail2ban-rs.toml"), "w") as f:
            f.write("\n".join(out) + "\n")

    def command(self):
        return [self.binary, "-c", os.path.join(self.dir, "fail2ban-rs.toml"), "run"]

    def is_ready(self):
        # fail2ban-rs starts reading a log at its end: ready once every log is open
        # (the files are empty until then, so nothing is skipped).
        return {j.log for j in self.jails} <= procstat.open_files(self.pid)


TOOLS = {"warden": Warden, "fail2ban": Fail2ban, "fail2ban-rs": Fail2banRs}
