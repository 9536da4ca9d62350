"""Putting a selected day on the wire, paced, and saying how well it was paced.

Destinations (``--to``):

* ``iface:NAME`` -- whole Ethernet frames as captured (VLAN tags, MACs,
  addresses), written to one scapy layer-2 socket (PF_PACKET) opened once;
* ``udp`` / ``udp:GROUP:PORT[,GROUP:PORT]`` -- only the UDP payloads, on
  one ordinary UDP socket, to the captured groups or to new ones (feed A to
  the first, B to the second); the kernel builds the headers;
* line rate: the selected frames written to a pcap and handed to
  ``tcpreplay`` (its own pacing loop in C; top speed, multiplier or fixed
  packet rate).

Timing (:class:`Timing`): as captured, scaled (``xN``: N times faster),
a fixed rate in packets per second, or top speed.  Python pacing sleeps
until shortly before each packet is due and spins the rest, so a slow
stretch makes later packets late rather than early and a pause of the
capture is kept.  Packets before a ``warmup="send"`` window go at a fixed
warm-up rate first.

What was asked and what happened are both kept: the intended offset of
every packet from the first, and the time it was handed to the kernel.
:func:`timing_fidelity` compares consecutive gaps, from the sender's clock
here or from a capture's wire timestamps (:mod:`host.replay.capture`).
"""
from __future__ import annotations

import array
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from host.replay.source import OutPacket, SourceError, parse_endpoint

TCPREPLAY = "tcpreplay"
# Sleep until this long before a packet is due, then spin: the kernel's
# wake-up latency is tens of microseconds on a loaded machine.
_SPIN_NS = 200_000
FIDELITY_POINTS = (50, 90, 99, 99.9)


class SendError(RuntimeError):
    """The destination cannot be used (no interface, no tcpreplay, no permission)."""


@dataclass(frozen=True)
class Timing:
    mode: str = "top"          # captured | scale | pps | top
    value: float = 1.0         # the multiplier (scale) or packets per second (pps)

    def __post_init__(self):
        if self.mode not in ("captured", "scale", "pps", "top"):
            raise ValueError(f"unknown timing mode {self.mode!r}")
        if self.mode in ("scale", "pps") and not self.value > 0:
            raise ValueError(f"{self.mode} needs a positive value, got {self.value}")

    @classmethod
    def parse(cls, text: str) -> "Timing":
        """``captured`` | ``xN`` (N times captured speed) | ``N pps`` / ``Npps`` | ``top``."""
        text = text.strip().lower()
        if text in ("captured", "x1", "1x", "asis", "as-captured"):
            return cls("captured")
        if text in ("top", "topspeed", "max"):
            return cls("top")
        m = re.fullmatch(r"x\s*([0-9.]+(?:e[0-9]+)?)", text) or \
            re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*x", text)
        if m:
            return cls("scale", float(m[1]))
        m = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*pps", text)
        if m:
            return cls("pps", float(m[1]))
        raise ValueError(f"bad timing {text!r}: captured, xN, Npps or top")

    def describe(self) -> str:
        return {"captured": "as captured", "scale": f"x{self.value:g}",
                "pps": f"{self.value:g} pps", "top": "top speed"}[self.mode]

    def tcpreplay_args(self) -> list[str]:
        if self.mode == "scale":
            return [f"--multiplier={self.value:g}"]
        if self.mode == "pps":
            return [f"--pps={self.value:g}"]
        if self.mode == "top":
            return ["--topspeed"]
        return []


class Schedule:
    """Intended send offsets (ns from the first packet); None for top speed."""

    def __init__(self, timing: Timing, warmup_pps: float = 20_000.0):
        self.timing = timing
        self.warmup_gap = round(1e9 / warmup_pps)
        self._origin_ts: int | None = None
        self._warmup_end = 0
        self._n = 0

    def offset(self, packet: OutPacket) -> int | None:
        t = self.timing
        i = self._n
        self._n += 1
        if packet.warmup:
            self._warmup_end = (i + 1) * self.warmup_gap
            return None if t.mode == "top" else i * self.warmup_gap
        if t.mode == "top":
            return None
        if self._origin_ts is None:
            self._origin_ts = packet.ts_ns
            self._first_paced = i
        base = self._warmup_end
        if t.mode == "pps":
            return base + round((i - self._first_paced) * 1e9 / t.value)
        scale = 1.0 if t.mode == "captured" else t.value
        return base + round((packet.ts_ns - self._origin_ts) / scale)


@dataclass
class SendResult:
    destination: str
    timing: str
    packets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    started_realtime_ns: int = 0
    intended_ns: array.array = field(default_factory=lambda: array.array("q"))
    sent_ns: array.array = field(default_factory=lambda: array.array("q"))
    paced: array.array = field(default_factory=lambda: array.array("b"))
    tool: dict = field(default_factory=dict)

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        out = {"destination": self.destination, "timing": self.timing, "packets": self.packets,
               "bytes": self.bytes, "seconds": round(self.seconds, 6),
               "packets_per_second": round(self.pps, 1)}
        if self.tool:
            out["tool"] = self.tool
        if len(self.sent_ns) > 1 and self.timing != "top speed":
            out["fidelity_sender_clock"] = timing_fidelity(self.intended_ns, self.sent_ns,
                                                           self.paced)
        return out


def timing_fidelity(intended_ns, actual_ns, paced=None) -> dict:
    """Inter-packet timing error: for each consecutive pair of paced packets,
    |actual gap - intended gap|, percentiles in microseconds; plus the total
    stretch (actual span / intended span)."""
    intended = np.asarray(intended_ns, dtype=np.int64)
    actual = np.asarray(actual_ns, dtype=np.int64)
    n = min(len(intended), len(actual))
    intended, actual = intended[:n], actual[:n]
    if paced is not None:
        keep = np.asarray(paced, dtype=bool)[:n]
        intended, actual = intended[keep], actual[keep]
    if len(intended) < 2:
        return {"pairs": 0}
    error = np.abs(np.diff(actual) - np.diff(intended)) / 1000.0
    span = float(intended[-1] - intended[0])
    out = {"pairs": int(len(error))}
    for p in FIDELITY_POINTS:
        out[f"p{str(p).replace('.', '')}_us"] = round(float(np.percentile(error, p)), 3)
    out["max_us"] = round(float(error.max()), 3)
    out["mean_gap_us"] = round(float(np.diff(intended).mean()) / 1000.0, 3)
    if span > 0:
        out["stretch"] = round(float(actual[-1] - actual[0]) / span, 6)
    return out


# -- socket senders -------------------------------------------------------------------
class _L2Sender:
    def __init__(self, iface: str):
        try:
            from scapy.arch.linux import L2Socket
            self.sock = L2Socket(iface=iface)
        except (OSError, ValueError) as exc:
            raise SendError(f"cannot open a layer-2 socket on {iface}: {exc}") from None
        # scapy's send() converts every packet to bytes first; the frames
        # already are, so they go to the PF_PACKET socket as they are.
        self._send = self.sock.outs.send

    def send(self, packet: OutPacket) -> int:
        return self._send(packet.frame)

    def close(self) -> None:
        self.sock.close()


class _UdpSender:
    def __init__(self, targets: dict[str, tuple[str, int]] | None, interface_ip: str | None,
                 ttl: int = 8):
        self.targets = targets
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        if interface_ip:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                 socket.inet_aton(interface_ip))

    def send(self, packet: OutPacket) -> int:
        dst = packet.dst if self.targets is None else self.targets[packet.feed]
        while True:
            try:
                return self.sock.sendto(packet.payload, dst)
            except BlockingIOError:
                time.sleep(0)

    def close(self) -> None:
        self.sock.close()


def parse_destination(text: str) -> tuple[str, object]:
    """``iface:NAME`` | ``udp`` | ``udp:G:P[,G:P]`` | ``backend:model|rtl``."""
    kind, _, rest = text.partition(":")
    if kind == "iface" and rest:
        return "iface", rest
    if kind == "udp":
        if not rest:
            return "udp", None
        targets = [parse_endpoint(t) for t in rest.split(",")]
        if len(targets) > 2:
            raise SourceError("udp: at most two destinations (feed A, feed B)")
        return "udp", {"A": targets[0], "B": targets[-1]}
    if kind == "backend" and rest in ("model", "rtl"):
        return "backend", rest
    raise SourceError(f"bad destination {text!r}: iface:NAME, udp[:GROUP:PORT[,GROUP:PORT]] "
                      f"or backend:model|rtl")


def realtime_priority(priority: int = 10) -> str | None:
    """Run this process under SCHED_FIFO: a sleeping sender then wakes on
    time even when every core is busy.  None on success, else why not."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        return f"SCHED_FIFO refused: {exc}"
    return None


def send_paced(packets: Iterable[OutPacket], destination: str, target, timing: Timing, *,
               warmup_pps: float = 20_000.0, interface_ip: str | None = None,
               progress: Callable[[int], None] | None = None,
               realtime: bool = False) -> SendResult:
    """Send through one socket with Python pacing."""
    sender = _L2Sender(target) if destination == "iface" else _UdpSender(target, interface_ip)
    label = f"iface:{target}" if destination == "iface" else "udp"
    result = SendResult(label, timing.describe())
    if realtime:
        refused = realtime_priority()
        result.tool["scheduler"] = refused or "SCHED_FIFO"
    schedule = Schedule(timing, warmup_pps)
    clock = time.perf_counter_ns
    start = None
    send = sender.send
    try:
        for packet in packets:
            offset = schedule.offset(packet)
            if start is None:
                result.started_realtime_ns = time.time_ns()
                start = clock()
            if offset is not None:
                due = start + offset
                wait = due - clock()
                if wait > _SPIN_NS:
                    time.sleep((wait - _SPIN_NS) / 1e9)
                while clock() < due:
                    pass
            result.bytes += send(packet)
            now = clock()
            result.intended_ns.append(offset if offset is not None else now - start)
            result.sent_ns.append(now - start)
            result.paced.append(offset is not None and not packet.warmup)
            result.packets += 1
            if progress is not None:
                progress(packet.source_bytes)
    finally:
        sender.close()
    if start is not None:
        result.seconds = (clock() - start) / 1e9
    return result


# -- tcpreplay -----------------------------------------------------------------------
_ACTUAL = re.compile(r"Actual:\s+(\d+)\s+packets\s+\((\d+)\s+bytes\)\s+sent in\s+([0-9.]+)\s+seconds")
_RATED = re.compile(r"Rated:\s+([0-9.]+)\s+Bps,\s+([0-9.]+)\s+Mbps,\s+([0-9.]+)\s+pps")
_FAILED = re.compile(r"Failed packets:\s+(\d+)")


def tcpreplay_available() -> str | None:
    return shutil.which(TCPREPLAY) or (TCPREPLAY if Path("/usr/bin/tcpreplay").exists() else None)


def send_tcpreplay(pcap: str | Path, iface: str, timing: Timing, *, packets: int,
                   intended_ns=None, progress: Callable[[int], None] | None = None,
                   realtime: bool = False) -> SendResult:
    """``tcpreplay`` on a prepared pcap; ``intended_ns`` the schedule it
    should keep (for the fidelity figures), ``packets`` how many it holds."""
    exe = tcpreplay_available()
    if exe is None:
        raise SendError("tcpreplay is not installed (apt-get install tcpreplay)")
    args = [exe, "-i", iface, "--stats=1", *timing.tcpreplay_args()]
    if realtime and shutil.which("chrt"):
        args = ["chrt", "-f", "10", *args]
    if timing.mode == "top" and Path(pcap).stat().st_size < (512 << 20):
        # From memory the disk never sets the pace.
        args.append("--preload-pcap")
    args.append(str(pcap))
    result = SendResult(f"iface:{iface} (tcpreplay)", timing.describe())
    if realtime:
        result.tool["scheduler"] = "SCHED_FIFO" if args[0] == "chrt" else "chrt missing"
    result.started_realtime_ns = time.time_ns()
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    done = 0
    for line in proc.stdout:
        output.append(line)
        m = _ACTUAL.search(line)
        if m and progress is not None:
            sent = int(m[1])
            progress(max(sent - done, 0))
            done = max(done, sent)
    rc = proc.wait()
    elapsed = time.perf_counter() - started
    text = "".join(output)
    if rc != 0:
        raise SendError(f"tcpreplay exited {rc}: {text.strip()[-500:]}")
    actual = _ACTUAL.findall(text)
    rated = _RATED.findall(text)
    failed = _FAILED.findall(text)
    if actual:
        count, nbytes, seconds = actual[-1]
        result.packets, result.bytes, result.seconds = int(count), int(nbytes), float(seconds)
    else:
        result.packets, result.seconds = packets, elapsed
    if rated:
        result.tool.update(rated_pps=float(rated[-1][2]), rated_mbps=float(rated[-1][1]))
    if failed:
        result.tool["failed_packets"] = int(failed[-1])
    if intended_ns is not None:
        result.intended_ns = array.array("q", intended_ns)
        result.paced = array.array("b", [1] * len(result.intended_ns))
    return result
