"""The client side of the fabric server's protocol (``server.cpp``).

Messages both ways are ``u32 length`` (of what follows), ``u8 code``, payload,
little-endian.  A command's code is its opcode; an answer's is 0 (ok) or 1
(error, payload: the message as text).  Commands and their answers:

==========  ===============================================  ==========================
command     payload                                          answer payload
==========  ===============================================  ==========================
QUIT        --                                               --
RESET       u32 cycles with ``rst`` high                     u64 cycle
WRITE       (u32 address, u32 value) ...                     u8 bresp per write
READ        u32 address ...                                  (u32 data, u8 rresp) ...
FRAMES      (u8 feed, u8 error, u16 0, u32 length, bytes)    --
            ... queued until the next RUN
PROBES      (u32 address, u32 mask) ...: the idle probes     --
RUN         u8 mode (0 stream, 1 serial), u32 quiet          u64 start cycle, u64 end
            cycles, u64 cycle limit (0 none), u32 sink       cycle, u32 frames, (u64
            pause, u32 source pause (probability x 2**32),   frame, u64 cycle of its
            u64 seed                                         last beat) ..., u32
                                                             records, (u8 tdest, u8 flags,
                                                             u16 length, u64 first-beat
                                                             cycle, u64 last-beat cycle,
                                                             bytes) ..., u32 stamps,
                                                             u32 pricer stamp ...
CYCLE       --                                               u64 cycle
==========  ===============================================  ==========================

RUN drives the queued frames and returns once they are all in and the
fabric is idle (see ``server.cpp``); its records are every record the host
stream carried since the last RUN, register accesses included.  A record's
flags: bit 0 ``tuser`` was high on a beat, bit 1 ``tdest`` changed inside it.
The pricer stamps are the fabric's cycle counter at the last beat of every
book record the pricer took over the same span, in order: the
``ingress_cycle`` the pricer gave it, which the risk gate's rate windows
count.
"""
from __future__ import annotations

import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from rtl.feed_path.model import Frame

QUIT, RESET, WRITE, READ, FRAMES, RUN, PROBES, CYCLE = 0, 1, 2, 3, 4, 5, 6, 7
OK, ERROR = 0, 1
STREAM, SERIAL = 0, 1
RECORD_USER, RECORD_MIXED_DEST = 1, 2


class ServerError(RuntimeError):
    """The server refused a command or stopped."""


class Record(NamedTuple):
    """One record the host stream carried."""

    dest: int
    data: bytes
    first_cycle: int       # first cycle its first beat was valid
    last_cycle: int        # cycle its last beat was taken
    flags: int = 0


@dataclass
class RunResult:
    start_cycle: int
    end_cycle: int
    frame_last_cycles: list[int]        # per frame of the run, in order
    records: list[Record]
    pricer_stamps: list[int] = field(default_factory=list)   # per book record, in order


def _probability(p: float) -> int:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {p} outside [0, 1]")
    return 0xFFFF_FFFF if p >= 1.0 else int(p * (1 << 32))


class FabricServer:
    """A running server process (``executable``)."""

    def __init__(self, executable: str | Path):
        self.process = subprocess.Popen([str(executable)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0)

    # ---- framing ------------------------------------------------------------------------
    def _call(self, op: int, payload: bytes = b"") -> bytes:
        if self.process.poll() is not None:
            raise ServerError(f"the fabric server exited ({self.process.returncode})")
        try:
            self.process.stdin.write(struct.pack("<IB", len(payload) + 1, op) + payload)
            self.process.stdin.flush()
            head = self._read(5)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ServerError(f"the fabric server went away: {exc}") from None
        length, code = struct.unpack("<IB", head)
        body = self._read(length - 1)
        if code != OK:
            raise ServerError(body.decode(errors="replace"))
        return body

    def _read(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = self.process.stdout.read(left)
            if not chunk:
                raise ServerError(f"the fabric server closed its output "
                                  f"(exit {self.process.wait()})")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    # ---- commands -----------------------------------------------------------------------
    def reset(self, cycles: int = 4) -> int:
        return struct.unpack("<Q", self._call(RESET, struct.pack("<I", cycles)))[0]

    def write(self, writes: Iterable[tuple[int, int]]) -> list[int]:
        """Register writes in order; the bresp of each."""
        payload = b"".join(struct.pack("<II", a, v & 0xFFFF_FFFF) for a, v in writes)
        return list(self._call(WRITE, payload)) if payload else []

    def read(self, addresses: Sequence[int]) -> list[tuple[int, int]]:
        """(data, rresp) of each address, in order."""
        if not addresses:
            return []
        body = self._call(READ, b"".join(struct.pack("<I", a) for a in addresses))
        return [struct.unpack_from("<IB", body, 5 * i) for i in range(len(addresses))]

    def frames(self, frames: Iterable[Frame]) -> int:
        parts = [struct.pack("<BBHI", f.feed, int(f.error), 0, len(f.data)) + bytes(f.data)
                 for f in frames]
        if parts:
            self._call(FRAMES, b"".join(parts))
        return len(parts)

    def probes(self, probes: Iterable[tuple[int, int]]) -> None:
        self._call(PROBES, b"".join(struct.pack("<II", a, m) for a, m in probes))

    def run(self, serial: bool = True, quiet_cycles: int = 64, max_cycles: int = 0,
            sink_pause: float = 0.0, source_pause: float = 0.0, seed: int = 1) -> RunResult:
        body = self._call(RUN, struct.pack("<BIQIIQ", SERIAL if serial else STREAM, quiet_cycles,
                                           max_cycles, _probability(sink_pause),
                                           _probability(source_pause), seed))
        start, end, count = struct.unpack_from("<QQI", body, 0)
        pos = 20
        last_cycles = [0] * count
        for _ in range(count):
            index, cycle = struct.unpack_from("<QQ", body, pos)
            last_cycles[index] = cycle
            pos += 16
        (records_count,) = struct.unpack_from("<I", body, pos)
        pos += 4
        records = []
        for _ in range(records_count):
            dest, flags, length, first, last = struct.unpack_from("<BBHQQ", body, pos)
            pos += 20
            records.append(Record(dest, body[pos:pos + length], first, last, flags))
            pos += length
        (stamps_count,) = struct.unpack_from("<I", body, pos)
        pos += 4
        stamps = list(struct.unpack_from(f"<{stamps_count}I", body, pos))
        pos += 4 * stamps_count
        if pos != len(body):
            raise ServerError(f"RUN answer has {len(body) - pos} bytes left over")
        return RunResult(start, end, last_cycles, records, stamps)

    def cycle(self) -> int:
        return struct.unpack("<Q", self._call(CYCLE))[0]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._call(QUIT)
            except ServerError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> "FabricServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
