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
from typing import Iterable

from rtl.fabric.model import FabricConfig, FabricModel, FabricOutput
from rtl.feed_path.model import Frame


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
            cycle = (int(ns) * int(self.core_mhz * 1000) // 1_000_000) & 0xFFFF_FFFF
            self._pending.extend(model.process(frame, cycle))

    def poll(self) -> FabricOutput:
        out, self._pending = self._pending, FabricOutput()
        return out

    def set_kill(self, kill: bool) -> None:
        self._pending.extend(self._fabric().set_kill(kill))

    def set_position(self, option_id: int, contracts: int) -> None:
        self._fabric().set_position(option_id, contracts)

    def counters(self) -> dict[str, dict[str, int]]:
        model = self._fabric()
        out = {f"frame_filter_{name}": dict(flt.counters)
               for name, flt in zip("ab", model.feed.filters)}
        out["mold_seq"] = dict(model.feed.sequencer.stream_counters)
        out["itch_decoder"] = dict(model.feed.decoder.counters)
        out["order_book"] = dict(model.feed.book.counters)
        out["pricer_chain"] = dict(model.chain.counters)
        out["quoter"] = dict(model.quoter.counters)
        out["risk_gate"] = dict(model.gate.counters)
        return out


def open_fabric(backend: str, **options) -> Fabric:
    """The fabric of a backend name (``model``, ``rtl``, ``board``)."""
    if backend == "model":
        return ModelFabric(**options)
    if backend == "rtl":
        from host.runtime.rtl_fabric import RtlFabric
        return RtlFabric(**options)
    if backend == "board":
        from overlays.driver import BoardFabric
        return BoardFabric(**options)
    raise FabricError(f"unknown backend {backend!r} (allowed: model, rtl, board)")
