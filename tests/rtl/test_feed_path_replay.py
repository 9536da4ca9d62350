"""The Verilator replay harness of the feed path (rtl/feed_path/replay): a
capture through the generated Verilog with tvalid gaps and backpressure
equals the model bit for bit, a corrupted record is caught and reported,
back-to-back minimum-size packets on both feeds pass without a stall or a
drop, and a sink that never takes a record trips the deadlock watchdog.
One harness build serves the whole session (and later ones: it is stamped)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from host.book.records import BOOK_UPDATE_DTYPE
from rtl.feed_path.equivalence import feed_addresses, model_config
from rtl.feed_path.model import FeedPathModel
from rtl.feed_path.replay import compare
from rtl.feed_path.replay import throughput as tp
from rtl.feed_path.replay.__main__ import main
from rtl.feed_path.replay.build import BuildError, ports_header, read_ports
from host.protocols.moldudp64 import encode_packet
from rtl.common.axis import Packet
from rtl.feed_path.replay.compare import (arrival_order, config_writes, read_addresses,
                                          read_records, replay)
from rtl.mold_seq.model import Arbiter, Arrival, arbitration_order
from rtl.feed_path.replay.runs import run_capture, run_throughput
from rtl.feed_path.replay.stimulus import RunOptions, StimulusWriter, capture_stimulus
from rtl.frame_filter.model import DROP_REASONS
from rtl.order_book.model import TDEST_UPDATE, Output

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
FAULTS = CAPTURES / "day-faults-vlan.pcap"


@pytest.fixture(scope="module")
def harness():
    from rtl.feed_path.replay.build import build

    return build(log=lambda _: None)


def quiet(_: str) -> None:
    pass


def test_port_binding_ties_extra_streams_and_needs_the_bound_ports():
    base = """module feed_path (clk);
input clk;
input rst;
""" + "".join(f"input s_axis_{f}_{s};\n" for f in "ab"
              for s in ("tdata", "tkeep", "tvalid", "tlast", "tuser")) \
        + "".join(f"output s_axis_{f}_tready;\n" for f in "ab") \
        + "".join(f"output m_axis_{s};\n" for s in ("tdata", "tkeep", "tvalid", "tlast", "tuser",
                                                    "tdest")) + "input m_axis_tready;\n" \
        + "".join(f"input s_axil_{s};\n" for s in ("awaddr", "awprot", "awvalid", "wdata",
                                                   "wstrb", "wvalid", "bready", "araddr",
                                                   "arprot", "arvalid", "rready")) \
        + "".join(f"output s_axil_{s};\n" for s in ("awready", "wready", "bresp", "bvalid",
                                                    "arready", "rdata", "rresp", "rvalid"))
    extra = ("output [63:0] m_event_tdata;\noutput m_event_tvalid;\ninput m_event_tready;\n"
             "output m_status_valid;\ninput m_status_ready;\ninput [3:0] mode_select;\n")
    header = ports_header(read_ports(base + extra + "endmodule\n"), ["fa", "fb"])
    assert "(top)->m_event_tready = 1;" in header
    assert "(top)->m_status_ready = 1;" in header
    assert "(top)->mode_select = 0;" in header
    assert 'kReplayExtraStreamNames[] = {"m_event", "m_status"}' in header
    assert "(top)->m_event_tvalid && (top)->m_event_tready" in header
    plain = ports_header(read_ports(base + "endmodule\n"), ["fa", "fb"])
    assert "kReplayExtraStreams = 0;" in plain
    with pytest.raises(BuildError, match="m_axis_tready"):
        ports_header(read_ports(base.replace("input m_axis_tready;\n", "") + "endmodule\n"),
                     ["fa", "fb"])


def test_arrival_order_is_the_sequencers_arbitration_order():
    """Only same-cycle arrivals go through the tie rule; the result must be
    what the model's arbitration_order gives on the whole run."""
    rng = np.random.default_rng(3)
    good = encode_packet("ZYNQMM0001", 1, [b"S" + bytes(11)])
    payloads: list[list[Packet]] = [[], []]
    feeds, cycles = [], []
    for feed in (0, 1):
        cycle = 0
        for _ in range(400):
            cycle += int(rng.integers(1, 4))
            feeds.append(feed)
            cycles.append(cycle)
            payloads[feed].append(Packet(good if rng.random() < 0.8 else b"junk"))
    feeds_a, cycles_a = np.array(feeds), np.array(cycles)
    order = arrival_order(feeds_a, cycles_a, payloads)
    index = {0: 0, 1: 0}
    everything = []
    for feed, cycle in zip(feeds, cycles):
        everything.append(Arrival(feed, cycle, payloads[feed][index[feed]].data))
        index[feed] += 1
    assert order.tolist() == arbitration_order(everything)
    ties = len(cycles) - len(set(cycles))
    assert ties > 50

    # Batch by batch as a run streams in (each batch whole cycles, later than
    # the last), with the tie rule's turn carried over: the same order.
    by_cycle = np.argsort(cycles_a, kind="stable")
    feeds_s, cycles_s = feeds_a[by_cycle], cycles_a[by_cycle]
    taken = [0, 0]
    arbiter = Arbiter()
    streamed = []
    for lo, hi in ((0, 150), (150, 151), (151, 420), (420, len(cycles_s))):
        while 0 < lo < len(cycles_s) and cycles_s[lo] == cycles_s[lo - 1]:
            lo += 1
        while hi < len(cycles_s) and cycles_s[hi] == cycles_s[hi - 1]:
            hi += 1
        batch_feeds, batch_cycles = feeds_s[lo:hi], cycles_s[lo:hi]
        batch_payloads = [[], []]
        for feed in batch_feeds.tolist():
            batch_payloads[feed].append(payloads[feed][taken[feed]])
            taken[feed] += 1
        streamed += [lo + i for i in arrival_order(batch_feeds, batch_cycles, batch_payloads,
                                                   arbiter).tolist()]
    assert by_cycle[streamed].tolist() == order.tolist()


def test_capture_prefix_holds_the_first_messages(tmp_path):
    summary = json.loads(Path(f"{FAULTS}.summary.json").read_text())
    addresses = feed_addresses(summary)
    config = model_config(addresses)
    whole = capture_stimulus(FAULTS, tmp_path / "all.bin", addresses, config_writes(config),
                             read_addresses())
    part = capture_stimulus(FAULTS, tmp_path / "part.bin", addresses, config_writes(config),
                            read_addresses(), messages=700)
    assert whole.last_seq == summary["messages"]
    assert 700 <= part.last_seq < 700 + 64
    assert 0 < part.frames < whole.frames
    assert sum(part.frames_by_feed) == part.frames and min(part.frames_by_feed) > 0


def test_capture_with_gaps_and_backpressure_matches_model(harness):
    """day-faults-vlan (VLAN tags, drops, duplicates and reordering on both
    feeds), random tvalid gaps on both inputs and random record backpressure:
    every record and counter as the model says."""
    run = run_capture(FAULTS, options=RunOptions(seed=11, source_pause=0.25, sink_pause=0.35),
                      name="test_capture", keep=True, log=quiet)
    result = run.result
    assert run.ok, result.errors
    assert result.records == result.model_records > 1500
    assert result.counters_checked >= 100 and not result.counter_mismatches
    assert result.messages == result.registers["itch_decoder.COUNT_MESSAGES"] > 2800
    assert result.registers["mold_seq.COUNT_GAPS"] > 0
    assert result.registers["itch_decoder.COUNT_FEED_B"] > 0
    # The pauses did hold the inputs back.
    assert min(result.stall_cycles) > 0

    # A corrupted record is caught, named and placed.
    out = run.run_dir
    try:
        records = read_records(out / "records.bin")
        k = int(np.nonzero(records.dest == TDEST_UPDATE)[0][40])
        price = int(records.offset[k]) + BOOK_UPDATE_DTYPE.fields["bid_price"][1]
        raw = bytearray((out / "records.bin").read_bytes())
        raw[price] ^= 0x01
        (out / "records.bin").write_bytes(bytes(raw))
        config = model_config(feed_addresses(json.loads(Path(f"{FAULTS}.summary.json")
                                                        .read_text())))
        bad = replay(out / "stimulus.bin", config, out, run_harness=False, log=quiet)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert not bad.ok
    assert bad.mismatched_records == 1
    assert bad.first_difference["record"] == k
    assert bad.first_difference["fields"] == ["bid_price"]
    assert len(bad.first_difference["before"]) == 2


class _OneBadRecordModel(FeedPathModel):
    """The model with one bid price off by one in its 41st book update."""

    def __init__(self, config):
        super().__init__(config)
        self.emitted = 0
        self.updates = 0
        self.broken_at: int | None = None

    def sequence(self, feed, payload):
        out = super().sequence(feed, payload)
        for n, record in enumerate(out):
            if record.dest == TDEST_UPDATE:
                self.updates += 1
                if self.updates == 41:
                    prices = (record.row[6][0] + 1,) + record.row[6][1:]
                    out[n] = Output(record.dest, record.row[:6] + (prices,) + record.row[7:])
                    self.broken_at = self.emitted + n
        self.emitted += len(out)
        return out


def test_a_difference_is_reported_while_the_harness_runs(harness, monkeypatch):
    """The model follows the harness's files as they grow; a record that
    differs is still found, named and placed, and the rest still compared."""
    models = []

    def broken(config):
        models.append(_OneBadRecordModel(config))
        return models[-1]

    monkeypatch.setattr(compare, "FeedPathModel", broken)
    run = run_capture(FAULTS, options=RunOptions(seed=5, source_pause=0.3, sink_pause=0.3),
                      name="test_broken", log=quiet)
    result = run.result
    shutil.rmtree(run.run_dir, ignore_errors=True)
    assert not run.ok
    assert result.mismatched_records == 1
    assert result.records == result.model_records > 1500
    assert result.first_difference["record"] == models[0].broken_at
    assert result.first_difference["fields"] == ["bid_price"]
    assert len(result.first_difference["before"]) == 2
    assert not result.counter_mismatches


def test_a_filter_process_that_dies_is_an_error_not_a_hang(harness, monkeypatch):
    def dies(index, config, conn):
        conn.send(("payloads", []))
        conn.close()

    monkeypatch.setattr(compare, "_filter_frames", dies)
    run = run_capture(FAULTS, name="test_filter_dies", log=quiet)
    shutil.rmtree(run.run_dir, ignore_errors=True)
    text = " ".join(run.result.errors)
    assert not run.ok
    assert "the filter process ended without its counters" in text
    assert "payloads reaching the sequencer per feed" in text


def test_command_line_prefix_run(harness, tmp_path, capsys):
    report = tmp_path / "replay.json"
    assert main(["--json", str(report), "capture", str(FAULTS), "--messages", "600",
                 "--sink-pause", "0.2"]) == 0
    figures = json.loads(report.read_text())["capture"]
    assert figures["ok"] and figures["messages_limit"] == 600
    # Messages lost on both feeds, or whose other copy falls after the cut, are gaps.
    assert 550 <= figures["messages"] <= figures["last_seq"] == 600
    assert figures["mismatched_records"] == 0
    assert "RTL == model" in capsys.readouterr().out


def test_back_to_back_minimum_packets_on_both_feeds_never_stall(harness):
    """One Order Delete per 83-byte frame (11 beats), tvalid high on both
    feeds every cycle of the window, deletes below the top five levels (no
    record): input tready never falls and every frame passes."""
    deletes = 1500
    run = run_throughput(deletes, "deep", name="test_throughput_deep", log=quiet)
    assert run.ok, (run.result.errors, run.extra.get("errors"))
    extra, regs = run.extra, run.result.registers
    assert extra["frame_bytes"] == 83 and extra["frame_beats"] == 11
    assert extra["window_stall_cycles"] == [0, 0] and extra["bubbles"] == [0, 0]
    assert extra["window_frames"] == [deletes, deletes]
    # Line rate: both feeds deliver a frame every 11 cycles, side by side.
    assert extra["window_cycles"] == deletes * extra["frame_beats"]
    assert extra["records_in_window"] == 0
    for window in ("frame_filter", "frame_filter_b"):
        assert regs[f"{window}.COUNT_PASSED"] == regs[f"{window}.COUNT_FRAMES"]
        assert not any(regs[f"{window}.COUNT_{reason.upper()}"] for reason in DROP_REASONS)
    _, plan = tp.packets(deletes, "deep")
    assert regs["itch_decoder.COUNT_ORDER_DELETE"] == deletes
    assert regs["mold_seq.COUNT_PASSED"] == regs["mold_seq.COUNT_DUPLICATES"] \
        == plan.first_delete_seq - 1 + deletes
    assert regs["order_book.COUNT_EV_DELETE"] == deletes


def test_top_of_book_deletes_back_pressure_without_loss(harness):
    """Every delete changes the top levels: an 18-beat record per 11-beat
    frame, so the inputs must wait, and still no frame is lost."""
    deletes = 600
    run = run_throughput(deletes, "top", name="test_throughput_top", log=quiet)
    assert run.ok, (run.result.errors, run.extra.get("errors"))
    regs = run.result.registers
    assert run.extra["records_in_window"] == deletes
    assert max(run.extra["window_stall_cycles"]) > 0
    for window in ("frame_filter", "frame_filter_b"):
        assert regs[f"{window}.COUNT_PASSED"] == regs[f"{window}.COUNT_FRAMES"]
    assert regs["itch_decoder.COUNT_ORDER_DELETE"] == deletes


def _stalled_sink_run(harness, out: Path, deletes: int):
    frames, _ = tp.frames(deletes, "top")
    options = RunOptions(sink_pause=1.0, watchdog_cycles=10_000)
    with StimulusWriter(out / "stimulus.bin", config_writes(tp.config()), read_addresses(),
                        options) as writer:
        for feed, data, _ in frames:
            writer.add(feed, data)
    return replay(out / "stimulus.bin", tp.config(), out, harness, log=quiet)


@pytest.mark.parametrize("deletes, why", [(400, "frames left"), (2, "path never drained")])
def test_watchdog_reports_a_sink_that_never_takes_records(harness, tmp_path, deletes, why):
    """A record sink that never takes a beat: with many frames the inputs
    back up; with a few, every frame goes in but the records never leave.
    Either way the harness stops and says deadlock instead of hanging."""
    result = _stalled_sink_run(harness, tmp_path, deletes)
    assert result.deadlock and not result.ok
    text = " ".join(result.errors)
    assert "deadlock" in text and why in text
