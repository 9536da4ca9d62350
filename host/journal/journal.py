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

Durability, chosen per journal.  Every mode writes a record to the kernel
(``write(2)`` on the journal's file) before ``append`` returns, so a crash or
``kill -9`` of the process can never lose an appended record; the modes
differ in when a record also survives a power loss or kernel crash
(``fsync``):

* ``"fsync"`` (the default): ``append`` returns only after ``os.fsync``;
  ``append_batch`` writes several records and syncs once, returning only
  once all are durable.
* ``"group"``: group commit off the caller's thread.  A committer thread
  wakes when a record is written, lets records gather for
  ``commit_interval`` seconds, then fsyncs once for all of them, and again
  while more are waiting.  A record is durable at most ``commit_interval``
  plus two fsync times after it was written (an fsync in progress may have
  started just before it).  ``append`` never waits for the disk, but a
  write can still wait in the kernel while an fsync of the same file is in
  progress (milliseconds, rarely): ``commit_interval`` trades how long
  records wait to be durable against how often that can happen; :attr:`Journal.durable_offset` says how far the file is
  durable, :meth:`Journal.sync` waits until everything written so far is,
  and :meth:`Journal.commit` asks for an fsync without waiting.  An fsync
  that fails leaves the journal refusing every later append and sync
  (:class:`JournalError`): records it may have lost cannot be vouched for.
* ``"os"``: like ``"group"`` without the committer: the owner calls
  :meth:`Journal.sync` on its own beat.

After a power loss a ``"group"`` or ``"os"`` journal keeps at least
everything up to the last completed fsync; what follows it may be missing or
torn and is handled as above.  The order gateway relies on this: what the
exchange answered is fetched again by the SoupBinTCP login
(:mod:`host.gateway.gateway`).

A write that fails (disk full, I/O error) is cut back off the file before the
error is raised as :class:`JournalError`, so no half record stays in front of
later ones; if even that fails, the journal refuses later appends.

Held records: :meth:`Journal.hold` takes a record (stamped at once) without
writing it; :meth:`Journal.release` writes every held record in one
:meth:`Journal.append_batch`.  Any other append, :meth:`Journal.sync` and
:meth:`Journal.close` write the held records first, in the same write, so
records reach the file in the order they were handed over, and the bytes on
disk are exactly those the same calls would have written one by one.  A
held record is not yet part of the journal (not in :attr:`Journal.records`,
lost with the process); the order gateway holds a batch's requests and
releases them just before the batch goes to the socket.  If the write of
held records fails they are dropped with the error: they were never written.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

MAGIC = b"ZMMJRNL1"
#: ``"group"``: how long the committer lets records gather before an fsync.
DEFAULT_COMMIT_INTERVAL = 0.005
DURABILITY = ("fsync", "group", "os")
_HEADER = struct.Struct(">III")
_BODY_HEAD = struct.Struct(">QB")
_TIMESTAMP = struct.Struct(">Q")
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


class Record(NamedTuple):
    kind: str
    timestamp_ns: int
    payload: bytes
    offset: int = -1   # where the record starts in the file


# Builds a Record from its four fields without the generated __new__ (the
# append path makes one per record).
_new_record = tuple.__new__


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
    torn tail (see :attr:`recovery`) and keeps the surviving records, and
    the ones appended since, in :attr:`records` for replay.
    """

    def __init__(self, path: str | os.PathLike, *, clock=time.time_ns, durability: str = "fsync",
                 commit_interval: float = DEFAULT_COMMIT_INTERVAL):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, got {durability!r}")
        if not 0 <= commit_interval <= 10:
            raise ValueError(f"commit_interval must be 0..10 seconds, got {commit_interval!r}")
        self.commit_interval = commit_interval
        self.path = Path(path)
        self.clock = clock
        self.durability = durability
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
        # Appends bypass the buffered file: one write(2) per append (the file
        # is in append mode, so every write lands at the end).
        self._fd = self._file.fileno()
        self._end = self._size()
        self._written = len(self.records)   # records written since open, and before
        self._durable = self._written
        self._durable_end = self._end
        self._failed: BaseException | None = None
        self._kinds: dict[str, bytes] = {}
        self._length_crcs: dict[int, int] = {}
        self._held: list[tuple[str, int, bytes, bytes]] = []   # (kind, ts, payload, raw)
        self._committer: threading.Thread | None = None
        if durability == "group":
            self._changed = threading.Condition()
            self._wake = threading.Event()
            self._idle = False
            self._closing = False
            self._urgent = False
            self._committer = threading.Thread(target=self._commit_loop, daemon=True,
                                               name=f"journal-commit:{self.path.name}")
            self._committer.start()

    def _size(self) -> int:
        self._file.seek(0, os.SEEK_END)
        return self._file.tell()

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def unsynced(self) -> int:
        """Records written to the kernel but not yet known to be durable."""
        return self._written - self._durable

    @property
    def durable_offset(self) -> int:
        """File offset up to which everything is on stable storage."""
        return self._durable_end

    @property
    def end_offset(self) -> int:
        """File offset after the last record written."""
        return self._end

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self.records))

    def __len__(self) -> int:
        return len(self.records)

    # -- appending ----------------------------------------------------------------
    def _kind_head(self, kind: str) -> bytes:
        head = self._kinds.get(kind)
        if head is None:
            raw_kind = kind.encode("ascii") if isinstance(kind, str) else b""
            if not 1 <= len(raw_kind) <= 255:
                raise ValueError(f"record kind must be 1..255 ASCII bytes, got {kind!r}")
            head = self._kinds[kind] = bytes((len(raw_kind),)) + raw_kind
        return head

    def _encode(self, kind: str, timestamp_ns: int, payload) -> tuple[bytes, bytes]:
        """(record bytes, payload bytes): :func:`encode_record` with the
        kind's bytes and the length checksums cached."""
        head = self._kinds.get(kind)
        if head is None:
            head = self._kind_head(kind)
        if not 0 <= timestamp_ns < 2**64:
            raise ValueError(f"timestamp {timestamp_ns} does not fit 64 bits")
        if payload.__class__ is not bytes:
            payload = bytes(payload)
        body = _TIMESTAMP.pack(timestamp_ns) + head + payload
        length = len(body)
        length_crc = self._length_crcs.get(length)
        if length_crc is None:
            if length > MAX_BODY_LENGTH:
                raise ValueError(f"record of {length} bytes is above {MAX_BODY_LENGTH}")
            length_crc = zlib.crc32(_LENGTH.pack(length))
            if len(self._length_crcs) < 4096:
                self._length_crcs[length] = length_crc
        return _HEADER.pack(length, length_crc, zlib.crc32(body)) + body, payload

    def _write(self, blob: bytes) -> None:
        if self._failed is not None:
            raise JournalError(f"{self.path}: journal unusable after an earlier failure: "
                               f"{self._failed}")
        if self._fd < 0:
            raise JournalError(f"{self.path}: journal is closed")
        start = self._end
        try:
            written = os.write(self._fd, blob)
            while written < len(blob):
                written += os.write(self._fd, memoryview(blob)[written:])
        except OSError as exc:
            # No half record may stay in front of later ones: cut it off.
            try:
                os.ftruncate(self._fd, start)
            except OSError as again:
                self._failed = again
            raise JournalError(f"{self.path}: write of {len(blob)} bytes failed: {exc}") from exc
        self._end = start + len(blob)

    def append(self, kind: str, payload: bytes, timestamp_ns: int | None = None) -> Record:
        """Write one record (after the held ones); returns once it is on
        stable storage (``"fsync"``) or once the kernel has it (``"group"``,
        ``"os"``)."""
        ts = self.clock() if timestamp_ns is None else timestamp_ns
        if self._held:
            return self.append_batch(((kind, payload, ts),))[-1]
        raw, payload = self._encode(kind, ts, payload)
        offset = self._end
        self._write(raw)
        record = _new_record(Record, (kind, ts, payload, offset))
        self.records.append(record)
        self._written += 1
        if self._committer is not None:
            if self._idle:
                self._wake.set()
        elif self.durability == "fsync":
            self.sync()
        return record

    def append_batch(self, items: Iterable[tuple[str, bytes, int | None]]) -> list[Record]:
        """Write several records (after the held ones) with one write (and,
        ``"fsync"``, one fsync).  Returns the records written, held ones
        first."""
        offset = self._end
        parts: list[bytes] = []
        new: list[Record] = []
        held = self._held
        for kind, ts, payload, raw in held:
            new.append(_new_record(Record, (kind, ts, payload, offset)))
            offset += len(raw)
            parts.append(raw)
        clock, encode = self.clock, self._encode
        for kind, payload, timestamp_ns in items:
            ts = clock() if timestamp_ns is None else timestamp_ns
            raw, payload = encode(kind, ts, payload)
            new.append(_new_record(Record, (kind, ts, payload, offset)))
            offset += len(raw)
            parts.append(raw)
        if not new:
            return new
        if held:
            # Off the list before the write: written now or, if the write
            # fails, never (see the module's notes).
            self._held = []
        self._write(parts[0] if len(parts) == 1 else b"".join(parts))
        self.records.extend(new)
        self._written += len(new)
        if self._committer is not None:
            if self._idle:
                self._wake.set()
        elif self.durability == "fsync":
            self.sync()
        return new

    def hold(self, kind: str, payload: bytes, timestamp_ns: int | None = None) -> None:
        """Take a record to be written with the next write (see the module's
        notes), stamped now unless ``timestamp_ns`` is given."""
        if self._failed is not None:
            raise JournalError(f"{self.path}: journal unusable after an earlier failure: "
                               f"{self._failed}")
        if self._fd < 0:
            raise JournalError(f"{self.path}: journal is closed")
        ts = self.clock() if timestamp_ns is None else timestamp_ns
        # Encoded (and so validated) now: a record that cannot be written
        # is refused here, not at the release it would otherwise spoil.
        raw, payload = self._encode(kind, ts, payload)
        self._held.append((kind, ts, payload, raw))

    @property
    def held(self) -> int:
        """Records held and not yet written."""
        return len(self._held)

    def release(self) -> list[Record]:
        """Write the held records (one write); returns them."""
        if not self._held:
            return []
        return self.append_batch(())

    # -- durability ---------------------------------------------------------------
    def _fsync(self) -> None:
        """One fsync covering everything written before it started."""
        written, end = self._written, self._end
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = exc
            raise JournalError(f"{self.path}: fsync failed: {exc}") from exc
        if written > self._durable:
            self._durable, self._durable_end = written, end

    def _commit_loop(self) -> None:
        changed, wake = self._changed, self._wake
        while True:
            if self._written == self._durable:
                self._idle = True
                # Re-check after announcing idleness: an append that saw the
                # committer busy did not wake it.
                if self._written == self._durable and not self._closing:
                    wake.wait()
                wake.clear()
                self._idle = False
            if self._closing and self._written == self._durable:
                return
            if self.commit_interval and not self._urgent and not self._closing:
                # Let records gather (fewer fsyncs for the send path's writes
                # to run into); sync() and close() cut the wait short.
                wake.wait(self.commit_interval)
                wake.clear()
            self._urgent = False
            try:
                self._fsync()
            except JournalError:
                log.exception("journal group commit failed")
                with changed:
                    changed.notify_all()
                return
            with changed:
                changed.notify_all()

    def commit(self) -> None:
        """Ask for an fsync of everything written so far without waiting
        (``"group"``; the other modes have nothing in flight)."""
        if self._committer is not None:
            self._urgent = True
            self._wake.set()

    def sync(self, timeout: float | None = None) -> int:
        """Make every record written so far durable; returns how many were
        not yet.  ``"group"``: waits for the committer (``timeout`` seconds
        at most, then :class:`JournalError`)."""
        if self._failed is not None:
            raise JournalError(f"{self.path}: journal unusable after an earlier failure: "
                               f"{self._failed}")
        if self._held:
            self.release()
        pending = self._written - self._durable
        if not pending or self._fd < 0:
            return pending
        if self._committer is None or not self._committer.is_alive():
            self._fsync()
            return pending
        target = self._written
        with self._changed:
            self._urgent = True
            self._wake.set()
            if not self._changed.wait_for(
                    lambda: self._durable >= target or self._failed is not None, timeout):
                raise JournalError(f"{self.path}: not durable after {timeout} s")
        if self._failed is not None:
            raise JournalError(f"{self.path}: fsync failed: {self._failed}")
        return pending

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._held and self._failed is None:
                self.release()
            if self._committer is not None:
                self._closing = True
                self._wake.set()
                self._committer.join()
            if self._failed is None:
                self.sync()
        finally:
            self._fd = -1
            self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
