"""Stimulus for the quoter and risk-gate benches, and the models' expectations.

A :class:`Stimulus` is a list of phases, each register writes (done over
AXI-Lite while the block is idle) followed by input words (theo words for
the quoter, quote words for the gate).  A scenario object builds the phases
and runs the block's model on the same changes and words, so the expected
output is known before the simulator starts.  ``new_case`` starts over from
reset inside the same run (the bench pulses ``rst``), after a snapshot of
the counters, so many small cases share one simulator start.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from host.book.records import FLAG_CROSSED, FLAG_DEGRADED, FLAG_NOT_TRADING, FLAG_STALE
from host.quoting.records import SIDE_ASK, SIDE_BID
from rtl.common.theo_stream import pack_theo
from rtl.pricer.formats import DELTA, MONEY
from rtl.quoter.model import QuoterModel, QuoterSettings, theo_to_qp
from rtl.quoter.stream import pack_quote
from rtl.regmap.driver import encode
from rtl.risk_gate.model import GateSettings, RiskGateModel, UnderlyingEntry

U32 = 0xFFFF_FFFF


@dataclass
class Phase:
    writes: list = field(default_factory=list)      # [register, value] in order
    words: list = field(default_factory=list)       # input words (ints)
    reset: bool = False        # pulse rst before the writes (a new case)
    snapshot: bool = False     # read every counter once the phase has drained


@dataclass
class Stimulus:
    phases: list
    source_pause: float = 0.0
    sink_pause: float = 0.0
    seed: int = 0
    gap_cycles: int = 0
    expected: int = 0          # output words / records the model predicts

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: Path) -> "Stimulus":
        raw = json.loads(Path(path).read_text())
        raw["phases"] = [Phase(**p) for p in raw["phases"]]
        return cls(**raw)

    @property
    def word_count(self) -> int:
        return sum(len(p.words) for p in self.phases)


def theo(option_id: int, price: float | int, underlying: int = 7, flags: int = 0,
         delta: float = 0.5, seq: int = 1000, msg_index: int = 0, ingress_cycle: int = 0,
         raw: bool = False) -> dict:
    """A theo word's fields; ``price`` in dollars (or raw MONEY with ``raw``)."""
    return {"option_id": option_id, "underlying": underlying, "flags": flags,
            "spot": MONEY.from_real(100), "price": int(price) if raw else MONEY.from_real(price),
            "delta": DELTA.from_real(delta), "gamma": 0, "vega": 0, "theta": 0, "seq": seq,
            "msg_index": msg_index, "ingress_cycle": ingress_cycle, "last": 0}


class _Scenario:
    """What the quoter and gate scenarios share: phases, expected output,
    counter snapshots and the start of a new case from reset."""

    def _init_phases(self):
        self.phases: list[Phase] = []
        self.expected: list[dict] = []
        self.snapshots: list[dict] = []
        self._writes: list = []
        self._reset_next = False

    def _phase(self, words: list) -> None:
        self.phases.append(Phase(self._writes, words, reset=self._reset_next))
        self._writes = []
        self._reset_next = False

    def new_case(self) -> None:
        """Snapshot the counters, then start again from reset."""
        if self._writes or not self.phases:
            self._phase([])
        self.phases[-1].snapshot = True
        self.snapshots.append(dict(self.model.counters))
        self._restart()
        self._reset_next = True

    def stimulus(self, **kw) -> Stimulus:
        if self._writes or self._reset_next:
            self._phase([])
        return Stimulus(self.phases, expected=len(self.expected), **kw)


def theo_raw(price4: int) -> int:
    """The MONEY value whose QP is exactly ``price4 * 2**16`` (so tick
    boundaries can be hit exactly)."""
    return -((-price4 << 40) // 10_000)


# ---- quoter ----------------------------------------------------------------------
def quoter_writes(settings: QuoterSettings) -> list:
    writes = [["HALF_SPREAD", settings.half_spread], ["SKEW", settings.skew & U32],
              ["BID_SIZE", settings.bid_size], ["ASK_SIZE", settings.ask_size],
              ["MIN_EDGE", settings.min_edge],
              ["REQUOTE_THRESHOLD", settings.requote_threshold]]
    for i, band in enumerate(settings.ticks):
        writes += [[f"TICK{i}_START", band.start], [f"TICK{i}_SIZE", band.size],
                   [f"TICK{i}_RECIP", band.recip]]
    return writes


class QuoterScenario(_Scenario):
    """Phases for the quoter bench, with the model's output words."""

    def __init__(self, settings: QuoterSettings | None = None):
        self._init_phases()
        self._restart()
        if settings is not None:
            self.configure(settings)

    def _restart(self) -> None:
        self.model = QuoterModel()
        self.toggle = 0

    def configure(self, settings: QuoterSettings) -> None:
        self.model.settings = settings
        self._writes += quoter_writes(settings)

    def position(self, option: int, contracts: int) -> None:
        self.model.set_position(option, contracts)
        self._writes.append([f"POSITION{option}", contracts & U32])

    def requote_all(self) -> None:
        self.model.requote_all()
        self.toggle ^= 1
        self._writes.append(["CONTROL", encode("quoter", "CONTROL", requote_all=self.toggle)])

    def theos(self, theos: list[dict]) -> list[dict]:
        out = self.model.run(theos)
        self.expected += out
        self._phase([pack_theo(**t) for t in theos])
        return out


def random_theos(rng: random.Random, count: int, options: int = 72,
                 underlyings=(7, 8, 9)) -> list[dict]:
    """Theo words as a chain walk would give them: options of a few
    underlyings, prices drifting by small steps (so requotes depend on the
    threshold), now and then a jump, a repeat of the same option, an extreme
    price, a flag, or an option outside the table."""
    prices = {o: rng.choice([rng.uniform(0.01, 3.5), rng.uniform(2.5, 60.0)])
              for o in range(options)}
    out = []
    option = 0
    for k in range(count):
        if rng.random() < 0.8:
            option = rng.randrange(options)
        roll = rng.random()
        if roll < 0.6:
            prices[option] = max(0.0, prices[option] + rng.gauss(0, 0.01))
        elif roll < 0.7:
            prices[option] = rng.uniform(0, 80)
        elif roll < 0.75:
            prices[option] = rng.choice([0.0, 2.9999, 3.0, 3.0001, 0.0001, 1e-9])
        price = MONEY.from_real(prices[option])
        if rng.random() < 0.02:
            price = rng.choice([MONEY.min_raw, MONEY.max_raw, -price, 0, 1, -1])
        flags = rng.choice([0] * 12 + [FLAG_STALE, FLAG_DEGRADED, FLAG_CROSSED,
                                       FLAG_NOT_TRADING])
        out.append(theo(option, price, underlying=underlyings[option % len(underlyings)],
                        flags=flags, delta=rng.uniform(-1, 1), seq=1000 + k,
                        msg_index=rng.randrange(1 << 16), ingress_cycle=rng.randrange(1 << 32),
                        raw=True))
    return out


# ---- risk gate -----------------------------------------------------------------
def gate_writes(settings: GateSettings) -> list:
    writes = [["THROUGH_LIMIT", settings.through_limit], ["MIN_PRICE", settings.min_price],
              ["MAX_PRICE", settings.max_price], ["RATE_COUNT", settings.rate_count],
              ["RATE_WINDOW", settings.rate_window]]
    for n, entry in enumerate(settings.underlyings):
        writes.append([f"UNDERLYING{n}", encode(
            "risk_gate", f"UNDERLYING{n}", **{f"und{n}_locate": entry.locate,
                                               f"und{n}_bid_enable": int(entry.bid_enable),
                                               f"und{n}_ask_enable": int(entry.ask_enable),
                                               f"und{n}_valid": int(entry.valid)})])
    # CONTROL last: a kill cleared after the tables are in place.
    writes.append(["CONTROL", encode("risk_gate", "CONTROL", kill=int(settings.kill),
                                     pull_mask=settings.pull_mask)])
    return writes


class GateScenario(_Scenario):
    """Phases for the gate bench, with the model's records."""

    def __init__(self, settings: GateSettings | None = None):
        self._init_phases()
        self._restart()
        if settings is not None:
            self.configure(settings)

    def _restart(self) -> None:
        self.model = RiskGateModel()

    def configure(self, settings: GateSettings) -> list[dict]:
        old = self.model.settings
        changes = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
        out = self.model.configure(**changes)
        self.expected += out
        self._writes += gate_writes(settings)
        # A kill's pulls must leave before the next phase's words: close the
        # phase here so the bench drains them.
        if settings.kill and not old.kill:
            self._phase([])
        return out

    def change(self, **changes) -> list[dict]:
        settings = GateSettings(**{**{n: getattr(self.model.settings, n)
                                      for n in GateSettings.__dataclass_fields__}, **changes})
        return self.configure(settings)

    def words(self, words: list[dict]) -> list[dict]:
        out = self.model.run(words)
        self.expected += out
        self._phase([pack_quote(**w) for w in words])
        return out


def quote_word(option_id: int, bid: int | None, ask: int | None, theo_price: float,
               underlying: int = 7, flags: int = 0, requote: int = 1, bid_size: int = 10,
               ask_size: int = 10, position: int = 0, seq: int = 2000, msg_index: int = 1,
               ingress_cycle: int = 0, delta: float = 0.5) -> dict:
    """A quote word's fields; prices in price4 (None: side not quoted)."""
    theo_raw = MONEY.from_real(theo_price)
    sides = (SIDE_BID if bid is not None else 0) | (SIDE_ASK if ask is not None else 0)
    return {"option_id": option_id, "underlying": underlying, "flags": flags, "sides": sides,
            "requote": requote, "bid_price": bid or 0, "ask_price": ask or 0,
            "bid_size": bid_size if bid is not None else 0,
            "ask_size": ask_size if ask is not None else 0, "position": position,
            "theo": theo_raw, "theo_qp": theo_to_qp(theo_raw), "delta": DELTA.from_real(delta),
            "seq": seq, "msg_index": msg_index, "ingress_cycle": ingress_cycle}


def random_quote_words(rng: random.Random, count: int, options: int = 70,
                       underlyings=(7, 8, 9, 11), cycle_step: int = 40) -> list[dict]:
    """Quote words as the quoter would send them, drawn to hit every rule:
    one or both sides, prices near and through theo and the band, requote
    or not, bad books now and then, options outside the table, time moving
    so rate windows roll over."""
    out = []
    t = rng.randrange(1 << 32)
    stale_until = {}
    for k in range(count):
        option = rng.randrange(options)
        underlying = underlyings[option % len(underlyings)]
        t = (t + rng.randrange(cycle_step)) & U32
        theo_price = rng.uniform(0.05, 40.0)
        center = int(theo_price * 10_000)
        # Mostly away from theo, now and then through it.
        through = rng.choice([0, 0, 0, 3_000])
        bid = max(0, center - rng.choice([0, 100, 500, 1_000, 5_000]) + through)
        ask = max(0, center + rng.choice([0, 100, 500, 1_000, 5_000]) - through)
        if rng.random() < 0.03:
            bid, ask = rng.choice([(0, 1), (U32, U32), (1, 2_000_000_000)])
        sides = rng.choice([SIDE_BID | SIDE_ASK] * 6 + [SIDE_BID, SIDE_ASK, 0])
        flags = 0
        if underlying in stale_until and k < stale_until[underlying]:
            flags = rng.choice([FLAG_STALE, FLAG_DEGRADED, FLAG_STALE | FLAG_DEGRADED, 0])
        elif rng.random() < 0.02:
            stale_until[underlying] = k + rng.randrange(5, 60)
            flags = rng.choice([FLAG_STALE, FLAG_DEGRADED, FLAG_NOT_TRADING])
        elif rng.random() < 0.03:
            flags = rng.choice([FLAG_CROSSED, FLAG_NOT_TRADING])
        out.append(quote_word(option, bid if sides & SIDE_BID else None,
                              ask if sides & SIDE_ASK else None, theo_price,
                              underlying=underlying, flags=flags,
                              requote=int(rng.random() < 0.6), bid_size=rng.randrange(1, 500),
                              ask_size=rng.randrange(1, 500), position=rng.randrange(-999, 999),
                              seq=10_000 + k, msg_index=rng.randrange(1 << 16),
                              ingress_cycle=t, delta=rng.uniform(-1, 1)))
    return out


def default_underlyings() -> tuple[UnderlyingEntry, ...]:
    return (UnderlyingEntry(7, True, True, True), UnderlyingEntry(8, True, True, True),
            UnderlyingEntry(9, True, False, True), UnderlyingEntry(11, False, True, True))


# ---- quoter and gate in a row -----------------------------------------------------
class ChainScenario(_Scenario):
    """Phases for the quote_path bench: register writes name their block
    (``"quoter.HALF_SPREAD"``), theo words in, the chained models' records out."""

    def __init__(self, quoter_settings: QuoterSettings, gate_settings: GateSettings):
        self._init_phases()
        self._restart()
        self.model.quoter.settings = quoter_settings
        self._writes += [[f"quoter.{r}", v] for r, v in quoter_writes(quoter_settings)]
        self.expected += self.model.gate.configure(
            **{n: getattr(gate_settings, n) for n in GateSettings.__dataclass_fields__})
        self._writes += [[f"risk_gate.{r}", v] for r, v in gate_writes(gate_settings)]

    def _restart(self) -> None:
        from types import SimpleNamespace

        self.model = SimpleNamespace(quoter=QuoterModel(), gate=RiskGateModel())

    def position(self, option: int, contracts: int) -> None:
        self.model.quoter.set_position(option, contracts)
        self._writes.append([f"quoter.POSITION{option}", contracts & U32])

    def theos(self, theos: list[dict]) -> list[dict]:
        from rtl.risk_gate.quote_path import run_model

        out = run_model(self.model.quoter, self.model.gate, theos)
        self.expected += out
        self._phase([pack_theo(**t) for t in theos])
        return out
