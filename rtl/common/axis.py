"""AXI-Stream conventions of the fabric data path.

Every stream is 64 bits wide at the core clock.  Byte ``k`` of a beat travels
in ``tdata[8k+7:8k]`` (byte 0, the first on the wire, in the low lane) and is
valid when ``tkeep[k]`` is set.  All beats of a packet but the last carry eight
bytes; the last one carries 1..8 bytes packed from lane 0, so ``tkeep`` is
``0b0..01..1``.  ``tlast`` marks the last beat.  ``tuser`` is the frame-error
flag (bad FCS, MAC overrun): a packet with ``tuser`` high on any beat is bad as
a whole.  ``tdest``, where a stream has it, is constant over a packet.

Models work on whole packets (``bytes`` plus the error flag); the helpers here
cut them into beats and back, the way the RTL sees them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple

from myhdl import Signal, always_comb, block, intbv

DATA_BYTES = 8
DATA_WIDTH = 8 * DATA_BYTES
KEEP_WIDTH = DATA_BYTES


class Beat(NamedTuple):
    """One transfer: ``tdata`` as an int with byte 0 in the low bits."""

    tdata: int
    tkeep: int
    tlast: bool
    tuser: bool


@dataclass(frozen=True)
class Packet:
    """A whole packet as a model sees it."""

    data: bytes
    error: bool = False
    dest: int = 0


def keep_for(nbytes: int) -> int:
    """The ``tkeep`` of a beat carrying ``nbytes`` bytes from lane 0."""
    if not 1 <= nbytes <= DATA_BYTES:
        raise ValueError(f"a beat carries 1..{DATA_BYTES} bytes, not {nbytes}")
    return (1 << nbytes) - 1


def keep_count(tkeep: int) -> int:
    """Bytes in a beat, as the RTL counts them: the highest kept lane + 1."""
    return tkeep.bit_length()


def to_beats(data: bytes, error: bool = False, error_beat: int | None = None) -> list[Beat]:
    """Cut a packet into beats.  ``error`` raises ``tuser`` on the last beat,
    or on beat ``error_beat`` when that is given."""
    if not data:
        raise ValueError("an AXI-Stream packet has at least one byte")
    beats = []
    count = (len(data) + DATA_BYTES - 1) // DATA_BYTES
    for i in range(count):
        chunk = data[i * DATA_BYTES:(i + 1) * DATA_BYTES]
        last = i == count - 1
        flagged = error and (i == error_beat if error_beat is not None else last)
        beats.append(Beat(int.from_bytes(chunk, "little"), keep_for(len(chunk)), last, flagged))
    return beats


def from_beats(beats: Iterable[Beat]) -> list[Packet]:
    """Reassemble packets from beats (the inverse of :func:`to_beats`)."""
    packets, data, error = [], bytearray(), False
    for beat in beats:
        n = keep_count(beat.tkeep)
        data += beat.tdata.to_bytes(DATA_BYTES, "little")[:n]
        error = error or bool(beat.tuser)
        if beat.tlast:
            packets.append(Packet(bytes(data), error))
            data, error = bytearray(), False
    return packets


class AxiStream:
    """MyHDL interface of one stream.  As a top-level port named ``s_axis`` it
    becomes ``s_axis_tdata``, ``s_axis_tkeep`` ... in the Verilog, the names
    cocotbext-axi's ``AxiStreamBus.from_prefix`` expects."""

    def __init__(self, dest_width: int = 0):
        self.tdata = Signal(intbv(0)[DATA_WIDTH:])
        self.tkeep = Signal(intbv(0)[KEEP_WIDTH:])
        self.tvalid = Signal(bool(0))
        self.tready = Signal(bool(0))
        self.tlast = Signal(bool(0))
        self.tuser = Signal(bool(0))
        if dest_width:
            self.tdest = Signal(intbv(0)[dest_width:])


@block
def keep_counter(tkeep, count):
    """``count`` = number of valid bytes of a beat: one past the highest set
    ``tkeep`` bit (keeps are packed from lane 0, so that is the byte count)."""

    @always_comb
    def count_keep():
        count.next = 0
        for i in range(DATA_BYTES):
            if tkeep[i]:
                count.next = i + 1

    return count_keep
