"""Throwaway network namespaces, so daemons that touch the firewall never
touch the host's: each workload run gets its own namespace (with only `lo`),
removed afterwards together with every set and rule made in it.
"""

import itertools
import os
import shutil
import subprocess

_counter = itertools.count()


def available():
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    for tool in ("ip", "ipset", "iptables"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install iproute2 ipset iptables)"
    return None


class Netns:
    """A network namespace named warden-bench-<pid>-<n>, deleted on exit."""

    def __init__(self):
        self.name = f"warden-bench-{os.getpid()}-{next(_counter)}"

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def prefix(self):
        """The argv prefix that runs a command inside the namespace (same pid: ip execs it)."""
        return ["ip", "netns", "exec", self.name]

    def ipset_entries(self):
        """{set name: number of entries} for every ipset in the namespace."""
        out = subprocess.run(self.prefix() + ["ipset", "list", "-t"], capture_output=True, text=True).stdout
        sets, name = {}, None
        for line in out.splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Number of entries:") and name:
                sets[name] = int(line.split(":", 1)[1])
        return sets


def host_namespace():
    """A stand-in for Netns when namespaces are unavailable (detection-only runs)."""
    return _HostNamespace()


class _HostNamespace:
    name = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def prefix(self):
        return []

    def ipset_entries(self):
        return {}

