"""The expected run: the model backend on the frames that were replayed.

The bit-accurate fabric model (:class:`host.runtime.fabric.ModelFabric`)
takes the same frames, in the same order, with the same configuration as
the appliance under test, each frame stamped with its timestamp in the
given capture (for a network replay: its wire time, as captured on the
interface).  Besides the records the fabric sends the host, the run keeps
every *word* the quoter hands the risk gate, as the gate's side rules leave
it, keyed by its trigger ``(seq, msg_index, option_id)``:

* which sides would rest and at what price and size (the gate's
  unknown-underlying, side-enable, through-theo and price-range rules);
* whether the word withdraws every side (a pull-mask flag on the book
  update of a known underlying).

Words do not depend on timing: the pricer and quoter see only the frame
order (and positions, which stay zero while nothing trades).  Which words
become records does: the gate's rate limit counts fabric cycles.  The
matching rule (:mod:`host.replay.match`) therefore judges each order
against its trigger's word, and uses the records only where the timing is
provably the same (:meth:`ExpectedRun.rate_sensitive_options`).

Against the RTL backend the timing is made the same: the run takes the
simulated fabric's own stamp of every book record (``record_cycles``, see
:mod:`host.replay.stamps`) instead of the capture's timestamps, so its
gate decides every rate window exactly as the simulated one did.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from host.quoting.records import KIND_CANCEL, KIND_QUOTE, SIDE_ASK, SIDE_BID
from host.replay.stamps import StampedModelFabric
from host.runtime.chains import Universe, build_universe
from host.runtime.config import AppConfig
from host.runtime.directory import stock_locates
from host.runtime.fabric import ModelFabric
from host.runtime.ingest import replay_batches
from host.runtime.plan import CORE_MHZ, fabric_config
from rtl.order_book.model import TDEST_UPDATE


@dataclass(frozen=True, slots=True)
class Word:
    option_id: int
    underlying: int
    sides: int                 # SIDE_* bits left after the gate's side rules
    bid_price: int
    ask_price: int
    bid_size: int
    ask_size: int
    withdraw_all: bool         # a pull-mask flag on a known underlying's book
    requote: bool
    cycle: int                 # the gate's time for the word
    stamp_ns: int              # the frame's timestamp in the capture

    def wants(self, side: str) -> tuple[int, int] | None:
        """(price, size) the word wants resting on ``side`` ('B'/'S'), or None."""
        if self.withdraw_all:
            return None
        if side == "B":
            return (self.bid_price, self.bid_size) if self.sides & SIDE_BID else None
        return (self.ask_price, self.ask_size) if self.sides & SIDE_ASK else None


def record_wants(record: dict | None, side: str) -> tuple[int, int] | None:
    """(price, size) a QUOTE record wants on ``side``; None for a CANCEL or no record."""
    if record is None or int(record["kind"]) != KIND_QUOTE:
        return None
    bit = SIDE_BID if side == "B" else SIDE_ASK
    if not int(record["sides"]) & bit:
        return None
    if side == "B":
        return int(record["bid_price"]), int(record["bid_size"])
    return int(record["ask_price"]), int(record["ask_size"])


@dataclass
class ExpectedRun:
    config: AppConfig
    universe: Universe
    core_mhz: float
    words: dict[tuple[int, int, int], Word] = field(default_factory=dict)
    repeated_keys: int = 0
    records: list[dict] = field(default_factory=list)
    record_stamps: list[int] = field(default_factory=list)
    last_record: dict[int, dict] = field(default_factory=dict)
    book_rows: dict[tuple[int, int], tuple] = field(default_factory=dict)   # (seq, msg_index) -> row
    mids: dict[int, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    option_cycles: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    counters: dict = field(default_factory=dict)
    frames: int = 0

    def word(self, seq: int, msg_index: int, option_id: int) -> Word | None:
        return self.words.get((seq, msg_index, option_id))

    def rate_sensitive_options(self, jitter_ns: int) -> set[int]:
        """Options whose gate rate limit could have decided differently in
        the appliance: some span of ``rate_window`` cycles plus the arrival
        jitter holds ``rate_count`` of the option's words.  Words, not
        records, are counted, which can only over-count; with ``jitter_ns``
        0 and the same stamps the appliance's gate decides exactly alike."""
        gate = self.config.gate.settings(list(self.universe.locates.values()), self.core_mhz)
        span = gate.rate_window + int(jitter_ns * self.core_mhz / 1000)
        need = gate.rate_count
        out = set()
        for option, cycles in self.option_cycles.items():
            if len(cycles) < need:
                continue
            arr = np.asarray(cycles, dtype=np.int64)
            if need == 0:
                out.add(option)
                continue
            # the word need-1 places later is within the span: a full window
            if np.any(arr[need - 1:] - arr[:len(arr) - need + 1] < span):
                out.add(option)
        return out


def run_expected(capture: str | Path, config: AppConfig, *, locates: dict[str, int] | None = None,
                 directory: str | Path | None = None,
                 progress: Callable[[int], None] | None = None,
                 record_cycles: Sequence[int] | None = None) -> ExpectedRun:
    """The model fabric over every frame of ``capture`` (both feeds, in
    capture order), stamped with the capture's timestamps, or with
    ``record_cycles`` (one per book record, the stamps of the fabric under
    test) when given; then a :class:`~host.replay.stamps.StampError` says
    the two fabrics did not send the same number of book records."""
    if locates is None:
        locates = stock_locates(directory or capture, config.underlyings())
    universe = build_universe(config.chains, locates)
    core_mhz = CORE_MHZ[config.appliance.board]
    fabric = (ModelFabric(core_mhz) if record_cycles is None
              else StampedModelFabric(record_cycles, core_mhz))
    fabric.load(fabric_config(config, universe))
    model = fabric.model
    gate = model.gate
    run = ExpectedRun(config, universe, core_mhz)
    pending: list[dict] = []
    process = gate.process

    def tap(word: dict) -> list[dict]:
        pending.append(word)
        return process(word)

    gate.process = tap
    words = run.words
    symbol_of = {loc: sym for sym, loc in universe.locates.items()}
    try:
        for frames, stamps in replay_batches(capture, config.feed.addresses(), batch=1):
            run.frames += 1
            stamp = stamps[0]
            fabric.push(frames, stamps)
            out = fabric.poll()
            for record in out.book:
                if record.dest == TDEST_UPDATE:
                    row = record.row
                    run.book_rows[(int(row[4]), int(row[3]))] = row
                    if int(row[0]) in symbol_of:
                        bid, ask = int(row[6][0]), int(row[9][0])
                        if bid and ask:
                            run.mids[int(row[0])].append((stamp, (bid + ask) / 2e4))
            for word in pending:
                key = (int(word["seq"]), int(word["msg_index"]), int(word["option_id"]))
                if key in words:
                    run.repeated_keys += 1
                words[key] = _ruled(gate, word, stamp)
                run.option_cycles[key[2]].append(int(word["ingress_cycle"]))
            pending.clear()
            for record in out.quotes:
                run.records.append(record)
                run.record_stamps.append(stamp)
                run.last_record[int(record["option_id"])] = record
            if progress is not None:
                progress(1)
    finally:
        gate.process = process
    if record_cycles is not None:
        fabric.check_all_used()
    run.counters = fabric.counters()
    return run


def _ruled(gate, word: dict, stamp_ns: int) -> Word:
    settings = gate.settings
    entry = settings.lookup(word["underlying"])
    sides = int(word["sides"]) & (SIDE_BID | SIDE_ASK)
    for side, name in ((SIDE_BID, "bid_price"), (SIDE_ASK, "ask_price")):
        # The gate's own side rules, so the expected sides are the
        # specification's and not a second copy of it.
        if sides & side and gate.side_reason(side, word[name], word["theo_qp"], entry) is not None:
            sides &= ~side
    return Word(
        option_id=int(word["option_id"]), underlying=int(word["underlying"]), sides=sides,
        bid_price=int(word["bid_price"]) if sides & SIDE_BID else 0,
        ask_price=int(word["ask_price"]) if sides & SIDE_ASK else 0,
        bid_size=int(word["bid_size"]) if sides & SIDE_BID else 0,
        ask_size=int(word["ask_size"]) if sides & SIDE_ASK else 0,
        withdraw_all=entry is not None and bool(int(word["flags"]) & settings.pull_mask),
        requote=bool(word["requote"]), cycle=int(word["ingress_cycle"]), stamp_ns=stamp_ns)


def summarize_records(records) -> Counter:
    counts = Counter()
    for record in records:
        counts["quote_records" if int(record["kind"]) == KIND_QUOTE else
               "cancel_records" if int(record["kind"]) == KIND_CANCEL else "other_records"] += 1
    return counts
