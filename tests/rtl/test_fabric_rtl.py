"""The whole fabric's Verilog against FabricModel, bit for bit, under cocotb.

One build (``rtl.fabric.server.build.cocotb_build``), two runs of the
shipped clean day with a small option table loaded through
``host.runtime.register_writes`` -- the host's own loading code:

* ``capture``: a thousand frames of both feeds paced the way the model
  describes the fabric (a frame that makes records goes into an idle fabric),
  with a position write, a kill and its release, and one data packet lost on
  both feeds.  Book records, feed events and quote records equal the model's
  (ingress and egress cycle stamps excepted: the model cannot know cycles),
  every counter equals the model's, the loaded registers read back, and the
  latency composes as ``rtl.fabric.hdl`` says.
* ``backpressure``: the frames back to back while the host stream is held
  for long stretches and then taken at random: no book record is lost, the
  run drains, and the prices the pricer could not walk in time are counted.
"""
from __future__ import annotations

import numpy as np
import pytest

from host.feed.records import EVENT_FEED_STALE, EVENT_GAP, FEED_EVENT_DTYPE
from host.quoting.records import KIND_CANCEL, KIND_QUOTE, QUOTE_DTYPE, REASON_BOOK, REASON_KILL
from host.runtime.registers import counter_registers
from rtl.common.axil import RESP_OKAY, RESP_SLVERR
from rtl.fabric.hdl import (DEST_BOOK_UPDATE, DEST_FEED_EVENT, DEST_QUOTE, DEST_TRADE,
                            HOST_FIFO_LATENCY, PRICE_TO_QUOTE_CYCLES, TICK_TO_QUOTE_CYCLES)
from rtl.fabric.server.build import SIM_BUILD_ID, cocotb_build
from rtl.feed_path.model import by_source
from rtl.pricer_chain.hdl import UPDATE_BEATS
from rtl.regmap.driver import decode, register_offsets
from rtl.regmap.map import MAP_VERSION
from tests.rtl.fabric_bench import (POSITION, capture_session, latency_figures, run_session,
                                    tick_to_quote)

# Windows no block occupies, one behind each part's decode.
HOLES = {"feed_path_hole": 0x7000, "quote_path_hole": 0xA000, "pricer_chain_hole": 0x6FFC}
# Registers the load writes whose whole value reads back (RW fields only).
READ_BACK_BLOCKS = ("frame_filter", "frame_filter_b", "itch_decoder", "quoter", "risk_gate")


@pytest.fixture(scope="module")
def fabric(simulator):
    return cocotb_build(simulator)


def model_counters(model) -> dict[str, dict[str, int]]:
    return {"frame_filter": model.feed.filters[0].counters,
            "frame_filter_b": model.feed.filters[1].counters,
            "mold_seq": model.feed.sequencer.stream_counters,
            "itch_decoder": model.feed.decoder.counters,
            "order_book": model.feed.book.counters, "pricer_chain": model.chain.counters,
            "quoter": model.quoter.counters, "risk_gate": model.gate.counters}


def counter_reads() -> list[tuple[str, int]]:
    return [(f"{block}.{name}", offset) for block, counters in counter_registers().items()
            for name, offset in counters.items()]


def read_back(session) -> dict[int, int]:
    """Offset -> last value the load wrote, for the read-back blocks."""
    names = {offset: name for name, offset in register_offsets().items()}
    out = {}
    for offset, value in session.load:
        if names[offset].split(".")[0] in READ_BACK_BLOCKS:
            out[offset] = value
    return out


def records_of(observed, *dests) -> list:
    return [r for r in observed["records"] if r[0] in dests]


def quote_rows(records) -> np.ndarray:
    rows = np.frombuffer(b"".join(bytes.fromhex(r[1]) for r in records), QUOTE_DTYPE).copy()
    return rows


def without_stamps(rows: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    rows["ingress_cycle"] = 0
    rows["egress_cycle"] = 0
    return rows


@pytest.fixture(scope="module")
def capture(fabric):
    session = capture_session()
    backs = read_back(session)
    reads = ([("system.BUILD_ID", register_offsets()["system.BUILD_ID"]),
              ("system.MAP_VERSION", register_offsets()["system.MAP_VERSION"]),
              ("pricer_chain.DROP_STATUS", register_offsets()["pricer_chain.DROP_STATUS"]),
              ("pricer_chain.STATUS", register_offsets()["pricer_chain.STATUS"])]
             + counter_reads() + list(HOLES.items())
             + [(f"back.{offset}", offset) for offset in backs])
    observed = run_session(fabric, "capture", session, reads)
    return session, observed, backs


def test_capture_records_equal_the_model(capture):
    session, observed, _ = capture
    expected = session.expected
    assert all(r[4] == 0 and r[5] == 0 for r in observed["records"]), "tuser or mixed tdest"
    assert observed["refused_writes"] == []
    book = [(bytes.fromhex(r[1]), r[0]) for r in records_of(observed, DEST_BOOK_UPDATE,
                                                             DEST_TRADE)]
    assert book == [(out.to_bytes(), out.dest) for out in expected.book]
    got = quote_rows(records_of(observed, DEST_QUOTE))
    want = expected.quote_array()
    assert len(got) == len(want)
    assert without_stamps(got).tobytes() == without_stamps(want).tobytes()
    events = [np.frombuffer(bytes.fromhex(r[1]), FEED_EVENT_DTYPE)[0]
              for r in records_of(observed, DEST_FEED_EVENT)]
    for got_events, want_events in zip(by_source(events), by_source(expected.feed_events)):
        assert [e.tobytes() for e in got_events] == [e.tobytes() for e in want_events]
    # The run did what it claims: quotes of both kinds and for the skewed
    # option, kill pulls, book pulls after the lost packet, gap events.
    kinds = {(int(r["kind"]), int(r["reason"])) for r in got}
    assert {(KIND_QUOTE, 0), (KIND_CANCEL, REASON_KILL), (KIND_CANCEL, REASON_BOOK)} <= kinds
    assert any(int(r["position"]) == POSITION[1] for r in got if r["option_id"] == POSITION[0])
    assert {int(e["kind"]) for e in events} >= {EVENT_GAP, EVENT_FEED_STALE}
    assert session.lost_sequence is not None and len(book) > 100 and len(got) > 100


def test_capture_counters_equal_the_model_and_nothing_was_coalesced(capture):
    session, observed, _ = capture
    reads = observed["reads"]
    for block, counters in model_counters(session.model).items():
        got = {name: reads[f"{block}.{name}"][0] for name in counters}
        assert got == dict(counters), block
    # The model's pace held in the fabric: every accepted price was walked.
    assert reads["pricer_chain.coalesced"][0] == 0
    assert decode("pricer_chain", "STATUS", reads["pricer_chain.STATUS"][0]) == \
        {"walking": 0, "pending": 0}


def test_registers_load_through_register_writes_and_holes_answer_slverr(capture):
    _, observed, backs = capture
    reads = observed["reads"]
    assert reads["system.BUILD_ID"] == [SIM_BUILD_ID, RESP_OKAY]
    assert reads["system.MAP_VERSION"] == [MAP_VERSION, RESP_OKAY]
    assert {offset: tuple(reads[f"back.{offset}"]) for offset in backs} == \
        {offset: (value, RESP_OKAY) for offset, value in backs.items()}
    for name in HOLES:
        assert reads[name] == [0, RESP_SLVERR], name


def test_stamps_and_latency_compose(capture):
    session, observed, _ = capture
    rows = quote_rows(records_of(observed, DEST_QUOTE))
    stamped = rows[rows["ingress_cycle"] != 0]
    assert len(stamped) and (stamped["egress_cycle"] >= stamped["ingress_cycle"]).all()
    samples = tick_to_quote(session, observed)
    assert len(samples) > 20 and any(s["row"] == 0 for s in samples)
    pulls = 0
    for s in samples:
        pricer_last = s["update_last"] - HOST_FIFO_LATENCY
        assert s["update_last"] - s["update_first"] == UPDATE_BEATS - 1, s
        # Both stamps count the same cycles.
        assert s["egress_cycle"] - s["ingress_cycle"] == s["quote_first"] - pricer_last, s
        if s["kind"] != KIND_QUOTE:
            pulls += 1      # a book pull's cancel: the gate's own timing
            continue
        # Fork, lane merge and record merge add nothing: the update's last
        # beat reaches the pricer in the cycle the feed path sends it (the
        # host's copy leaves the host FIFO HOST_FIFO_LATENCY later), and the
        # walk's options go through the quoter one per cycle.
        assert s["quote_first"] - pricer_last == PRICE_TO_QUOTE_CYCLES + s["row"], s
    assert 0 < pulls < len(samples)
    figures = latency_figures(session, observed)
    assert figures["tick_to_quote_by_type_cycles"]["D"] == TICK_TO_QUOTE_CYCLES
    assert figures["tick_to_quote_cycles"] == TICK_TO_QUOTE_CYCLES


def test_host_backpressure_loses_no_book_record_and_never_deadlocks(fabric):
    """Frames back to back (no pacing) while the host stream is held for
    stretches of thousands of cycles and otherwise taken half the time."""
    session = capture_session(count=900, events=False, paced=False,
                              holds={at: 3000 for at in (150, 350, 550, 750)})
    reads = counter_reads() + [("pricer_chain.DROP_STATUS",
                                register_offsets()["pricer_chain.DROP_STATUS"])]
    observed = run_session(fabric, "backpressure", session, reads, sink_pause=0.5,
                           source_pause=0.1)
    book = [(bytes.fromhex(r[1]), r[0]) for r in records_of(observed, DEST_BOOK_UPDATE,
                                                             DEST_TRADE)]
    assert book == [(out.to_bytes(), out.dest) for out in session.expected.book]
    counts = {name: value for name, (value, _) in observed["reads"].items()}
    chain = {n.split(".")[1]: v for n, v in counts.items() if n.startswith("pricer_chain.")}
    # Every accepted price was walked or counted as coalesced, and flagged.
    assert chain["coalesced"] > 0
    assert chain["accepted"] == chain["walks"] + chain["coalesced"]
    assert decode("pricer_chain", "DROP_STATUS", chain["DROP_STATUS"])["seen_coalesced"] == 1
    # Every theo word reached the quoter, every quote word the gate, every
    # record the gate counted the host.
    assert counts["quoter.theos"] == chain["options"]
    assert counts["risk_gate.words"] == counts["quoter.theos"] - counts["quoter.bad_option"]
    sent = sum(counts[f"risk_gate.{n}"] for n in ("quotes", "cancel_kill", "cancel_book",
                                                   "cancel_withdrawn"))
    assert len(records_of(observed, DEST_QUOTE)) == sent > 0
