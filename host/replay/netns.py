"""Two network namespaces joined by a veth pair: a real wire on one machine.

The *replayer* namespace holds the sending end (replayer, captures, the
exchange simulator); the *appliance* namespace the receiving end.  Both
ends get an address of 198.18.0.0/15, the range set aside for benchmarking
network devices, so the traffic never means anything outside.  Each
namespace routes 224.0.0.0/4 over its veth: the replayer's multicast goes
out there, and the appliance's group joins (``IP_ADD_MEMBERSHIP`` on any
interface) land on it.  The appliance end turns reverse-path filtering off
because the captured frames keep the exchange's source addresses, which
are not routable in the namespace.

Namespaces and links are named after this process's id and a counter, so
parallel runs do not collide; :meth:`VethPair.destroy` removes both
namespaces (and with them the veth ends) and is safe to call twice.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass

REPLAYER_IP, APPLIANCE_IP, PREFIX_LEN = "198.18.0.1", "198.18.0.2", 30
_COUNTER = itertools.count()


class NetnsError(RuntimeError):
    """Namespaces or links could not be made or used."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"zmmprobe{os.getpid()}"
    proc = _ip("netns", "add", name, check=False)
    if proc.returncode != 0:
        return f"ip netns add failed: {proc.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


@dataclass
class VethPair:
    replayer_ns: str
    appliance_ns: str
    replayer_if: str
    appliance_if: str
    created: bool = False

    @classmethod
    def named(cls) -> "VethPair":
        tag = f"{os.getpid() % 100000}{next(_COUNTER)}"
        # Interface names are at most 15 characters.
        return cls(f"zmm-r{tag}", f"zmm-a{tag}", f"zr{tag}", f"za{tag}")

    def exec_args(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def run(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.exec_args(ns, list(argv)), capture_output=True, text=True)
        if proc.returncode != 0:
            raise NetnsError(f"in {ns}: {' '.join(argv)}: {proc.stderr.strip()}")
        return proc

    def create(self) -> "VethPair":
        try:
            _ip("netns", "add", self.replayer_ns)
            self.created = True
            _ip("netns", "add", self.appliance_ns)
            _ip("link", "add", self.replayer_if, "type", "veth", "peer", "name", self.appliance_if)
            _ip("link", "set", self.replayer_if, "netns", self.replayer_ns)
            _ip("link", "set", self.appliance_if, "netns", self.appliance_ns)
            for ns, ifname, addr in ((self.replayer_ns, self.replayer_if, REPLAYER_IP),
                                     (self.appliance_ns, self.appliance_if, APPLIANCE_IP)):
                self.run(ns, "ip", "link", "set", "lo", "up")
                self.run(ns, "ip", "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", ifname)
                self.run(ns, "ip", "link", "set", ifname, "up")
                self.run(ns, "ip", "route", "add", "224.0.0.0/4", "dev", ifname)
            for key in ("all", self.appliance_if, "default"):
                self.run(self.appliance_ns, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
        except Exception:
            self.destroy()
            raise
        return self

    def memberships(self) -> str:
        """The appliance end's multicast memberships (``ip maddr``)."""
        return self.run(self.appliance_ns, "ip", "maddr", "show", "dev", self.appliance_if).stdout

    def destroy(self) -> None:
        for ns in (self.replayer_ns, self.appliance_ns):
            _ip("netns", "del", ns, check=False)
        # A link left in the root namespace by a failed move goes too.
        _ip("link", "del", self.replayer_if, check=False)
        self.created = False

    def __enter__(self) -> "VethPair":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.destroy()
