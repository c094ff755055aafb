"""What a running process costs, read from /proc: CPU seconds, memory and the
processes it spawned.

CPU is user + system time of every thread of the process, plus that of the
children it has waited for (fail2ban's and fail2ban-rs's per-ban commands), so
work done in spawned processes counts against the daemon that spawned them.
"""

import os
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(own, children) CPU seconds of `pid`: its threads, and its reaped children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command name start at field 3 (state), so utime (14) is index 11.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def memory_kib(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB} of `pid` (VmHWM is the peak resident set)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def children(pid):
    """Direct children of `pid` (every thread's)."""
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def descendants(pid):
    """Every process below `pid` in the process tree, at this instant."""
    found, todo = [], [pid]
    while todo:
        for kid in children(todo.pop()):
            found.append(kid)
            todo.append(kid)
    return found


def cmdline(pid):
    """A process's command line, shortened; empty if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return ""
    # One line, whitespace collapsed: it goes into a Markdown table cell.
    return " ".join(" ".join(a.decode(errors="replace") for a in args).split())[:80]


def open_files(pid):
    """Paths the process has open."""
    paths = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    return paths


class ProcessSampler:
    """Counts the processes of a daemon's tree (the daemon and its descendants)
    every `interval` seconds on a background thread, keeping the peak.

    Sampling misses a process that lives shorter than the interval, so the
    peak is a lower bound; with one process per ban, bans overlap the samples
    often enough to show it.
    """

    def __init__(self, pid, interval=0.005):
        self.pid = pid
        self.interval = interval
        self.peak = 1
        self.samples = 0
        self.samples_with_children = 0
        # The command lines of the descendants seen, so a peak above 1 says
        # what it was (a startup command, a periodic check, one per ban).
        self.seen = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def most_seen(self, n):
        """The `n` child command lines seen in the most samples, with their counts."""
        return dict(sorted(self.seen.items(), key=lambda kv: kv[1], reverse=True)[:n])

    def _run(self):
        while not self._stop.is_set():
            kids = descendants(self.pid)
            count = len(kids)
            self.samples += 1
            if count:
                self.samples_with_children += 1
                for kid in kids:
                    name = cmdline(kid)
                    if name:
                        self.seen[name] = self.seen.get(name, 0) + 1
            self.peak = max(self.peak, 1 + count)
            time.sleep(self.interval)
