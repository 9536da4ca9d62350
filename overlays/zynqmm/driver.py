"""The ``board`` backend: the zynqmm overlay on a Zynq board, through pynq.

The only code of the project that touches hardware.  It drives what
``overlays/zynqmm/block_design.tcl`` builds:

* the fabric, a module reference of the generated Verilog top in the cell
  ``fabric`` (VLNV ``xilinx.com:module_ref:<top>:1.0`` in the ``.hwh``),
  one AXI-Lite slave holding every block's registers at the register map's
  offsets (:mod:`rtl.regmap`);
* per record stream of the top (:data:`overlays.config.RECORD_STREAMS`:
  ``record_dma`` for ``m_axis``; the feed path's feed events also have
  ``event_dma``), an AXI DMA (``xilinx.com:ip:axi_dma:7.1``, direct register
  mode) whose S2MM channel writes the records to memory;
* per feed taken by the host (``ps-bridge``), ``ingest_dma_a`` /
  ``ingest_dma_b``, AXI DMAs whose MM2S channel streams frames into the
  fabric's feed inputs.  A feed on a PL MAC has none: its frames never pass
  through the host.

Two tops are known, told apart by the module reference's VLNV in pynq's
``ip_dict``: ``fabric`` (feed path, chain pricer, quoter and risk gate in the
PL) and ``feed_path`` (the PL keeps the order book; the chain pricer, quoter
and risk gate run on the host as their bit-accurate models,
:class:`rtl.fabric.model.FabricModel`, fed with the book records the PL
sends -- the PYNQ-Z2's overlay, whose part has no room for the pricer).

Loading (:class:`BoardFabric`): the overlay's manifest is verified first
(:func:`overlays.manifest.verify_manifest`: SHA-256 of ``.bit`` and
``.hwh``, register-map version), then pynq programs the bitstream, and the
fabric's ``system.BUILD_ID`` and ``system.MAP_VERSION`` registers must match
the manifest and this host's register map
(:func:`board.deploy.flash.register_problems`, the check ``zynqmm flash``
makes); any mismatch refuses the overlay with every reason.  The chain
pricer's table sizes are the ones the fabric reports (``pricer_chain.INFO``
and ``INFO2``): a board's overlay may be built with other sizes than the
simulated fabric's.  Each :meth:`BoardFabric.load` after the first programs
the bitstream again, so the registers start from their reset values as
:class:`host.runtime.registers.FabricRegisters` requires.

Records: in direct register mode an S2MM transfer ends at ``tlast`` and
reports its length, but AXI DMA drops ``tdest``.  Every record layout has a
length of its own (:func:`host.runtime.fabric.dest_of_length`), so the
length says what a record is; a length no layout has is a fault of the
design and raised.  One transfer takes one record, so the channel is armed
again after each.  Frames: one MM2S transfer per frame (the transfer's end
is the frame's ``tlast``).  The DMA has no ``tuser``, so a frame flagged bad
cannot be passed on: it is counted (``ps_bridge.dropped_frame_error``), as
are empty frames and frames longer than the send buffer.

Pacing: after each frame the records already written are taken, and after a
batch the records are taken until the busy bits
(:data:`host.runtime.fabric.IDLE_PROBES`) read idle and no record arrived
for ``quiet_polls`` polls in a row, so a push returns with its records, as
on the other backends.  A DMA that does not finish within ``timeout_s`` is
a hang, raised as :class:`~host.runtime.fabric.FabricError`.

pynq is imported only when a :class:`BoardFabric` is made: the rest of the
project runs where pynq does not.  The pynq driver classes
(:class:`pynq.DefaultIP` subclasses bound by ``bindto``, the
:class:`pynq.Overlay` subclass) are made then, by :func:`pynq_classes`.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Mapping

import numpy as np

from board.deploy import agent
from board.deploy.flash import (FABRIC_IP, FlashRefused, RegisterReport, find_manifest,
                                identity_offsets, register_problems)
from host.runtime.fabric import (Fabric, FabricError, add_record, arrival_cycle,
                                 dest_of_length, idle_probes, model_counters, read_counters)
from host.runtime.registers import U32, FabricRegisters, RegisterConfigError
from overlays.config import RECORD_STREAMS
from overlays.manifest import ManifestError, manifest_path, verify_manifest
from rtl.blocks import BLOCKS as RTL_BLOCKS
from rtl.fabric.hdl import ADDR_WIDTH as FABRIC_ADDR_WIDTH
from rtl.fabric.hdl import DEST_QUOTE
from rtl.fabric.model import FabricConfig, FabricModel, FabricOutput
from rtl.feed_path.hdl import ADDR_WIDTH as FEED_PATH_ADDR_WIDTH
from rtl.feed_path.hdl import BLOCKS as FEED_PATH_BLOCKS
from rtl.feed_path.model import Frame
from rtl.pricer_chain.model import ChainConfig
from rtl.regmap.driver import MAP_VERSION, decode
from rtl.regmap.map import REGISTER_MAP
from rtl.regmap.spec import Block

log = logging.getLogger(__name__)

AXI_DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
MODULE_REF_VENDOR = "xilinx.com:module_ref:"
# Cell names of the block design.
FABRIC_CELL = FABRIC_IP
INGEST_DMAS = {0: "ingest_dma_a", 1: "ingest_dma_b"}
FEED_NAMES = {0: "A", 1: "B"}

OVERLAY_ENV = "ZYNQMM_OVERLAY"
DEFAULT_OVERLAY = Path(agent.under("/", agent.OVERLAYS_DIR)) / agent.CURRENT

# An S2MM buffer must hold the longest packet that can arrive; records are
# 144 bytes at most, and a runaway packet up to this size is still reported
# with its length instead of leaving the DMA in an undefined state.
RECORD_BUFFER_BYTES = 4096
# Frames longer than the frame filter's payload buffer are dropped and
# counted by the fabric; this only bounds what the host copies.
FRAME_BUFFER_BYTES = 16384
QUIET_POLLS = 4
TIMEOUT_S = 2.0
BACK_HALF = ("pricer_chain", "quoter", "risk_gate")


def module_ref_vlnv(top: str) -> str:
    """The VLNV Vivado gives a module reference of the Verilog module ``top``."""
    return f"{MODULE_REF_VENDOR}{top}:1.0"


@dataclass(frozen=True)
class FabricTop:
    """A Verilog top the overlay can hold in its ``fabric`` cell."""

    module: str                     # the Verilog module (rtl.blocks)
    blocks: tuple[Block, ...]       # register-map blocks its AXI-Lite slave decodes
    span: int                       # bytes of its AXI-Lite address space
    back_half_on_host: bool         # chain pricer, quoter and gate run on the host
    record_dmas: tuple[str, ...]    # the S2MM DMA of each of its record streams

    @property
    def vlnv(self) -> str:
        return module_ref_vlnv(self.module)

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.blocks)

    def decodes(self, offset: int) -> bool:
        return any(b.base <= offset < b.base + b.window for b in self.blocks)


def _record_dmas(top: str) -> tuple[str, ...]:
    return tuple(dma for _, dma in RECORD_STREAMS[top])


TOPS = {
    top.module: top for top in (
        FabricTop(RTL_BLOCKS["fabric"].toplevel, REGISTER_MAP, 1 << FABRIC_ADDR_WIDTH, False,
                  _record_dmas("fabric")),
        FabricTop(RTL_BLOCKS["feed_path"].toplevel, FEED_PATH_BLOCKS, 1 << FEED_PATH_ADDR_WIDTH,
                  True, _record_dmas("feed_path")))}


@dataclass(frozen=True)
class OverlayLayout:
    """What the driver uses of an overlay, read from pynq's ``ip_dict``."""

    top: FabricTop
    fabric_cell: str
    record_dmas: tuple[str, ...]
    ingest_dmas: dict[int, str] = field(default_factory=dict)   # feed -> DMA cell


def _flag(entry: Mapping, parameter: str) -> bool:
    return str((entry.get("parameters") or {}).get(parameter, "0")).strip() == "1"


def describe_overlay(ip_dict: Mapping[str, Mapping]) -> OverlayLayout:
    """The fabric top, record DMAs and ingest DMAs of an overlay; raises
    FabricError saying what is missing or wrong."""
    module_refs = {name: entry for name, entry in ip_dict.items()
                   if str(entry.get("type", "")).startswith(MODULE_REF_VENDOR)}
    known = {name: TOPS[entry["type"][len(MODULE_REF_VENDOR):].rsplit(":", 1)[0]]
             for name, entry in module_refs.items()
             if entry["type"] in {top.vlnv for top in TOPS.values()}}
    if len(known) != 1:
        found = ", ".join(f"{n} ({e.get('type')})" for n, e in sorted(module_refs.items()))
        raise FabricError(
            f"the overlay must hold exactly one fabric top "
            f"({' or '.join(t.vlnv for t in TOPS.values())}); it has "
            f"{found or 'no module reference'}")
    (cell, top), = known.items()
    if cell != FABRIC_CELL:
        raise FabricError(f"the fabric top is in cell {cell!r}; the block design names it "
                          f"{FABRIC_CELL!r}, where `zynqmm flash` reads its identity")
    span = int(ip_dict[cell].get("addr_range", 0))
    if span < top.span:
        raise FabricError(f"{cell} ({top.module}) is given {span:#x} bytes of address space; "
                          f"its registers need {top.span:#x}")
    dmas = {name: entry for name, entry in ip_dict.items() if entry.get("type") == AXI_DMA_VLNV}
    records = top.record_dmas
    for name in records:
        if name not in dmas or not _flag(dmas[name], "c_include_s2mm"):
            raise FabricError(f"the overlay has no S2MM DMA {name!r} for a record stream of "
                              f"{top.module} (AXI DMAs: {', '.join(sorted(dmas)) or 'none'})")
        if _flag(dmas[name], "c_include_sg"):
            raise FabricError(f"{name} is built with scatter-gather; the driver runs the "
                              f"direct register mode the block design builds")
    ingest = {}
    for feed, name in INGEST_DMAS.items():
        if name in dmas:
            if not _flag(dmas[name], "c_include_mm2s") or _flag(dmas[name], "c_include_sg"):
                raise FabricError(f"{name} must be an MM2S DMA in direct register mode")
            ingest[feed] = name
    return OverlayLayout(top, cell, records, ingest)


class BlockWindow:
    """One register-map block's window of the fabric's AXI-Lite slave."""

    def __init__(self, ip, spec: Block):
        self.ip = ip
        self.spec = spec

    def offset(self, register: str) -> int:
        return self.spec.base + self.spec.register(register).offset

    def read(self, register: str) -> int:
        return self.ip.read_words([self.offset(register)])[0]

    def write(self, register: str, value: int) -> None:
        self.ip.write_words([(self.offset(register), value)])

    def fields(self, register: str) -> dict[str, int]:
        return decode(self.spec.name, register, self.read(register))

    def counters(self) -> dict[str, int]:
        names = [r.name for r in self.spec.registers if r.name.startswith("COUNT_")]
        values = self.ip.read_words([self.offset(n) for n in names])
        return {n[len("COUNT_"):].lower(): v for n, v in zip(names, values)}


def import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise FabricError(f"the board backend needs pynq (installed on the PYNQ board "
                          f"image), which cannot be imported here: {exc}") from exc
    return pynq


def pynq_classes(pynq) -> SimpleNamespace:
    """The overlay's pynq classes, made on the pynq in use: ``Overlay`` (a
    ``pynq.Overlay``) and one ``DefaultIP`` driver per fabric top, each
    registered for its module reference's VLNV by ``bindto``."""
    ip = fabric_ip_classes(pynq.DefaultIP)
    return SimpleNamespace(Overlay=overlay_class(pynq.Overlay, ip.FabricIP), **vars(ip))


@functools.cache
def fabric_ip_classes(ip_base: type) -> SimpleNamespace:
    class FabricIP(ip_base):
        """The fabric's AXI-Lite slave.  Accesses outside the windows its
        top decodes are refused here: on the bus they answer SLVERR, which
        the ARM takes as an external abort."""

        top: FabricTop

        def __init__(self, description):
            super().__init__(description)
            self.span = int(description["addr_range"])
            self.blocks = {b.name: BlockWindow(self, b) for b in self.top.blocks}

        def _check(self, offset: int) -> None:
            if offset % 4 or not 0 <= offset < self.span or not self.top.decodes(offset):
                raise FabricError(f"register offset {offset:#x} is not in {self.top.module}'s "
                                  f"register windows")

        def read_words(self, offsets: Iterable[int]) -> list[int]:
            out = []
            for offset in offsets:
                self._check(offset)
                out.append(int(self.read(offset)) & U32)
            return out

        def write_words(self, writes: Iterable[tuple[int, int]]) -> None:
            writes = list(writes)
            for offset, _ in writes:
                self._check(offset)
            for offset, value in writes:
                self.write(offset, int(value) & U32)

    class WholeFabricIP(FabricIP):
        top = TOPS["fabric"]
        bindto = [TOPS["fabric"].vlnv]

    class FeedPathIP(FabricIP):
        top = TOPS["feed_path"]
        bindto = [TOPS["feed_path"].vlnv]

    return SimpleNamespace(FabricIP=FabricIP, WholeFabricIP=WholeFabricIP, FeedPathIP=FeedPathIP)


@functools.cache
def overlay_class(overlay_base: type, fabric_ip: type) -> type:
    class ZynqmmOverlay(overlay_base):
        """The zynqmm overlay: ``layout`` says what it holds."""

        def __init__(self, bitfile_name, download=True, **kwargs):
            # The layout is checked before anything is programmed.
            super().__init__(bitfile_name, download=False, **kwargs)
            self.layout = describe_overlay(self.ip_dict)
            if download:
                self.download()

        def fabric_ip(self):
            ip = getattr(self, self.layout.fabric_cell)
            if not isinstance(ip, fabric_ip):
                raise FabricError(f"{self.layout.fabric_cell} got driver {type(ip).__name__}, "
                                  f"not the fabric's")
            return ip

        def dma(self, name: str):
            return getattr(self, name)

    return ZynqmmOverlay


def overlay_files(overlay: str | Path | None = None) -> tuple[Path, dict]:
    """The verified manifest of an overlay (a folder, a ``.bit`` or a
    manifest; default ``$ZYNQMM_OVERLAY`` or the board's ``current``
    overlay) and the path of its bitstream."""
    target = Path(overlay or os.environ.get(OVERLAY_ENV) or DEFAULT_OVERLAY)
    try:
        if target.is_dir():
            path = find_manifest(target)
        elif target.suffix == ".bit":
            path = manifest_path(target)
        else:
            path = target
        manifest = verify_manifest(path, MAP_VERSION)
    except FlashRefused as exc:
        raise FabricError(f"refusing the overlay: {exc}") from exc
    except ManifestError as exc:
        raise FabricError(f"refusing the overlay: {exc}") from exc
    bitstream = path.parent / manifest["bitstream"]["file"]
    if target.suffix == ".bit" and target.name != bitstream.name:
        raise FabricError(f"refusing the overlay: {path} describes {bitstream.name}, "
                          f"not {target.name}")
    return bitstream, manifest


class BoardFabric(Fabric):
    """The fabric of a zynqmm overlay on this board (see the module docstring).

    ``overlay``: a folder holding the overlay and its manifest, its ``.bit``
    or its manifest (default ``$ZYNQMM_OVERLAY``, else the board's current
    overlay).  ``download``: program the bitstream now (otherwise the first
    :meth:`load` does)."""

    backend = "board"

    def __init__(self, core_mhz: float = 250.0, overlay: str | Path | None = None, *,
                 download: bool = True, quiet_polls: int = QUIET_POLLS,
                 timeout_s: float = TIMEOUT_S):
        self.core_mhz = core_mhz
        self.quiet_polls = quiet_polls
        self.timeout_s = timeout_s
        self.bitstream, self.manifest = overlay_files(overlay)
        pynq = import_pynq()
        self._allocate = pynq.allocate
        classes = pynq_classes(pynq)
        try:
            self.overlay = classes.Overlay(str(self.bitstream), download=download)
        except FabricError:
            raise
        except Exception as exc:
            raise FabricError(f"pynq cannot load {self.bitstream}: {exc}") from exc
        self.layout: OverlayLayout = self.overlay.layout
        self.top = self.layout.top
        self._fresh = download
        self._buffers: list = []
        self._record_buffers: dict[str, object] = {}
        self._frame_buffers: dict[int, object] = {}
        self.ingest_counts = {f"frames_{FEED_NAMES[f].lower()}": 0 for f in self.layout.ingest_dmas}
        self.ingest_counts.update(dropped_frame_error=0, dropped_empty=0, dropped_oversize=0)
        self.registers: FabricRegisters | None = None
        self.model: FabricModel | None = None
        self._pending = FabricOutput()
        self._stamp: int | None = None
        self._probes = idle_probes(self.top.block_names)
        self.identity: dict[str, int] = {}
        if download:
            self._attach()

    # ---- the overlay --------------------------------------------------------------------
    def _buffer(self, nbytes: int):
        buffer = self._allocate(shape=(nbytes,), dtype=np.uint8)
        self._buffers.append(buffer)
        return buffer

    def _attach(self) -> None:
        """Bind to the freshly programmed overlay: check its identity, start
        the DMA channels and arm the record channels."""
        self.ip = self.overlay.fabric_ip()
        self.check_identity()
        self._records = {name: self.overlay.dma(name).recvchannel
                         for name in self.layout.record_dmas}
        self._ingest = {feed: self.overlay.dma(name).sendchannel
                        for feed, name in self.layout.ingest_dmas.items()}
        for name, channel in self._records.items():
            if channel is None:
                raise FabricError(f"{name} has no S2MM channel")
            if name not in self._record_buffers:
                self._record_buffers[name] = self._buffer(RECORD_BUFFER_BYTES)
            channel.start()
            self._transfer(channel, self._record_buffers[name], RECORD_BUFFER_BYTES,
                           f"{name} (records)")
        for feed, channel in self._ingest.items():
            if channel is None:
                raise FabricError(f"{self.layout.ingest_dmas[feed]} has no MM2S channel")
            if feed not in self._frame_buffers:
                self._frame_buffers[feed] = self._buffer(FRAME_BUFFER_BYTES)
            channel.start()

    def check_identity(self) -> None:
        """Refuse a fabric whose build ID or map version is not the manifest's
        and this host's (``zynqmm flash`` makes the same check)."""
        offsets = identity_offsets()
        values = dict(zip(offsets, self.ip.read_words(offsets.values())))
        report = RegisterReport(str(self.bitstream), self.layout.fabric_cell,
                                int(self.overlay.ip_dict[self.layout.fabric_cell]["phys_addr"]),
                                values)
        problems = register_problems(self.manifest, report, MAP_VERSION)
        if problems:
            self.registers = None
            raise FabricError(f"refusing {self.bitstream}: " + "; ".join(problems))
        self.identity = values
        log.info("fabric %s: build %#010x, map version %#010x", self.top.module,
                 values["build_id"], values["map_version"])

    def chain_tables(self) -> ChainConfig:
        """The chain pricer's build parameters, as the fabric reports them
        (a board's overlay may be built with other sizes than
        :data:`rtl.fabric.hdl.FABRIC_CHAIN`)."""
        pricer = self.ip.blocks["pricer_chain"]
        info = {**pricer.fields("INFO"), **pricer.fields("INFO2")}
        try:
            return ChainConfig(options=info["info_options"], underlyings=info["info_underlyings"],
                               lanes=info["info_lanes"], scenarios=info["info_scenarios"])
        except ValueError as exc:
            raise FabricError(f"the fabric reports pricer tables no pricer has: {info}: "
                              f"{exc}") from exc

    def _reload(self) -> None:
        """Program the bitstream again: every register and DMA back to reset."""
        self.registers = None
        try:
            self.overlay.download()
        except Exception as exc:
            raise FabricError(f"pynq cannot program {self.bitstream}: {exc}") from exc
        self._attach()
        self._fresh = True

    def _loaded(self) -> FabricRegisters:
        if self.registers is None:
            raise FabricError("the fabric has no configuration loaded")
        return self.registers

    # ---- streams --------------------------------------------------------------------------
    def _finish(self, channel, what: str) -> None:
        """Wait for ``channel``'s transfer (pynq's ``wait`` has no time limit,
        and after an error it only sees a stopped channel)."""
        deadline = time.monotonic() + self.timeout_s
        while not channel.idle:
            if channel.error:
                self.registers = None
                raise FabricError(f"{what}: the DMA stopped on an error (internal, slave or "
                                  f"decode error in DMASR: a packet longer than the buffer, or "
                                  f"memory it cannot reach); the fabric needs a load")
            if time.monotonic() > deadline:
                self.registers = None
                raise FabricError(f"{what} did not finish within {self.timeout_s} s; the fabric "
                                  f"needs a load")
        try:
            channel.wait()
        except RuntimeError as exc:
            self.registers = None
            raise FabricError(f"{what}: {exc}") from exc

    def _transfer(self, channel, buffer, nbytes: int, what: str) -> None:
        try:
            channel.transfer(buffer, 0, nbytes)
        except (RuntimeError, ValueError) as exc:
            self.registers = None
            raise FabricError(f"{what}: pynq refused the transfer: {exc}") from exc

    def _take(self) -> int:
        """Every record already written to memory, each channel armed again."""
        taken = 0
        for name, channel in self._records.items():
            buffer = self._record_buffers[name]
            while channel.idle or channel.error:
                self._finish(channel, f"{name} (records)")
                data = bytes(buffer[:channel.transferred])
                self._transfer(channel, buffer, RECORD_BUFFER_BYTES, f"{name} (records)")
                self._record(name, data)
                taken += 1
        return taken

    def _record(self, name: str, data: bytes) -> None:
        dest = dest_of_length().get(len(data))
        if dest is None:
            raise FabricError(f"{name} wrote a record of {len(data)} bytes; no record layout "
                              f"has that length")
        if self.model is None:
            add_record(self._pending, dest, data, f"a {name} record")
            return
        if dest == DEST_QUOTE:
            raise FabricError(f"{name} wrote a quote record, which the {self.top.module} top "
                              f"cannot make")
        out = FabricOutput()
        add_record(out, dest, data, f"a {name} record")
        self._pending.feed_events += out.feed_events
        for record in out.book:
            self._pending.book.append(record)
            # FabricModel's back half for one book record, as process() runs it.
            self._pending.quotes += self.model._priced(record, self._stamp)

    def _busy(self) -> bool:
        values = self.ip.read_words([offset for offset, _ in self._probes])
        return any(value & mask for value, (_, mask) in zip(values, self._probes))

    def _drain(self) -> None:
        """Take records until the fabric is idle and none came for a while;
        busy for ``timeout_s`` without a record is a hang."""
        deadline = time.monotonic() + self.timeout_s
        quiet = 0
        while quiet < self.quiet_polls:
            if self._take():
                quiet = 0
                deadline = time.monotonic() + self.timeout_s
            elif self._busy():
                quiet = 0
                if time.monotonic() > deadline:
                    self.registers = None
                    raise FabricError(f"the fabric stayed busy without sending a record for "
                                      f"{self.timeout_s} s; it needs a load")
            else:
                quiet += 1

    def _send(self, frame: Frame) -> None:
        channel, buffer = self._ingest[frame.feed], self._frame_buffers[frame.feed]
        size = len(frame.data)
        if frame.error:
            self.ingest_counts["dropped_frame_error"] += 1
        elif size == 0:
            self.ingest_counts["dropped_empty"] += 1
        elif size > FRAME_BUFFER_BYTES:
            self.ingest_counts["dropped_oversize"] += 1
        else:
            what = f"{self.layout.ingest_dmas[frame.feed]} (feed {FEED_NAMES[frame.feed]})"
            buffer[:size] = np.frombuffer(bytes(frame.data), dtype=np.uint8)
            self._transfer(channel, buffer, size, what)
            self._finish(channel, what)
            self.ingest_counts[f"frames_{FEED_NAMES[frame.feed].lower()}"] += 1

    # ---- the Fabric interface -------------------------------------------------------------
    def load(self, config: FabricConfig) -> None:
        if not self._fresh:
            self._reload()
        try:
            if self.top.back_half_on_host:
                registers = FabricRegisters(config)
                writes = registers.feed_writes()
            else:
                registers = FabricRegisters(config, self.chain_tables())
                writes = registers.load()
        except RegisterConfigError as exc:
            raise FabricError(f"the configuration does not fit the fabric: {exc}") from exc
        self.model = FabricModel(config) if self.top.back_half_on_host else None
        self._pending = FabricOutput()
        self._stamp = None
        self._fresh = False
        self.ip.write_words(writes)
        self.registers = registers
        self._drain()

    def push(self, frames: Iterable[Frame], arrival_ns: Iterable[int] | None = None) -> None:
        self._loaded()
        frames = list(frames)
        stamps = None if arrival_ns is None else list(arrival_ns)
        if stamps is not None and len(stamps) != len(frames):
            raise FabricError(f"{len(frames)} frames with {len(stamps)} arrival times")
        missing = sorted({f.feed for f in frames} - set(self._ingest))
        if missing:
            names = ", ".join(FEED_NAMES.get(f, str(f)) for f in missing)
            raise FabricError(f"feed {names} has no PS-bridge ingest DMA in this overlay (it "
                              f"comes in on the PL's MAC): the host cannot push its frames")
        for i, frame in enumerate(frames):
            self._stamp = None if stamps is None else arrival_cycle(stamps[i], self.core_mhz)
            self._send(frame)
            self._take()
        self._drain()

    def poll(self) -> FabricOutput:
        if self.registers is not None:
            if not self._ingest and self.model is not None:
                # The PL's MAC takes the wire: no arrival times but the host's clock.
                self._stamp = arrival_cycle(time.monotonic_ns(), self.core_mhz)
            self._take()
        out, self._pending = self._pending, FabricOutput()
        return out

    def set_kill(self, kill: bool) -> None:
        registers = self._loaded()
        if self.model is not None:
            self._pending.extend(self.model.set_kill(kill))
            return
        self.ip.write_words(registers.kill(kill))
        self._drain()

    def set_position(self, option_id: int, contracts: int) -> None:
        try:
            writes = self._loaded().position(option_id, contracts)
        except RegisterConfigError as exc:
            raise FabricError(str(exc)) from exc
        if self.model is not None:
            self.model.set_position(option_id, contracts)
        else:
            self.ip.write_words(writes)

    def counters(self) -> dict[str, dict[str, int]]:
        self._loaded()
        out = read_counters(self.ip.read_words, self.top.block_names)
        if self.model is not None:
            out.update({block: values for block, values in model_counters(self.model).items()
                        if block in BACK_HALF})
        if self._ingest:
            out["ps_bridge"] = dict(self.ingest_counts)
        return out

    def read_registers(self, names: Iterable[str]) -> dict[str, int]:
        """Registers by ``block.REGISTER`` name (for checks and status)."""
        from rtl.regmap.driver import register_offsets

        offsets = register_offsets()
        names = list(names)
        return dict(zip(names, self.ip.read_words([offsets[n] for n in names])))

    def close(self) -> None:
        for buffer in self._buffers:
            buffer.freebuffer()
        self._buffers.clear()
        self._record_buffers.clear()
        self._frame_buffers.clear()
        self.registers = None
