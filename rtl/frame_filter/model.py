"""Bit-accurate model of the frame filter; this is the block's specification.

One feed comes in as Ethernet frames (bytes plus the MAC's frame-error flag).
A frame passes when it is Ethernet II with at most two VLAN tags (TPID 0x8100,
0x88a8 or 0x9100), IPv4 with a correct header checksum (options skipped by
IHL), not a fragment, UDP with a sane length and a non-empty payload, and its
(destination IP, destination UDP port) matches an enabled entry of the filter
table; the lowest matching entry wins.  A passing frame leaves as its UDP
payload with the entry's index as ``dest``.  Anything else is dropped and
counted under exactly one reason.

The checks run in the order of :data:`DROP_REASONS`, except that the length
checks (``truncated``) sit where :func:`host.pcap.frames.parse_frame` puts
them: a field is only judged once the frame is known to contain it.  Bytes
past the IP total length (Ethernet padding, FCS) are ignored.

How the hardware gets there matters to the model only where it shows: the
header checksum is the end-around-carry sum of the header's 16-bit words
compared with 0xFFFF, the largest payload passed is
:data:`PAYLOAD_FIFO_BEATS` beats (the sequencer's packet limit; a longer
payload is ``oversize``), and the counters are 32 bits wide and wrap.  The
hardware cuts through: a payload leaves while its frame still comes in, and a
frame that turns out bad at its end (a frame error, truncation) closes its
payload with ``tdrop``, which the next stage discards.  Such a frame is a
drop here like any other (no output, one reason counted).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

from host.pcap.frames import ETHERTYPE_IPV4, IPPROTO_UDP, VLAN_TPIDS
from rtl.common.axis import DATA_BYTES, Packet

FILTER_ENTRIES = 8
PAYLOAD_FIFO_BEATS = 256
MAX_PAYLOAD_BYTES = PAYLOAD_FIFO_BEATS * DATA_BYTES
COUNTER_MASK = 0xFFFF_FFFF

# Drop reasons in the order the checks run.  The position is also the
# reason's code in the hardware (code 0 is "passed") and its bit in the
# sticky DROP_STATUS register.
DROP_REASONS = (
    "frame_error",      # the MAC flagged the frame (tuser)
    "truncated",        # shorter than the headers or IP total length it announces
    "too_many_vlans",   # a third VLAN tag
    "not_ipv4",         # ethertype after the tags is not IPv4
    "bad_ip_header",    # IP version != 4 or IHL < 5
    "bad_ip_length",    # IP total length shorter than the header
    "bad_ip_checksum",  # header checksum does not verify
    "ip_fragment",      # MF set or fragment offset != 0
    "not_udp",          # IPv4 but another protocol
    "bad_udp_length",   # UDP length < 8 or past the IP payload
    "empty_payload",    # UDP length 8: nothing to forward
    "no_match",         # no enabled filter entry matches (dst IP, dst port)
    "oversize",         # payload larger than the payload buffer
)
PASSED = "passed"
COUNTERS = ("frames", PASSED) + DROP_REASONS
REASON_CODE = {PASSED: 0, **{name: i + 1 for i, name in enumerate(DROP_REASONS)}}

ETH_HEADER_BYTES = 14
VLAN_TAG_BYTES = 4
IPV4_MIN_HEADER_BYTES = 20
UDP_HEADER_BYTES = 8
IP_FRAGMENT_BITS = 0x3FFF  # MF and the 13-bit offset; DF does not matter
MAX_VLAN_TAGS = 2
# The IP header's 16-bit words by IHL, read in one call for the checksum.
_HEADER_WORDS = {ihl: struct.Struct(f">{2 * ihl}H") for ihl in range(5, 16)}


@dataclass(frozen=True)
class FilterEntry:
    """One row of the filter table (IPv4 address as an int)."""

    dst_ip: int
    dst_port: int
    enabled: bool = True

    def __post_init__(self):
        if not 0 <= self.dst_ip <= 0xFFFF_FFFF or not 0 <= self.dst_port <= 0xFFFF:
            raise ValueError(f"filter entry out of range: {self}")


class Verdict(NamedTuple):
    """What the filter does with one frame: ``reason`` is ``"passed"`` or a
    drop reason; ``payload`` and ``index`` are set only when it passed."""

    reason: str
    payload: bytes = b""
    index: int = -1


def header_checksum_ok(words: Iterable[int]) -> bool:
    """The hardware's test: end-around-carry sum of the words is 0xFFFF."""
    total = sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def normalise_table(table: Sequence[FilterEntry | None]) -> tuple[FilterEntry | None, ...]:
    if len(table) > FILTER_ENTRIES:
        raise ValueError(f"the filter table has {FILTER_ENTRIES} entries, got {len(table)}")
    return tuple(table) + (None,) * (FILTER_ENTRIES - len(table))


def classify(data: bytes, frame_error: bool, table: Sequence[FilterEntry | None],
             max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Verdict:
    """Judge one frame against ``table`` without counting it."""
    return judge(data, frame_error, match_table(table), max_payload_bytes)


def match_table(table: Sequence[FilterEntry | None]) -> dict[tuple[int, int], int]:
    """(destination IP, destination port) -> the lowest enabled entry matching it."""
    matches: dict[tuple[int, int], int] = {}
    for index, entry in enumerate(table):
        if entry is not None and entry.enabled:
            matches.setdefault((entry.dst_ip, entry.dst_port), index)
    return matches


def judge(data: bytes, frame_error: bool, matches: Mapping[tuple[int, int], int],
          max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Verdict:
    """:func:`classify` with the table as :func:`match_table` gives it."""
    if frame_error:
        return Verdict("frame_error")
    size = len(data)
    if size < ETH_HEADER_BYTES:
        return Verdict("truncated")
    ip = ETH_HEADER_BYTES                       # where the IP header starts, past the tags
    ethertype = (data[ip - 2] << 8) | data[ip - 1]
    tags = 0
    while ethertype in VLAN_TPIDS:
        if tags == MAX_VLAN_TAGS:
            return Verdict("too_many_vlans")
        if size < ip + VLAN_TAG_BYTES:
            return Verdict("truncated")
        ip += VLAN_TAG_BYTES
        tags += 1
        ethertype = (data[ip - 2] << 8) | data[ip - 1]
    if ethertype != ETHERTYPE_IPV4:
        return Verdict("not_ipv4")
    if size < ip + IPV4_MIN_HEADER_BYTES:
        return Verdict("truncated")
    version, ihl = data[ip] >> 4, data[ip] & 0x0F
    header_bytes = 4 * ihl
    if version != 4 or header_bytes < IPV4_MIN_HEADER_BYTES:
        return Verdict("bad_ip_header")
    if size < ip + header_bytes:
        return Verdict("truncated")
    total_length = (data[ip + 2] << 8) | data[ip + 3]
    if total_length < header_bytes:
        return Verdict("bad_ip_length")
    if size < ip + total_length:
        return Verdict("truncated")
    if not header_checksum_ok(_HEADER_WORDS[ihl].unpack_from(data, ip)):
        return Verdict("bad_ip_checksum")
    if ((data[ip + 6] << 8) | data[ip + 7]) & IP_FRAGMENT_BITS:
        return Verdict("ip_fragment")
    if data[ip + 9] != IPPROTO_UDP:
        return Verdict("not_udp")
    udp_room = total_length - header_bytes
    if udp_room < UDP_HEADER_BYTES:
        return Verdict("bad_udp_length")
    udp = ip + header_bytes
    udp_length = (data[udp + 4] << 8) | data[udp + 5]
    if udp_length < UDP_HEADER_BYTES or udp_length > udp_room:
        return Verdict("bad_udp_length")
    if udp_length == UDP_HEADER_BYTES:
        return Verdict("empty_payload")
    index = matches.get((int.from_bytes(data[ip + 16:ip + 20], "big"),
                         (data[udp + 2] << 8) | data[udp + 3]), -1)
    if index < 0:
        return Verdict("no_match")
    payload_start = udp + UDP_HEADER_BYTES
    payload_length = udp_length - UDP_HEADER_BYTES
    if payload_length > max_payload_bytes:
        return Verdict("oversize")
    return Verdict(PASSED, bytes(data[payload_start:payload_start + payload_length]), index)


@dataclass
class FrameFilterModel:
    """The block: a filter table, counters, and frames in, payloads out."""

    table: Sequence[FilterEntry | None] = ()
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def __post_init__(self):
        self.table = normalise_table(self.table)
        self._matches_of: tuple | None = None
        self._matches: dict[tuple[int, int], int] = {}

    def process(self, data: bytes, frame_error: bool = False) -> Packet | None:
        """Judge and count one frame; return the output packet if it passed."""
        if self._matches_of is not self.table:
            # The table (a tuple of frozen entries) changes only by replacement.
            self._matches = match_table(self.table)
            self._matches_of = self.table
        verdict = judge(bytes(data), frame_error, self._matches, self.max_payload_bytes)
        counters = self.counters
        counters["frames"] = (counters["frames"] + 1) & COUNTER_MASK
        reason = verdict.reason
        counters[reason] = (counters[reason] + 1) & COUNTER_MASK
        if reason != PASSED:
            return None
        return Packet(verdict.payload, False, verdict.index)

    def run(self, frames: Iterable[Packet]) -> list[Packet]:
        out = []
        for frame in frames:
            packet = self.process(frame.data, frame.error)
            if packet is not None:
                out.append(packet)
        return out

    def sticky_drops(self) -> int:
        """The DROP_STATUS bits a fresh block would show after these frames."""
        return sum(1 << i for i, name in enumerate(DROP_REASONS) if self.counters[name])

    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & COUNTER_MASK
