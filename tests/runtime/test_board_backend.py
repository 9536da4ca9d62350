"""The ``board`` backend (:mod:`overlays.zynqmm.driver`) without a board.

pynq is replaced by :mod:`tests.runtime.pynq_standin`, a stand-in for pynq
(not pynq): the fabric's registers and record stream are the real RTL in the
simulator server the ``rtl`` backend uses, the AXI DMAs follow PG021's
direct register mode, DDR is not coherent with the CPU's copy of a buffer.
The same hardware also runs under the pinned pynq's own ``DefaultIP``,
``MMIO``, ``allocate`` and DMA driver, so the driver's use of them is
checked against pynq itself.

* Against the model: the same frames through the driver (full ``fabric``
  top on the stand-in) and through the model give the same book records,
  feed events and quote records, the same records for a kill and after a
  position write, and the same counters.  As in the ``rtl`` backend's test,
  the model takes the simulated pricer's stamp of every book record
  (:class:`host.replay.stamps.StampedModelFabric`) so that the gate's rate
  windows decide alike.  The ``feed_path`` top (book in the PL, pricer,
  quoter and gate on the host) matches the plain model, stamps included.
* Every register the load writes reads back from the RTL as written.
* Refusals, each with its reason: a manifest that does not describe the
  files, a fabric whose build ID or map version is not the manifest's or
  this host's, no pynq, an overlay without a known fabric top or with the
  wrong DMAs.
* Bad input: frames the DMA cannot carry are counted; a record no layout
  has, a DMA error and a fabric that takes no frames are raised, and a load
  brings the fabric back.
* The appliance sends the same OUCH requests on the board stand-in as on the
  model backend, opened by name through ``open_fabric("board")``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from host.replay.stamps import StampedModelFabric
from host.runtime.fabric import FabricError, ModelFabric, dest_of_length, open_fabric
from host.runtime.plan import CORE_MHZ
from host.runtime.registers import FabricRegisters
from host.quoting.records import KIND_CANCEL, REASON_KILL
from overlays.manifest import SCHEMA, sha256_file
from overlays.zynqmm.driver import (AXI_DMA_VLNV, FRAME_BUFFER_BYTES, OVERLAY_ENV, TOPS,
                                    BoardFabric, describe_overlay)
from rtl.fabric.hdl import FABRIC_CHAIN
from rtl.fabric.server.build import SIM_BUILD_ID, server_executable
from rtl.fabric.server.client import FabricServer
from rtl.feed_path.model import Frame
from rtl.regmap.driver import register_offsets
from rtl.regmap.map import MAP_VERSION, REGISTER_MAP
from tests.runtime import pynq_standin as standin
from tests.runtime import test_rtl_backend as rtl_backend_test
from tests.runtime.test_rtl_backend import demo_config, requests_sent, run_appliance

FRAMES = 1000
MORE_FRAMES = 200
BATCH = 100
# The appliance runs the rtl backend test's scenario, on fewer frames.
APPLIANCE_FRAMES = 800


# ---- fixtures ------------------------------------------------------------------------
def write_overlay(folder: Path, build_id: int = SIM_BUILD_ID,
                  map_version: int = MAP_VERSION) -> Path:
    """An overlay folder as ``zynqmm flash`` leaves it: ``.bit``, ``.hwh``
    and the manifest (the bitstream's bytes mean nothing to the stand-in)."""
    folder.mkdir(parents=True, exist_ok=True)
    bit, hwh = folder / "zynqmm.bit", folder / "zynqmm.hwh"
    bit.write_bytes(b"\x00\x09stand-in bitstream")
    hwh.write_text("<hwh/>\n")
    manifest = {"schema": SCHEMA, "board": "kr260", "part": "xck26-sfvc784-2LV-c",
                "bitstream": {"file": bit.name, "bytes": bit.stat().st_size,
                              "sha256": sha256_file(bit)},
                "hwh": {"file": hwh.name, "bytes": hwh.stat().st_size,
                        "sha256": sha256_file(hwh)},
                "map_version": f"0x{map_version:08x}", "build_id": f"0x{build_id:08x}"}
    (folder / "zynqmm.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def server():
    with FabricServer(server_executable()) as running:
        yield running


@pytest.fixture(scope="module")
def setup():
    return rtl_backend_test.demo_setup(FRAMES + MORE_FRAMES)


def real_pynq():
    """pynq itself (a pinned dependency, so a failing import fails the test),
    never the stand-in another test may have put in its place."""
    assert not standin.is_standin(sys.modules.get("pynq")), "the pynq stand-in is still installed"
    import pynq
    import pynq.lib.dma  # noqa: F401  (registers pynq's DMA driver)
    return pynq


def make_surface(kind: str, monkeypatch, server, tmp_path):
    """``make(top, ingest) -> (board, overlay folder)``: a stand-in board
    behind ``import pynq``, which is the stand-in module (``kind``
    ``stand-in``) or the real pynq with only its Overlay stood in."""
    if kind == "stand-in":
        for name, module in standin.modules().items():
            monkeypatch.setitem(sys.modules, name, module)
    else:
        pynq = real_pynq()
        from pynq.overlay import _ip_drivers

        devices = {}
        device_class = standin.real_pynq_device_class()

        def device_of(board):
            return devices.setdefault(id(board), device_class(board))

        def on_program(board):
            pynq.Device.active_device = device_of(board)

        monkeypatch.setattr(pynq.Device, "_active_device", None, raising=False)
        monkeypatch.setattr(pynq, "Overlay", standin.overlay_class(
            _ip_drivers, pynq.DefaultIP, device_of=device_of, on_program=on_program))

    def make(top: str = "fabric", ingest=(0, 1), folder: Path | None = None):
        folder = folder or write_overlay(tmp_path / f"overlay-{top}")
        board = standin.StandInBoard(server, top, ingest)
        standin.install(board, folder / "zynqmm.bit")
        return board, folder

    # Where the DMA driver and the buffers the driver gets come from.
    make.modules = {"stand-in": ("tests.runtime.pynq_standin",) * 2,
                    "pynq": ("pynq.lib.dma", "pynq.buffer")}[kind]
    return make


@pytest.fixture
def surface(monkeypatch, server, tmp_path):
    return make_surface("stand-in", monkeypatch, server, tmp_path)


@pytest.fixture(params=["stand-in", "pynq"])
def surfaces(request, monkeypatch, server, tmp_path):
    """The stand-in, and where it imports, pynq's own drivers on the stand-in's hardware."""
    return make_surface(request.param, monkeypatch, server, tmp_path)


def without_stamps(quotes, keep_ingress: bool = False):
    drop = {"egress_cycle"} if keep_ingress else {"ingress_cycle", "egress_cycle"}
    return [{k: v for k, v in q.items() if k not in drop} for q in quotes]


def assert_same(model_out, board_out, keep_ingress: bool = True) -> None:
    assert [(o.to_bytes(), o.dest) for o in board_out.book] == \
        [(o.to_bytes(), o.dest) for o in model_out.book]
    assert [e.tobytes() for e in board_out.feed_events] == \
        [e.tobytes() for e in model_out.feed_events]
    assert without_stamps(board_out.quotes, keep_ingress) == \
        without_stamps(model_out.quotes, keep_ingress)


def same_scenario(setup, board_fabric, model, board) -> None:
    """Frames, a kill, a position and more frames on both; records and
    counters equal."""
    _, universe, _, frames, stamps = setup
    for start in range(0, FRAMES, BATCH):
        board_fabric.push(frames[start:start + BATCH], stamps[start:start + BATCH])
        model.push(frames[start:start + BATCH], stamps[start:start + BATCH])
    model_out, board_out = model.poll(), board_fabric.poll()
    assert_same(model_out, board_out)
    assert len(board_out.book) > 150 and len(board_out.quotes) > 300
    assert board_fabric.poll().quotes == []

    board_fabric.set_kill(True)
    model.set_kill(True)
    model_out, board_out = model.poll(), board_fabric.poll()
    assert_same(model_out, board_out)
    assert board_out.quotes and {(q["kind"], q["reason"]) for q in board_out.quotes} == \
        {(KIND_CANCEL, REASON_KILL)}

    for fabric in (board_fabric, model):
        fabric.set_kill(False)
        for option in universe.options:
            fabric.set_position(option.option_id, -9)
    # Both copies of some packets lost: a gap, feed events.
    kept = [i for i in range(FRAMES, len(frames)) if not FRAMES + 50 <= i < FRAMES + 70]
    board_fabric.push([frames[i] for i in kept], [stamps[i] for i in kept])
    model.push([frames[i] for i in kept], [stamps[i] for i in kept])
    model_out, board_out = model.poll(), board_fabric.poll()
    assert_same(model_out, board_out)
    assert any(q["position"] == -9 for q in board_out.quotes)
    assert len(board_out.feed_events) > 2
    counters = board_fabric.counters()
    ingest = counters.pop("ps_bridge")
    assert counters == model.counters()
    assert ingest["frames_a"] + ingest["frames_b"] == FRAMES + len(kept)
    assert board.frames_in == FRAMES + len(kept)


# ---- against the model -----------------------------------------------------------------
def test_board_driver_sends_what_the_model_sends(setup, surfaces):
    board, folder = surfaces("fabric")
    config = setup[2]
    fabric = BoardFabric(overlay=folder)
    try:
        assert fabric.top is TOPS["fabric"] and fabric.identity == {
            "build_id": SIM_BUILD_ID, "map_version": MAP_VERSION}
        assert (type(fabric.overlay.dma("record_dma")).__module__,
                type(fabric._buffers[0]).__module__) == surfaces.modules
        fabric.load(config)
        model = StampedModelFabric(board.record_cycles)
        model.load(config)
        same_scenario(setup, fabric, model, board)
        assert model.left() == 0
    finally:
        fabric.close()


def test_feed_path_top_runs_the_back_half_on_the_host(setup, surface):
    board, folder = surface("feed_path")
    config = setup[2]
    fabric = BoardFabric(overlay=folder)
    try:
        assert fabric.top is TOPS["feed_path"]
        fabric.load(config)
        model = ModelFabric()
        model.load(config)
        same_scenario(setup, fabric, model, board)
        # The pricer, quoter and gate windows are not on this fabric's bus.
        with pytest.raises(FabricError, match="not in feed_path's register windows"):
            fabric.read_registers(["risk_gate.STATUS"])
        with pytest.raises(FabricError, match="position table"):
            fabric.set_position(64, 1)
    finally:
        fabric.close()


def test_every_register_the_load_writes_reads_back_from_the_rtl(setup, surface):
    board, folder = surface("fabric")
    config = setup[2]
    fabric = BoardFabric(overlay=folder)
    try:
        fabric.load(config)
        writes = dict(FabricRegisters(config, FABRIC_CHAIN).load())
        rw = {spec.base + reg.offset: sum(f.mask for f in reg.fields)
              for spec in REGISTER_MAP for reg in spec.registers
              if reg.fields and all(f.access == "RW" and not f.const for f in reg.fields)}
        assert set(writes) <= set(rw)       # the load writes plain RW registers only
        offsets = sorted(writes)
        assert fabric.ip.read_words(offsets) == [writes[o] & rw[o] for o in offsets]
        assert fabric.ip.blocks["quoter"].read("HALF_SPREAD") == config.quoter.half_spread
        # A second load programs the bitstream again: registers back to reset.
        downloads = board.downloads
        fabric.load(config)
        assert board.downloads == downloads + 1
        assert fabric.ip.read_words(offsets) == [writes[o] & rw[o] for o in offsets]
    finally:
        fabric.close()


# ---- refusals ----------------------------------------------------------------------------
def test_overlays_that_do_not_check_out_are_refused_with_the_reason(surfaces, tmp_path):
    board, folder = surfaces("fabric")
    # The fabric's build ID is not the manifest's.
    other = write_overlay(tmp_path / "other-build", build_id=0xDEADBEEF)
    standin.install(board, other / "zynqmm.bit")
    with pytest.raises(FabricError, match="build ID is 0x5eed0001, the manifest says 0xdeadbeef"):
        BoardFabric(overlay=other)
    # The fabric was built from another register map than this host's.
    board.identity_override[register_offsets()["system.MAP_VERSION"]] = 0x1234_5678
    with pytest.raises(FabricError, match=f"map version is 0x12345678, this host's register "
                                          f"driver is 0x{MAP_VERSION:08x}"):
        BoardFabric(overlay=folder)
    board.identity_override.clear()
    # The manifest's map is not this host's: refused before pynq is asked.
    old_map = write_overlay(tmp_path / "old-map", map_version=MAP_VERSION ^ 1)
    downloads = board.downloads
    with pytest.raises(FabricError, match="map_version .* is not this checkout's"):
        BoardFabric(overlay=old_map)
    # A damaged bitstream.
    (folder / "zynqmm.bit").write_bytes(b"\x00\x09damaged")
    with pytest.raises(FabricError, match="sha256 differs"):
        BoardFabric(overlay=folder / "zynqmm.bit")
    assert board.downloads == downloads
    with pytest.raises(FabricError, match="no single overlay manifest"):
        BoardFabric(overlay=tmp_path)


def test_without_pynq_the_board_backend_says_so(monkeypatch, tmp_path):
    folder = write_overlay(tmp_path / "overlay")
    monkeypatch.setitem(sys.modules, "pynq", None)
    with pytest.raises(FabricError, match="needs pynq"):
        open_fabric("board", overlay=folder)


def ip_dict(top="fabric", span=None, cell="fabric", **dmas):
    entries = {cell: {"type": TOPS[top].vlnv if top in TOPS else top,
                          "addr_range": span or 1 << 16, "phys_addr": 0}}
    for name, parameters in {"record_dma": {"c_include_s2mm": "1", "c_include_sg": "0"},
                             "ingest_dma_a": {"c_include_mm2s": "1", "c_include_sg": "0"},
                             **dmas}.items():
        if parameters is not None:
            entries[name] = {"type": AXI_DMA_VLNV, "parameters": parameters}
    return entries


def test_the_overlay_layout_comes_from_the_ip_dict():
    layout = describe_overlay(ip_dict())
    assert (layout.top, layout.fabric_cell, layout.record_dmas, layout.ingest_dmas) == \
        (TOPS["fabric"], "fabric", ("record_dma",), {0: "ingest_dma_a"})
    feed_path = describe_overlay(ip_dict("feed_path", 1 << 15, event_dma={
        "c_include_s2mm": "1", "c_include_sg": "0"}))
    assert (feed_path.top, feed_path.record_dmas) == (TOPS["feed_path"],
                                                      ("record_dma", "event_dma"))
    for entries, reason in (
            (ip_dict("xilinx.com:module_ref:quoter:1.0"), "exactly one fabric top"),
            (ip_dict(span=1 << 12), "need 0x10000"),
            (ip_dict(cell="fabric_0"), "cell 'fabric_0'"),
            (ip_dict(record_dma=None), "no S2MM DMA 'record_dma'"),
            (ip_dict("feed_path", 1 << 15), "no S2MM DMA 'event_dma' for a record stream of "
                                            "feed_path"),
            (ip_dict(record_dma={"c_include_s2mm": "1", "c_include_sg": "1"}), "scatter-gather"),
            (ip_dict(ingest_dma_b={"c_include_s2mm": "1"}), "ingest_dma_b must be an MM2S")):
        with pytest.raises(FabricError, match=reason):
            describe_overlay(entries)


# ---- bad input ---------------------------------------------------------------------------
def test_frames_the_dma_cannot_carry_are_counted_and_the_rest_flow(setup, surface):
    board, folder = surface("fabric", ingest=(0,))
    config, frames = setup[2], setup[3]
    feed_a = [f for f in frames[:200] if f.feed == 0]
    fabric = BoardFabric(overlay=folder)
    try:
        fabric.load(config)
        bad = [Frame(0, feed_a[0].data, error=True), Frame(0, b""),
               Frame(0, bytes(FRAME_BUFFER_BYTES + 1))]
        fabric.push(bad + feed_a)
        model = ModelFabric()
        model.load(config)
        model.push(feed_a)
        assert_same(model.poll(), fabric.poll(), keep_ingress=False)
        assert fabric.counters()["ps_bridge"] == {
            "frames_a": len(feed_a), "dropped_frame_error": 1, "dropped_empty": 1,
            "dropped_oversize": 1}
        # Feed B comes in on the PL's MAC in this overlay.
        with pytest.raises(FabricError, match="feed B has no PS-bridge ingest"):
            fabric.push([Frame(1, feed_a[0].data)])
    finally:
        fabric.close()


def test_records_and_transfers_that_go_wrong_are_raised_and_a_load_recovers(setup, surfaces):
    board, folder = surfaces("fabric")
    config, frames = setup[2], setup[3]
    fabric = BoardFabric(overlay=folder, timeout_s=0.2)
    try:
        fabric.load(config)
        assert 40 not in dest_of_length()
        board.inject_record(bytes(40))
        with pytest.raises(FabricError, match="record of 40 bytes; no record layout"):
            fabric.poll()
        fabric.load(config)
        board.inject_record(bytes(5000))          # no tlast within the buffer
        with pytest.raises(FabricError, match="stopped on an error"):
            fabric.push(frames[:4])
        with pytest.raises(FabricError, match="no configuration"):
            fabric.push(frames[:4])
        fabric.load(config)
        board.stalled = True
        with pytest.raises(FabricError, match=r"ingest_dma_. \(feed .\) did not finish"):
            fabric.push(frames[:1])
        board.stalled = False
        fabric.load(config)
        fabric.push(frames[:BATCH])
        model = ModelFabric()
        model.load(config)
        model.push(frames[:BATCH])
        assert_same(model.poll(), fabric.poll(), keep_ingress=False)
    finally:
        fabric.close()


# ---- the appliance -----------------------------------------------------------------------
@pytest.mark.parametrize("top", ["fabric", "feed_path"])
def test_appliance_sends_the_same_orders_on_the_board_as_on_the_model(top, surface, tmp_path,
                                                                     monkeypatch):
    board, folder = surface(top)
    monkeypatch.setenv(OVERLAY_ENV, str(folder))
    monkeypatch.setattr(rtl_backend_test, "APPLIANCE_FRAMES", APPLIANCE_FRAMES)
    for backend in ("model", "board"):
        (tmp_path / backend).mkdir()
    board_requests, board_summary, board_fabric = asyncio.run(
        run_appliance("board", tmp_path / "board"))
    assert isinstance(board_fabric, BoardFabric) and board_fabric.top is TOPS[top]
    core_mhz = CORE_MHZ[demo_config().appliance.board]
    model_fabric = (StampedModelFabric(board.record_cycles, core_mhz) if top == "fabric"
                    else ModelFabric(core_mhz))
    model_requests, model_summary, _ = asyncio.run(
        run_appliance("model", tmp_path / "model", model_fabric))
    assert board_summary["backend"] == "board"
    assert model_summary["settle_timeouts"] == board_summary["settle_timeouts"] == 0
    assert board_requests == model_requests
    assert {"EnterOrder", "ReplaceOrderRequest", "CancelOrderRequest"} <= \
        {r[0] for r in board_requests}
    assert board_summary["quotes"] == model_summary["quotes"] > 0
    assert board_summary["book_updates"] == model_summary["book_updates"] > 0
    assert requests_sent(tmp_path / "board") == board_requests


# ---- the stand-in is pynq's shape --------------------------------------------------------
def test_the_stand_in_mirrors_pynqs_signatures():
    pynq = real_pynq()
    from pynq.buffer import PynqBuffer
    from pynq.lib.dma import DMA, _SDMAChannel

    stand = standin.standin_module()
    pairs = [
        (pynq.Overlay.__init__, stand.Overlay.__init__), (pynq.Overlay.download,
                                                          stand.Overlay.download),
        (pynq.DefaultIP.__init__, stand.DefaultIP.__init__),
        (pynq.DefaultIP.read, stand.DefaultIP.read), (pynq.DefaultIP.write, stand.DefaultIP.write),
        (pynq.MMIO.__init__, stand.MMIO.__init__), (pynq.MMIO.read, stand.MMIO.read),
        (pynq.MMIO.write_reg, stand.MMIO.write), (pynq.allocate, stand.allocate),
        (DMA.__init__, stand.lib.dma.DMA.__init__),
        (_SDMAChannel.__init__, stand.lib.dma._SDMAChannel.__init__)]
    pairs += [(getattr(_SDMAChannel, name), getattr(stand.lib.dma._SDMAChannel, name))
              for name in ("start", "stop", "transfer", "wait")]
    pairs += [(getattr(PynqBuffer, name), getattr(stand.PynqBuffer, name))
              for name in ("flush", "invalidate", "freebuffer")]
    for real, mirror in pairs:
        assert inspect.signature(real) == inspect.signature(mirror), real.__qualname__
    for name in ("running", "idle", "error"):
        assert isinstance(getattr(_SDMAChannel, name), property)
        assert isinstance(getattr(stand.lib.dma._SDMAChannel, name), property)
    assert isinstance(PynqBuffer.physical_address, property)
    assert DMA.bindto == stand.lib.dma.DMA.bindto == [AXI_DMA_VLNV]
    assert issubclass(stand.PynqBuffer, np.ndarray) and issubclass(PynqBuffer, np.ndarray)
