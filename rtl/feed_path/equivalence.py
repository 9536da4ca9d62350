"""The feed path's model against the golden host code on whole captures.

Golden: the capture's UDP datagrams through ``host.feed.fastpath.FeedArbiter``
(A/B arbitration) and the arbitrated messages through
``host.book.fast.FastBook``.  Model: the capture's Ethernet frames, each on
the input of its feed (by destination address), through
:class:`rtl.feed_path.model.FeedPathModel` with one filter entry per feed,
every locate passed by the decoder; the book's stale flag follows the
sequencer's stream-stale bit, which each message carries.  Every model record must equal the golden record of the same
message byte for byte, except records the model flags degraded (and golden
records of a locate while the model has it degraded); golden records of
locates the book does not track and of cross trades (not events of the
fabric) are left out.  See ``rtl.order_book.compare.compare_with_golden``.

``python -m rtl.feed_path.equivalence`` generates a market day (VLAN tags,
A/B duplicates, drops and reordering) and runs the comparison on it; it is
long, and not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host.book.fast import FastBook
from host.book.records import FLAG_STALE
from host.feed.fastpath import FeedArbiter
from host.pcap.fast import iter_udp_batches
from host.pcap.frames import ip_to_int, parse_frame
from host.pcap.reader import iter_packets
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathConfig, FeedPathModel, Frame
from rtl.frame_filter.model import FilterEntry
from rtl.order_book.model import DEGRADE_REASONS, FLAG_DEGRADED, split_outputs
from rtl.order_book.compare import Comparison, compare_with_golden

FEED_NAMES = ("A", "B")


def feed_addresses(summary: dict) -> dict[tuple[int, int], int]:
    """(destination IP, port) -> feed input, from a generator summary."""
    out = {}
    for name, feed in summary["feeds"].items():
        ip, port = feed["dst"].rsplit(":", 1)
        out[(ip_to_int(ip), int(port))] = FEED_NAMES.index(name)
    return out


def capture_frames(path, addresses: dict[tuple[int, int], int]) -> list[Frame]:
    """The capture's frames in capture order, each on its feed's input;
    frames for no feed's address go to feed A, whose filter drops them."""
    frames = []
    for packet in iter_packets(path):
        parsed = parse_frame(packet.data)
        feed = FEED_A
        if not isinstance(parsed, str):
            feed = addresses.get((parsed.dst_ip, parsed.dst_port), FEED_A)
        frames.append(Frame(feed, bytes(packet.data)))
    return frames


def model_config(addresses: dict[tuple[int, int], int]) -> FeedPathConfig:
    tables = {FEED_A: [], FEED_B: []}
    for (ip, port), feed in addresses.items():
        tables[feed].append(FilterEntry(ip, port))
    return FeedPathConfig(filter_a=tables[FEED_A], filter_b=tables[FEED_B], pass_all_locates=True)


@dataclass
class Golden:
    updates: np.ndarray
    trades: np.ndarray
    messages: int
    counters: dict


def golden_records(path) -> Golden:
    arbiter, book = FeedArbiter(), FastBook()
    updates, trades, messages = [], [], 0
    for batch in iter_udp_batches(path):
        arbitrated = arbiter.process(batch)
        messages += len(arbitrated)
        upd, trd = book.process(arbitrated)
        updates.append(upd.copy())
        trades.append(trd.copy())
    return Golden(np.concatenate(updates), np.concatenate(trades), messages, book.counters)


@dataclass
class Result(Comparison):
    """The comparison of one capture, in figures: the record comparison
    (:class:`~rtl.order_book.compare.Comparison`) and what led to it."""

    frames: int = 0
    messages: int = 0
    golden_messages: int = 0
    records: int = 0
    stale_records: int = 0
    tracked_locates: int = 0
    degrade_reasons: dict = field(default_factory=dict)
    filter_drops: dict = field(default_factory=dict)
    sequencer: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and self.messages == self.golden_messages


def compare_capture(path, summary: dict) -> Result:
    """Model against golden on one capture with its generator summary."""
    start = time.perf_counter()
    addresses = feed_addresses(summary)
    frames = capture_frames(path, addresses)
    model = FeedPathModel(model_config(addresses))
    outputs = model.run(frames)
    golden = golden_records(path)
    tracked = {info.locate for info in map(model.book.slot_info, range(model.book.config.slots))
               if info.valid}
    comparison = compare_with_golden(outputs, golden.updates, golden.trades, tracked)
    updates, trades = split_outputs(outputs)
    result = Result(
        **{**asdict(comparison), "errors": comparison.errors[:20]},
        frames=len(frames), messages=model.messages, golden_messages=golden.messages,
        records=len(outputs),
        stale_records=int(np.count_nonzero(updates["flags"] & FLAG_STALE)),
        tracked_locates=len(tracked),
        degrade_reasons={r: model.book.counters[f"degraded_{r}"] for r in DEGRADE_REASONS
                         if model.book.counters[f"degraded_{r}"]},
        filter_drops={FEED_NAMES[f]: {k: v for k, v in flt.counters.items()
                                      if v and k not in ("frames", "passed")}
                      for f, flt in enumerate(model.filters)},
        sequencer=dict(model.sequencer.stream_counters),
        seconds=time.perf_counter() - start)
    if int(np.count_nonzero(updates["flags"] & FLAG_DEGRADED)) != result.degraded_updates:
        result.errors.append("degraded records miscounted")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=48,
                        help="at most the book's slots, so every locate is tracked")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--rate", type=float, default=0.002,
                        help="drop, duplicate and reorder rate per data packet and feed")
    parser.add_argument("--vlan", type=int, default=100)
    parser.add_argument("--capture", help="compare this capture (with its .summary.json) instead")
    args = parser.parse_args(argv)
    from host.marketday.generator import generate_day

    with tempfile.TemporaryDirectory() as scratch:
        if args.capture:
            path = Path(args.capture)
            summary = json.loads(Path(f"{path}.summary.json").read_text())
        else:
            path = Path(scratch) / "day.pcap"
            started = time.perf_counter()
            summary = generate_day(path, symbols=args.symbols, messages=args.messages,
                                   seed=args.seed, gap_rate=args.rate, dup_rate=args.rate,
                                   reorder_rate=args.rate, vlan=[args.vlan],
                                   write_summary=False)
            print(f"generated {summary['messages']} messages in "
                  f"{time.perf_counter() - started:.1f} s; faults {summary['faults']}")
        result = compare_capture(path, summary)
    figures = {k: v for k, v in vars(result).items()}
    figures["seconds"] = round(result.seconds, 1)
    print(json.dumps(figures, indent=1, default=str))
    print("IDENTICAL except flagged records" if result.ok else "MISMATCH")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
