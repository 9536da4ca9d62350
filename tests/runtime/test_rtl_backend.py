"""The ``rtl`` backend against the ``model`` backend.

Both run on the same timing: the model takes the simulated fabric's stamp
of every book record (``RtlFabric.record_cycles``, as a
:class:`host.replay.stamps.StampedModelFabric`), so the risk gate's rate
windows -- on, as the demo configures them, and binding at the simulator's
pace -- decide alike on both.

* The fabric interface: the same frames of the shipped clean day through
  ModelFabric and RtlFabric (the fabric's Verilog in the simulator server)
  give the same book records, feed events and quote records (ingress stamps
  included, egress stamps excepted: the model has no output clock), the
  same records for a kill and after a position write, and the same
  counters, rate-limited updates among them.
* The appliance as ``host.runtime.demo`` runs it (exchange simulator on
  loopback, the demo configuration) sends the same OUCH requests on both
  backends.  Made deterministic by the driver, not by luck: frames go in
  batches and after each batch the loop waits until the exchange has
  answered every request (``Appliance.settle``), so the trader decides on
  the same order states on both backends however long a backend takes; no
  counterparty crowd (no fills, which a seeded crowd would make depend on
  quote timing), and the pre-trade throttle, which counts wall-clock
  seconds, is off.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os

import numpy as np
import pytest

from host.journal import Journal
from host.protocols import ouch50
from host.quoting.records import KIND_CANCEL, QUOTE_DTYPE, REASON_KILL
from host.runtime.app import JOURNAL_NAME, Appliance
from host.runtime.chains import build_universe
from host.runtime.cli import DEMO_CAPTURE, DEMO_CONFIG
from host.runtime.config import load_config
from host.runtime.directory import stock_locates
from host.runtime.fabric import FabricError, ModelFabric, open_fabric
from host.runtime.ingest import replay_batches
from host.runtime.plan import fabric_config
from host.runtime.registers import (FabricRegisters, RegisterConfigError, describe,
                                    register_writes)
from host.replay.stamps import StampedModelFabric, StampError
from host.runtime.plan import CORE_MHZ
from host.runtime.rtl_fabric import RtlFabric, fabric_output
from rtl.fabric.hdl import DEST_QUOTE, FABRIC_CHAIN
from rtl.pricer_chain.model import Entry

FRAMES = 1200
MORE_FRAMES = 400
APPLIANCE_FRAMES = 1200
BATCH = 100
APPLIANCE_BATCH = 16


def demo_config(backend: str = "model"):
    """The demo configuration on ``backend`` without the wall-clock throttle."""
    config = load_config(DEMO_CONFIG)
    throttle = config.risk.throttle.model_copy(update={
        name: None for name in ("orders_per_second", "orders_per_window", "cancels_per_second",
                                "cancels_per_window", "messages_per_second",
                                "messages_per_window")})
    return config.model_copy(update={
        "risk": config.risk.model_copy(update={"throttle": throttle}),
        "appliance": config.appliance.model_copy(update={"backend": backend})})


def demo_setup(count: int):
    """The demo configuration, its option universe and fabric configuration,
    and the shipped day's first ``count`` frames with their capture stamps."""
    config = demo_config()
    locates = stock_locates(DEMO_CAPTURE, [c.underlying for c in config.chains])
    universe = build_universe(config.chains, locates)
    frames, stamps = [], []
    for batch, times in replay_batches(DEMO_CAPTURE, config.feed.addresses(), 512):
        frames += batch
        stamps += times
        if len(frames) >= count:
            break
    return config, universe, fabric_config(config, universe), frames[:count], stamps[:count]


@pytest.fixture(scope="module")
def setup():
    return demo_setup(FRAMES + MORE_FRAMES)


@pytest.fixture(scope="module")
def rtl():
    fabric = RtlFabric()
    yield fabric
    fabric.close()


def without_egress(quotes):
    return [{k: v for k, v in q.items() if k != "egress_cycle"} for q in quotes]


def assert_same(model_out, rtl_out) -> None:
    assert [(o.to_bytes(), o.dest) for o in rtl_out.book] == \
        [(o.to_bytes(), o.dest) for o in model_out.book]
    assert [e.tobytes() for e in rtl_out.feed_events] == \
        [e.tobytes() for e in model_out.feed_events]
    assert without_egress(rtl_out.quotes) == without_egress(model_out.quotes)


def test_model_and_rtl_fabrics_send_the_same_records(setup, rtl):
    _, universe, config, frames, stamps = setup
    rtl.load(config)
    model = StampedModelFabric(rtl.record_cycles)
    model.load(config)
    for start in range(0, FRAMES, BATCH):
        rtl.push(frames[start:start + BATCH], stamps[start:start + BATCH])
        model.push(frames[start:start + BATCH], stamps[start:start + BATCH])
    model_out, rtl_out = model.poll(), rtl.poll()
    assert_same(model_out, rtl_out)
    assert len(rtl_out.book) > 150 and len(rtl_out.quotes) > 300
    assert rtl.poll().quotes == []
    # One stamp per book record, rising with the simulated clock; quote
    # records carry the stamp of their trigger and leave later.
    assert len(rtl.record_cycles) == len(rtl_out.book) and model.left() == 0
    assert all(b > a for a, b in zip(rtl.record_cycles, rtl.record_cycles[1:]))
    assert all(q["egress_cycle"] > q["ingress_cycle"] > 0 for q in rtl_out.quotes)
    # The demo's window binds at the simulator's pace, the same updates on both.
    gate = rtl.counters()["risk_gate"]
    assert gate["rate_limited"] > 0 and gate == model.counters()["risk_gate"]

    # A kill pulls every live quote, the same ones on both.
    model.set_kill(True)
    rtl.set_kill(True)
    model_out, rtl_out = model.poll(), rtl.poll()
    assert_same(model_out, rtl_out)
    assert rtl_out.quotes and {(q["kind"], q["reason"]) for q in rtl_out.quotes} == \
        {(KIND_CANCEL, REASON_KILL)}

    # A position skews the next quotes of its option alike.  Every option
    # gets one: the window holds back the busiest ones for the rest of this
    # short stretch, and which ones quote is the gate's business.
    model.set_kill(False)
    rtl.set_kill(False)
    for fabric in (model, rtl):
        for option in universe.options:
            fabric.set_position(option.option_id, -9)
    rtl.push(frames[FRAMES:])
    model.push(frames[FRAMES:], stamps[FRAMES:])
    model_out, rtl_out = model.poll(), rtl.poll()
    assert_same(model_out, rtl_out)
    assert rtl_out.quotes and all(q["position"] == -9 for q in rtl_out.quotes)
    assert rtl.counters() == model.counters()


def test_capture_timing_is_not_the_simulated_fabrics(setup, rtl):
    """Why the model takes the RTL's stamps: on the capture's own times the
    demo's rate window never binds, and the records differ."""
    _, _, config, frames, stamps = setup
    model = ModelFabric()
    model.load(config)
    model.push(frames[:FRAMES], stamps[:FRAMES])
    rtl.load(config)
    rtl.push(frames[:FRAMES])
    assert model.counters()["risk_gate"]["rate_limited"] == 0
    assert rtl.counters()["risk_gate"]["rate_limited"] > 0
    assert without_egress(model.poll().quotes) != without_egress(rtl.poll().quotes)


def test_stamps_that_do_not_fit_the_model_run_are_refused(setup):
    _, _, config, frames, _ = setup
    model = ModelFabric()
    model.load(config)
    model.push(frames[:BATCH])
    records = len(model.poll().book)
    short = StampedModelFabric(list(range(records - 1)))
    short.load(config)
    with pytest.raises(StampError, match=f"book record {records}"):
        short.push(frames[:BATCH])
    extra = StampedModelFabric(list(range(records + 1)))
    extra.load(config)
    extra.push(frames[:BATCH])
    assert extra.left() == 1
    with pytest.raises(StampError, match=f"stamped {records + 1} book records"):
        extra.check_all_used()


def test_rtl_fabric_refuses_what_does_not_fit_and_needs_a_load(setup):
    _, _, config, _, _ = setup
    fabric = RtlFabric()
    try:
        with pytest.raises(FabricError, match="no configuration"):
            fabric.push(setup[3][:1])
        with pytest.raises(FabricError, match="does not fit"):
            fabric.load(dataclasses.replace(config, rows=np.resize(config.rows, 65)))
        fabric.load(config)
        with pytest.raises(FabricError, match="position table"):
            fabric.set_position(64, 1)
    finally:
        fabric.close()


def test_the_server_build_needs_the_pricers_stamp_signals():
    from rtl.fabric.server.build import fabric_verilog, pricer_taps
    from rtl.feed_path.replay.build import BuildError

    verilog = fabric_verilog().read_text()
    assert pricer_taps(verilog) == ("record_fork0_to_pricer", "pricer_chain0_cycle")
    renamed = verilog.replace("pricer_chain0_cycle", "pricer_chain0_ticks")
    with pytest.raises(BuildError, match="counters \\[\\]"):
        pricer_taps(renamed)
    without_valid = verilog.replace("record_fork0_to_pricer_tvalid;", "record_fork0_to_pricer_v;")
    with pytest.raises(BuildError, match="no record_fork0_to_pricer_tvalid"):
        pricer_taps(without_valid)


def test_records_that_are_not_whole_are_design_faults_not_data(setup):
    from rtl.fabric.server.client import RECORD_MIXED_DEST, RECORD_USER, Record

    quote = bytes(QUOTE_DTYPE.itemsize)
    assert len(fabric_output([Record(DEST_QUOTE, quote, 1, 8)]).quotes) == 1
    for record, reason in ((Record(DEST_QUOTE, quote[:56], 1, 7), "56 bytes"),
                           (Record(5, quote, 1, 8), "tdest 5"),
                           (Record(DEST_QUOTE, quote, 1, 8, RECORD_MIXED_DEST), "changed"),
                           (Record(DEST_QUOTE, quote, 1, 8, RECORD_USER), "frame error")):
        with pytest.raises(FabricError, match=reason):
            fabric_output([record])


def test_register_writes_refuse_configurations_the_tables_cannot_hold(setup):
    _, _, config, _, _ = setup
    writes = register_writes(config, FABRIC_CHAIN)
    names = [line.split(" = ")[0] for line in describe(writes)]
    assert {name.split(".")[0] for name in names} == {
        "frame_filter", "frame_filter_b", "itch_decoder", "mold_seq", "order_book",
        "pricer_chain", "quoter", "risk_gate"}
    # Quoting starts only once every table is in place.
    assert names[-1] == "risk_gate.CONTROL"
    too_many = dataclasses.replace(config, underlyings=config.underlyings * 5)
    with pytest.raises(RegisterConfigError, match="underlyings"):
        register_writes(too_many, FABRIC_CHAIN)
    beyond = dataclasses.replace(config, underlyings=(Entry(1, 60, 8, True),))
    with pytest.raises(RegisterConfigError, match="leave"):
        register_writes(beyond, FABRIC_CHAIN)
    registers = FabricRegisters(config, FABRIC_CHAIN)
    registers.load()
    with pytest.raises(RegisterConfigError, match="32 bits"):
        registers.position(0, 1 << 31)


# ---- the appliance -----------------------------------------------------------------------
def requests_sent(state_dir) -> list[tuple]:
    """(type, side, symbol, price, size) of every OUCH request in the
    gateway's journal; replaces and cancels name their order's side and
    symbol."""
    orders: dict[int, tuple[str, str]] = {}
    out = []
    with Journal(state_dir / JOURNAL_NAME) as journal:
        for record in journal:
            if record.kind != "tx":
                continue
            msg = ouch50.decode_inbound(record.payload)
            name = type(msg).__name__
            if isinstance(msg, ouch50.EnterOrder):
                orders[msg.user_ref_num] = (msg.side, msg.symbol)
                out.append((name, msg.side, msg.symbol, msg.price, msg.quantity))
            elif isinstance(msg, ouch50.ReplaceOrderRequest):
                orders[msg.user_ref_num] = orders[msg.orig_user_ref_num]
                out.append((name, *orders[msg.user_ref_num], msg.price, msg.quantity))
            elif isinstance(msg, ouch50.CancelOrderRequest):
                out.append((name, *orders[msg.user_ref_num], None, msg.quantity))
            else:
                out.append((name, None, getattr(msg, "symbol", None), None, None))
    return out


async def run_appliance(backend: str, state_dir, fabric=None) -> tuple[list[tuple], dict, object]:
    from host.exchange.server import ExchangeConfig, ExchangeServer

    config = demo_config(backend)
    exchange = config.exchange
    password = os.environ.setdefault(exchange.password_env, "demo")
    locates = stock_locates(DEMO_CAPTURE, [c.underlying for c in config.chains])
    server = ExchangeServer(ExchangeConfig(users={exchange.username: password},
                                           heartbeat_interval=exchange.heartbeat_interval),
                            journal=state_dir / "exchange.journal")
    port = await server.start("127.0.0.1", 0)
    config = config.model_copy(update={"exchange": exchange.model_copy(
        update={"connect": f"127.0.0.1:{port}"})})
    appliance = Appliance(config, locates, fabric=fabric, state_dir=state_dir)
    try:
        await appliance.connect()
        sent = 0
        for frames, stamps in replay_batches(DEMO_CAPTURE, config.feed.addresses(),
                                             APPLIANCE_BATCH):
            if sent >= APPLIANCE_FRAMES:
                break
            appliance.fabric.push(frames, stamps)
            appliance.handle(appliance.fabric.poll())
            sent += len(frames)
            await appliance.settle()
        await appliance.kill("end of test")
        await appliance.settle()
        summary = appliance.summary()
        summary["settle_timeouts"] = appliance.counts["settle_timeouts"]
    finally:
        await appliance.close()
        await server.shutdown(timeout=0.5)
    return requests_sent(state_dir), summary, appliance.fabric


def test_appliance_sends_the_same_orders_on_both_backends(tmp_path):
    for backend in ("model", "rtl"):
        (tmp_path / backend).mkdir()
    rtl_requests, rtl_summary, rtl_fabric = asyncio.run(run_appliance("rtl", tmp_path / "rtl"))
    board = demo_config().appliance.board
    model_fabric = StampedModelFabric(rtl_fabric.record_cycles, CORE_MHZ[board])
    model_requests, model_summary, _ = asyncio.run(
        run_appliance("model", tmp_path / "model", model_fabric))
    # every stamp used, and the gate's window bound on the simulated timing
    assert model_fabric.left() == 0 and model_fabric.counters()["risk_gate"]["rate_limited"] > 0
    assert (model_summary["backend"], rtl_summary["backend"]) == ("model", "rtl")
    assert model_summary["settle_timeouts"] == rtl_summary["settle_timeouts"] == 0
    assert rtl_requests == model_requests
    kinds = {r[0] for r in rtl_requests}
    assert {"EnterOrder", "ReplaceOrderRequest", "CancelOrderRequest"} <= kinds
    assert rtl_summary["quotes"] == model_summary["quotes"] > 0
    assert rtl_summary["book_updates"] == model_summary["book_updates"] > 0


def test_open_fabric_names_the_rtl_backend():
    fabric = open_fabric("rtl", core_mhz=125.0)
    try:
        assert isinstance(fabric, RtlFabric) and fabric.backend == "rtl"
        assert fabric.core_mhz == 125.0
    finally:
        fabric.close()
