"""The ``rtl`` backend: the fabric's generated Verilog under Verilator.

:class:`RtlFabric` keeps one simulator process (the server of
:mod:`rtl.fabric.server`, built once under ``build/sim/fabric-server/`` and
reused while the Verilog is unchanged) and talks to it the way the board
backend talks to the bitstream: register writes and reads at the register
map's offsets, frames into the feed inputs, records off the host stream.

* :meth:`RtlFabric.load` resets the simulated fabric and writes
  :func:`host.runtime.registers.register_writes` -- the same writes the
  board gets -- then runs until the fabric is idle (the order book clears
  its table after reset).
* :meth:`RtlFabric.push` drives the frames one at a time, each once the
  fabric is idle after the one before (serial mode of the server): the
  records of a frame are all out before the next frame goes in, which is the
  pace :class:`~rtl.fabric.model.FabricModel` describes (every walk taken
  right after its record).  ``arrival_ns`` is not used: the fabric stamps
  records with its own cycle counter, here the simulated one, so the risk
  gate's rate windows see the simulation's pace, not the capture's.
* :attr:`RtlFabric.record_cycles` is that pace, exactly: the ingress stamp
  the pricer gave every book record since the last load, in record order
  (read inside the simulated fabric by the server).  The model stamped with
  the same values (:class:`host.replay.stamps.StampedModelFabric`) decides
  every rate window as the simulated fabric did, which is how a run on this
  backend is compared with the model.
* Records come back whole, ``tdest`` saying which layout each has
  (:mod:`rtl.fabric.hdl`); :meth:`RtlFabric.poll` hands them over as a
  :class:`~rtl.fabric.model.FabricOutput`.  A record of the wrong length,
  with a frame error or with ``tdest`` changing inside it is a fault of the
  design, raised as :class:`~host.runtime.fabric.FabricError`.
* :meth:`RtlFabric.set_kill` and :meth:`RtlFabric.set_position` are register
  writes (:class:`host.runtime.registers.FabricRegisters`); a kill's cancel
  records come with the next poll.  :meth:`RtlFabric.counters` reads every
  ``COUNT_*`` register.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterable

from host.runtime.fabric import (IDLE_PROBES, Fabric, FabricError, add_record, idle_probes,
                                 read_counters)
from host.runtime.registers import FabricRegisters, RegisterConfigError
from rtl.common.axil import RESP_OKAY
from rtl.fabric.hdl import FABRIC_CHAIN
from rtl.fabric.model import FabricConfig, FabricOutput
from rtl.fabric.server.client import (RECORD_MIXED_DEST, RECORD_USER, FabricServer, Record,
                                      ServerError)
from rtl.feed_path.model import Frame

__all__ = ["RtlFabric", "fabric_output", "idle_probes", "IDLE_PROBES"]

log = logging.getLogger(__name__)

# Cycles without a handshake before the busy registers are read: longer than
# any stage's latency (the pricer's 31 is the longest), shorter than any
# gap worth waiting for.
QUIET_CYCLES = 64
# A run that does not come to idle within this many cycles is a hang: far
# more than a frame takes, order-table scans included.
RUN_CYCLES_BASE = 200_000
RUN_CYCLES_PER_FRAME = 50_000


def fabric_output(records: Iterable[Record]) -> FabricOutput:
    """The host stream's records sorted into a FabricOutput, each checked."""
    out = FabricOutput()
    for i, record in enumerate(records):
        if record.flags & RECORD_MIXED_DEST:
            raise FabricError(f"record {i}: tdest changed inside the record")
        if record.flags & RECORD_USER:
            raise FabricError(f"record {i} (tdest {record.dest}) carries a frame error")
        add_record(out, record.dest, record.data, f"record {i}")
    return out


class RtlFabric(Fabric):
    backend = "rtl"

    def __init__(self, core_mhz: float = 250.0, executable=None,
                 quiet_cycles: int = QUIET_CYCLES):
        from rtl.fabric.server.build import server_executable

        self.core_mhz = core_mhz
        self.quiet_cycles = quiet_cycles
        try:
            executable = executable or server_executable(log=log.info)
            self.server = FabricServer(executable)
        except (RuntimeError, OSError) as exc:
            raise FabricError(f"cannot start the fabric simulator: {exc}") from exc
        self.registers: FabricRegisters | None = None
        self._pending = FabricOutput()
        self.last_run = None
        self.record_cycles: list[int] = []

    def _loaded(self) -> FabricRegisters:
        if self.registers is None:
            raise FabricError("the fabric has no configuration loaded")
        return self.registers

    @contextmanager
    def _simulator(self):
        """Simulator failures as FabricError; the fabric needs a load after one."""
        try:
            yield self.server
        except ServerError as exc:
            self.registers = None
            raise FabricError(f"the fabric simulator failed: {exc}") from exc

    def _write(self, writes) -> None:
        with self._simulator() as server:
            responses = server.write(writes)
        bad = [(hex(a), r) for (a, _), r in zip(writes, responses) if r != RESP_OKAY]
        if bad:
            raise FabricError(f"register writes refused: {bad[:8]}")

    def _run(self, frames: int = 0) -> None:
        with self._simulator() as server:
            self.last_run = server.run(
                serial=True, quiet_cycles=self.quiet_cycles,
                max_cycles=RUN_CYCLES_BASE + RUN_CYCLES_PER_FRAME * frames)
        out = fabric_output(self.last_run.records)
        # A run ends idle, so every record the pricer took has reached the
        # host too: the two counts differ only if the fabric lost or made one.
        stamps = self.last_run.pricer_stamps
        if len(stamps) != len(out.book):
            raise FabricError(f"the pricer took {len(stamps)} book records, the host stream "
                              f"carried {len(out.book)}")
        self.record_cycles += stamps
        self._pending.extend(out)

    def _read(self, addresses: list[int]) -> list[tuple[int, int]]:
        with self._simulator() as server:
            return server.read(addresses)

    # ---- the Fabric interface -----------------------------------------------------------
    def load(self, config: FabricConfig) -> None:
        try:
            registers = FabricRegisters(config, FABRIC_CHAIN)
            writes = registers.load()
        except RegisterConfigError as exc:
            raise FabricError(f"the configuration does not fit the fabric: {exc}") from exc
        self.registers = None
        with self._simulator() as server:
            server.reset()
            server.probes(idle_probes())
        self._pending = FabricOutput()
        self.record_cycles = []
        self._write(writes)
        self.registers = registers
        self._run()

    def push(self, frames: Iterable[Frame], arrival_ns: Iterable[int] | None = None) -> None:
        self._loaded()
        with self._simulator() as server:
            queued = server.frames(frames)
        if queued:
            self._run(queued)

    def poll(self) -> FabricOutput:
        out, self._pending = self._pending, FabricOutput()
        return out

    def set_kill(self, kill: bool) -> None:
        self._write(self._loaded().kill(kill))
        self._run()

    def set_position(self, option_id: int, contracts: int) -> None:
        try:
            writes = self._loaded().position(option_id, contracts)
        except RegisterConfigError as exc:
            raise FabricError(str(exc)) from exc
        self._write(writes)

    def counters(self) -> dict[str, dict[str, int]]:
        self._loaded()
        return read_counters(lambda offsets: [value for value, _ in self._read(offsets)])

    def read_registers(self, names: Iterable[str]) -> dict[str, int]:
        """Registers by ``block.REGISTER`` name (for checks and status)."""
        from rtl.regmap.driver import register_offsets

        offsets = register_offsets()
        names = list(names)
        values = self._read([offsets[n] for n in names])
        bad = [n for n, (_, resp) in zip(names, values) if resp != RESP_OKAY]
        if bad:
            raise FabricError(f"register reads refused: {bad}")
        return {n: value for n, (value, _) in zip(names, values)}

    def close(self) -> None:
        self.server.close()
