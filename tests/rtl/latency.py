"""Latency of the fabric's front half, measured in simulation.

The RTL tests and ``make rtl-report`` (:mod:`rtl.report`) call the same
functions here, so the figures a report prints are the ones the tests hold
the constants to.  A measurement runs an existing cocotb bench on a crafted
stimulus on the test session's simulator build (:func:`simulator_build`:
same Verilog, same build directory, so an unchanged design is not built
again) and returns a flat dict of figures; keys ending in ``_cycles`` are
clock cycles.

:func:`feed_path` drives :func:`tests.rtl.feed_path_stimulus.latency_session`
(one message per frame, the path idle before each) through the whole front
half and stamps the handshakes between the blocks, so every figure comes
from one run:

``feed_latency_cycles``
    the issue's figure: from the input beat holding the last byte of an ITCH
    message (the frame's last beat: one message per frame, no FCS) to the
    first beat of its book-update record, for an Order Delete, the shortest
    message that changes a book;
``feed_latency_by_type_cycles``
    the same for every message type of the session (longer messages take
    longer: the decoder takes whole messages; an execution's update follows
    its 7-beat trade record);
``<block>_cycles``
    each block's own latency as it shows inside the path: frame_filter (last
    frame beat to the payload's last beat: the filter cuts through, its
    payload's first beat leaves while the frame still comes in), mold_seq
    (beat holding the message's last byte, here the payload's last, to the
    message's first output beat), itch_decoder (last message beat to event
    valid), order_book (event valid to first record beat);
``feed_breakdown_cycles``
    the Delete's latency stage by stage, the blocks' plus the beats the
    decoder waits for (``message_beats``: the message's beats after its
    first).
"""
from __future__ import annotations

from rtl.blocks import BLOCKS, convert_block
from rtl.common import sim
from rtl.order_book.model import TDEST_UPDATE

# The handshake stamps of one frame, in pipeline order (see feed_path_bench).
STAGES = ("frame_last", "payload_first", "payload_last", "message_first", "message_last",
          "event", "record_first")
BREAKDOWN = (("frame_filter", "frame_last", "payload_last"),
             ("mold_seq", "payload_last", "message_first"),
             ("message_beats", "message_first", "message_last"),
             ("itch_decoder", "message_last", "event"),
             ("order_book", "event", "record_first"))
BLOCK_STAGES = ("frame_filter", "mold_seq", "itch_decoder", "order_book")
SHORTEST = "D"


def simulator_build(block: str) -> sim.SimBuild:
    """The block's simulator build as the RTL tests make it."""
    from tests.rtl.conftest import TEST_BUILD_ID

    verilog = convert_block(block, TEST_BUILD_ID)
    return sim.build(block, [verilog], BLOCKS[block].toplevel)


def feed_path_stages(build=None) -> list[dict]:
    """One dict per message of the latency session that made a book update:
    its ITCH ``type`` and the cycle of each of :data:`STAGES` (the record is
    its update, after any trade record)."""
    from tests.rtl.feed_path_stimulus import (assert_same_records, latency_session,
                                              run_feed_path)

    build = build or simulator_build("feed_path")
    config, frames, types = latency_session()
    observed, _, expected = run_feed_path(build, "latency", config, frames, [0] * len(frames),
                                          serial=True, probe_stages=True)
    assert_same_records(observed, expected)
    stamps = observed["stages"]
    # One frame, payload, message and event per message, all on feed A.
    stamps["frame_last"] = observed["input_last"][0]
    counts = {name: len(stamps[name]) for name in STAGES[:-1]}
    if set(counts.values()) != {len(frames)}:
        raise RuntimeError(f"{len(frames)} frames, but handshakes {counts}")
    updates = [cycle for cycle, (_, dest) in zip(observed["record_first"], observed["records"])
               if dest == [TDEST_UPDATE]]
    out = []
    for update in updates:
        # Frames go in one at a time once the path is quiet: an update belongs
        # to the last frame in before it.
        k = max(i for i, cycle in enumerate(stamps["frame_last"]) if cycle < update)
        out.append({"type": types[k], **{name: stamps[name][k] for name in STAGES[:-1]},
                    "record_first": update})
    return out


def feed_path(build=None) -> dict:
    """The feed path's figures (see the module docstring)."""
    samples = feed_path_stages(build)
    by_type: dict[str, int] = {}
    for sample in samples:
        by_type.setdefault(sample["type"], sample["record_first"] - sample["frame_last"])
    shortest = next(s for s in samples if s["type"] == SHORTEST)
    breakdown = {name: shortest[end] - shortest[start] for name, start, end in BREAKDOWN}
    figures = {"feed_latency_cycles": by_type[SHORTEST],
               "feed_latency_by_type_cycles": by_type,
               "feed_breakdown_cycles": breakdown}
    for name in BLOCK_STAGES:
        figures[f"{name}_cycles"] = breakdown[name]
    return figures
