"""Captures and recorded feeds: pcap / pcapng reading and writing, frame
parsing and building, and Nasdaq's length-prefixed daily ITCH files.

- fast path: :func:`iter_udp_batches` / :class:`CaptureReader` (numba, numpy
  batches, constant memory);
- general path: :func:`iter_packets` and :func:`parse_frame`;
- writers: :class:`PcapWriter`, :class:`PcapngWriter`, :class:`ItchFileWriter`;
- :func:`detect_format` tells the three input formats apart.
"""
from __future__ import annotations

import os
import struct

from host.pcap.errors import CaptureFormatError, UnsupportedLinkType
from host.pcap.fast import CaptureReader, UdpBatch, bench_read, iter_udp_batches
from host.pcap.frames import (
    REJECT_REASONS,
    Frame,
    VlanTag,
    build_tcp_frame,
    build_udp_frame,
    ip_to_int,
    ip_to_str,
    parse_frame,
)
from host.pcap.itchfile import ItchBatch, ItchFileReader, ItchFileWriter, iter_itch_batches
from host.pcap.reader import PCAP_MAGICS, PCAPNG_SHB, Packet, RecordReader, iter_packets
from host.pcap.streams import read_head
from host.pcap.writer import PcapngWriter, PcapWriter

__all__ = [
    "CaptureFormatError", "UnsupportedLinkType", "CaptureReader", "UdpBatch", "bench_read",
    "iter_udp_batches", "REJECT_REASONS", "Frame", "VlanTag", "build_tcp_frame",
    "build_udp_frame", "ip_to_int", "ip_to_str", "parse_frame", "ItchBatch", "ItchFileReader",
    "ItchFileWriter", "iter_itch_batches", "Packet", "RecordReader", "iter_packets",
    "PcapWriter", "PcapngWriter", "detect_format",
]

_SNIFF_BYTES = 1 << 16
_ITCH_MESSAGES_TO_CHECK = 16
# ITCH 5.0's longest message is 50 bytes; leave room but stay far below what
# random bytes would give (a 16-bit length is < 256 only 1 time in 256).
_ITCH_MAX_PLAUSIBLE_LEN = 255


def _looks_like_itch(head: bytes) -> bool:
    """The first messages of a length-prefixed ITCH file: every length small
    and non-zero, every type byte an ASCII letter, and each type always
    with the same length (ITCH messages have fixed layouts)."""
    pos = 0
    count = 0
    length_of_type: dict[int, int] = {}
    while count < _ITCH_MESSAGES_TO_CHECK and pos + 2 <= len(head):
        length = (head[pos] << 8) | head[pos + 1]
        if not 1 <= length <= _ITCH_MAX_PLAUSIBLE_LEN:
            return False
        if pos + 2 + length > len(head):
            break
        msg_type = head[pos + 2]
        if not (0x41 <= msg_type <= 0x5A or 0x61 <= msg_type <= 0x7A):
            return False
        if length_of_type.setdefault(msg_type, length) != length:
            return False
        count += 1
        pos += 2 + length
    # Either enough messages checked, or a short file that ends cleanly.
    return count >= _ITCH_MESSAGES_TO_CHECK or (count > 0 and pos == len(head))


def detect_format(path: str | os.PathLike) -> str:
    """``"pcap"``, ``"pcapng"`` or ``"itch"`` (each possibly gzipped).

    pcap and pcapng are recognised by their magic numbers; ITCH files have
    none, so a file is ITCH when it is neither and its first messages are
    plausible ITCH.  Anything else raises :class:`CaptureFormatError`.
    """
    head = read_head(path, _SNIFF_BYTES)
    if len(head) >= 4:
        first = struct.unpack("<I", head[:4])[0]
        if first in PCAP_MAGICS:
            return "pcap"
        if first == PCAPNG_SHB:
            return "pcapng"
    if _looks_like_itch(head):
        return "itch"
    shown = head[:8].hex(" ") if head else "an empty file"
    raise CaptureFormatError(
        f"{os.fspath(path)}: not a pcap, pcapng or length-prefixed ITCH file (first bytes: {shown})")
