"""Nasdaq's daily TotalView-ITCH 5.0 files: length-prefixed message streams.

Nasdaq publishes each day's ITCH 5.0 feed as one file in which every message
is preceded by its length as a big-endian u16 (no MoldUDP64 framing, no
sequence numbers; the messages appear in feed order).  The files are usually
gzip-compressed; both forms are read and written here.

Reading is streaming and constant-memory like the capture readers: fixed-size
chunks, a numba scan that indexes every whole message of a chunk into an
:class:`ItchBatch`, and the partial message at the end carried into the next
chunk.  A file that ends inside a message counts one ``truncated``; a zero
length prefix (never valid: every message has at least its type byte) counts
one ``bad_length`` and the scan continues after the two prefix bytes.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterator, MutableMapping

import numpy as np
from numba import njit

from host.pcap.streams import DEFAULT_CHUNK_BYTES, ChunkedFile, merge_counters

MAX_MESSAGE_LEN = 0xFFFF
DEFAULT_MESSAGE_CAPACITY = 1 << 18
_WRITE_BUFFER_BYTES = 1 << 20
_OUTPUT_BLOCK_BYTES = 4 << 20

_CTR_BAD_LENGTH = 0


@dataclass
class ItchBatch:
    """Whole messages of one chunk: ``buf[msg_off[i]:msg_off[i]+msg_len[i]]``
    is message i, starting with its type byte."""

    buf: np.ndarray       # uint8
    msg_off: np.ndarray   # int64
    msg_len: np.ndarray   # int32

    def __len__(self) -> int:
        return len(self.msg_off)

    def message(self, i: int) -> bytes:
        off = int(self.msg_off[i])
        return self.buf[off:off + int(self.msg_len[i])].tobytes()


@njit(cache=True)
def _scan_length_prefixed(buf, pos, end, counters, msg_off, msg_len):
    """Index whole messages in buf[pos:end].  Returns (pos, n, need): need is
    the byte count required from pos to go on, 0 when the output is full."""
    n = 0
    cap = msg_off.shape[0]
    while n < cap:
        if end - pos < 2:
            return pos, n, 2
        length = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        if length == 0:
            counters[_CTR_BAD_LENGTH] += 1
            pos += 2
            continue
        if end - pos < 2 + length:
            return pos, n, 2 + length
        msg_off[n] = pos + 2
        msg_len[n] = length
        n += 1
        pos += 2 + length
    return pos, n, 0


@njit(cache=True)
def _write_length_prefixed(out, buf, msg_off, msg_len):
    p = 0
    for i in range(msg_off.shape[0]):
        length = np.int64(msg_len[i])
        out[p] = (length >> 8) & 0xFF
        out[p + 1] = length & 0xFF
        off = msg_off[i]
        for j in range(length):
            out[p + 2 + j] = buf[off + j]
        p += 2 + length
    return p


class ItchFileReader:
    """Streams an ITCH 5.0 daily file (plain or gzip) as :class:`ItchBatch`.

    ``counters`` (drops): ``bad_length`` zero length prefixes, ``truncated``
    1 if the file ends inside a message.  ``stats``: ``messages`` indexed,
    ``bytes`` read (decompressed).
    """

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 message_capacity: int = DEFAULT_MESSAGE_CAPACITY):
        self.path = os.fspath(path)
        self.chunk_bytes = int(chunk_bytes)
        self.message_capacity = int(message_capacity)
        self.counters = {"bad_length": 0, "truncated": 0}
        self.stats = {"messages": 0, "bytes": 0}

    def batches(self) -> Iterator[ItchBatch]:
        counters = np.zeros(1, dtype=np.int64)
        with ChunkedFile(self.path, self.chunk_bytes) as src:
            src.refill(0)
            pos = 0
            while True:
                # Fresh index arrays per batch: batches stay valid once handed out.
                msg_off = np.empty(self.message_capacity, np.int64)
                msg_len = np.empty(self.message_capacity, np.int32)
                pos, n, need = _scan_length_prefixed(src.buf, pos, src.end, counters,
                                                     msg_off, msg_len)
                self.counters["bad_length"] = int(counters[_CTR_BAD_LENGTH])
                self.stats["bytes"] = src.bytes_read
                if n:
                    self.stats["messages"] += n
                    yield ItchBatch(src.buf, msg_off[:n], msg_len[:n])
                if need == 0:
                    continue
                if src.eof:
                    if pos < src.end:
                        self.counters["truncated"] += 1
                    return
                src.refill(pos, need)
                pos = 0

    def messages(self) -> Iterator[bytes]:
        """Each message as bytes (the general path)."""
        for batch in self.batches():
            buf = batch.buf
            for off, length in zip(batch.msg_off.tolist(), batch.msg_len.tolist()):
                yield buf[off:off + length].tobytes()


def iter_itch_batches(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                      counters: MutableMapping[str, int] | None = None) -> Iterator[ItchBatch]:
    """Batches of an ITCH daily file.  Drops are added by reason into
    ``counters`` if given (or use :class:`ItchFileReader`)."""
    reader = ItchFileReader(path, chunk_bytes)
    return merge_counters(reader.batches(), reader.counters, counters)


class ItchFileWriter:
    """Writes a length-prefixed ITCH file; a path ending in ``.gz`` is gzipped."""

    def __init__(self, path: str | os.PathLike, compresslevel: int = 6):
        self.path = os.fspath(path)
        self.messages = 0
        self._fh: BinaryIO
        if self.path.endswith(".gz"):
            self._fh = gzip.open(self.path, "wb", compresslevel=compresslevel)
        else:
            self._fh = open(self.path, "wb", buffering=_WRITE_BUFFER_BYTES)

    def write(self, msg: bytes) -> None:
        msg = bytes(msg)
        if not 1 <= len(msg) <= MAX_MESSAGE_LEN:
            raise ValueError(f"ITCH message length {len(msg)} is not in 1..{MAX_MESSAGE_LEN}")
        self._fh.write(len(msg).to_bytes(2, "big") + msg)
        self.messages += 1

    def write_batch(self, buf: np.ndarray, msg_off: np.ndarray, msg_len: np.ndarray) -> None:
        buf = np.ascontiguousarray(buf, dtype=np.uint8)
        msg_off = np.ascontiguousarray(msg_off, dtype=np.int64)
        msg_len = np.ascontiguousarray(msg_len, dtype=np.int32)
        n = len(msg_off)
        if len(msg_len) != n:
            raise ValueError("msg_off and msg_len must have the same length")
        if n == 0:
            return
        if (msg_len < 1).any() or (msg_len > MAX_MESSAGE_LEN).any():
            raise ValueError(f"ITCH message lengths must be 1..{MAX_MESSAGE_LEN}")
        if (msg_off < 0).any() or (msg_off + msg_len > len(buf)).any():
            raise ValueError("a message lies outside buf")
        ends = np.cumsum(msg_len.astype(np.int64) + 2)
        start = 0
        while start < n:
            base = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, base + _OUTPUT_BLOCK_BYTES, "right")))
            out = np.empty(int(ends[stop - 1] - base), dtype=np.uint8)
            used = _write_length_prefixed(out, buf, msg_off[start:stop], msg_len[start:stop])
            self._fh.write(memoryview(out)[:used])
            start = stop
        self.messages += n

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "ItchFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
