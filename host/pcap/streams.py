"""Constant-memory chunked reading shared by the capture and ITCH file readers.

A :class:`ChunkedFile` hands out the file as a sequence of numpy ``uint8``
buffers of a fixed size.  The parser consumes whole records from a buffer and
asks for the next one with the offset where it stopped; the unconsumed tail
(a record cut by the chunk boundary) is copied to the front of a *new* buffer
and the rest is filled from the file.  A fresh buffer per chunk (instead of a
ring) lets the batches built on a buffer stay valid after the reader moves on;
memory stays bounded as long as the caller drops old batches.

Files starting with the gzip magic are decompressed on the fly.
"""
from __future__ import annotations

import gzip
import os
from typing import BinaryIO, Iterator, MutableMapping

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_BYTES = 8 << 20


def open_maybe_gzip(path: str | os.PathLike) -> BinaryIO:
    """Open for binary reading, transparently gunzipping gzip files."""
    raw = open(path, "rb", buffering=0)
    try:
        magic = raw.read(2)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    if magic == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")
    return raw


def read_head(path: str | os.PathLike, size: int) -> bytes:
    """Up to ``size`` leading (decompressed) bytes; a damaged gzip stream
    yields what could be decompressed before the damage."""
    out = bytearray()
    with open_maybe_gzip(path) as fh:
        try:
            while len(out) < size:
                piece = fh.read(size - len(out))
                if not piece:
                    break
                out += piece
        except (EOFError, OSError, gzip.BadGzipFile):
            pass
    return bytes(out)


class ChunkedFile:
    """Sequential fixed-size chunks of a (possibly gzipped) file.

    After :meth:`refill`, ``buf[0:end]`` holds valid bytes; ``eof`` says the
    file has nothing more past ``end``.
    """

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        if chunk_bytes < 16:
            raise ValueError(f"chunk_bytes must be at least 16, got {chunk_bytes}")
        self.path = os.fspath(path)
        self.chunk_bytes = int(chunk_bytes)
        self.buf = np.empty(0, dtype=np.uint8)
        self.end = 0
        self.eof = False
        self.bytes_read = 0
        self._fh = open_maybe_gzip(path)

    def _fill(self, buf: np.ndarray, start: int) -> int:
        view = memoryview(buf)[start:]
        got = 0
        while got < len(view):
            try:
                n = self._fh.readinto(view[got:])
            except (EOFError, gzip.BadGzipFile):
                # A gzip stream cut short or damaged: stop where the good data
                # ends so the parser reports a torn record instead of crashing.
                n = 0
            if not n:
                break
            got += n
        self.bytes_read += got
        return got

    def refill(self, keep_from: int, need: int = 0) -> None:
        """Keep ``buf[keep_from:end]``, move it to the front of a new buffer
        large enough for ``need`` bytes from there, and read to fill it."""
        tail = self.end - keep_from
        size = max(self.chunk_bytes, need, tail)
        new = np.empty(size, dtype=np.uint8)
        new[:tail] = self.buf[keep_from:self.end]
        end = tail + self._fill(new, tail)
        self.eof = end < size
        self.buf, self.end = new, end

    def ensure(self, pos: int, need: int) -> int:
        """Make ``need`` bytes available from ``pos`` if the file has them;
        returns the new position of that byte (0 after a refill)."""
        if self.end - pos >= need or self.eof:
            return pos
        self.refill(pos, need)
        return 0

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "ChunkedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_counters(items: Iterator, source: dict[str, int],
                   into: MutableMapping[str, int] | None) -> Iterator:
    """Pass ``items`` through, adding what ``source`` gains meanwhile into
    ``into`` (a caller's drop-counter mapping) after every step, so the
    caller's counts are right even when it stops early."""
    if into is None:
        yield from items
        return
    seen: dict[str, int] = {}

    def sync() -> None:
        for key, value in source.items():
            delta = value - seen.get(key, 0)
            if delta:
                into[key] = into.get(key, 0) + delta
                seen[key] = value

    try:
        for item in items:
            sync()
            yield item
    finally:
        sync()
