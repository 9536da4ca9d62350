"""An append-only, fsync'd journal of records (kind, timestamp, payload).

File layout: an 8-byte magic, then records back to back.  Each record is::

    u32 body_length | u32 crc32(body_length bytes) | u32 crc32(body) | body
    body = u64 timestamp_ns | u8 kind_length | kind (ASCII) | payload

The length has its own checksum so that a damaged length in the middle of the
file is recognised as corruption instead of looking like a record that runs
past the end of the file (which is what a torn last write looks like).

Recovery on open:

* a tail too short for a record header, a header whose record runs past the
  end of the file, a last record whose body checksum fails, or a tail of zero
  bytes (space the file system allocated but never filled) is a *torn* last
  write: it is reported in :attr:`Journal.recovery` and truncated away;
* any other bad checksum is corruption: :class:`JournalCorrupt` names the
  offset and the journal refuses to open, because records after it would be
  silently lost.

Durability, chosen per journal:

* ``"fsync"`` (the default): ``append`` returns only after ``os.fsync``;
  ``append_batch`` writes several records and syncs once (group commit),
  returning only once all are durable.
* ``"os"``: ``append`` returns once the record is written to the kernel
  (``write``), which a crash or ``kill -9`` of the process cannot undo, and
  :meth:`Journal.sync` makes everything written so far durable.  The caller
  syncs on its own beat (the appliance after every batch of records and at
  least every few milliseconds), so a power loss can cost only the records
  of the last beat while the send path never waits for the disk.
"""
from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

MAGIC = b"ZMMJRNL1"
DURABILITY = ("fsync", "os")
_HEADER = struct.Struct(">III")
_BODY_HEAD = struct.Struct(">QB")
_LENGTH = struct.Struct(">I")
#: Guard against absurd allocations when a length field is damaged.
MAX_BODY_LENGTH = 64 * 1024 * 1024

log = logging.getLogger(__name__)


class JournalError(Exception):
    """The journal cannot be used (bad file, bad record, closed)."""


class JournalCorrupt(JournalError):
    """A record before the tail failed its checksum."""

    def __init__(self, path: Path, offset: int, what: str):
        super().__init__(f"{path}: corrupt record at offset {offset}: {what}")
        self.path, self.offset, self.what = path, offset, what


@dataclass(frozen=True)
class Record:
    kind: str
    timestamp_ns: int
    payload: bytes
    offset: int = -1   # where the record starts in the file


@dataclass(frozen=True)
class Recovery:
    """What opening the journal found."""

    records: int
    torn_offset: int | None = None   # where the torn tail started, if any
    torn_bytes: int = 0              # how many bytes were truncated away
    reason: str = ""

    @property
    def torn(self) -> bool:
        return self.torn_offset is not None


def encode_record(kind: str, timestamp_ns: int, payload: bytes) -> bytes:
    raw_kind = kind.encode("ascii")
    if not 1 <= len(raw_kind) <= 255:
        raise ValueError(f"record kind must be 1..255 ASCII bytes, got {kind!r}")
    if not 0 <= timestamp_ns < 2**64:
        raise ValueError(f"timestamp {timestamp_ns} does not fit 64 bits")
    body = _BODY_HEAD.pack(timestamp_ns, len(raw_kind)) + raw_kind + bytes(payload)
    if len(body) > MAX_BODY_LENGTH:
        raise ValueError(f"record of {len(body)} bytes is above {MAX_BODY_LENGTH}")
    length = _LENGTH.pack(len(body))
    return _HEADER.pack(len(body), zlib.crc32(length), zlib.crc32(body)) + body


def _decode_body(body: bytes, offset: int) -> Record:
    timestamp_ns, kind_length = _BODY_HEAD.unpack_from(body, 0)
    start = _BODY_HEAD.size
    kind = body[start:start + kind_length].decode("ascii")
    return Record(kind, timestamp_ns, bytes(body[start + kind_length:]), offset)


def scan(data: bytes, path: Path = Path("<memory>")) -> tuple[list[Record], Recovery]:
    """Parse a whole journal image; raise :class:`JournalCorrupt` for damage
    before the tail.  Returns the records and what happened to the tail."""
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            return [], Recovery(0, 0 if data else None, len(data),
                                "torn file header" if data else "")
        raise JournalCorrupt(path, 0, "not a journal file (bad magic)")
    if data[:len(MAGIC)] != MAGIC:
        raise JournalCorrupt(path, 0, "not a journal file (bad magic)")
    records: list[Record] = []
    pos = len(MAGIC)
    end = len(data)

    def torn(reason: str) -> tuple[list[Record], Recovery]:
        return records, Recovery(len(records), pos, end - pos, reason)

    while pos < end:
        if end - pos < _HEADER.size:
            return torn("partial record header")
        body_length, length_crc, body_crc = _HEADER.unpack_from(data, pos)
        if zlib.crc32(_LENGTH.pack(body_length)) != length_crc:
            if not any(data[pos:]):
                return torn("zero-filled tail")
            raise JournalCorrupt(path, pos, "record length fails its checksum")
        if body_length < _BODY_HEAD.size or body_length > MAX_BODY_LENGTH:
            raise JournalCorrupt(path, pos, f"impossible record length {body_length}")
        stop = pos + _HEADER.size + body_length
        if stop > end:
            return torn("record runs past the end of the file")
        body = data[pos + _HEADER.size:stop]
        if zlib.crc32(body) != body_crc:
            if stop == end:
                return torn("last record fails its checksum")
            raise JournalCorrupt(path, pos, "record body fails its checksum")
        try:
            records.append(_decode_body(body, pos))
        except (UnicodeDecodeError, struct.error) as exc:
            raise JournalCorrupt(path, pos, f"malformed record body: {exc}") from exc
        pos = stop
    return records, Recovery(len(records))


def _fsync_directory(path: Path) -> None:
    # A newly created file is only durable once its directory entry is.
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One journal file, opened for replay and appending.

    ``Journal(path)`` creates the file if needed, validates it, truncates a
    torn tail (see :attr:`recovery`) and keeps the surviving records in
    :attr:`records` for replay.
    """

    def __init__(self, path: str | os.PathLike, *, clock=time.time_ns, durability: str = "fsync"):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, got {durability!r}")
        self.path = Path(path)
        self.clock = clock
        self.durability = durability
        self.unsynced = 0
        created = not self.path.exists()
        self._file = open(self.path, "a+b")
        try:
            self._file.seek(0)
            data = self._file.read()
            self.records, self.recovery = scan(data, self.path)
            if self.recovery.torn:
                log.warning("%s: %s at offset %d, %d bytes truncated", self.path,
                            self.recovery.reason, self.recovery.torn_offset,
                            self.recovery.torn_bytes)
                self._file.truncate(self.recovery.torn_offset)
                os.fsync(self._file.fileno())
            if self._size() == 0:
                self._file.write(MAGIC)
                self._file.flush()
                os.fsync(self._file.fileno())
                if created:
                    _fsync_directory(self.path)
        except BaseException:
            self._file.close()
            raise

    def _size(self) -> int:
        self._file.seek(0, os.SEEK_END)
        return self._file.tell()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def append(self, kind: str, payload: bytes, timestamp_ns: int | None = None) -> Record:
        """Write one record; returns once it is on stable storage (``"os"``
        durability: once the kernel has it)."""
        return self.append_batch([(kind, payload, timestamp_ns)])[0]

    def append_batch(self, items: Iterable[tuple[str, bytes, int | None]]) -> list[Record]:
        """Write several records with one fsync (group commit)."""
        if self._file.closed:
            raise JournalError(f"{self.path}: journal is closed")
        offset = self._size()
        blob = bytearray()
        new: list[Record] = []
        for kind, payload, timestamp_ns in items:
            ts = self.clock() if timestamp_ns is None else timestamp_ns
            raw = encode_record(kind, ts, payload)
            new.append(Record(kind, ts, bytes(payload), offset + len(blob)))
            blob += raw
        self._file.write(blob)
        self._file.flush()
        self.records.extend(new)
        self.unsynced += len(new)
        if self.durability == "fsync":
            self.sync()
        return new

    def sync(self) -> int:
        """Make every record written so far durable; returns how many were not yet."""
        pending, self.unsynced = self.unsynced, 0
        if pending and not self._file.closed:
            os.fsync(self._file.fileno())
        return pending

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
