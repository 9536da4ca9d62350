"""The frame filter's Verilog against its model, bit for bit, under cocotb.

The filter cuts through: a payload goes out while its frame is still coming
in, and a frame found bad only at its end (frame error, truncation) leaves
as a packet whose last beat carries ``tdrop``.  Those packets are the
filter's drops as much as the ones it never sends: the packets without the
mark must be the model's output, and every marked one must belong to a frame
the model counted as a frame error or truncated."""
from __future__ import annotations

import json

import pytest

from rtl.common.axis import DATA_BYTES
from rtl.frame_filter.hdl import CUT_THROUGH_CYCLES, LATENCY_CYCLES
from rtl.frame_filter.model import COUNTERS, FrameFilterModel
from tests.rtl.frame_stimulus import (FrameFactory, Stimulus, StimulusFrame, default_table,
                                      mixed_frames, payload_offset)

BENCH = "tests.rtl.frame_filter_bench"


def run_stimulus(build, name: str, stimulus: Stimulus) -> tuple[dict, FrameFilterModel, list]:
    model = FrameFilterModel(stimulus.table)
    expected = model.run(f.packet() for f in stimulus.frames)
    stimulus.expected_packets = len(expected)
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = stimulus.save(run_dir / "stimulus.json")
    build.run(BENCH, name, testcase="stream_stimulus",
              extra_env={"ZYNQMM_STIMULUS": str(path)})
    observed = json.loads((run_dir / "observed.json").read_text())
    return observed, model, expected


def dropped_at_end(observed: dict) -> list[dict]:
    """The packets whose last beat carried ``tdrop``."""
    return [p for p in observed["packets"] if p["drop"]]


def assert_same_packets(observed: dict, expected: list, model: FrameFilterModel | None = None
                        ) -> None:
    """The unmarked packets are the model's; marked ones are frames the model
    dropped for what only shows at a frame's end (given ``model``)."""
    assert all(p["user"] == [0] for p in observed["packets"])
    if model is not None:
        late = model.counters["frame_error"] + model.counters["truncated"]
        assert len(dropped_at_end(observed)) <= late
    got = [(bytes.fromhex(p["data"]), p["dest"], p["user"]) for p in observed["packets"]
           if not p["drop"]]
    want = [(p.data, [p.dest], [0]) for p in expected]
    assert len(got) == len(want), f"{len(got)} packets out, model says {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"packet {i}: rtl {g[0][:16].hex()}.. ({len(g[0])} B, dest {g[1]}) " \
                       f"!= model {w[0][:16].hex()}.. ({len(w[0])} B, dest {w[1]})"


@pytest.fixture(scope="module")
def frame_filter(built):
    return built("frame_filter")


def test_mixed_frames_with_backpressure_match_model(frame_filter):
    stimulus = Stimulus(default_table(), mixed_frames(320, seed=2026), source_pause=0.2,
                        sink_pause=0.35, seed=11)
    observed, model, expected = run_stimulus(frame_filter, "mixed_backpressure", stimulus)
    assert_same_packets(observed, expected, model)
    assert dropped_at_end(observed), "no frame went bad after its payload began"
    assert observed["counters"] == model.counters
    assert observed["drop_status"] == model.sticky_drops()
    # The mix must reach every verdict, or this test proves less than it says.
    assert all(model.counters[name] for name in COUNTERS), model.counters
    # A slow output must have filled the buffer and pushed back at times.
    assert observed["input_stalls"] > 0


def test_slow_output_fills_the_buffer_and_nothing_is_lost(frame_filter):
    """The output takes a beat one cycle in seven: the buffer runs full, the
    input is held off, tails wait for room, and the largest payload (the
    whole buffer) still goes through whole."""
    stimulus = Stimulus(default_table(), mixed_frames(100, seed=77), sink_pause=0.85, seed=13)
    observed, model, expected = run_stimulus(frame_filter, "slow_output", stimulus)
    assert_same_packets(observed, expected, model)
    assert observed["counters"] == model.counters
    assert observed["input_stalls"] > 1000


def test_alignment_sweep_matches_model(frame_filter):
    """Every header alignment (0..2 tags x IHL 5..15) with every short payload
    length, bare and padded: all the ways a payload can start and end within
    and across beats."""
    factory = FrameFactory(default_table(), seed=8)
    frames = []
    for tags in range(3):
        for options in range(11):
            for length in range(1, 18):
                frame = factory.udp(factory.rng.randbytes(length), tags=tags, options=options)
                frames.append(StimulusFrame(frame, kind="pass"))
                frames.append(StimulusFrame(factory.padded(frame), kind="pass"))
    stimulus = Stimulus(default_table(), frames, source_pause=0.1, seed=17)
    observed, model, expected = run_stimulus(frame_filter, "alignment_sweep", stimulus)
    assert len(expected) == len(frames)
    assert_same_packets(observed, expected)
    assert observed["counters"] == model.counters


def test_every_cut_of_a_frame_matches_model(frame_filter):
    """Frames cut short at every length, so each length check meets every
    boundary; the padded ones still pass when only padding is cut."""
    factory = FrameFactory(default_table(), seed=9)
    frames = []
    for tags in range(3):
        for options in (0, 1, 6):
            frame = factory.padded(factory.udp(factory.rng.randbytes(5), tags=tags,
                                               options=options))
            frames += [StimulusFrame(frame[:cut], kind="cut") for cut in range(1, len(frame) + 1)]
    stimulus = Stimulus(default_table(), frames, source_pause=0.3, sink_pause=0.3, seed=23)
    observed, model, expected = run_stimulus(frame_filter, "every_cut", stimulus)
    assert model.counters["truncated"] > len(frames) // 2 and model.counters["passed"] > 9
    assert_same_packets(observed, expected, model)
    assert observed["counters"] == model.counters


def test_back_to_back_frames_match_model(frame_filter):
    """No pauses at all: a tail write and the next frame's first beats share
    cycles, and with the output always ready the input is never held off."""
    factory = FrameFactory(default_table(), seed=7)
    frames = [factory.make(kind) for kind in
              ["pass_small", "pass", "runt", "pass_small", "empty_payload", "pass"] * 12]
    stimulus = Stimulus(default_table(), frames, seed=3)
    observed, model, expected = run_stimulus(frame_filter, "back_to_back", stimulus)
    assert_same_packets(observed, expected, model)
    assert observed["counters"] == model.counters
    assert observed["input_stalls"] == 0


def test_latency_last_byte_to_last_beat_and_cut_through(frame_filter):
    """With an idle output: from the accepted input beat holding a frame's
    last byte to its payload's last beat, one fixed number; and the
    payload's first beat leaves the cycle after the input beat that
    completes it, long before the frame ends."""
    factory = FrameFactory(default_table(), seed=99)
    frames = [factory.make("pass_small") for _ in range(10)] + \
        [factory.make("pass") for _ in range(20)]
    # Gaps longer than any payload, so each output finds the port free.
    stimulus = Stimulus(default_table(), frames, gap_cycles=200, seed=5)
    observed, model, expected = run_stimulus(frame_filter, "latency", stimulus)
    assert_same_packets(observed, expected, model)
    assert not dropped_at_end(observed)
    tlast, first, last = (observed[k] for k in ("tlast_cycles", "first_valid_cycles",
                                                "last_valid_cycles"))
    assert len(tlast) == len(frames) == len(first) == len(last)
    latencies = [out - end for end, out in zip(tlast, last)]
    (frame_filter.build_dir / "runs" / "latency" / "latency.json").write_text(
        json.dumps({"latency_cycles": sorted(set(latencies))}))
    assert set(latencies) == {LATENCY_CYCLES}, latencies
    # The source sends a frame's beats back to back, so beat k of a frame is
    # taken k cycles before its last one; the first output beat is complete
    # with the input beat after the one the payload starts in.
    cut_through = 0
    for frame, packet, end, out in zip(frames, expected, tlast, first):
        start = payload_offset(frame.data)
        if len(packet.data) > DATA_BYTES:
            completing = start // DATA_BYTES + 1
            last_beat = (len(frame.data) - 1) // DATA_BYTES
            assert out == end - (last_beat - completing) + CUT_THROUGH_CYCLES
            cut_through += out < end
    assert cut_through > 10


def test_frames_going_bad_at_their_end_are_marked_and_counted(frame_filter):
    """Frames that show all is well until their payload is under way, then
    turn out bad: the frame-error flag on a payload beat or on the last, or
    the frame cut short inside its payload.  Each leaves as a packet closed
    by a ``tdrop`` beat, is counted under its reason, and the good frames
    around them, back to back, come through whole."""
    factory = FrameFactory(default_table(), seed=31)
    frames, bad = [], 0
    for n in range(60):
        frame = factory.udp(factory.payload(40, 600))
        start = payload_offset(frame)
        first_out = (start // DATA_BYTES + 1) * DATA_BYTES  # an output beat has gone
        how = n % 4
        if how == 0:
            frames.append(StimulusFrame(frame, kind="pass"))
            continue
        bad += 1
        if how == 1:
            frames.append(StimulusFrame(frame, error=True, kind="frame_error"))
        elif how == 2:
            beat = factory.rng.randrange(first_out // DATA_BYTES + 1,
                                         (len(frame) + 7) // DATA_BYTES)
            frames.append(StimulusFrame(frame, error=True, error_beat=beat, kind="frame_error"))
        else:
            cut = factory.rng.randrange(first_out + DATA_BYTES, len(frame) - 1)
            frames.append(StimulusFrame(frame[:cut], kind="truncated"))
    stimulus = Stimulus(default_table(), frames, sink_pause=0.2, seed=29)
    observed, model, expected = run_stimulus(frame_filter, "bad_at_end", stimulus)
    assert_same_packets(observed, expected, model)
    assert len(dropped_at_end(observed)) == bad
    assert model.counters["passed"] == len(frames) - bad
    assert observed["counters"] == model.counters


def test_register_access(frame_filter):
    frame_filter.run(BENCH, "registers", testcase="register_access")


def test_table_change_mid_frame(frame_filter):
    frame_filter.run(BENCH, "table_change",
                     testcase="table_change_mid_frame")
