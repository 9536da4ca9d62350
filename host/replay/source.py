"""Which frames of a recorded day are replayed, and in what form.

A capture holds the MoldUDP64 feeds as multicast UDP frames; each frame
belongs to feed A or B by its destination (group, port).  A
:class:`Selection` narrows the day:

* ``feeds`` -- A, B or both; frames to other destinations are not replayed
  (counted ``other_destination``), nor frames that are not IPv4/UDP
  (``not_udp``).
* a time window ``[start, end)`` of capture time.  The window is turned
  into a range of MoldUDP64 sequence numbers (the lowest and highest
  message of the data packets captured inside it), so feeds A and B, whose
  copies of a packet arrive at slightly different times, agree on every
  message.  Before the window, ``warmup="skip"`` sends nothing and
  renumbers the stream so that the window's first message is sequence 1
  (a receiver joining then sees no gap); ``warmup="send"`` sends the
  earlier packets unchanged, unpaced, so the appliance's books are those
  of the real day when the window starts.
* ``symbols`` -- keep only messages of these stocks (by the stock locates
  of the day's Stock Directory messages) and the messages of no stock
  (locate 0: system events).  Packets are rebuilt with the kept messages
  and renumbered: message ``s`` of the day becomes the count of kept
  messages below ``s``, plus one, on both feeds alike, so the filtered day
  is again a gap-free MoldUDP64 stream.  Packets left empty are dropped;
  heartbeats carry the renumbered next sequence number.

Renumbering needs the set of kept messages before the first packet is
sent, so a symbol filter reads the capture twice (both passes stream; only
the kept sequence numbers are held in memory).  Frames that do not decode
as MoldUDP64 are replayed untouched when nothing is renumbered and
dropped (``undecodable``) otherwise.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from host.pcap.frames import build_udp_frame, ip_to_str, parse_frame
from host.pcap.reader import iter_packets
from host.protocols import moldudp64
from host.protocols.errors import DecodeError
from host.runtime.directory import stock_locates

DEFAULT_FEEDS = {"A": ("233.54.12.1", 26400), "B": ("233.54.12.2", 26400)}
#: ITCH timestamps and the generator's capture times are New York time.
MARKET_TZ = ZoneInfo("America/New_York")
# pcap record header; pcapng's enhanced packet block is larger, which only
# makes the progress estimate a little conservative.
_RECORD_OVERHEAD = 16
_WARMUP = ("skip", "send")


class SourceError(ValueError):
    """The selection cannot be applied to this capture."""


class OutPacket(NamedTuple):
    ts_ns: int            # capture timestamp of the original frame
    feed: str             # "A" or "B"
    frame: bytes          # the Ethernet frame to put on the wire
    payload: bytes        # its UDP payload (the MoldUDP64 packet)
    dst: tuple[str, int]  # its destination group and port
    warmup: bool          # before the window, sent unpaced
    source_bytes: int     # bytes of the capture this frame consumed (progress)


@dataclass(frozen=True)
class Selection:
    feeds: tuple[str, ...] = ("A", "B")
    start_ns: int | None = None
    end_ns: int | None = None
    symbols: frozenset[str] = frozenset()
    warmup: str = "skip"

    def __post_init__(self):
        bad = [f for f in self.feeds if f not in DEFAULT_FEEDS]
        if bad or not self.feeds:
            raise SourceError(f"feeds must be A and/or B, got {','.join(self.feeds) or 'none'}")
        if self.warmup not in _WARMUP:
            raise SourceError(f"warmup must be one of {_WARMUP}, got {self.warmup!r}")
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise SourceError("the window ends before it starts")

    @property
    def windowed(self) -> bool:
        return self.start_ns is not None or self.end_ns is not None


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SourceError(f"expected GROUP:PORT, got {text!r}")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise SourceError(f"expected an IPv4 address in {text!r}") from None
    return host, int(port)


def first_timestamp(capture) -> int:
    for packet in iter_packets(capture):
        return packet.ts_ns
    raise SourceError(f"{capture}: the capture holds no packets")


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?$")


def parse_time(text: str, first_ts_ns: int) -> int:
    """A capture timestamp (ns) from ``+SECONDS`` (after the first packet) or
    ``HH:MM[:SS[.frac]]`` (New York time on the first packet's date)."""
    text = text.strip()
    if text.startswith("+"):
        try:
            seconds = float(text[1:])
        except ValueError:
            raise SourceError(f"bad offset {text!r}: expected +SECONDS") from None
        if seconds < 0:
            raise SourceError(f"bad offset {text!r}")
        return first_ts_ns + round(seconds * 1e9)
    m = _CLOCK.match(text)
    if not m:
        raise SourceError(f"bad time {text!r}: expected HH:MM[:SS[.frac]] or +SECONDS")
    hours, minutes, seconds = int(m[1]), int(m[2]), int(m[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SourceError(f"bad time {text!r}")
    fraction = round(float(m[4]) * 1e9) if m[4] else 0
    day = _dt.datetime.fromtimestamp(first_ts_ns / 1e9, MARKET_TZ).date()
    midnight = _dt.datetime(day.year, day.month, day.day, tzinfo=MARKET_TZ)
    return round(midnight.timestamp()) * 1_000_000_000 + \
        ((hours * 60 + minutes) * 60 + seconds) * 1_000_000_000 + fraction


class _Renumber:
    """Old sequence number -> new, for a kept set given as a range or as a
    sorted array of kept sequence numbers."""

    def __init__(self, lo: int | None = None, hi: int | None = None,
                 kept: np.ndarray | None = None):
        self.lo, self.hi, self.kept = lo, hi, kept

    def keeps(self, seq: int) -> bool:
        if self.kept is not None:
            i = int(np.searchsorted(self.kept, seq))
            return i < len(self.kept) and int(self.kept[i]) == seq
        return self.lo <= seq <= self.hi

    def new(self, seq: int) -> int:
        """The new number of ``seq`` if kept, else of the next kept message."""
        if self.kept is not None:
            return int(np.searchsorted(self.kept, seq)) + 1
        return min(max(seq, self.lo), self.hi + 1) - self.lo + 1


@dataclass
class ReplaySource:
    capture: str | Path
    selection: Selection = field(default_factory=Selection)
    addresses: dict[str, tuple[str, int]] = field(default_factory=lambda: dict(DEFAULT_FEEDS))
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.capture = Path(self.capture)
        if not self.capture.exists():
            raise SourceError(f"{self.capture}: no such capture")
        self._feed_of = {(int(ipaddress.IPv4Address(h)), p): name
                         for name, (h, p) in self.addresses.items()}
        self.locates: dict[str, int] = {}
        self.window_seqs: tuple[int, int] | None = None
        self._renumber: _Renumber | None = None
        self._prepared = False

    # -- the first pass --------------------------------------------------------------
    def prepare(self) -> None:
        """Stock locates, the window's sequence range and the kept messages."""
        if self._prepared:
            return
        self._prepared = True
        sel = self.selection
        if sel.symbols:
            self.locates = stock_locates(self.capture, sorted(sel.symbols))
            missing = sorted(sel.symbols - set(self.locates))
            if missing:
                raise SourceError(f"{self.capture}: no Stock Directory message for "
                                  f"{', '.join(missing)}")
        if not sel.windowed and not sel.symbols:
            return
        keep_locates = set(self.locates.values()) | {0}
        lo = hi = None
        kept_chunks, chunk = [], []
        for packet, frame, feed in self._feed_packets():
            try:
                mold = moldudp64.decode_packet(frame.payload)
            except DecodeError:
                continue
            if not mold.messages:
                continue
            in_window = ((sel.start_ns is None or packet.ts_ns >= sel.start_ns)
                         and (sel.end_ns is None or packet.ts_ns < sel.end_ns))
            if sel.end_ns is not None and packet.ts_ns >= sel.end_ns:
                break
            if in_window:
                first, last = mold.sequence_number, mold.next_sequence_number - 1
                lo = first if lo is None else min(lo, first)
                hi = last if hi is None else max(hi, last)
            if sel.symbols and (in_window or sel.warmup == "send"):
                for seq, _, msg in mold.iter_messages():
                    if len(msg) >= 3 and int.from_bytes(msg[1:3], "big") in keep_locates:
                        chunk.append(seq)
                if len(chunk) > 1 << 16:
                    kept_chunks.append(np.unique(np.array(chunk, dtype=np.uint64)))
                    chunk = []
        if sel.windowed:
            if lo is None:
                raise SourceError(f"{self.capture}: no data packet inside the window")
            self.window_seqs = (lo, hi)
        if sel.symbols:
            kept_chunks.append(np.array(chunk, dtype=np.uint64))
            kept = np.unique(np.concatenate(kept_chunks))
            if sel.windowed and sel.warmup == "skip":
                kept = kept[(kept >= lo) & (kept <= hi)]
            self._renumber = _Renumber(kept=kept)
        elif sel.windowed and sel.warmup == "skip":
            self._renumber = _Renumber(lo=lo, hi=hi)

    def _feed_packets(self):
        """(packet, parsed frame, feed) of every frame of a selected feed."""
        wanted = set(self.selection.feeds)
        for packet in iter_packets(self.capture):
            frame = parse_frame(packet.data, verify_checksum=False)
            if isinstance(frame, str) or frame.ip_proto != 17:
                continue
            feed = self._feed_of.get((frame.dst_ip, frame.dst_port))
            if feed in wanted:
                yield packet, frame, feed

    # -- the replay ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[OutPacket]:
        self.prepare()
        sel = self.selection
        wanted = set(sel.feeds)
        renumber = self._renumber
        window = self.window_seqs
        counts = self.counts
        for packet in iter_packets(self.capture):
            size = len(packet.data) + _RECORD_OVERHEAD
            counts["packets_read"] += 1
            frame = parse_frame(packet.data, verify_checksum=False)
            if isinstance(frame, str) or frame.ip_proto != 17:
                counts["not_udp"] += 1
                continue
            feed = self._feed_of.get((frame.dst_ip, frame.dst_port))
            if feed is None:
                counts["other_destination"] += 1
                continue
            if feed not in wanted:
                counts[f"feed_{feed}_not_selected"] += 1
                continue
            if sel.end_ns is not None and packet.ts_ns >= sel.end_ns:
                counts["after_window"] += 1
                break
            warmup = sel.start_ns is not None and packet.ts_ns < sel.start_ns
            if warmup and sel.warmup == "skip":
                counts["before_window"] += 1
                continue
            payload = frame.payload
            data = bytes(packet.data)
            if renumber is not None or (window is not None and not warmup):
                rebuilt = self._rebuild(payload, renumber, None if warmup else window)
                if rebuilt is None:
                    continue
                if rebuilt is not payload:
                    payload = rebuilt
                    data = build_udp_frame(payload, frame.src_ip, frame.dst_ip, frame.src_port,
                                           frame.dst_port, vlans=frame.vlans,
                                           src_mac=frame.src_mac, dst_mac=frame.dst_mac,
                                           ip_id=frame.ip_id, ttl=frame.ttl)
            counts["packets_out"] += 1
            yield OutPacket(packet.ts_ns, feed, data, bytes(payload),
                            (ip_to_str(frame.dst_ip), frame.dst_port), warmup, size)

    def _rebuild(self, payload: bytes, renumber: _Renumber | None,
                 window: tuple[int, int] | None) -> bytes | None:
        """The packet with only kept messages, renumbered; the same object when
        nothing changes; None when nothing is left to send."""
        try:
            mold = moldudp64.decode_packet(payload)
        except DecodeError:
            if renumber is not None:
                self.counts["undecodable"] += 1
                return None
            return payload
        if not mold.messages:
            if mold.end_of_session or renumber is None:
                return payload if renumber is None else moldudp64.MoldPacket(
                    mold.session, renumber.new(mold.sequence_number), [],
                    end_of_session=True).encode()
            if window is not None and mold.sequence_number > window[1] + 1:
                self.counts["heartbeat_after_window"] += 1
                return None
            return moldudp64.MoldPacket.heartbeat(mold.session,
                                                  renumber.new(mold.sequence_number)).encode()
        kept = []
        for seq, _, msg in mold.iter_messages():
            if window is not None and not window[0] <= seq <= window[1]:
                continue
            if renumber is not None and renumber.kept is not None and not renumber.keeps(seq):
                continue
            kept.append((seq, msg))
        if not kept:
            self.counts["emptied"] += 1
            return None
        if renumber is None:
            if len(kept) == len(mold.messages):
                return payload
            first = kept[0][0]
        else:
            first = renumber.new(kept[0][0])
        return moldudp64.encode_packet(mold.session, first, [m for _, m in kept])


def write_pcap(packets, path: str | Path, retime=None) -> dict:
    """Frames of ``packets`` into a nanosecond pcap; ``retime(i, packet)``
    gives each record's timestamp (default: the capture's)."""
    from host.pcap.writer import PcapWriter

    count = 0
    first = last = None
    with PcapWriter(path) as writer:
        for i, packet in enumerate(packets):
            ts = packet.ts_ns if retime is None else retime(i, packet)
            writer.write(ts, packet.frame)
            count += 1
            first = ts if first is None else first
            last = ts
    return {"packets": count, "first_ns": first, "last_ns": last}
