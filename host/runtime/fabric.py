"""What the host sees of the fabric, whichever fabric it is.

One interface, three backends (see DESIGN.md): ``board`` (pynq on a Zynq:
registers over AXI-Lite, records over AXI DMA), ``rtl`` (the generated
Verilog in a simulator behind the same registers and streams) and ``model``
(the bit-accurate models, :class:`rtl.fabric.model.FabricModel`).  Everything
above this module runs unchanged on any of them.

The host loads a :class:`~rtl.fabric.model.FabricConfig` (filters,
subscriptions, the pricer's tables, quoter and gate settings), pushes
Ethernet frames when it is the one taking the wire (``ps-bridge`` and
``replay`` ingest; with ``pl`` ingest the fabric's MAC takes them), and
polls for records: book updates, trades and quote records, in the order the
fabric emitted them.
"""
from __future__ import annotations

import abc
import functools
from typing import Callable, Iterable

import numpy as np

from rtl.fabric.model import FabricConfig, FabricModel, FabricOutput
from rtl.feed_path.model import Frame
from rtl.order_book.model import Output


class FabricError(RuntimeError):
    """The fabric cannot be used (missing simulator or board, bad bitstream)."""


class Fabric(abc.ABC):
    backend: str = ""

    @abc.abstractmethod
    def load(self, config: FabricConfig) -> None:
        """Reset the fabric and load the day's configuration."""

    @abc.abstractmethod
    def push(self, frames: Iterable[Frame], arrival_ns: Iterable[int] | None = None) -> None:
        """Frames into the feed inputs (host-fed ingest).  ``arrival_ns``: when
        each frame reached the appliance, for backends without a clock of
        their own (the model stamps records with it)."""

    @abc.abstractmethod
    def poll(self) -> FabricOutput:
        """Records emitted since the last poll, in order."""

    @abc.abstractmethod
    def set_kill(self, kill: bool) -> None:
        """The risk gate's kill bit; setting it pulls every live quote."""

    @abc.abstractmethod
    def set_position(self, option_id: int, contracts: int) -> None:
        """An option's position, for the quoter's skew and the scenario sums."""

    @abc.abstractmethod
    def counters(self) -> dict[str, dict[str, int]]:
        """Every block's counters, by block."""

    def close(self) -> None:
        pass


# ---- what the backends with registers and a record stream share --------------------
# Counter blocks of the register map under the names ModelFabric.counters() uses.
COUNTER_BLOCKS = {"frame_filter": "frame_filter_a", "frame_filter_b": "frame_filter_b",
                  "mold_seq": "mold_seq", "itch_decoder": "itch_decoder",
                  "order_book": "order_book", "pricer_chain": "pricer_chain",
                  "quoter": "quoter", "risk_gate": "risk_gate"}
# Busy bits to read before a frame goes in or a run ends: work that moves no
# data for a long time (the book's table scans) or is between handshakes.
IDLE_PROBES = ("order_book.busy", "pricer_chain.walking", "pricer_chain.pending",
               "risk_gate.busy")


def arrival_cycle(arrival_ns: int, core_mhz: float) -> int:
    """The fabric's 32-bit cycle count at ``arrival_ns`` (a clock from zero
    at the core frequency), for stamping records where no fabric counts."""
    return (int(arrival_ns) * int(core_mhz * 1000) // 1_000_000) & 0xFFFF_FFFF


def model_counters(model: FabricModel) -> dict[str, dict[str, int]]:
    """Every block's counters of a fabric model, by block."""
    out = {f"frame_filter_{name}": dict(flt.counters)
           for name, flt in zip("ab", model.feed.filters)}
    out["mold_seq"] = dict(model.feed.sequencer.stream_counters)
    out["itch_decoder"] = dict(model.feed.decoder.counters)
    out["order_book"] = dict(model.feed.book.counters)
    out["pricer_chain"] = dict(model.chain.counters)
    out["quoter"] = dict(model.quoter.counters)
    out["risk_gate"] = dict(model.gate.counters)
    return out


def idle_probes(blocks: Iterable[str] | None = None) -> list[tuple[int, int]]:
    """``(offset, mask)`` of the busy bits (of ``blocks`` only, if given)."""
    from rtl.regmap.driver import field_positions

    positions = field_positions()
    chosen = [name for name in IDLE_PROBES if blocks is None or name.split(".")[0] in blocks]
    return [(positions[name].offset,
             ((1 << positions[name].width) - 1) << positions[name].lsb) for name in chosen]


def read_counters(read: Callable[[list[int]], list[int]],
                  blocks: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Every ``COUNT_*`` register (of ``blocks`` only, if given) through
    ``read`` (offsets in, values out), by block under the model's names."""
    from host.runtime.registers import counter_registers

    out = {}
    for block, counters in counter_registers().items():
        if block not in COUNTER_BLOCKS or (blocks is not None and block not in blocks):
            continue
        names = list(counters)
        values = read([counters[n] for n in names])
        out[COUNTER_BLOCKS[block]] = dict(zip(names, (int(v) for v in values)))
    return out


@functools.cache
def record_layouts() -> dict[int, np.dtype]:
    """The host stream's ``tdest`` values (:mod:`rtl.fabric.hdl`) and the
    record layout each names."""
    from host.book.records import BOOK_UPDATE_DTYPE, TRADE_DTYPE
    from host.feed.records import FEED_EVENT_DTYPE
    from host.quoting.records import QUOTE_DTYPE
    from rtl.fabric.hdl import DEST_BOOK_UPDATE, DEST_FEED_EVENT, DEST_QUOTE, DEST_TRADE

    return {DEST_BOOK_UPDATE: BOOK_UPDATE_DTYPE, DEST_TRADE: TRADE_DTYPE,
            DEST_FEED_EVENT: FEED_EVENT_DTYPE, DEST_QUOTE: QUOTE_DTYPE}


@functools.cache
def dest_of_length() -> dict[int, int]:
    """Record length in bytes -> ``tdest``.  Every layout has a length of its
    own, so a stream that loses ``tdest`` (an AXI DMA in direct register
    mode writes the bytes of a packet and its length only) still says what
    each record is."""
    lengths = {dtype.itemsize: dest for dest, dtype in record_layouts().items()}
    if len(lengths) != len(record_layouts()):
        raise AssertionError("two record layouts have the same length: "
                             "records cannot be told apart by length")
    return lengths


def _row(record: np.void) -> tuple:
    """A record as the models' row tuples hold it (sub-arrays as tuples)."""
    out = []
    for name in record.dtype.names:
        value = record[name]
        out.append(tuple(int(v) for v in value) if np.ndim(value) else int(value))
    return tuple(out)


def add_record(out: FabricOutput, dest: int, data: bytes, what: str = "a record") -> None:
    """One record of the host stream into ``out``, by its ``tdest``; a record
    no layout describes is a fault of the design, raised as FabricError."""
    from rtl.fabric.hdl import DEST_BOOK_UPDATE, DEST_FEED_EVENT, DEST_TRADE

    dtype = record_layouts().get(dest)
    if dtype is None:
        raise FabricError(f"{what} has tdest {dest}, which names no record")
    if len(data) != dtype.itemsize:
        raise FabricError(f"{what} (tdest {dest}) has {len(data)} bytes, its layout "
                          f"{dtype.itemsize}")
    row = np.frombuffer(data, dtype=dtype)[0]
    if dest in (DEST_BOOK_UPDATE, DEST_TRADE):
        out.book.append(Output(dest, _row(row)))
    elif dest == DEST_FEED_EVENT:
        out.feed_events.append(row.copy())
    else:
        out.quotes.append({name: int(row[name]) for name in dtype.names})


class ModelFabric(Fabric):
    backend = "model"

    def __init__(self, core_mhz: float = 250.0):
        self.core_mhz = core_mhz
        self.model: FabricModel | None = None
        self._pending = FabricOutput()

    def _fabric(self) -> FabricModel:
        if self.model is None:
            raise FabricError("the fabric has no configuration loaded")
        return self.model

    def load(self, config: FabricConfig) -> None:
        self.model = FabricModel(config)
        self._pending = FabricOutput()

    def push(self, frames: Iterable[Frame], arrival_ns: Iterable[int] | None = None) -> None:
        model = self._fabric()
        if arrival_ns is None:
            for frame in frames:
                self._pending.extend(model.process(frame))
            return
        for frame, ns in zip(frames, arrival_ns, strict=True):
            self._pending.extend(model.process(frame, arrival_cycle(ns, self.core_mhz)))

    def poll(self) -> FabricOutput:
        out, self._pending = self._pending, FabricOutput()
        return out

    def set_kill(self, kill: bool) -> None:
        self._pending.extend(self._fabric().set_kill(kill))

    def set_position(self, option_id: int, contracts: int) -> None:
        self._fabric().set_position(option_id, contracts)

    def counters(self) -> dict[str, dict[str, int]]:
        return model_counters(self._fabric())


def open_fabric(backend: str, **options) -> Fabric:
    """The fabric of a backend name (``model``, ``rtl``, ``board``)."""
    if backend == "model":
        return ModelFabric(**options)
    if backend == "rtl":
        from host.runtime.rtl_fabric import RtlFabric
        return RtlFabric(**options)
    if backend == "board":
        from overlays.zynqmm.driver import BoardFabric
        return BoardFabric(**options)
    raise FabricError(f"unknown backend {backend!r} (allowed: model, rtl, board)")
