"""Where the appliance's feed frames come from when the host takes the wire.

* :func:`replay_batches` -- a recorded day (pcap/pcapng): every frame, each
  to the feed input of its destination address, paced as captured, scaled
  (``speed`` times real time) or at top speed (``speed`` None).
* :class:`PsBridge` -- ``ps-bridge`` ingest: the host joins the feeds'
  multicast groups on a Linux socket and rebuilds each datagram's Ethernet,
  IPv4 and UDP headers, so the fabric's filters see what a MAC would give
  them (PYNQ-Z2 has no Ethernet on the PL).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from typing import Iterator

from host.pcap.frames import build_udp_frame, parse_frame
from host.pcap.reader import iter_packets
from rtl.feed_path.model import FEED_A, Frame


def feed_of(addresses: list[tuple[str, int]]) -> dict[tuple[int, int], int]:
    return {(int(ipaddress.IPv4Address(host)), port): feed
            for feed, (host, port) in enumerate(addresses)}


def replay_batches(capture, addresses: list[tuple[str, int]], batch: int = 256
                   ) -> Iterator[tuple[list[Frame], list[int]]]:
    """(frames, capture timestamps in ns) in batches of up to ``batch``;
    frames for neither feed go to feed A, whose filter drops and counts them."""
    feeds = feed_of(addresses)
    frames, stamps = [], []
    for packet in iter_packets(capture):
        parsed = parse_frame(packet.data)
        feed = FEED_A
        if not isinstance(parsed, str):
            feed = feeds.get((parsed.dst_ip, parsed.dst_port), FEED_A)
        frames.append(Frame(feed, bytes(packet.data)))
        stamps.append(packet.ts_ns)
        if len(frames) >= batch:
            yield frames, stamps
            frames, stamps = [], []
    if frames:
        yield frames, stamps


class Pacer:
    """Sleeps so that capture time ``ts_ns`` is reached at ``speed`` times
    real time from the first timestamp seen; top speed when ``speed`` is None."""

    def __init__(self, speed: float | None):
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.origin: tuple[int, float] | None = None

    async def wait(self, ts_ns: int) -> None:
        if self.speed is None:
            await asyncio.sleep(0)
            return
        now = time.monotonic()
        if self.origin is None:
            self.origin = (ts_ns, now)
        due = self.origin[1] + (ts_ns - self.origin[0]) / 1e9 / self.speed
        await asyncio.sleep(max(0.0, due - now))


def interface_address(name: str) -> str:
    """IPv4 address of a network interface (Linux SIOCGIFADDR)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915,  # SIOCGIFADDR
                                 struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            raise OSError(f"interface {name!r} has no IPv4 address: {exc.strerror}") from None
    return socket.inet_ntoa(packed[20:24])


# Receive buffer per feed socket: a burst of the open must fit while the loop
# is busy with the fabric's records (the kernel default of ~200 KiB holds
# about a millisecond of a busy feed).
RECEIVE_BUFFER = 8 << 20


class PsBridge:
    """Multicast sockets for the feeds; :meth:`frames` drains what arrived.
    Datagrams the kernel dropped for want of buffer show in the socket
    statistics (``/proc/net/udp`` drops), and in the sequencer as gaps."""

    def __init__(self, addresses: list[tuple[str, int]], interface: str | None = None):
        self.addresses = addresses
        interface_ip = interface_address(interface) if interface else "0.0.0.0"
        self.sockets: list[socket.socket] = []
        for group, port in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                # FORCE goes past net.core.rmem_max; it needs CAP_NET_ADMIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except (OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((group, port))
            membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface_ip))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.counts = {"datagrams": 0}

    def frames(self, limit: int = 1024) -> list[Frame]:
        out = []
        for feed, (sock, (group, port)) in enumerate(zip(self.sockets, self.addresses)):
            while len(out) < limit:
                try:
                    payload, (src, sport) = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                self.counts["datagrams"] += 1
                out.append(Frame(feed, build_udp_frame(payload, src, group, sport, port)))
        return out

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
