"""Streaming pcap and pcapng readers: the container layer.

Both formats are walked in constant memory: the file comes in fixed-size
chunks (:class:`host.pcap.streams.ChunkedFile`), a numba kernel indexes every
whole packet record in a chunk (offset of the frame in the chunk, captured and
original length, timestamp in ns, link type, frame index), and a record cut by
the chunk boundary is carried into the next chunk.  Records larger than a
chunk get a larger buffer for that one chunk.

pcap: the four magics (microsecond ``a1b2c3d4`` and nanosecond ``a1b23c4d``,
each in either byte order).  pcapng: any number of sections, each with its
own byte order and interfaces; Interface Description Blocks give the link
type, snap length, ``if_tsresol`` (decimal or binary exponent) and
``if_tsoffset``; Enhanced, Simple and the obsolete Packet Blocks are packets;
every other block (name resolution, statistics, custom, ...) is skipped and
counted.  Section and interface headers are rare, so the kernel hands them
back to Python and resumes after them.

What a caller sees:
- :func:`iter_packets` / :meth:`RecordReader.packets`: every packet record as
  a :class:`Packet` with its bytes (the general, slower path);
- :meth:`RecordReader.record_chunks`: the per-chunk index arrays, which
  ``host.pcap.fast`` turns into UDP batches without leaving numba.

A file cut in the middle of a record counts one ``truncated_record`` and ends
the walk normally; a header whose length cannot be trusted raises
:class:`CaptureFormatError` naming the file and the offset.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Iterator, MutableMapping, NamedTuple

import numpy as np
from numba import njit

from host.pcap.errors import CaptureFormatError, UnsupportedLinkType
from host.pcap.streams import DEFAULT_CHUNK_BYTES, ChunkedFile, merge_counters

LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {0: "NULL", 1: "ETHERNET", 101: "RAW", 113: "LINUX_SLL", 276: "LINUX_SLL2"}

# First four file bytes, as read little-endian, for the pcap variants.
PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAP_MAGIC_USEC_SWAPPED = 0xD4C3B2A1
PCAP_MAGIC_NSEC_SWAPPED = 0x4D3CB2A1
PCAP_MAGIC_MODIFIED = 0xA1B2CD34  # Kuznetzov's patched libpcap: other record header
PCAP_MAGIC_MODIFIED_SWAPPED = 0x34CDB2A1
PCAP_MAGICS = {
    PCAP_MAGIC_USEC: (False, 1000),
    PCAP_MAGIC_NSEC: (False, 1),
    PCAP_MAGIC_USEC_SWAPPED: (True, 1000),
    PCAP_MAGIC_NSEC_SWAPPED: (True, 1),
}
PCAP_FILE_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_OPB = 0x00000002  # obsolete Packet Block
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_OPT_ENDOFOPT = 0
PCAPNG_IF_TSRESOL = 9
PCAPNG_IF_TSOFFSET = 14

# No sane capture has a single record this large; past it the length field
# is garbage and the rest of the file cannot be framed.
MAX_RECORD_BYTES = 64 << 20
DEFAULT_RECORD_CAPACITY = 1 << 16

# Kernel stop reasons.
NEED_MORE = 0
OUT_FULL = 1
SECTION_HEADER = 2
INTERFACE_DESCRIPTION = 3
CORRUPT = 4

# Corruption details reported with CORRUPT.
_BAD_LENGTH = 1
_TRAILER_MISMATCH = 2
_BODY_OVERRUN = 3
_CORRUPT_TEXT = {
    _BAD_LENGTH: "implausible block/record length",
    _TRAILER_MISMATCH: "block trailer length differs from its header",
    _BODY_OVERRUN: "packet data runs past the end of its block",
}

# Timestamp conversion modes for pcapng interfaces.
TS_MULTIPLY = 0   # units of 10^-v with v <= 9: ns = ts * 10^(9-v)
TS_DIVIDE = 1     # units of 10^-v with v > 9:  ns = ts // 10^(v-9)
TS_BINARY = 2     # units of 2^-v

# Slots of the pcapng kernel's counter array.
_CTR_SKIPPED_BLOCKS = 0
_CTR_BAD_INTERFACE = 1
_N_CTR = 2


class Packet(NamedTuple):
    """One packet record of a capture (general path)."""

    ts_ns: int
    frame_index: int
    linktype: int
    data: bytes
    orig_len: int


@dataclass
class RecordChunk:
    """Index of the whole packet records found in one chunk buffer.

    The index arrays are reused for the next chunk: use them before asking
    the reader for more.  ``buf`` itself is never reused.
    """

    buf: np.ndarray
    rec_off: np.ndarray        # int64, frame start in buf
    rec_caplen: np.ndarray     # int32
    rec_origlen: np.ndarray    # int32
    rec_ts: np.ndarray         # int64 ns since the epoch
    rec_linktype: np.ndarray   # int32
    rec_frame_index: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.rec_off)


@njit(cache=True)
def _rd16(buf, p, big):
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])


@njit(cache=True)
def _rd32(buf, p, big):
    if big:
        return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
                | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))
    return ((np.int64(buf[p + 3]) << 24) | (np.int64(buf[p + 2]) << 16)
            | (np.int64(buf[p + 1]) << 8) | np.int64(buf[p]))


@njit(cache=True)
def _index_pcap(buf, pos, end, big, frac_ns, linktype, frame_index, max_record,
                rec_off, rec_caplen, rec_origlen, rec_ts, rec_linktype, rec_frame_index):
    """Index whole pcap records in buf[pos:end].
    Returns (pos, n, status, detail): detail is the byte count needed from
    pos for NEED_MORE, or the bad length for CORRUPT."""
    n = 0
    cap = rec_off.shape[0]
    while True:
        if n == cap:
            return pos, n, OUT_FULL, 0
        if end - pos < 16:
            return pos, n, NEED_MORE, 16
        caplen = _rd32(buf, pos + 8, big)
        if caplen > max_record:
            return pos, n, CORRUPT, caplen
        if end - pos < 16 + caplen:
            return pos, n, NEED_MORE, 16 + caplen
        rec_ts[n] = _rd32(buf, pos, big) * 1_000_000_000 + _rd32(buf, pos + 4, big) * frac_ns
        rec_off[n] = pos + 16
        rec_caplen[n] = caplen
        rec_origlen[n] = _rd32(buf, pos + 12, big)
        rec_linktype[n] = linktype
        rec_frame_index[n] = frame_index + n
        n += 1
        pos += 16 + caplen


@njit(cache=True)
def _pcapng_ts_ns(hi, lo, mode, param, offset_ns):
    ts = (np.uint64(hi) << np.uint64(32)) | np.uint64(lo)
    if mode == TS_MULTIPLY:
        ns = ts * np.uint64(param)
    elif mode == TS_DIVIDE:
        ns = ts // np.uint64(param)
    else:
        shift = np.uint64(param)
        seconds = ts >> shift
        fraction = ts & ((np.uint64(1) << shift) - np.uint64(1))
        # fraction * 1e9 must stay within 64 bits: 1e9 < 2^30, so keep at
        # most 34 fraction bits (dropping only sub-nanosecond precision).
        if shift > np.uint64(34):
            fraction = fraction >> (shift - np.uint64(34))
            shift = np.uint64(34)
        ns = seconds * np.uint64(1_000_000_000) + ((fraction * np.uint64(1_000_000_000)) >> shift)
    return np.int64(ns) + offset_ns


@njit(cache=True)
def _index_pcapng(buf, pos, end, big, max_record, n_if, if_linktype, if_snaplen, if_tsmode,
                  if_tsparam, if_tsoffset_ns, frame_index, last_ts, counters,
                  rec_off, rec_caplen, rec_origlen, rec_ts, rec_linktype, rec_frame_index):
    """Index whole packet blocks in buf[pos:end] of one pcapng section.
    Returns (pos, n, status, detail, frame_index, last_ts)."""
    n = 0
    cap = rec_off.shape[0]
    while True:
        if n == cap:
            return pos, n, OUT_FULL, 0, frame_index, last_ts
        if end - pos < 8:
            return pos, n, NEED_MORE, 8, frame_index, last_ts
        block_type = _rd32(buf, pos, big)
        if block_type == PCAPNG_SHB:
            return pos, n, SECTION_HEADER, 0, frame_index, last_ts
        block_len = _rd32(buf, pos + 4, big)
        if block_len < 12 or block_len % 4 != 0 or block_len > max_record:
            return pos, n, CORRUPT, _BAD_LENGTH, frame_index, last_ts
        if end - pos < block_len:
            return pos, n, NEED_MORE, block_len, frame_index, last_ts
        if _rd32(buf, pos + block_len - 4, big) != block_len:
            return pos, n, CORRUPT, _TRAILER_MISMATCH, frame_index, last_ts
        if block_type == PCAPNG_IDB:
            return pos, n, INTERFACE_DESCRIPTION, 0, frame_index, last_ts
        if block_type == PCAPNG_EPB or block_type == PCAPNG_OPB:
            if block_len < 32:
                return pos, n, CORRUPT, _BAD_LENGTH, frame_index, last_ts
            if block_type == PCAPNG_EPB:
                iface = _rd32(buf, pos + 8, big)
            else:
                iface = _rd16(buf, pos + 8, big)
            caplen = _rd32(buf, pos + 20, big)
            if 28 + caplen + 4 > block_len:
                return pos, n, CORRUPT, _BODY_OVERRUN, frame_index, last_ts
            if iface >= n_if:
                counters[_CTR_BAD_INTERFACE] += 1
            else:
                ts = _pcapng_ts_ns(_rd32(buf, pos + 12, big), _rd32(buf, pos + 16, big),
                                   if_tsmode[iface], if_tsparam[iface], if_tsoffset_ns[iface])
                last_ts = ts
                rec_ts[n] = ts
                rec_off[n] = pos + 28
                rec_caplen[n] = caplen
                rec_origlen[n] = _rd32(buf, pos + 24, big)
                rec_linktype[n] = if_linktype[iface]
                rec_frame_index[n] = frame_index
                n += 1
            frame_index += 1
        elif block_type == PCAPNG_SPB:
            if block_len < 16:
                return pos, n, CORRUPT, _BAD_LENGTH, frame_index, last_ts
            if n_if == 0:
                counters[_CTR_BAD_INTERFACE] += 1
            else:
                origlen = _rd32(buf, pos + 8, big)
                caplen = min(origlen, block_len - 16)
                if if_snaplen[0] > 0:
                    caplen = min(caplen, if_snaplen[0])
                # A Simple Packet Block has no timestamp: it inherits the
                # previous packet's so time never runs backwards.
                rec_ts[n] = last_ts
                rec_off[n] = pos + 12
                rec_caplen[n] = caplen
                rec_origlen[n] = origlen
                rec_linktype[n] = if_linktype[0]
                rec_frame_index[n] = frame_index
                n += 1
            frame_index += 1
        else:
            counters[_CTR_SKIPPED_BLOCKS] += 1
        pos += block_len


class _Interfaces:
    """The interface table of the current pcapng section, as kernel arrays."""

    def __init__(self) -> None:
        self.linktype: list[int] = []
        self.snaplen: list[int] = []
        self.tsmode: list[int] = []
        self.tsparam: list[int] = []
        self.tsoffset_ns: list[int] = []
        self.arrays = self._pack()

    def add(self, linktype: int, snaplen: int, tsmode: int, tsparam: int, tsoffset_ns: int) -> None:
        self.linktype.append(linktype)
        self.snaplen.append(snaplen)
        self.tsmode.append(tsmode)
        self.tsparam.append(tsparam)
        self.tsoffset_ns.append(tsoffset_ns)
        self.arrays = self._pack()

    def _pack(self):
        return (len(self.linktype),
                np.array(self.linktype or [0], dtype=np.int32),
                np.array(self.snaplen or [0], dtype=np.int64),
                np.array(self.tsmode or [0], dtype=np.int64),
                np.array(self.tsparam or [1], dtype=np.uint64),
                np.array(self.tsoffset_ns or [0], dtype=np.int64))


def tsresol_to_mode(value: int) -> tuple[int, int]:
    """Map an ``if_tsresol`` byte to (mode, parameter) for the kernel."""
    exponent = value & 0x7F
    if value & 0x80:
        if exponent > 63:
            raise ValueError(f"if_tsresol 2^-{exponent} is finer than 64-bit timestamps allow")
        return TS_BINARY, exponent
    if exponent > 19:
        raise ValueError(f"if_tsresol 10^-{exponent} is finer than 64-bit timestamps allow")
    if exponent <= 9:
        return TS_MULTIPLY, 10 ** (9 - exponent)
    return TS_DIVIDE, 10 ** (exponent - 9)


class RecordReader:
    """Walks the packet records of a pcap or pcapng file (plain or gzipped).

    ``counters`` holds only dropped packets by reason (updated as the walk
    proceeds): ``truncated_record`` 1 if the file ends inside a record,
    ``bad_interface`` packet blocks naming an undeclared interface.
    ``stats`` holds totals: ``packets`` packet records seen (dropped ones
    included), ``skipped_blocks`` pcapng blocks that are neither packets nor
    headers, ``sections`` / ``interfaces`` pcapng headers seen, ``bytes`` read
    (decompressed).
    """

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 record_capacity: int = DEFAULT_RECORD_CAPACITY):
        self.path = os.fspath(path)
        self.chunk_bytes = int(chunk_bytes)
        self.record_capacity = int(record_capacity)
        self.format: str | None = None
        self.linktypes: set[int] = set()
        self.counters: dict[str, int] = {"truncated_record": 0, "bad_interface": 0}
        self.stats: dict[str, int] = {
            "packets": 0, "skipped_blocks": 0, "sections": 0, "interfaces": 0, "bytes": 0,
        }
        cap = self.record_capacity
        self._rec = (np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int32),
                     np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int64))

    # -- public -----------------------------------------------------------

    def packets(self) -> Iterator[Packet]:
        """Every packet record, any link type, with its captured bytes."""
        for chunk in self.record_chunks():
            buf = chunk.buf
            for off, caplen, origlen, ts, lt, idx in zip(
                    chunk.rec_off.tolist(), chunk.rec_caplen.tolist(), chunk.rec_origlen.tolist(),
                    chunk.rec_ts.tolist(), chunk.rec_linktype.tolist(),
                    chunk.rec_frame_index.tolist()):
                yield Packet(ts, idx, lt, buf[off:off + caplen].tobytes(), origlen)

    def record_chunks(self, require_linktype: int | None = None) -> Iterator[RecordChunk]:
        """Index arrays chunk by chunk.  With ``require_linktype``, a pcap file
        of another link type raises :class:`UnsupportedLinkType` up front."""
        with ChunkedFile(self.path, self.chunk_bytes) as src:
            src.refill(0)
            pos = src.ensure(0, 4)
            magic = bytes(src.buf[pos:min(src.end, pos + 4)])
            first = struct.unpack("<I", magic)[0] if len(magic) == 4 else None
            if first in PCAP_MAGICS:
                self.format = "pcap"
                yield from self._pcap_chunks(src, require_linktype)
            elif first == PCAPNG_SHB:
                self.format = "pcapng"
                yield from self._pcapng_chunks(src)
            elif first in (PCAP_MAGIC_MODIFIED, PCAP_MAGIC_MODIFIED_SWAPPED):
                raise CaptureFormatError(
                    f"{self.path}: modified-pcap (magic a1b2cd34) captures are not supported; "
                    "convert with editcap -F pcap")
            else:
                shown = magic.hex(" ") if magic else "an empty file"
                raise CaptureFormatError(
                    f"{self.path}: not a pcap or pcapng file (first bytes: {shown})")
            self.stats["bytes"] = src.bytes_read

    # -- pcap -------------------------------------------------------------

    def _pcap_chunks(self, src: ChunkedFile, require_linktype: int | None) -> Iterator[RecordChunk]:
        pos = src.ensure(0, PCAP_FILE_HEADER_LEN)
        if src.end - pos < PCAP_FILE_HEADER_LEN:
            raise CaptureFormatError(
                f"{self.path}: pcap file header cut short ({src.end - pos} of 24 bytes)")
        header = bytes(src.buf[pos:pos + PCAP_FILE_HEADER_LEN])
        big, frac_ns = PCAP_MAGICS[struct.unpack("<I", header[:4])[0]]
        order = ">" if big else "<"
        major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", header[4:])
        if major != 2:
            raise CaptureFormatError(f"{self.path}: unsupported pcap version {major}")
        # Upper bits of the link-type field carry FCS information, not the type.
        linktype = network & 0xFFFF
        self.linktypes.add(linktype)
        if require_linktype is not None and linktype != require_linktype:
            name = LINKTYPE_NAMES.get(linktype, "unknown")
            raise UnsupportedLinkType(
                f"{self.path}: link type {linktype} ({name}); only link type "
                f"{require_linktype} ({LINKTYPE_NAMES.get(require_linktype, '?')}) can be decoded")
        pos += PCAP_FILE_HEADER_LEN
        frame_index = 0
        rec = self._rec
        while True:
            file_pos_base = src.bytes_read - src.end
            pos, n, status, detail = _index_pcap(src.buf, pos, src.end, big, frac_ns, linktype,
                                                 frame_index, MAX_RECORD_BYTES, *rec)
            if n:
                frame_index += n
                self.stats["packets"] += n
                yield self._chunk(src.buf, n)
            if status == CORRUPT:
                raise CaptureFormatError(
                    f"{self.path}: pcap record at byte {file_pos_base + pos} claims {detail} "
                    "captured bytes; the file is corrupt from there on")
            if status == NEED_MORE:
                if src.eof:
                    self._finish(src, pos)
                    return
                src.refill(pos, detail)
                pos = 0

    # -- pcapng -----------------------------------------------------------

    def _pcapng_chunks(self, src: ChunkedFile) -> Iterator[RecordChunk]:
        pos = 0
        big = False
        interfaces = _Interfaces()
        frame_index = 0
        last_ts = 0
        counters = np.zeros(_N_CTR, dtype=np.int64)
        rec = self._rec
        while True:
            file_pos_base = src.bytes_read - src.end
            pos, n, status, detail, frame_index, last_ts = _index_pcapng(
                src.buf, pos, src.end, big, MAX_RECORD_BYTES, *interfaces.arrays,
                frame_index, last_ts, counters, *rec)
            self.stats["skipped_blocks"] = int(counters[_CTR_SKIPPED_BLOCKS])
            self.counters["bad_interface"] = int(counters[_CTR_BAD_INTERFACE])
            if n:
                self.stats["packets"] += n
                yield self._chunk(src.buf, n)
            where = file_pos_base + pos
            if status == CORRUPT:
                raise CaptureFormatError(
                    f"{self.path}: pcapng block at byte {where}: {_CORRUPT_TEXT[detail]}")
            if status == NEED_MORE:
                if src.eof:
                    self._finish(src, pos)
                    return
                src.refill(pos, detail)
                pos = 0
            elif status == SECTION_HEADER:
                pos = src.ensure(pos, 28)
                if src.end - pos < 28:
                    self._finish(src, pos)
                    return
                big, block_len = self._section_header(src.buf, pos, where)
                pos = src.ensure(pos, block_len)
                if src.end - pos < block_len:
                    self._finish(src, pos)
                    return
                self._check_trailer(src.buf, pos, block_len, big, where)
                interfaces = _Interfaces()
                self.stats["sections"] += 1
                pos += block_len
            elif status == INTERFACE_DESCRIPTION:
                block_len = _block_u32(src.buf, pos + 4, big)
                interfaces.add(*self._interface(src.buf, pos, block_len, big, where))
                self.stats["interfaces"] += 1
                pos += block_len

    def _section_header(self, buf: np.ndarray, pos: int, where: int) -> tuple[bool, int]:
        bom = bytes(buf[pos + 8:pos + 12])
        if bom == struct.pack(">I", PCAPNG_BYTE_ORDER_MAGIC):
            big = True
        elif bom == struct.pack("<I", PCAPNG_BYTE_ORDER_MAGIC):
            big = False
        else:
            raise CaptureFormatError(
                f"{self.path}: pcapng section header at byte {where} has byte-order magic "
                f"{bom.hex(' ')}, expected 1a 2b 3c 4d in either order")
        block_len = _block_u32(buf, pos + 4, big)
        major = _block_u16(buf, pos + 12, big)
        if block_len < 28 or block_len % 4 or block_len > MAX_RECORD_BYTES:
            raise CaptureFormatError(
                f"{self.path}: pcapng section header at byte {where}: bad length {block_len}")
        if major != 1:
            raise CaptureFormatError(
                f"{self.path}: pcapng section at byte {where} has unsupported version {major}")
        return big, block_len

    def _check_trailer(self, buf: np.ndarray, pos: int, block_len: int, big: bool, where: int) -> None:
        if _block_u32(buf, pos + block_len - 4, big) != block_len:
            raise CaptureFormatError(
                f"{self.path}: pcapng block at byte {where}: {_CORRUPT_TEXT[_TRAILER_MISMATCH]}")

    def _interface(self, buf: np.ndarray, pos: int, block_len: int, big: bool,
                   where: int) -> tuple[int, int, int, int, int]:
        if block_len < 20:
            raise CaptureFormatError(
                f"{self.path}: pcapng interface block at byte {where} too short ({block_len})")
        order = ">" if big else "<"
        body = bytes(buf[pos + 8:pos + block_len - 4])
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
        tsresol = 6
        tsoffset_s = 0
        opt = 8
        while opt + 4 <= len(body):
            code, length = struct.unpack_from(order + "HH", body, opt)
            if code == PCAPNG_OPT_ENDOFOPT:
                break
            value = body[opt + 4:opt + 4 + length]
            if len(value) < length:
                raise CaptureFormatError(
                    f"{self.path}: pcapng interface block at byte {where}: option {code} overruns")
            if code == PCAPNG_IF_TSRESOL and length >= 1:
                tsresol = value[0]
            elif code == PCAPNG_IF_TSOFFSET and length >= 8:
                tsoffset_s = struct.unpack(order + "q", value[:8])[0]
            opt += 4 + ((length + 3) & ~3)
        try:
            mode, param = tsresol_to_mode(tsresol)
        except ValueError as exc:
            raise CaptureFormatError(f"{self.path}: interface at byte {where}: {exc}") from None
        self.linktypes.add(linktype)
        return linktype, snaplen, mode, param, tsoffset_s * 1_000_000_000

    # -- shared -----------------------------------------------------------

    def _chunk(self, buf: np.ndarray, n: int) -> RecordChunk:
        r = self._rec
        return RecordChunk(buf, r[0][:n], r[1][:n], r[2][:n], r[3][:n], r[4][:n], r[5][:n])

    def _finish(self, src: ChunkedFile, pos: int) -> None:
        if pos < src.end:
            self.counters["truncated_record"] += 1
        self.stats["bytes"] = src.bytes_read


def _block_u32(buf: np.ndarray, pos: int, big: bool) -> int:
    return struct.unpack(">I" if big else "<I", bytes(buf[pos:pos + 4]))[0]


def _block_u16(buf: np.ndarray, pos: int, big: bool) -> int:
    return struct.unpack(">H" if big else "<H", bytes(buf[pos:pos + 2]))[0]


def iter_packets(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 counters: MutableMapping[str, int] | None = None) -> Iterator[Packet]:
    """Every packet record of a pcap / pcapng file.  Drops (see
    :class:`RecordReader`) are added into ``counters`` if given."""
    reader = RecordReader(path, chunk_bytes)
    return merge_counters(reader.packets(), reader.counters, counters)
