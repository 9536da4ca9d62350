"""Streaming pcap and pcapng writers.

:class:`PcapWriter` writes classic pcap (microsecond or nanosecond magic,
little-endian) and :class:`PcapngWriter` a single-section pcapng file with one
Ethernet interface at nanosecond resolution.  Both take ready frames through
``write(ts_ns, frame)`` and whole batches of UDP payloads through
``write_udp_batch(...)``, whose numba kernel builds the complete frames
(Ethernet, up to two 802.1Q tags, IPv4 and UDP with correct checksums) straight
into an output buffer, a few MiB at a time, so memory stays bounded whatever
the batch size.  A path ending in ``.gz`` is gzip-compressed.

Frame rules (shared with :func:`host.pcap.frames.build_udp_frame`, and checked
against it by the tests): destination MAC is the IPv4 multicast MAC for a
224/4 destination and ``DEFAULT_UNICAST_DST_MAC`` otherwise, source MAC
``DEFAULT_SRC_MAC``; IPv4 without options, TTL 64, DF clear, identification
incrementing per packet across the writer's life.
"""
from __future__ import annotations

import abc
import gzip
import os
import struct
from typing import BinaryIO

import numpy as np
from numba import njit

from host.pcap.frames import (
    DEFAULT_SRC_MAC,
    DEFAULT_UNICAST_DST_MAC,
    MAX_UDP_PAYLOAD,
)
from host.pcap.reader import (
    LINKTYPE_ETHERNET,
    PCAP_MAGIC_NSEC,
    PCAP_MAGIC_USEC,
    PCAPNG_BYTE_ORDER_MAGIC,
    PCAPNG_EPB,
    PCAPNG_IDB,
    PCAPNG_IF_TSRESOL,
    PCAPNG_SHB,
)

_FORMAT_PCAP_USEC = 0
_FORMAT_PCAP_NSEC = 1
_FORMAT_PCAPNG = 2

_OUTPUT_BLOCK_BYTES = 4 << 20
_WRITE_BUFFER_BYTES = 1 << 20
_ETH_IP_UDP_LEN = 14 + 20 + 8
_TTL = 64
_PCAPNG_SHB_USERAPPL = 4
_APPLICATION = b"zynqmm"


def _open_output(path: str | os.PathLike) -> BinaryIO:
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=6)
    return open(path, "wb", buffering=_WRITE_BUFFER_BYTES)


@njit(cache=True)
def _put16be(out, p, v):
    out[p] = (v >> 8) & 0xFF
    out[p + 1] = v & 0xFF


@njit(cache=True)
def _put32be(out, p, v):
    out[p] = (v >> 24) & 0xFF
    out[p + 1] = (v >> 16) & 0xFF
    out[p + 2] = (v >> 8) & 0xFF
    out[p + 3] = v & 0xFF


@njit(cache=True)
def _put32le(out, p, v):
    out[p] = v & 0xFF
    out[p + 1] = (v >> 8) & 0xFF
    out[p + 2] = (v >> 16) & 0xFF
    out[p + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def _word_sum(buf, start, length):
    """Sum of big-endian 16-bit words; an odd last byte is the high half."""
    acc = 0
    stop = start + length - (length & 1)
    for w in range(start, stop, 2):
        acc += (np.int64(buf[w]) << 8) | np.int64(buf[w + 1])
    if length & 1:
        acc += np.int64(buf[start + length - 1]) << 8
    return acc


@njit(cache=True)
def _fold_complement(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return (~acc) & 0xFFFF


@njit(cache=True)
def _write_udp_records(out, record_format, snaplen, ts_ns, payload_buf, payload_off, payload_len,
                       src_ip, dst_ip, src_port, dst_port, vlan0, vlan1, ip_id, src_mac,
                       unicast_dst_mac):
    """Write one capture record per packet into out; returns bytes written."""
    p = 0
    for i in range(ts_ns.shape[0]):
        plen = np.int64(payload_len[i])
        ntags = 0
        if vlan0[i] >= 0:
            ntags += 1
        if vlan1[i] >= 0:
            ntags += 1
        frame_len = 42 + 4 * ntags + plen
        caplen = frame_len
        if snaplen > 0 and caplen > snaplen:
            caplen = snaplen
        f = p + (16 if record_format != _FORMAT_PCAPNG else 28)
        dst = np.int64(dst_ip[i])
        src = np.int64(src_ip[i])
        if (dst >> 28) == 0xE:
            out[f] = 0x01
            out[f + 1] = 0x00
            out[f + 2] = 0x5E
            out[f + 3] = (dst >> 16) & 0x7F
            out[f + 4] = (dst >> 8) & 0xFF
            out[f + 5] = dst & 0xFF
        else:
            for j in range(6):
                out[f + j] = unicast_dst_mac[j]
        for j in range(6):
            out[f + 6 + j] = src_mac[j]
        q = f + 12
        if vlan0[i] >= 0:
            _put16be(out, q, 0x8100)
            _put16be(out, q + 2, vlan0[i])
            q += 4
        if vlan1[i] >= 0:
            _put16be(out, q, 0x8100)
            _put16be(out, q + 2, vlan1[i])
            q += 4
        _put16be(out, q, 0x0800)
        q += 2
        udp_len = 8 + plen
        out[q] = 0x45
        out[q + 1] = 0
        _put16be(out, q + 2, 20 + udp_len)
        _put16be(out, q + 4, (ip_id + i) & 0xFFFF)
        _put16be(out, q + 6, 0)
        out[q + 8] = _TTL
        out[q + 9] = 17
        _put16be(out, q + 10, 0)
        _put32be(out, q + 12, src)
        _put32be(out, q + 16, dst)
        _put16be(out, q + 10, _fold_complement(_word_sum(out, q, 20)))
        u = q + 20
        _put16be(out, u, np.int64(src_port[i]))
        _put16be(out, u + 2, np.int64(dst_port[i]))
        _put16be(out, u + 4, udp_len)
        _put16be(out, u + 6, 0)
        off = payload_off[i]
        for j in range(plen):
            out[u + 8 + j] = payload_buf[off + j]
        pseudo = ((src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 17 + udp_len)
        checksum = _fold_complement(pseudo + _word_sum(out, u, udp_len))
        if checksum == 0:
            checksum = 0xFFFF  # 0 would mean "no checksum" in UDP over IPv4
        _put16be(out, u + 6, checksum)
        ts = ts_ns[i]
        if record_format == _FORMAT_PCAPNG:
            padded = (caplen + 3) & ~3
            for j in range(f + caplen, f + padded):
                out[j] = 0
            block_len = 32 + padded
            _put32le(out, p, 6)
            _put32le(out, p + 4, block_len)
            _put32le(out, p + 8, 0)
            _put32le(out, p + 12, ts >> 32)
            _put32le(out, p + 16, ts & 0xFFFFFFFF)
            _put32le(out, p + 20, caplen)
            _put32le(out, p + 24, frame_len)
            _put32le(out, f + padded, block_len)
            p += block_len
        else:
            seconds = ts // 1_000_000_000
            fraction = ts % 1_000_000_000
            if record_format == _FORMAT_PCAP_USEC:
                fraction = fraction // 1000
            _put32le(out, p, seconds)
            _put32le(out, p + 4, fraction)
            _put32le(out, p + 8, caplen)
            _put32le(out, p + 12, frame_len)
            p += 16 + caplen
    return p


class _CaptureWriter(abc.ABC):
    """Shared streaming machinery; subclasses write the file header and one
    record per frame."""

    _record_format = _FORMAT_PCAP_NSEC
    _max_seconds = (1 << 32) - 1

    def __init__(self, path: str | os.PathLike, snaplen: int,
                 src_mac: bytes = DEFAULT_SRC_MAC,
                 unicast_dst_mac: bytes = DEFAULT_UNICAST_DST_MAC):
        if snaplen < 0:
            raise ValueError(f"snaplen must be >= 0, got {snaplen}")
        if len(src_mac) != 6 or len(unicast_dst_mac) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        self.path = os.fspath(path)
        self.snaplen = int(snaplen)
        self.packets = 0
        self._ip_id = 0
        self._src_mac = np.frombuffer(bytes(src_mac), dtype=np.uint8)
        self._unicast_dst_mac = np.frombuffer(bytes(unicast_dst_mac), dtype=np.uint8)
        self._fh = _open_output(path)
        self._fh.write(self._file_header())

    @abc.abstractmethod
    def _file_header(self) -> bytes:
        """The bytes that open the file (pcap global header, pcapng SHB + IDB)."""

    @abc.abstractmethod
    def _record(self, ts_ns: int, frame: bytes) -> bytes:
        """One packet record holding ``frame`` captured at ``ts_ns``."""

    def _check_ts(self, ts_ns: int) -> None:
        if ts_ns < 0 or ts_ns // 1_000_000_000 > self._max_seconds:
            raise ValueError(f"{self.path}: timestamp {ts_ns} ns does not fit the file format")

    def write(self, ts_ns: int, frame: bytes) -> None:
        """Append one ready-made frame captured at ``ts_ns``."""
        ts_ns = int(ts_ns)
        self._check_ts(ts_ns)
        self._fh.write(self._record(ts_ns, bytes(frame)))
        self.packets += 1

    def write_udp_batch(self, ts_ns, payload_buf, payload_off, payload_len, src_ip, dst_ip,
                        src_port, dst_port, vlan0, vlan1) -> None:
        """Build and append one UDP frame per entry (arrays as in ``UdpBatch``)."""
        ts_ns = np.ascontiguousarray(ts_ns, dtype=np.int64)
        n = len(ts_ns)
        payload_buf = np.ascontiguousarray(payload_buf, dtype=np.uint8)
        payload_off = np.ascontiguousarray(payload_off, dtype=np.int64)
        payload_len = np.ascontiguousarray(payload_len, dtype=np.int32)
        src_ip = np.ascontiguousarray(src_ip, dtype=np.uint32)
        dst_ip = np.ascontiguousarray(dst_ip, dtype=np.uint32)
        src_port = np.ascontiguousarray(src_port, dtype=np.uint16)
        dst_port = np.ascontiguousarray(dst_port, dtype=np.uint16)
        vlan0 = np.ascontiguousarray(vlan0, dtype=np.int32)
        vlan1 = np.ascontiguousarray(vlan1, dtype=np.int32)
        arrays = (payload_off, payload_len, src_ip, dst_ip, src_port, dst_port, vlan0, vlan1)
        if any(len(a) != n for a in arrays):
            raise ValueError("write_udp_batch: all arrays must have the same length")
        if n == 0:
            return
        self._validate_batch(ts_ns, payload_buf, payload_off, payload_len, vlan0, vlan1)
        ntags = (vlan0 >= 0).astype(np.int64) + (vlan1 >= 0)
        frame_len = _ETH_IP_UDP_LEN + 4 * ntags + payload_len
        caplen = np.minimum(frame_len, self.snaplen) if self.snaplen else frame_len
        if self._record_format == _FORMAT_PCAPNG:
            record_len = 32 + ((caplen + 3) & ~3)
        else:
            record_len = 16 + caplen
        ends = np.cumsum(record_len)
        start = 0
        while start < n:
            base = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, base + _OUTPUT_BLOCK_BYTES, "right")))
            # The kernel writes each whole frame before cutting it to snaplen.
            slack = int((frame_len[start:stop] - caplen[start:stop]).max())
            out = np.empty(int(ends[stop - 1] - base) + slack + 4, dtype=np.uint8)
            used = _write_udp_records(
                out, self._record_format, self.snaplen, ts_ns[start:stop], payload_buf,
                payload_off[start:stop], payload_len[start:stop], src_ip[start:stop],
                dst_ip[start:stop], src_port[start:stop], dst_port[start:stop],
                vlan0[start:stop], vlan1[start:stop], self._ip_id + start, self._src_mac,
                self._unicast_dst_mac)
            self._fh.write(memoryview(out)[:used])
            start = stop
        self._ip_id = (self._ip_id + n) & 0xFFFF
        self.packets += n

    def _validate_batch(self, ts_ns, payload_buf, payload_off, payload_len, vlan0, vlan1) -> None:
        if (ts_ns < 0).any() or (ts_ns // 1_000_000_000 > self._max_seconds).any():
            raise ValueError(f"{self.path}: a timestamp does not fit the file format")
        if (payload_len < 0).any() or (payload_len > MAX_UDP_PAYLOAD).any():
            raise ValueError(f"UDP payload lengths must be 0..{MAX_UDP_PAYLOAD}")
        if (payload_off < 0).any() or (payload_off + payload_len > len(payload_buf)).any():
            raise ValueError("a payload lies outside payload_buf")
        if (vlan0 > 0x0FFF).any() or (vlan1 > 0x0FFF).any():
            raise ValueError("VLAN IDs must be 0..4095 (or -1 for no tag)")
        if ((vlan1 >= 0) & (vlan0 < 0)).any():
            raise ValueError("an inner VLAN tag (vlan1) needs an outer one (vlan0)")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PcapWriter(_CaptureWriter):
    """Classic pcap, Ethernet link type, nanosecond (default) or microsecond
    timestamps (truncated to the microsecond)."""

    def __init__(self, path: str | os.PathLike, nanosecond: bool = True, snaplen: int = 65535,
                 **macs):
        self.nanosecond = nanosecond
        self._record_format = _FORMAT_PCAP_NSEC if nanosecond else _FORMAT_PCAP_USEC
        super().__init__(path, snaplen, **macs)

    def _file_header(self) -> bytes:
        magic = PCAP_MAGIC_NSEC if self.nanosecond else PCAP_MAGIC_USEC
        return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, self.snaplen, LINKTYPE_ETHERNET)

    def _record(self, ts_ns: int, frame: bytes) -> bytes:
        seconds, fraction = divmod(ts_ns, 1_000_000_000)
        if not self.nanosecond:
            fraction //= 1000
        caplen = min(len(frame), self.snaplen) if self.snaplen else len(frame)
        return struct.pack("<IIII", seconds, fraction, caplen, len(frame)) + frame[:caplen]


class PcapngWriter(_CaptureWriter):
    """pcapng: one little-endian section, one Ethernet interface with
    nanosecond timestamps (``if_tsresol`` = 9), Enhanced Packet Blocks.
    ``snaplen`` 0 means unlimited."""

    _record_format = _FORMAT_PCAPNG
    _max_seconds = ((1 << 64) - 1) // 1_000_000_000

    def __init__(self, path: str | os.PathLike, snaplen: int = 0, **macs):
        super().__init__(path, snaplen, **macs)

    def _file_header(self) -> bytes:
        appl = _APPLICATION + b"\x00" * (-len(_APPLICATION) % 4)
        shb_options = struct.pack("<HH", _PCAPNG_SHB_USERAPPL, len(_APPLICATION)) + appl
        shb_options += struct.pack("<HH", 0, 0)
        shb_len = 28 + len(shb_options)
        shb = (struct.pack("<IIIHHq", PCAPNG_SHB, shb_len, PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
               + shb_options + struct.pack("<I", shb_len))
        idb_options = struct.pack("<HHB3x", PCAPNG_IF_TSRESOL, 1, 9) + struct.pack("<HH", 0, 0)
        idb_len = 20 + len(idb_options)
        idb = (struct.pack("<IIHHI", PCAPNG_IDB, idb_len, LINKTYPE_ETHERNET, 0, self.snaplen)
               + idb_options + struct.pack("<I", idb_len))
        return shb + idb

    def _record(self, ts_ns: int, frame: bytes) -> bytes:
        caplen = min(len(frame), self.snaplen) if self.snaplen else len(frame)
        data = frame[:caplen] + b"\x00" * (-caplen % 4)
        block_len = 32 + len(data)
        return (struct.pack("<IIIIIII", PCAPNG_EPB, block_len, 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF,
                            caplen, len(frame)) + data + struct.pack("<I", block_len))
