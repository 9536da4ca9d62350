"""The ITCH decoder's Verilog against its model, bit for bit, under cocotb.

One simulator build serves every run.  The cycle figures (latency, messages
per cycle back to back) are exact simulation counts, written next to each
run's results as JSON.
"""
from __future__ import annotations

import json
import random

import pytest

from host.protocols.itch50 import MESSAGE_SIZES
from rtl.common.events import KIND_OF_TYPE, pack_event, unpack_event
from rtl.itch_decoder.hdl import LATENCY_CYCLES
from rtl.itch_decoder.model import (DROP_REASONS, EVENT, SKIPPED, ItchDecoderModel, ItchInput,
                                    SubscriptionEntry)
from tests.rtl.test_itch_decoder_model import (day_messages, malformed_message, random_message,
                                               sequenced, subscription_table)

BENCH = "tests.rtl.itch_decoder_bench"


def run_stimulus(build, name: str, messages: list[ItchInput], table=(), pass_all_locates=False,
                 source_pause=0.0, sink_pause=0.0, gap_cycles=0, seed=0):
    """Run ``messages`` through the RTL; return (observed, model, expected words)."""
    model = ItchDecoderModel(table, pass_all_locates)
    expected = [pack_event(row) for row in model.run(messages)]
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    stimulus = {
        "table": [None if e is None else [e.locate, e.enabled] for e in model.table],
        "pass_all_locates": pass_all_locates,
        "messages": [[m.data.hex(), m.seq, m.msg_index, m.feed, m.stale] for m in messages],
        "source_pause": source_pause, "sink_pause": sink_pause, "gap_cycles": gap_cycles,
        "seed": seed, "expected_events": len(expected),
    }
    path = run_dir / "stimulus.json"
    path.write_text(json.dumps(stimulus))
    build.run(BENCH, name, testcase="stream_stimulus", extra_env={"ZYNQMM_STIMULUS": str(path)})
    observed = json.loads((run_dir / "observed.json").read_text())
    return observed, model, expected


def assert_same_events(observed: dict, expected: list[int]) -> None:
    got = [int(word, 16) for word in observed["events"]]
    assert len(got) == len(expected), f"{len(got)} events out, model says {len(expected)}"
    for i, (g, w) in enumerate(zip(got, expected)):
        assert g == w, f"event {i}: rtl {g:x} != model {w:x}"


@pytest.fixture(scope="module")
def decoder(built):
    return built("itch_decoder")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    return day_messages(tmp_path_factory.mktemp("itch") / "day.itch", 2400)


def test_mixed_stream_with_gaps_and_backpressure_matches_model(decoder, day):
    """A generated day with random messages of every type and malformed ones
    spliced in, input gaps and a stalling output: several thousand messages."""
    rng = random.Random(2026)
    stream = list(day)
    extras = [random_message(rng, t, range(1, 120)) for t in MESSAGE_SIZES for _ in range(40)]
    extras += [malformed_message(rng, range(1, 120)) for _ in range(500)]
    # One-beat packets, known type or not, and packets far longer than any
    # type (the beat counter saturates).
    extras += [b"A", b"\x00", b"S" * 8, b"D" + bytes(18 + 8 * 15), b"P" + bytes(1500),
               bytes(700)]
    for data in extras:
        stream.insert(rng.randrange(len(stream) + 1), data)
    messages = sequenced(stream, seed=5, first_seq=(1 << 40), stale_from=len(stream) - 300)
    table = subscription_table(rng.sample(range(1, 81), 60), rng)
    observed, model, expected = run_stimulus(decoder, "mixed", messages, table, source_pause=0.25,
                                             sink_pause=0.75, seed=11)
    assert len(messages) > 3800
    assert_same_events(observed, expected)
    assert observed["counters"] == model.counters
    assert observed["drop_status"] == model.sticky_status()
    # Every verdict must occur, or this test proves less than it says.
    assert all(model.verdicts[v] for v in (EVENT, SKIPPED) + DROP_REASONS), model.verdicts
    # The slow output must have filled both registers and held the input off.
    assert observed["input_stalls"] > 300


def test_back_to_back_short_messages(decoder):
    """No pauses: the shortest messages (system events and MWCB status, 12
    bytes, two beats), then deletes (19 bytes, three beats), back to back.
    The input is never held off: one message per two, then three, cycles."""
    rng = random.Random(3)
    short = ["S"] * 300 + ["W"] * 100
    rng.shuffle(short)
    types = short + ["D"] * 200
    messages = sequenced([random_message(rng, t) for t in types], seed=4)
    observed, model, expected = run_stimulus(decoder, "back_to_back", messages,
                                             pass_all_locates=True)
    assert_same_events(observed, expected)
    assert observed["counters"] == model.counters
    assert observed["input_stalls"] == 0
    tlasts = observed["tlast_cycles"]
    beats = [(MESSAGE_SIZES[t] + 7) // 8 for t in types]
    assert [b - a for a, b in zip(tlasts, tlasts[1:])] == beats[1:]
    split = len(short)
    throughput = {
        "twelve_byte_messages_per_cycle": (split - 1) / (tlasts[split - 1] - tlasts[0]),
        "nineteen_byte_messages_per_cycle": (len(types) - split - 1) / (tlasts[-1] - tlasts[split]),
    }
    (decoder.build_dir / "runs" / "back_to_back" / "throughput.json").write_text(
        json.dumps(throughput))
    assert throughput == {"twelve_byte_messages_per_cycle": 1 / 2,
                          "nineteen_byte_messages_per_cycle": 1 / 3}


def test_latency_last_byte_to_event(decoder):
    """Cycles from the accepted input beat holding a message's last byte to
    its event's first valid cycle, output idle: one number for every type."""
    rng = random.Random(8)
    types = [t for t in KIND_OF_TYPE for _ in range(4)]
    messages = sequenced([random_message(rng, t) for t in types], seed=6)
    observed, model, expected = run_stimulus(decoder, "latency", messages,
                                             pass_all_locates=True, gap_cycles=12)
    assert_same_events(observed, expected)
    assert len(observed["tlast_cycles"]) == len(types) == len(observed["first_valid_cycles"])
    latencies = [out - last for last, out in
                 zip(observed["tlast_cycles"], observed["first_valid_cycles"])]
    (decoder.build_dir / "runs" / "latency" / "latency.json").write_text(
        json.dumps({"latency_cycles": sorted(set(latencies))}))
    assert set(latencies) == {LATENCY_CYCLES}, latencies


def test_subscription_table_full_and_disabled_entries(decoder):
    """All entries in use, the last one included; disabled entries and
    unsubscribed locates drop, system events pass regardless."""
    rng = random.Random(12)
    table = [SubscriptionEntry(1000 + 3 * n, enabled=n % 5 != 4) for n in range(64)]
    locates = [e.locate for e in table] + [1001, 1002, 0xFFFF]
    datas = [random_message(rng, t, locates) for t in KIND_OF_TYPE for _ in range(25)]
    datas += [random_message(rng, "D", [entry.locate]) for entry in (table[0], table[-1])]
    rng.shuffle(datas)
    messages = sequenced(datas, seed=9)
    observed, model, expected = run_stimulus(decoder, "subscription", messages, table,
                                             source_pause=0.1, sink_pause=0.1, seed=2)
    assert model.verdicts["unsubscribed"] > 20 and model.verdicts[EVENT] > 150
    assert {table[0].locate, table[-1].locate} <= \
        {int(unpack_event(word)["stock_locate"]) for word in expected}
    assert_same_events(observed, expected)
    assert observed["counters"] == model.counters


def test_registers_and_stalled_output(decoder):
    decoder.run(BENCH, "registers", testcase=["register_access", "stalled_output"])
