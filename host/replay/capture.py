"""Capturing the feed and the order-entry session on an interface, and
reading the order-entry capture back.

:class:`Tcpdump` runs ``tcpdump`` with nanosecond timestamps and a BPF
filter, written straight to a pcap (``-U``: every packet is flushed, so a
stop loses nothing): one capture for the multicast feed, one for the
SoupBinTCP session's TCP port.  Both files open in Wireshark (MoldUDP64,
ITCH, SoupBinTCP and OUCH have dissectors there).

:func:`read_order_entry` reassembles every TCP direction of such a capture
(:mod:`host.pcap.tcpflow`), deframes SoupBinTCP and decodes the OUCH 5.0
message of each data packet: unsequenced data are the appliance's
requests, sequenced data the exchange's answers.  A request's wire time is
the timestamp of the segment that completed it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from host.pcap.frames import IPPROTO_TCP, parse_frame
from host.pcap.reader import iter_packets
from host.pcap.tcpflow import TcpReassembler
from host.protocols import ouch50, soupbintcp
from host.protocols.errors import DecodeError

FEED_FILTER = "udp and dst net 224.0.0.0/4"


class CaptureError(RuntimeError):
    """tcpdump could not start or did not stop cleanly."""


def order_entry_filter(port: int) -> str:
    return f"tcp port {int(port)}"


class Tcpdump:
    """One tcpdump process of ours, started and stopped by its process id."""

    def __init__(self, iface: str, path: str | Path, bpf: str, *, executable: str = "tcpdump"):
        self.iface, self.path, self.bpf = iface, Path(path), bpf
        self.executable = executable
        self.proc: subprocess.Popen | None = None
        # time.time_ns() just before tcpdump was launched: nothing sent
        # earlier can be in the capture (the journal's clock, for the wire join).
        self.started_ns: int | None = None
        self.stderr: list[str] = []
        self.stats: dict[str, int] = {}
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> "Tcpdump":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # -Z root: tcpdump would otherwise drop to its own user, which may not
        # write where the report goes.
        # --immediate-mode: packets leave the kernel's ring at once, not when a
        # block fills, so a stop right after the last packet loses none.
        args = [self.executable, "-i", self.iface, "-w", str(self.path), "-U", "-n", "-s", "0",
                "--immediate-mode", "-B", "16384", "--time-stamp-precision=nano", "-Z", "root",
                self.bpf]
        self.started_ns = time.time_ns()
        try:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True)
        except FileNotFoundError:
            raise CaptureError(f"{self.executable} is not installed (apt-get install tcpdump)") \
                from None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._listening.wait(timeout):
            self.stop()
            raise CaptureError(f"tcpdump on {self.iface} did not start: "
                               f"{''.join(self.stderr).strip()[-400:]}")
        if self.proc.poll() is not None:
            raise CaptureError(f"tcpdump on {self.iface} exited {self.proc.returncode}: "
                               f"{''.join(self.stderr).strip()[-400:]}")
        return self

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "listening on" in line:
                self._listening.set()
        self._listening.set()

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        if self.proc is None:
            return self.stats
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        text = "".join(self.stderr)
        for key, pattern in (("captured", "packets captured"), ("received", "packets received by filter"),
                             ("dropped", "packets dropped by kernel")):
            for line in text.splitlines():
                if pattern in line:
                    try:
                        self.stats[key] = int(line.split()[0])
                    except ValueError:
                        pass
        self.proc = None
        return self.stats

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class WireMessage:
    ts_ns: int
    msg: object                       # an OUCH message


@dataclass
class OrderEntryCapture:
    requests: list[WireMessage] = field(default_factory=list)    # appliance -> exchange
    answers: list[WireMessage] = field(default_factory=list)     # exchange -> appliance
    counts: Counter = field(default_factory=Counter)


def read_order_entry(path: str | Path, port: int | None = None) -> OrderEntryCapture:
    """OUCH requests and answers of every SoupBinTCP session in the capture
    (only TCP port ``port`` when given).  Undecodable bytes are counted."""
    out = OrderEntryCapture()
    counts = out.counts
    reassembler = TcpReassembler()
    framers: dict[tuple, soupbintcp.SoupFramer] = {}
    if not os.path.exists(path):
        counts["missing_capture"] += 1
        return out
    pcap_counts: dict[str, int] = {}
    for packet in iter_packets(path, counters=pcap_counts):
        frame = parse_frame(packet.data, verify_checksum=False)
        if isinstance(frame, str) or frame.ip_proto != IPPROTO_TCP:
            counts["not_tcp"] += 1
            continue
        if port is not None and port not in (frame.src_port, frame.dst_port):
            counts["other_port"] += 1
            continue
        for chunk in reassembler.add(packet.ts_ns, frame.src_ip, frame.src_port, frame.dst_ip,
                                     frame.dst_port, frame.tcp_seq, frame.tcp_flags,
                                     frame.payload):
            flow, ts_ns, data = chunk
            framer = framers.get(flow)
            if framer is None:
                framer = framers[flow] = soupbintcp.SoupFramer()
            if chunk.gap_before:
                counts["tcp_gap_resync"] += 1
                framer.reset()
            for soup in framer.feed(data):
                if not isinstance(soup, (soupbintcp.SequencedData, soupbintcp.UnsequencedData)):
                    counts[f"soup_{type(soup).__name__}"] += 1
                    continue
                try:
                    msg = ouch50.decode_from_soup(soup)
                except DecodeError as exc:
                    counts[f"ouch_undecodable_{exc.reason}"] += 1
                    continue
                if isinstance(soup, soupbintcp.UnsequencedData):
                    out.requests.append(WireMessage(ts_ns, msg))
                else:
                    out.answers.append(WireMessage(ts_ns, msg))
    for key, n in pcap_counts.items():
        if n:
            counts[f"pcap_{key}"] += n
    counts.update({f"tcp_{k}": v for k, v in reassembler.counters.items() if v})
    return out
