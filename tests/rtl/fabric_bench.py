"""cocotb bench of the whole fabric, the sessions the RTL test plays on it, and
:func:`measure`, the tick-to-quote latency for ``make rtl-report``.

Inside the simulator ``run_stimulus`` plays ``$ZYNQMM_STIMULUS``: the load
writes (:func:`host.runtime.registers.register_writes`), then steps in order
-- a frame on its feed's input, register writes made once the fabric is
idle, a stretch with the host stream's ``tready`` held low -- with random
backpressure on ``m_axis`` when asked.  *Idle* is what the simulator server
means by it (:mod:`rtl.fabric.server`): no handshake and nothing valid for
:data:`QUIET_CYCLES`, then the busy bits of :data:`host.runtime.rtl_fabric.IDLE_PROBES`
read clear.  It writes every record with the cycles of its first and last
beats, each frame's last-beat cycle and the registers asked for to
``$ZYNQMM_RUN_DIR/observed.json``.

Outside it, :class:`Session` builds a stimulus and, step by step, what
:class:`rtl.fabric.model.FabricModel` says the fabric sends for it;
:func:`capture_session` is the shipped capture with a small option table
loaded the way the host loads it (``host.runtime.plan.fabric_config``).
"""
from __future__ import annotations

import json

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event, FallingEdge, RisingEdge

from tests.rtl.bench_common import (axil_master, load_json_stimulus, pauses, quiet_drivers,
                                    start_and_reset, write_observed)

# Cycles without a handshake before the busy bits are read: above the
# longest silent stretch of the path (the pricer's 31 cycles from a record's
# last beat to its first theo word).
QUIET_CYCLES = 40
CLOCK_LIMIT = 2_000_000


class Bench:
    def __init__(self, dut, stimulus: dict):
        quiet_drivers("fabric", ("s_axil",))
        self.dut = dut
        self.axil = axil_master(dut)
        self.cycle = 0
        self.quiet = 0
        self.driving = False
        self.hold_until = 0
        self.held = Event()
        self.sink_pause = pauses(stimulus["sink_pause"], stimulus["seed"])
        self.source_pause = pauses(stimulus["source_pause"], stimulus["seed"] + 1)
        self.probes = stimulus["probes"]
        self.records: list[list] = []
        self.current: dict | None = None
        self.frame_last: list[int] = []
        self.inputs = [(getattr(dut, f"s_axis_{f}_tvalid"), getattr(dut, f"s_axis_{f}_tready"),
                        getattr(dut, f"s_axis_{f}_tlast")) for f in "ab"]

    async def monitor(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            moved = False
            for valid, ready, last in self.inputs:
                if int(valid.value) and int(ready.value):
                    moved = True
                    if int(last.value):
                        self.frame_last.append(self.cycle)
            out_valid = int(dut.m_axis_tvalid.value)
            if out_valid:
                dest = int(dut.m_axis_tdest.value)
                if self.current is None:
                    self.current = {"dest": dest, "data": bytearray(), "user": 0, "mixed": 0,
                                    "first": self.cycle}
                if int(dut.m_axis_tready.value):
                    moved = True
                    record = self.current
                    keep = int(dut.m_axis_tkeep.value)
                    record["data"] += int(dut.m_axis_tdata.value).to_bytes(8, "little")[
                        :keep.bit_length()]
                    record["user"] |= int(dut.m_axis_tuser.value)
                    record["mixed"] |= int(dest != record["dest"])
                    if int(dut.m_axis_tlast.value):
                        self.records.append([record["dest"], record["data"].hex(), record["first"],
                                             self.cycle, record["user"], record["mixed"]])
                        self.current = None
            busy = moved or out_valid or self.driving
            self.quiet = 0 if busy else self.quiet + 1
            if self.cycle > CLOCK_LIMIT:
                raise RuntimeError(f"no end after {CLOCK_LIMIT} cycles")

    async def sink(self, pause: float) -> None:
        dut = self.dut
        if not pause:
            # Ready unless held: only the hold's edges need a cycle of ours.
            dut.m_axis_tready.value = 1
            while True:
                await self.held.wait()
                self.held.clear()
                dut.m_axis_tready.value = 0
                await ClockCycles(dut.clk, self.hold_until - self.cycle)
                dut.m_axis_tready.value = 1
        while True:
            await FallingEdge(dut.clk)
            paused = next(self.sink_pause)
            dut.m_axis_tready.value = 0 if self.cycle < self.hold_until or paused else 1

    async def send_frame(self, feed: int, data: bytes, error: bool) -> None:
        from rtl.common.axis import to_beats

        dut = self.dut
        prefix = "s_axis_" + "ab"[feed]
        tdata, tkeep, tlast, tuser, tvalid, tready = (
            getattr(dut, f"{prefix}_{name}")
            for name in ("tdata", "tkeep", "tlast", "tuser", "tvalid", "tready"))
        self.driving = True
        for beat in to_beats(data, error):
            await FallingEdge(dut.clk)
            while next(self.source_pause):
                tvalid.value = 0
                await FallingEdge(dut.clk)
            tdata.value, tkeep.value = beat.tdata, beat.tkeep
            tlast.value, tuser.value = int(beat.tlast), int(beat.tuser)
            tvalid.value = 1
            while True:
                await RisingEdge(dut.clk)
                if int(tready.value):
                    break
        await FallingEdge(dut.clk)
        tvalid.value = 0
        self.driving = False

    async def read(self, address: int) -> tuple[int, int]:
        result = await self.axil.read(address, 4)
        return int.from_bytes(result.data, "little"), int(result.resp)

    async def write(self, address: int, value: int) -> int:
        result = await self.axil.write(address, int(value).to_bytes(4, "little"))
        return int(result.resp)

    async def wait_idle(self) -> None:
        while True:
            start = self.cycle
            while self.quiet < QUIET_CYCLES or self.cycle < start + 1:
                await RisingEdge(self.dut.clk)
            busy = False
            for address, mask in self.probes:
                value, resp = await self.read(address)
                busy = busy or resp != 0 or bool(value & mask)
            if not busy:
                return


@cocotb.test()
async def run_stimulus(dut):
    stimulus = load_json_stimulus()
    bench = Bench(dut, stimulus)
    await start_and_reset(dut, idle_low=("s_axis_a_tvalid", "s_axis_b_tvalid", "m_axis_tready"))
    cocotb.start_soon(bench.monitor())
    cocotb.start_soon(bench.sink(stimulus["sink_pause"]))
    refused = []
    for address, value in stimulus["load"]:
        if await bench.write(address, value):
            refused.append(address)
    await bench.wait_idle()
    for step in stimulus["steps"]:
        kind = step[0]
        if kind == "frame":
            _, feed, data, error, idle_before, idle_after = step
            if idle_before:
                await bench.wait_idle()
            await bench.send_frame(feed, bytes.fromhex(data), bool(error))
            if idle_after:
                await bench.wait_idle()
        elif kind == "writes":
            await bench.wait_idle()
            for address, value in step[1]:
                if await bench.write(address, value):
                    refused.append(address)
        elif kind == "hold":
            bench.hold_until = bench.cycle + step[1]
            bench.held.set()
        else:
            raise ValueError(f"unknown step {kind!r}")
    await bench.wait_idle()
    reads = {}
    for name, address in stimulus["reads"]:
        reads[name] = list(await bench.read(address))
    write_observed({"records": bench.records, "frame_last": bench.frame_last, "reads": reads,
                    "refused_writes": refused, "cycles": bench.cycle})


# ---- outside the simulator -------------------------------------------------------------
# The option table of the RTL sessions: the shipped capture's four stocks
# with a few options each, loaded as the appliance loads its configuration.
# The risk gate's rate window is one cycle: the model stamps records with
# their index, the fabric with its cycle counter, so only a window no two
# records share makes the rate rule decide alike on both (the rule itself is
# checked by the gate's own tests).
SESSION_CONFIG = """
[appliance]
name = "rtl-test"
backend = "rtl"

[feed]
a = "233.54.12.1:26400"
b = "233.54.12.2:26400"

[[chains]]
underlying = "AAPL"
strikes = [185, 190, 195]
expiries_days = [30]
sigma = 0.28

[[chains]]
underlying = "NVDA"
strikes = [115, 120, 125]
expiries_days = [30]
sigma = 0.55

[[chains]]
underlying = "TSLA"
strikes = [240, 250]
expiries_days = [30]
sigma = 0.6

[[chains]]
underlying = "QQQ"
strikes = [440]
expiries_days = [30, 90]
sigma = 0.2

[quoting]
half_spread = 0.05
skew_per_contract = 0.001
bid_size = 5
ask_size = 5
requote_threshold = 0.01

[gate]
through_theo_limit = 0.10
max_updates = 255
window_us = 0.004
"""


def session_setup():
    """(AppConfig, Universe, FabricConfig) of :data:`SESSION_CONFIG` on the
    shipped clean day."""
    from host.runtime.chains import build_universe
    from host.runtime.cli import DEMO_CAPTURE
    from host.runtime.config import parse_config
    from host.runtime.directory import stock_locates
    from host.runtime.plan import fabric_config

    app = parse_config(SESSION_CONFIG, "fabric_bench")
    locates = stock_locates(DEMO_CAPTURE, [c.underlying for c in app.chains])
    universe = build_universe(app.chains, locates)
    return app, universe, fabric_config(app, universe)


def capture_frames(app, count: int) -> list:
    """The first ``count`` frames of the shipped clean day, each on its feed."""
    from host.runtime.cli import DEMO_CAPTURE
    from host.runtime.ingest import replay_batches

    frames = []
    for batch, _ in replay_batches(DEMO_CAPTURE, app.feed.addresses(), 512):
        frames += batch
        if len(frames) >= count:
            break
    return frames[:count]


def mold_sequence(frame) -> tuple[int, str]:
    """(first sequence number, ITCH message types) of a frame's Mold packet."""
    from host.pcap.frames import parse_frame
    from host.protocols import moldudp64

    packet = moldudp64.decode_packet(parse_frame(frame.data).payload)
    return packet.sequence_number, "".join(chr(m[0]) for m in packet.messages)


class Session:
    """A stimulus for ``run_stimulus`` and the model's output for it."""

    def __init__(self, config):
        from host.runtime.registers import FabricRegisters
        from host.runtime.rtl_fabric import idle_probes
        from rtl.fabric.hdl import FABRIC_CHAIN
        from rtl.fabric.model import FabricModel, FabricOutput

        self.config = config
        self.model = FabricModel(config)
        self.registers = FabricRegisters(config, FABRIC_CHAIN)
        self.load = self.registers.load()
        self.probes = idle_probes()
        self.steps: list = []
        self.expected = FabricOutput()
        self.frames: list = []          # (frame, its model output, step index)
        self.lost_sequence: int | None = None

    def frame(self, frame, paced: bool = True) -> None:
        """One frame; ``paced``: a frame that makes records goes into an idle
        fabric and the next step waits until it is idle again (the pace the
        model describes: every walk done before the next record)."""
        out = self.model.process(frame)
        self.expected.extend(out)
        busy = bool(out.book or out.quotes or out.feed_events) and paced
        self.frames.append((frame, out, len(self.steps)))
        self.steps.append(["frame", frame.feed, frame.data.hex(), int(frame.error), busy, busy])

    def kill(self, kill: bool) -> None:
        self.expected.extend(self.model.set_kill(kill))
        self.steps.append(["writes", self.registers.kill(kill)])

    def position(self, option_id: int, contracts: int) -> None:
        self.model.set_position(option_id, contracts)
        self.steps.append(["writes", self.registers.position(option_id, contracts)])

    def hold(self, cycles: int) -> None:
        self.steps.append(["hold", cycles])

    def stimulus(self, reads, sink_pause: float = 0.0, source_pause: float = 0.0,
                 seed: int = 5) -> dict:
        return {"load": self.load, "steps": self.steps, "probes": self.probes,
                "reads": list(reads), "sink_pause": sink_pause, "source_pause": source_pause,
                "seed": seed}


# Where the capture session does what (frame indices into the capture).
CAPTURE_FRAMES = 880
POSITION_AT, KILL_AT, UNKILL_AT, GAP_FROM = 500, 630, 660, 820
POSITION = (1, 7)             # option 1 (AAPL) holds 7 contracts: its quotes skew


def capture_session(count: int = CAPTURE_FRAMES, events: bool = True, paced: bool = True,
                    holds: dict[int, int] | None = None):
    """The first ``count`` frames of the clean day through the loaded fabric;
    with ``events``, a position write, a kill and its release, and one data
    packet lost on both feeds (a sequence gap: stale books, pulled quotes,
    feed event records).  ``paced``: see :meth:`Session.frame`; ``holds``:
    frame index -> cycles the host stream is held from there on."""
    from rtl.fabric.model import FabricModel

    app, universe, config = session_setup()
    frames = capture_frames(app, count)
    session = Session(config)
    lost = None
    if events:
        probe = FabricModel(config)
        made_updates = [any(r.dest == 0 for r in probe.process(f).book) for f in frames]
        lost = next(mold_sequence(frames[i])[0] for i in range(GAP_FROM, len(frames))
                    if made_updates[i])
    for i, frame in enumerate(frames):
        if events and i == POSITION_AT:
            session.position(*POSITION)
        if events and i == KILL_AT:
            session.kill(True)
        if events and i == UNKILL_AT:
            session.kill(False)
        if holds and i in holds:
            session.hold(holds[i])
        seq, types = mold_sequence(frame)
        if lost is not None and seq == lost and types:
            continue
        session.frame(frame, paced)
    session.lost_sequence = lost
    return session


def run_session(build, name: str, session: Session, reads=(), **kw) -> dict:
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "stimulus.json"
    path.write_text(json.dumps(session.stimulus(reads, **kw)))
    build.run("tests.rtl.fabric_bench", name, testcase="run_stimulus",
              extra_env={"ZYNQMM_STIMULUS": str(path)})
    return json.loads((run_dir / "observed.json").read_text())


def tick_to_quote(session: Session, observed: dict) -> list[dict]:
    """Per frame that went into an idle fabric and made quote records: its
    message types, the cycle of its last beat, the first and last beat of
    the book update that started the pricing, the first beat of the first
    record after it, its kind (a pull's CANCEL follows the word that pulled),
    and its place in its walk (``row``: rows of the walk before its option,
    each a cycle more through the quoter; the gate sends nothing for an
    option whose quote did not move)."""
    from host.book.records import BOOK_UPDATE_DTYPE
    from host.quoting.records import QUOTE_DTYPE
    from rtl.fabric.hdl import DEST_BOOK_UPDATE, DEST_QUOTE

    first_row = {entry.locate: entry.first for entry in session.config.underlyings}
    records = observed["records"]
    lasts = observed["frame_last"]
    out = []
    for k, (frame, result, step) in enumerate(session.frames):
        if not (result.quotes and session.steps[step][4]):
            continue
        start = lasts[k]
        end = lasts[k + 1] if k + 1 < len(lasts) else float("inf")
        mine = [r for r in records if start < r[2] <= end]
        quotes = [r for r in mine if r[0] == DEST_QUOTE]
        quote = np.frombuffer(bytes.fromhex(quotes[0][1]), QUOTE_DTYPE)[0]
        # The update that started the pricing carries the quote's trigger.
        updates = [r for r in mine if r[0] == DEST_BOOK_UPDATE
                   and np.frombuffer(bytes.fromhex(r[1]), BOOK_UPDATE_DTYPE)[0]["seq"]
                   == quote["seq"]]
        out.append({"frame": k, "types": mold_sequence(frame)[1], "frame_last": start,
                    "update_first": updates[-1][2], "update_last": updates[-1][3],
                    "quote_first": quotes[0][2],
                    "kind": int(quote["kind"]),
                    "row": int(quote["option_id"]) - first_row[int(quote["underlying"])],
                    "ingress_cycle": int(quote["ingress_cycle"]),
                    "egress_cycle": int(quote["egress_cycle"])})
    return out


def latency_figures(session: Session, observed: dict) -> dict:
    """The shortest tick to quote over single-message frames whose walk's
    first option made the first record, a QUOTE, and the first such figure
    of each message type."""
    from host.quoting.records import KIND_QUOTE

    samples = tick_to_quote(session, observed)
    by_type: dict[str, int] = {}
    for s in samples:
        if len(s["types"]) == 1 and s["row"] == 0 and s["kind"] == KIND_QUOTE:
            by_type.setdefault(s["types"], s["quote_first"] - s["frame_last"])
    if not by_type:
        raise RuntimeError("no frame made a quote record of its walk's first option")
    return {"tick_to_quote_cycles": min(by_type.values()),
            "tick_to_quote_by_type_cycles": by_type}


def measure() -> dict:
    """Tick-to-quote on the fabric's Verilog (Verilator unless $SIM): from
    the input beat holding the last byte of a frame's ITCH message to the
    first beat of the first quote record it causes, the fabric idle before,
    the host taking records at once; the shortest over the session's message
    types, and the first figure of each type."""
    from rtl.fabric.server.build import cocotb_build

    build = cocotb_build()
    session = capture_session(count=GAP_FROM, events=False)
    observed = run_session(build, "measure", session)
    return latency_figures(session, observed)


if __name__ == "__main__":
    print(json.dumps(measure()))
