"""Bit-accurate model of the whole fabric: Ethernet frames in, records out.

The block models composed in data-path order, nothing added between them::

    frames A/B -> FeedPathModel -> book-update records -> ChainModel -> theo words
               -> QuoterModel -> quote words -> RiskGateModel -> quote records

Every book-update record goes both to the host (the record stream) and to
the chain pricer; trades go to the host only.  The feed path's feed event
records (gaps, stale and recovered feeds, degraded books) go to the host
too, in :attr:`FabricOutput.feed_events`.  The chain pricer's walks are
taken as soon as a record is accepted, which is what the fabric does while
its output keeps up.  The fabric's free-running cycle counter does not exist
here: ``ingress_cycle`` of a record is the cycle the caller says its frame
arrived at (from the capture's timestamps when replaying, so the gate's rate
windows see the day's real pace), or else the index of the book record that
triggered it; ``egress_cycle`` is zero.  Comparisons with the RTL leave the
two stamps out.

The quoter and the risk gate track :data:`rtl.quoter.model.OPTIONS` options
whatever the size of the pricer's parameter table: those are their
hardware tables, and a theo word of a higher row is counted ``bad_option``
and dropped by the quoter, in the fabric as here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from host.quoting.records import QUOTE_DTYPE
from rtl.common.theo_stream import THEO_FIELDS
from rtl.feed_path.model import FeedPathConfig, FeedPathModel, Frame
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE, Output
from rtl.pricer_chain.model import ChainConfig, ChainModel, Entry
from rtl.quoter.model import QuoterModel, QuoterSettings
from rtl.risk_gate.model import GateSettings, RiskGateModel

_THEO_NAMES = tuple(name for name, _ in THEO_FIELDS)


@dataclass
class FabricConfig:
    """What the host loads before the day (all of it through registers on a board)."""

    feed: FeedPathConfig = field(default_factory=FeedPathConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    microprice: bool = False
    rows: np.ndarray | None = None             # parameter table (rtl.pricer.formats.param_dtype)
    underlyings: tuple[Entry, ...] = ()        # chain pricer's underlying table
    quoter: QuoterSettings = field(default_factory=QuoterSettings)
    gate: GateSettings = field(default_factory=GateSettings)


@dataclass
class FabricOutput:
    """What the fabric sent the host for some input."""

    book: list[Output] = field(default_factory=list)     # book updates and trades, in order
    quotes: list[dict] = field(default_factory=list)     # QUOTE_DTYPE field dicts, in order
    feed_events: list = field(default_factory=list)      # FEED_EVENT_DTYPE records, in order

    def extend(self, other: "FabricOutput") -> None:
        self.book += other.book
        self.quotes += other.quotes
        self.feed_events += other.feed_events

    def quote_array(self) -> np.ndarray:
        out = np.zeros(len(self.quotes), dtype=QUOTE_DTYPE)
        for i, record in enumerate(self.quotes):
            for name, value in record.items():
                out[i][name] = value
        return out


class FabricModel:
    def __init__(self, config: FabricConfig = FabricConfig()):
        self.config = config
        self.feed = FeedPathModel(config.feed)
        self.chain = ChainModel(config.chain, microprice=config.microprice)
        options = config.chain.options
        self.quoter = QuoterModel(config.quoter)
        self.gate = RiskGateModel(config.gate)
        if config.rows is not None:
            if len(config.rows) > options:
                raise ValueError(f"{len(config.rows)} parameter rows for a {options}-row table")
            for index, row in enumerate(config.rows):
                self.chain.write_row(index, row)
        for index, entry in enumerate(config.underlyings):
            self.chain.write_underlying(index, entry)
        self.book_records = 0

    # ---- host writes --------------------------------------------------------------
    def set_position(self, option_id: int, contracts: int) -> None:
        """Both tables the host keeps the position in: the quoter's skew and the
        chain pricer's scenario sums."""
        self.quoter.set_position(option_id, contracts)
        self.chain.write_position(option_id, contracts)

    def set_kill(self, kill: bool) -> FabricOutput:
        return FabricOutput(quotes=self.gate.configure(kill=kill))

    # ---- data path ----------------------------------------------------------------
    def _priced(self, output: Output, cycle: int | None) -> list[dict]:
        index = self.book_records
        self.book_records += 1
        self.chain.record(output.to_bytes(), output.dest,
                          ingress_cycle=index if cycle is None else cycle)
        quotes = []
        while (walk := self.chain.take()) is not None:
            for word in self.chain.walk(walk):
                theo = {name: int(word[name]) for name in _THEO_NAMES}
                quote = self.quoter.quote(theo)
                if quote is not None:
                    quotes += self.gate.process(quote)
        return quotes

    def process(self, frame: Frame, cycle: int | None = None) -> FabricOutput:
        """One frame; ``cycle``: the fabric cycle it arrived at, if known."""
        out = FabricOutput()
        events = len(self.feed.feed_events)
        records = self.feed.process(frame)
        out.feed_events += self.feed.feed_events[events:]
        for record in records:
            out.book.append(record)
            if record.dest in (TDEST_UPDATE, TDEST_TRADE):
                out.quotes += self._priced(record, cycle)
        return out

    def run(self, frames, cycles=None) -> FabricOutput:
        out = FabricOutput()
        for i, frame in enumerate(frames):
            out.extend(self.process(frame, None if cycles is None else cycles[i]))
        return out
