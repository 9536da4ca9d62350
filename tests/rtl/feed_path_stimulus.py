"""Stimulus for the feed path's Verilog and the driver that runs it.

Crafted sessions: one MoldUDP64 session of hand-made ITCH messages, each
packet in an untagged Ethernet frame on feed A's or feed B's group, for the
feed event test and the latency measurement.  :func:`run_feed_path` hands
frames and register writes to ``tests.rtl.feed_path_bench`` as JSON, runs it
on a simulator build and replays the model on what the run saw.  Plain
Python: the simulator only runs inside the bench.
"""
from __future__ import annotations

import json
from typing import Sequence

from host.pcap.frames import build_udp_frame, ip_to_int
from host.protocols import itch50
from host.protocols.moldudp64 import encode_packet
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathConfig, FeedPathModel, Frame
from rtl.frame_filter.model import FilterEntry
from rtl.mold_seq.model import Arrival
from rtl.regmap.driver import encode, field_positions, register_offsets

BENCH = "tests.rtl.feed_path_bench"
FILTER_WINDOWS = ("frame_filter", "frame_filter_b")
UNMAPPED = 0x7000

SESSION = "ZYNQFEED01"
GROUPS = (("239.1.2.1", 26001), ("239.1.2.2", 26002))
SOURCE_IP = "10.9.8.7"
# Heartbeats that jump in the feed event test's storm: more events than the
# sequencer's queue holds.
STORM_GAPS = 25


def itch(cls, **fields) -> bytes:
    """One ITCH message of class ``cls``; fields not given are 0 or blank."""
    values = {f.name: (" " if f.is_alpha else 0) for f in cls.LAYOUT.fields}
    values.update(fields)
    return cls(**values).encode()


def add(locate: int, ref: int, side: str, price: int, shares: int = 100) -> bytes:
    return itch(itch50.AddOrder, stock_locate=locate, order_reference_number=ref,
                buy_sell_indicator=side, shares=shares, stock="ZYNQ", price=price)


class Session:
    """Frames of one session in the order they are to go in."""

    def __init__(self, refill: bool = True):
        self.config = FeedPathConfig(
            filter_a=[FilterEntry(ip_to_int(GROUPS[0][0]), GROUPS[0][1])],
            filter_b=[FilterEntry(ip_to_int(GROUPS[1][0]), GROUPS[1][1])],
            pass_all_locates=True, refill=refill)
        self.frames: list[Frame] = []

    def send(self, feeds: Sequence[int], seq: int, messages: Sequence[bytes] = (),
             end: bool = False) -> int:
        """One Mold packet on each of ``feeds`` (in that order); the next
        sequence number."""
        payload = encode_packet(SESSION, seq, list(messages), end_of_session=end)
        for feed in feeds:
            ip, port = GROUPS[feed]
            self.frames.append(Frame(feed, build_udp_frame(payload, SOURCE_IP, ip, 40000 + feed,
                                                           port)))
        return seq + len(messages)


def feed_event_session() -> tuple[FeedPathConfig, list[Frame], int]:
    """Frames (one at a time) that make every kind of feed event, and how
    many come first during which nobody takes events:

    * a heartbeat storm on A: every heartbeat jumps, so A goes stale and each
      one opens a gap (more events than the queues hold);
    * A carries on exactly where its storm ended (recovered); B, silent all
      along, jumps (stale) and carries on (recovered); a data packet lost on
      both feeds (a gap, opened by a data packet);
    * locate 7 loses an order it never saw (its book degraded, unknown
      reference); locate 8's bids go deeper than the book tracks and the
      top ones leave (refill off: depth degraded), then new best bids come
      (restored);
    * the end of the session on both feeds.
    """
    session = Session(refill=False)
    send = session.send
    seq = send((FEED_A, FEED_B), 1, [
        itch(itch50.SystemEvent, event_code="O"),
        itch(itch50.StockDirectory, stock_locate=7, stock="ZYNQ"),
        itch(itch50.StockDirectory, stock_locate=8, stock="DEEP")])
    for _ in range(STORM_GAPS):
        seq += 4
        send((FEED_A,), seq)
    held = len(session.frames)
    seq = send((FEED_A, FEED_B), seq, [add(7, 100, "B", 100_000), add(7, 101, "S", 100_100)])
    seq = send((FEED_A, FEED_B), seq, [itch(itch50.OrderDelete, stock_locate=7,
                                           order_reference_number=555)])
    deep = [add(8, 1000 + k, "B", 50_000 - 10 * k) for k in range(20)]
    seq = send((FEED_A, FEED_B), seq, deep[:10])
    seq = send((FEED_A, FEED_B), seq, deep[10:])
    seq += 3                                       # lost on both feeds
    seq = send((FEED_B, FEED_A), seq, [
        itch(itch50.OrderDelete, stock_locate=8, order_reference_number=1000 + k)
        for k in range(15)])
    seq = send((FEED_A, FEED_B), seq, [add(8, 2000 + k, "B", 60_000 + 10 * k) for k in range(5)])
    send((FEED_A, FEED_B), seq, end=True)
    return session.config, session.frames, held


# The message of each latency frame, by ITCH type, in the order they go in.
LATENCY_LOCATE = 7


def latency_session() -> tuple[FeedPathConfig, list[Frame], list[str]]:
    """One message per packet per frame, all on feed A: a directory, then a
    message of every type that changes the top of the book (each one
    does), and a trade.  Returns the frames and each frame's ITCH type."""
    session = Session()
    locate = LATENCY_LOCATE

    def order(cls, **fields) -> bytes:
        return itch(cls, stock_locate=locate, **fields)

    messages = [
        order(itch50.StockDirectory, stock="ZYNQ"),
        add(locate, 1, "B", 100_000),
        add(locate, 2, "S", 100_500),
        order(itch50.AddOrderMPID, order_reference_number=3, buy_sell_indicator="B", shares=200,
              stock="ZYNQ", price=100_100, attribution="ZYNQ"),
        order(itch50.OrderExecuted, order_reference_number=3, executed_shares=50,
              match_number=11),
        order(itch50.OrderExecutedWithPrice, order_reference_number=3, executed_shares=50,
              match_number=12, printable="Y", execution_price=100_090),
        order(itch50.OrderCancel, order_reference_number=3, canceled_shares=10),
        order(itch50.OrderReplace, original_order_reference_number=3,
              new_order_reference_number=4, shares=300, price=100_200),
        order(itch50.OrderDelete, order_reference_number=4),
        order(itch50.Trade, order_reference_number=0, buy_sell_indicator="B", shares=5,
              stock="ZYNQ", price=100_300, match_number=13),
    ]
    seq = 1
    for message in messages:
        seq = session.send((FEED_A,), seq, [message])
    return session.config, session.frames, [chr(m[0]) for m in messages]


# ---- driving the bench ---------------------------------------------------------------
def register_writes(config) -> list:
    offsets = register_offsets()
    writes = []
    for window, table in zip(FILTER_WINDOWS, (config.filter_a, config.filter_b)):
        for n, entry in enumerate(table):
            writes.append((offsets[f"{window}.FILTER{n}_IP"], entry.dst_ip))
            writes.append((offsets[f"{window}.FILTER{n}_PORT"], encode(
                "frame_filter", f"FILTER{n}_PORT", **{f"filter{n}_port": entry.dst_port,
                                                      f"filter{n}_enable": 1})))
    writes.append((offsets["itch_decoder.CONTROL"],
                   encode("itch_decoder", "CONTROL",
                          pass_all_locates=int(config.pass_all_locates))))
    if not config.refill:
        writes.append((offsets["order_book.CONTROL"],
                       encode("order_book", "CONTROL", auto_assign=int(config.auto_assign),
                              refill=0, stale=int(config.stale))))
    return writes


READS = ("system.BUILD_ID", "system.MAP_VERSION", "frame_filter.COUNT_FRAMES",
         "frame_filter.COUNT_PASSED", "frame_filter.COUNT_FRAME_ERROR",
         "frame_filter_b.COUNT_FRAMES", "frame_filter_b.COUNT_PASSED",
         "frame_filter_b.COUNT_FRAME_ERROR", "mold_seq.COUNT_PASSED", "mold_seq.COUNT_DUPLICATES",
         "mold_seq.COUNT_GAPS", "itch_decoder.COUNT_MESSAGES", "itch_decoder.COUNT_EVENTS",
         "itch_decoder.COUNT_FEED_B", "order_book.COUNT_BOOK_UPDATES", "order_book.COUNT_TRADES",
         "order_book.COUNT_DEGRADED_UNKNOWN_REFERENCE", "mold_seq.COUNT_EVENTS_LOST",
         "order_book.COUNT_FEED_EVENTS_LOST")


def run_feed_path(build, name: str, config, frames, releases, serial=False, source_pause=0.0,
                  sink_pause=0.0, event_pause=0.0, event_hold_frames=0,
                  probe_stages=False) -> tuple[dict, FeedPathModel, list]:
    """Drive the frames through ``tests.rtl.feed_path_bench`` on ``build``
    (frame ``i`` released ``releases[i]`` cycles in, or one at a time with
    ``serial``), then replay the model on the payload arrivals the run saw at
    the sequencer; return (observed, model, model records)."""
    model = FeedPathModel(config)
    payloads = [[], []]
    for frame in frames:
        payload = model.filter(frame)
        if payload is not None:
            payloads[frame.feed].append(payload)
    offsets = register_offsets()
    busy = field_positions()["order_book.busy"]
    stimulus = {
        "frames": [[f.feed, f.data.hex(), int(f.error), r] for f, r in zip(frames, releases)],
        "writes": register_writes(config),
        "reads": [[r, offsets[r]] for r in READS] + [["unmapped", UNMAPPED]],
        "busy": [busy.offset, ((1 << busy.width) - 1) << busy.lsb],
        "serial": serial, "source_pause": source_pause, "sink_pause": sink_pause, "seed": 7,
        "event_pause": event_pause, "event_hold_frames": event_hold_frames,
        "probe_stages": probe_stages,
        # Longer than an order-table refill scan, during which nothing moves.
        "end_quiet_cycles": 3000,
    }
    run_dir = build.build_dir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "stimulus.json").write_text(json.dumps(stimulus))
    build.run(BENCH, name, testcase="stream_stimulus",
              extra_env={"ZYNQMM_STIMULUS": str(run_dir / "stimulus.json")})
    observed = json.loads((run_dir / "observed.json").read_text())
    for feed in (FEED_A, FEED_B):
        assert len(observed["arrivals"][feed]) == len(payloads[feed]), f"feed {feed} payloads"
    arrivals = [Arrival(feed, cycle, payload.data)
                for feed in (FEED_A, FEED_B)
                for cycle, payload in zip(observed["arrivals"][feed], payloads[feed])]
    expected = model.run_arrivals(arrivals)
    return observed, model, expected


def assert_same_records(observed: dict, expected: list) -> None:
    got = [(bytes.fromhex(data), dest) for data, dest in observed["records"]]
    want = [(out.to_bytes(), [out.dest]) for out in expected]
    assert len(got) == len(want), f"{len(got)} records out, model says {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"record {i}: rtl {g[0].hex()} dest {g[1]} != model {w[0].hex()} {w[1]}"
