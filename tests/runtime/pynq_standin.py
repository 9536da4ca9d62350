"""A stand-in for pynq, so that the ``board`` backend can be tested where
there is no board.  It is not pynq.

Two halves:

* :class:`StandInBoard` is the hardware: what the block design builds, with
  the fabric's AXI-Lite slave and record stream being the real RTL in the
  simulator server (:class:`rtl.fabric.server.client.FabricServer`, the one
  the ``rtl`` backend uses), AXI DMA engines that follow PG021's direct
  register mode (DMACR, DMASR with Halted / Idle / error / IOC bits, SA / DA,
  LENGTH: writing LENGTH starts a transfer; an S2MM transfer ends at the
  packet's end, writes the received length back to LENGTH and drops
  ``tdest``), and DDR that the DMAs read and write by physical address.
  Buffers are not coherent: the DMA sees a buffer's bytes only after a
  flush, the CPU sees what the DMA wrote only after an invalidate -- as on
  the HP port the block design uses.
* The pynq surface the driver uses, mirroring pynq 4.0.0's signatures:
  :class:`Overlay` (``ip_dict``, drivers bound by ``bindto`` VLNV, IP
  attributes, ``download``), :class:`DefaultIP` (``mmio``, ``read``,
  ``write``), :class:`MMIO`, :func:`allocate` (buffers with
  ``physical_address``, ``flush``, ``invalidate``, ``freebuffer``) and
  ``pynq.lib.dma.DMA`` (``sendchannel`` / ``recvchannel``: ``start``,
  ``transfer``, ``wait``, ``idle``, ``error``, ``transferred``), whose
  channels program the DMA engines' registers as pynq's do.
  :func:`standin_module` packages it as a module to put in ``sys.modules``
  under the name ``pynq``.  Where the real pynq can be imported,
  :class:`StandInDevice` puts the same hardware under pynq's own
  ``DefaultIP``, ``MMIO``, ``allocate`` and DMA driver instead (only the
  overlay, which needs a real ``.hwh``, stays the stand-in's).

It does not model time.  The fabric runs only when the host looks: before
any register read or DMA status read, whatever was written or sent since
(register writes, a reset, a frame an MM2S transfer delivered) is run in
the simulator until the fabric is idle, one frame at a time, and the
records it sent wait for the S2MM channel in order.  So the fabric is
infinitely fast next to the host and the record stream never backs up:
what this checks is the driver's register traffic, DMA programming and
record handling against the real design, not its pacing on a board.

The record streams and their S2MM DMAs are the block design's
(:data:`overlays.config.RECORD_STREAMS`).  The PYNQ-Z2 overlay's
``feed_path`` top is stood in for by the same simulated fabric with the
windows the feed path does not decode fenced off (an access there is an
error, as SLVERR would be on the board), its pricer, quoter and gate left at
reset, where they make no quote records (one appearing is reported as a
stand-in fault), and its feed events sent to their own DMA as the feed
path's ``m_feed_event`` would be.
"""
from __future__ import annotations

import copy
import ctypes
import types
import warnings
from collections import deque
from pathlib import Path

import numpy as np

from host.runtime.fabric import idle_probes
from host.runtime.rtl_fabric import RUN_CYCLES_BASE, RUN_CYCLES_PER_FRAME, QUIET_CYCLES
from rtl.common.axil import RESP_OKAY
from rtl.fabric.hdl import DEST_FEED_EVENT, DEST_QUOTE
from rtl.fabric.server.client import FabricServer
from rtl.feed_path.model import Frame

PS_VLNV = "xilinx.com:ip:processing_system7:5.5"
AXI_DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
FABRIC_BASE = 0x4000_0000
DMA_BASES = {"record_dma": 0x4040_0000, "event_dma": 0x4043_0000,
             "ingest_dma_a": 0x4041_0000, "ingest_dma_b": 0x4042_0000}
DMA_RANGE = 0x1_0000
DDR_BASE = 0x1000_0000
PAGE = 4096

# PG021 direct register mode: offsets within a channel's block (S2MM's block
# starts at 0x30), DMACR and DMASR bits.
DMACR, DMASR, ADDRESS, ADDRESS_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
S2MM_OFFSET = 0x30
CR_RUN, CR_RESET = 0x1, 0x4
SR_HALTED, SR_IDLE = 0x1, 0x2
SR_INTERNAL_ERROR, SR_SLAVE_ERROR, SR_DECODE_ERROR = 0x10, 0x20, 0x40
SR_IOC_IRQ, SR_ERR_IRQ = 0x1000, 0x4000
SR_W1C = SR_IOC_IRQ | 0x2000 | SR_ERR_IRQ
CR_RESET_VALUE, SR_RESET_VALUE = 0x0001_0002, 0x0001_0001


class StandInError(AssertionError):
    """The stand-in saw something a board would not survive or a test must not pass."""


class BusError(StandInError):
    """An AXI access the board answers with SLVERR / DECERR (an external abort)."""


# ---- the hardware ----------------------------------------------------------------------
class Ddr:
    """Physical memory the DMAs reach, region by region."""

    def __init__(self):
        self.regions: dict[int, bytearray] = {}
        self.next = DDR_BASE

    def allocate(self, nbytes: int) -> int:
        address = self.next
        self.regions[address] = bytearray(nbytes)
        self.next += -(-max(nbytes, 1) // PAGE) * PAGE
        return address

    def free(self, address: int) -> None:
        self.regions.pop(address, None)

    def _region(self, address: int, nbytes: int) -> tuple[bytearray, int] | None:
        for base, region in self.regions.items():
            if base <= address and address + nbytes <= base + len(region):
                return region, address - base
        return None

    def read(self, address: int, nbytes: int) -> bytes | None:
        found = self._region(address, nbytes)
        return None if found is None else bytes(found[0][found[1]:found[1] + nbytes])

    def write(self, address: int, data: bytes) -> bool:
        found = self._region(address, len(data))
        if found is None:
            return False
        found[0][found[1]:found[1] + len(data)] = data
        return True


class DmaChannelEngine:
    """One channel of an AXI DMA in direct register mode."""

    def __init__(self, board: "StandInBoard", name: str, stream_to_memory: bool,
                 feed: int | None = None):
        self.board, self.name, self.s2mm, self.feed = board, name, stream_to_memory, feed
        self.reset()

    def reset(self) -> None:
        self.control, self.status = CR_RESET_VALUE, SR_RESET_VALUE
        self.address = self.length = 0
        self.armed = self.in_flight = False

    @property
    def running(self) -> bool:
        return bool(self.control & CR_RUN) and not self.status & SR_HALTED

    def read(self, register: int) -> int:
        self.board.settle()
        return {DMACR: self.control, DMASR: self.status, ADDRESS: self.address & 0xFFFF_FFFF,
                ADDRESS_MSB: self.address >> 32, LENGTH: self.length}.get(register, 0)

    def write(self, register: int, value: int) -> None:
        if register == DMACR:
            if value & CR_RESET:
                self.reset()
                return
            self.control = (value & ~CR_RESET) | 0x2
            if value & CR_RUN:
                self.status &= ~SR_HALTED
            else:
                self.status |= SR_HALTED
                self.armed = self.in_flight = False
        elif register == DMASR:
            self.status &= ~(value & SR_W1C)
        elif register == ADDRESS:
            self.address = (self.address & ~0xFFFF_FFFF) | value
        elif register == ADDRESS_MSB:
            self.address = (self.address & 0xFFFF_FFFF) | (value << 32)
        elif register == LENGTH:
            self._start(value & ((1 << 26) - 1))

    def _error(self, bit: int) -> None:
        # PG021: an error clears DMACR.RS and halts the channel.
        self.control &= ~CR_RUN
        self.status |= bit | SR_ERR_IRQ | SR_HALTED
        self.armed = self.in_flight = False

    def _start(self, nbytes: int) -> None:
        if not self.running:
            return  # PG021: LENGTH has no effect while halted
        if nbytes == 0:
            self._error(SR_INTERNAL_ERROR)
            return
        self.status &= ~SR_IDLE
        self.length = nbytes
        if self.s2mm:
            self.armed = True
            self.board.deliver(self)
            return
        data = self.board.ddr.read(self.address, nbytes)
        if data is None:
            self._error(SR_DECODE_ERROR)
            return
        self.in_flight = True
        self.board.send_frame(self, Frame(self.feed, data))

    def complete_send(self) -> None:
        if self.in_flight:
            self.in_flight = False
            self.status |= SR_IDLE | SR_IOC_IRQ

    def receive(self, record: bytes) -> None:
        """One packet off the stream into the armed buffer."""
        self.armed = False
        if len(record) > self.length:
            self._error(SR_INTERNAL_ERROR)
            return
        if not self.board.ddr.write(self.address, record):
            self._error(SR_DECODE_ERROR)
            return
        self.length = len(record)
        self.status |= SR_IDLE | SR_IOC_IRQ


class StandInBoard:
    """The hardware of a zynqmm overlay (see the module docstring).

    ``top``: ``fabric`` or ``feed_path``; ``ingest``: the feeds (0 A, 1 B)
    taken by the host through an MM2S DMA."""

    def __init__(self, server: FabricServer, top: str = "fabric",
                 ingest: tuple[int, ...] = (0, 1)):
        from overlays.config import RECORD_STREAMS
        from overlays.zynqmm.driver import TOPS

        self.server, self.top = server, TOPS[top]
        self.ddr = Ddr()
        # The S2MM DMA of each record stream, as the block design wires them.
        self.record_dmas = dict(RECORD_STREAMS[top])
        self.engines: dict[str, tuple[DmaChannelEngine | None, DmaChannelEngine | None]] = {
            dma: (None, DmaChannelEngine(self, dma, True)) for dma in self.record_dmas.values()}
        for feed in ingest:
            name = f"ingest_dma_{'ab'[feed]}"
            self.engines[name] = (DmaChannelEngine(self, name, False, feed), None)
        self.streams: dict[str, deque[bytes]] = {dma: deque() for dma in self.record_dmas.values()}
        self.dirty = False
        self.queued = 0
        self.stalled = False                 # the fabric takes no frames (tests a hang)
        self.identity_override: dict[int, int] = {}
        self.runs = self.frames_in = 0
        self.downloads = 0
        # What the pricer stamped each book record with, as the simulator
        # saw it (a probe inside the fabric, for comparisons with the model).
        self.record_cycles: list[int] = []

    # ---- addresses ------------------------------------------------------------------------
    def ip_dict(self) -> dict:
        """pynq's ``ip_dict`` of the overlay, as its ``.hwh`` would give it."""
        out = {"ps7": {"type": PS_VLNV, "phys_addr": 0, "addr_range": 0, "parameters": {},
                       "registers": {}, "interrupts": {}, "gpio": {}, "state": None,
                       "fullpath": "ps7"},
               "fabric": {"type": self.top.vlnv, "phys_addr": FABRIC_BASE,
                          "addr_range": self.top.span, "parameters": {}, "registers": {},
                          "interrupts": {}, "gpio": {}, "state": None, "fullpath": "fabric",
                          "mem_id": "s_axil", "memtype": "REGISTER"}}
        for name, (mm2s, s2mm) in self.engines.items():
            out[name] = {
                "type": AXI_DMA_VLNV, "phys_addr": DMA_BASES[name], "addr_range": DMA_RANGE,
                "parameters": {"c_include_sg": "0", "c_sg_length_width": "26",
                               "c_include_mm2s": "1" if mm2s else "0",
                               "c_include_s2mm": "1" if s2mm else "0",
                               "c_m_axi_mm2s_data_width": "32",
                               "c_m_axis_mm2s_tdata_width": "64",
                               "c_m_axi_s2mm_data_width": "64",
                               "c_s_axis_s2mm_tdata_width": "64",
                               "c_mm2s_burst_size": "64", "c_s2mm_burst_size": "64",
                               "c_micro_dma": "0"},
                "registers": {}, "interrupts": {}, "gpio": {}, "state": None,
                "fullpath": name, "mem_id": "S_AXI_LITE", "memtype": "REGISTER"}
        return out

    def read(self, address: int) -> int:
        if FABRIC_BASE <= address < FABRIC_BASE + self.top.span:
            return self.read_fabric(address - FABRIC_BASE)
        engine, register = self._engine(address)
        return engine.read(register)

    def write(self, address: int, value: int) -> None:
        value &= 0xFFFF_FFFF
        if FABRIC_BASE <= address < FABRIC_BASE + self.top.span:
            self.write_fabric(address - FABRIC_BASE, value)
            return
        engine, register = self._engine(address)
        engine.write(register, value)

    def _engine(self, address: int) -> tuple[DmaChannelEngine, int]:
        for name, base in DMA_BASES.items():
            if name in self.engines and base <= address < base + DMA_RANGE:
                offset = address - base
                mm2s, s2mm = self.engines[name]
                engine = s2mm if offset >= S2MM_OFFSET else mm2s
                if engine is None or offset % 4:
                    raise BusError(f"{name}: no register at {offset:#x}")
                return engine, offset - (S2MM_OFFSET if engine is s2mm else 0)
        raise BusError(f"nothing answers at {address:#x}")

    # ---- the fabric -----------------------------------------------------------------------
    def _fabric_offset(self, offset: int) -> None:
        if offset % 4 or not self.top.decodes(offset):
            raise BusError(f"{self.top.module}: offset {offset:#x} is in no window it decodes "
                           f"(SLVERR on the board)")

    def read_fabric(self, offset: int) -> int:
        self._fabric_offset(offset)
        self.settle()
        if offset in self.identity_override:
            return self.identity_override[offset]
        (value, response), = self.server.read([offset])
        if response != RESP_OKAY:
            raise BusError(f"read of {offset:#x} answered {response}")
        return value

    def write_fabric(self, offset: int, value: int) -> None:
        self._fabric_offset(offset)
        (response,) = self.server.write([(offset, value)])
        if response != RESP_OKAY:
            raise BusError(f"write of {offset:#x} answered {response}")
        self.dirty = True

    def reset(self) -> None:
        """Programming the bitstream: the PL and its DMAs from reset."""
        self.downloads += 1
        self.server.reset()
        self.server.probes(idle_probes())
        for engines in self.engines.values():
            for engine in engines:
                if engine is not None:
                    engine.reset()
        for stream in self.streams.values():
            stream.clear()
        self.record_cycles.clear()
        self.dirty = True

    def send_frame(self, engine: DmaChannelEngine, frame: Frame) -> None:
        if not self.stalled:
            self.server.frames([frame])
            self.frames_in += 1
            self.queued += 1
            self.dirty = True

    def settle(self) -> None:
        """Run the fabric until idle if anything happened since it last was."""
        if not self.dirty:
            return
        self.dirty = False
        result = self.server.run(serial=True, quiet_cycles=QUIET_CYCLES,
                                 max_cycles=RUN_CYCLES_BASE + RUN_CYCLES_PER_FRAME * self.queued)
        self.queued = 0
        self.runs += 1
        self.record_cycles += result.pricer_stamps
        for record in result.records:
            if record.flags:
                raise StandInError(f"the fabric sent a record with flags {record.flags}: the "
                                   f"DMA would write it as if it were whole")
            if self.top.back_half_on_host and record.dest == DEST_QUOTE:
                raise StandInError("the fabric standing in for feed_path made a quote record")
            self.streams[self._stream_of(record.dest)].append(bytes(record.data))
        for mm2s, _ in self.engines.values():
            if mm2s is not None:
                mm2s.complete_send()
        for dma in self.streams:
            self.deliver(self.engines[dma][1])

    def _stream_of(self, dest: int) -> str:
        """The DMA taking a record: the feed path's top sends feed events on
        a stream of their own (``m_feed_event``), everything else is ``m_axis``."""
        if dest == DEST_FEED_EVENT and "m_feed_event" in self.record_dmas:
            return self.record_dmas["m_feed_event"]
        return self.record_dmas["m_axis"]

    def deliver(self, engine: DmaChannelEngine) -> None:
        stream = self.streams[engine.name]
        if engine.armed and stream:
            engine.receive(stream.popleft())

    def inject_record(self, data: bytes, dma: str = "record_dma") -> None:
        """A packet on a record stream that the fabric did not make."""
        self.streams[dma].append(bytes(data))
        self.deliver(self.engines[dma][1])


# ---- the pynq surface ------------------------------------------------------------------
BOARDS: dict[str, StandInBoard] = {}


def install(board: StandInBoard, bitfile: str | Path) -> None:
    """``board`` is what an Overlay of ``bitfile`` programs."""
    BOARDS[str(Path(bitfile).resolve())] = board


def board_of(bitfile_name: str) -> StandInBoard:
    path = Path(bitfile_name).resolve()
    if not path.is_file():
        raise IOError(f"Bitstream file {bitfile_name} does not exist.")
    if not path.with_suffix(".hwh").is_file():
        raise ValueError(f"Cannot find HWH file for {bitfile_name}.")
    try:
        return BOARDS[str(path)]
    except KeyError:
        raise StandInError(f"no stand-in board installed for {path}") from None


_ip_drivers: dict[str, type] = {}


class RegisterIP(type):
    """Registers every subclass with a ``bindto`` list under each VLNV and
    under the VLNV without its version, as pynq does."""

    def __init__(cls, name, bases, attrs):
        for vlnv in attrs.get("bindto", ()):
            _ip_drivers[vlnv] = cls
            _ip_drivers[vlnv.rpartition(":")[0]] = cls
        super().__init__(name, bases, attrs)


class MMIO:
    def __init__(self, base_addr, length=4, device=None, **kwargs):
        if base_addr < 0 or length < 0:
            raise ValueError("Base address or length cannot be negative.")
        self.base_addr, self.length, self.device = base_addr, length, device

    def _check(self, offset):
        if offset < 0:
            raise ValueError("Offset cannot be negative.")
        if offset % 4:
            raise MemoryError("Unaligned access: offset must be multiple of 4.")
        if offset + 4 > self.length:
            raise IndexError(f"offset {offset:#x} beyond the {self.length:#x}-byte range")

    def read(self, offset=0, length=4, word_order="little"):
        if length != 4:
            raise StandInError("the stand-in MMIO reads 32-bit words only")
        self._check(offset)
        return self.device.read(self.base_addr + offset)

    def write(self, offset, data):
        self._check(offset)
        if type(data) is not int:
            raise ValueError("Data type must be int or bytes.")
        self.device.write(self.base_addr + offset, data)


class DefaultIP(metaclass=RegisterIP):
    def __init__(self, description):
        self.device = description.get("device")
        self.mmio = MMIO(description["phys_addr"], description["addr_range"], device=self.device)
        self._interrupts = description.get("interrupts", {})
        self._gpio = description.get("gpio", {})

    def read(self, offset=0):
        return self.mmio.read(offset)

    def write(self, offset, value):
        self.mmio.write(offset, value)


class PynqBuffer(np.ndarray):
    """An array in stand-in DDR: the CPU's copy, synchronised by flush / invalidate."""

    def __new__(cls, shape, dtype, board: StandInBoard):
        self = super().__new__(cls, shape, dtype)
        self.fill(0)
        self.board = board
        self.device_address = board.ddr.allocate(self.nbytes)
        self.coherent = False
        self.freed = False
        return self

    def __array_finalize__(self, obj):
        if obj is not None and isinstance(obj, PynqBuffer) and hasattr(obj, "board"):
            self.board = obj.board
            self.coherent = obj.coherent
            self.freed = obj.freed
            offset = self.__array_interface__["data"][0] - obj.__array_interface__["data"][0]
            self.device_address = obj.device_address + offset

    @property
    def physical_address(self):
        return self.device_address

    @property
    def cacheable(self):
        return not self.coherent

    def flush(self):
        self.board.ddr.write(self.device_address, self.tobytes())

    def invalidate(self):
        data = self.board.ddr.read(self.device_address, self.nbytes)
        self[...] = np.frombuffer(data, dtype=self.dtype).reshape(self.shape)

    def freebuffer(self):
        if not self.freed:
            self.freed = True
            self.board.ddr.free(self.device_address)

    def close(self):
        warnings.warn(".close no longer functional - use scopes to manage buffers",
                      DeprecationWarning)


ACTIVE: list[StandInBoard] = []


def allocate(shape, dtype="u4", target=None, **kwargs):
    board = target or (ACTIVE[-1] if ACTIVE else None)
    if board is None:
        raise StandInError("allocate before any overlay: no device")
    return PynqBuffer(shape, dtype, board)


class _SDMAChannel:
    """One channel of the AXI DMA in direct register mode, programmed as
    pynq's channel programs it (start, then per transfer address and length;
    wait polls the status register and reads back the length)."""

    def __init__(self, mmio, max_size, width, tx_rx, dre, interrupt=None):
        self._mmio, self._max_size, self._align, self._dre = mmio, max_size, width, dre
        self._interrupt = interrupt
        self._offset = 0x00 if tx_rx == 1 else S2MM_OFFSET
        self._flush_before = tx_rx == 1
        self._active_buffer = None
        self._first_transfer = True
        self.transferred = 0
        self.start()

    @property
    def running(self):
        return self._mmio.read(self._offset + DMASR) & SR_HALTED == 0

    @property
    def idle(self):
        return self._mmio.read(self._offset + DMASR) & SR_IDLE == SR_IDLE

    @property
    def error(self):
        return self._mmio.read(self._offset + DMASR) & 0x70 != 0

    def start(self):
        self._mmio.write(self._offset + DMACR, CR_RUN)
        while not self.running:
            pass
        self._first_transfer = True

    def stop(self):
        self._mmio.write(self._offset + DMACR, 0)
        while self.running:
            pass

    def transfer(self, array, start=0, nbytes=0):
        if not self.running:
            raise RuntimeError("DMA channel not started")
        if not self.idle and not self._first_transfer:
            raise RuntimeError("DMA channel not idle")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes > self._max_size:
            raise ValueError(f"Transfer size is {nbytes} bytes, which exceeds the maximum "
                             f"DMA buffer size {self._max_size}.")
        if not self._dre and (array.physical_address + start) % self._align:
            raise RuntimeError("DMA does not support unaligned transfers")
        if self._flush_before:
            array.flush()
        self.transferred = 0
        address = array.physical_address + start
        self._mmio.write(self._offset + ADDRESS, address & 0xFFFF_FFFF)
        self._mmio.write(self._offset + ADDRESS_MSB, address >> 32)
        self._mmio.write(self._offset + LENGTH, nbytes)
        self._active_buffer = array
        self._first_transfer = False

    def wait(self):
        if not self.running:
            raise RuntimeError("DMA channel not started")
        while True:
            status = self._mmio.read(self._offset + DMASR)
            if status & SR_INTERNAL_ERROR:
                raise RuntimeError("DMA Internal Error (transfer length 0?)")
            if status & SR_SLAVE_ERROR:
                raise RuntimeError("DMA Slave Error (cannot access memory map interface)")
            if status & SR_DECODE_ERROR:
                raise RuntimeError("DMA Decode Error (invalid address)")
            if status & SR_IDLE:
                break
        if not self._flush_before:
            self._active_buffer.invalidate()
        self.transferred = self._mmio.read(self._offset + LENGTH)
        self._active_buffer = None


class DMA(DefaultIP):
    def __init__(self, description, *args, **kwargs):
        if args or kwargs:
            raise RuntimeError("the old DMA driver interface is not supported")
        super().__init__(description=description)
        self.description = description
        parameters = description["parameters"]
        if parameters.get("c_include_sg", "0") == "1":
            raise StandInError("the stand-in DMA has no scatter-gather mode")
        self.buffer_max_size = (1 << int(parameters.get("c_sg_length_width", 26))) - 1
        self.sendchannel = self.recvchannel = None
        if parameters.get("c_include_mm2s") == "1":
            self.sendchannel = _SDMAChannel(
                self.mmio, self.buffer_max_size,
                int(parameters["c_m_axi_mm2s_data_width"]) >> 3, 1,
                parameters.get("c_include_mm2s_dre", "0") == "1")
        if parameters.get("c_include_s2mm") == "1":
            self.recvchannel = _SDMAChannel(
                self.mmio, self.buffer_max_size,
                int(parameters["c_m_axi_s2mm_data_width"]) >> 3, 0,
                parameters.get("c_include_s2mm_dre", "0") == "1")

    bindto = [AXI_DMA_VLNV]


def overlay_class(drivers: dict[str, type], default_ip: type, device_of=lambda board: board,
                  on_program=lambda board: None) -> type:
    """An Overlay over stand-in boards: drivers found in ``drivers`` (a
    pynq-style registry) or ``default_ip``; ``device_of`` gives the device
    an IP description carries."""

    class Overlay:
        def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False,
                     device=None, gen_cache=False):
            self.bitfile_name = str(Path(bitfile_name).resolve())
            self.dtbo = dtbo
            self._board = board_of(bitfile_name)
            self.device = device or device_of(self._board)
            self.ip_dict = copy.deepcopy(self._board.ip_dict())
            self._drivers = {}
            self._loaded = False
            if download:
                self.download()

        def download(self, dtbo=None):
            self._board.reset()
            on_program(self._board)
            self._loaded = True

        def is_loaded(self):
            return self._loaded

        def free(self):
            pass

        def __getattr__(self, key):
            if key.startswith("_") or key not in self.__dict__.get("ip_dict", {}):
                raise AttributeError(f"Could not find IP or hierarchy {key} in overlay")
            if not self.__dict__["_loaded"]:
                raise RuntimeError("Overlay not currently loaded")
            if key not in self._drivers:
                description = dict(self.ip_dict[key], device=self.device)
                driver = drivers.get(description["type"], default_ip)
                self._drivers[key] = driver(description)
            return self._drivers[key]

    return Overlay


def _activate(board: StandInBoard) -> None:
    if board in ACTIVE:
        ACTIVE.remove(board)
    ACTIVE.append(board)


def standin_module() -> types.ModuleType:
    """The stand-in as a module named ``pynq`` (with ``pynq.lib.dma``)."""
    module = types.ModuleType("pynq", "stand-in for pynq (tests/runtime/pynq_standin.py)")
    module.__version__ = "4.0.0-standin"
    module.Overlay = overlay_class(_ip_drivers, DefaultIP, on_program=_activate)
    module.DefaultIP, module.MMIO, module.allocate = DefaultIP, MMIO, allocate
    module.PynqBuffer = PynqBuffer
    lib = types.ModuleType("pynq.lib")
    dma = types.ModuleType("pynq.lib.dma")
    dma.DMA, dma._SDMAChannel = DMA, _SDMAChannel
    lib.dma = dma
    module.lib = lib
    return module


def modules() -> dict[str, types.ModuleType]:
    """``sys.modules`` entries that make ``import pynq`` give the stand-in."""
    module = standin_module()
    return {"pynq": module, "pynq.lib": module.lib, "pynq.lib.dma": module.lib.dma}


# ---- the same hardware under the real pynq -----------------------------------------------
def real_pynq_device_class():
    """A ``pynq.Device`` over a stand-in board, for running pynq's own
    DefaultIP, MMIO, allocate and DMA driver on it (needs pynq importable)."""
    import pynq
    from pynq.buffer import PynqBuffer as RealBuffer

    class StandInDevice(pynq.Device):
        def __init__(self, board: StandInBoard):
            super().__init__("zynqmm-standin")
            self.board = board
            self.capabilities = {"REGISTER_RW": True}
            self._backing: dict[int, np.ndarray] = {}

        def read_registers(self, address, length):
            if length != 4:
                raise StandInError("32-bit register reads only")
            return int(self.board.read(address)).to_bytes(4, "little")

        def write_registers(self, address, data):
            if len(data) != 4:
                raise StandInError("32-bit register writes only")
            self.board.write(address, int.from_bytes(bytes(data), "little"))

        def allocate(self, shape, dtype, **kwargs):
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            address = self.board.ddr.allocate(nbytes)
            backing = np.zeros(nbytes, dtype=np.uint8)
            self._backing[address] = backing
            return RealBuffer(shape, dtype, buffer=backing, device=self, device_address=address,
                              bo=address, coherent=False)

        def flush(self, bo, offset, vaddr, nbytes):
            self.board.ddr.write(bo + offset, ctypes.string_at(vaddr, nbytes))

        def invalidate(self, bo, offset, vaddr, nbytes):
            data = self.board.ddr.read(bo + offset, nbytes)
            ctypes.memmove(vaddr, data, nbytes)

    return StandInDevice


def is_standin(module) -> bool:
    return getattr(module, "__version__", "").endswith("-standin")


__all__ = ["StandInBoard", "StandInError", "BusError", "install", "modules", "standin_module",
           "overlay_class", "real_pynq_device_class", "is_standin"]
