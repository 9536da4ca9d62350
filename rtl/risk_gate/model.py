"""Bit-accurate model of the fabric risk gate; this is the block's specification.

The last block before anything leaves the fabric.  It takes every word of
the quoter (:mod:`rtl.quoter.stream`) and sends the host quote and cancel
records (:data:`host.quoting.records.QUOTE_DTYPE`).  Its parameters are host
registers (:class:`GateSettings`).

State per option: the sides the host was last told to rest (``live``), the
locate they belong to, whether an update is *owed* (the gate held back one
the quoter wanted out), and the rate window (start, count).  Per entry of
the underlying table: *pulled*, set by a bad book and cleared by a good one.

A word goes through these steps, in this order:

1. ``option_id >= options``: counted ``bad_option``, nothing else.
2. The underlying is looked up in the table (lowest valid entry whose
   locate matches).  *Side rules* remove sides, first reason per side, each
   removed side counted once under its reason: ``unknown_underlying`` (no
   entry), ``side_disabled`` (the entry's enable for that side is off),
   ``through_theo`` (a bid above theo, or an ask below it, by more than
   ``through_limit``: ``bid * 2**16 > theo_qp + through_limit * 2**16``,
   ``ask * 2**16 < theo_qp - through_limit * 2**16``), ``outside_range``
   (price below ``min_price`` or above ``max_price``).
3. The word is a *candidate* -- something to tell the host -- when the
   quoter flagged it ``requote``, or an update is owed, or the sides left
   differ from the live ones.  Anything else is not looked at further
   (no count, no record).
4. A candidate is refused, counted by reason and the option marked owed,
   when the kill bit is set (``killed``), or the word's book flags carry a
   bit of ``pull_mask`` for a known underlying (``stale`` if FLAG_STALE is
   among them, else ``degraded`` if FLAG_DEGRADED is, else ``book_flag``).
   Otherwise its side removals are counted, then:
5. no side left: a CANCEL (``REASON_WITHDRAWN``) if the option is live,
   and nothing is owed any more;
6. else the rate limit: time is the word's ``ingress_cycle`` (the triggering
   book record's stamp, so the rule is exact and repeatable).  When
   ``(ingress_cycle - window_start) mod 2**32 >= rate_window`` a new window
   starts at this word with count 0; a window's count at ``rate_count``
   refuses the update (``rate_limited``, owed).  Else a QUOTE record goes
   out with the sides left (prices and sizes of removed sides zero), the
   option becomes live with them, owed clears and the window counts it.
7. Book state, after the word: a word of a known underlying with a
   ``pull_mask`` flag, when the entry is not pulled yet, pulls it
   (``book_pulls``): every live option of that locate, lowest option first,
   gets a CANCEL (``REASON_BOOK``, the word's flags and trigger), stops being
   live and is owed.  A word of a pulled entry with those flags clear
   recovers it (``book_recoveries``); its options come back with their next
   candidate words (owed, or live sides differ).

Setting the kill bit pulls every live option (CANCEL ``REASON_KILL``, lowest
option first, owed afterwards); clearing it lets the next candidates of each
option out.  The kill bit is set at reset: quoting starts when the host
clears it.  Cancels are never rate limited.  Rate windows assume a stretch
shorter than 2**31 cycles between an option's updates (about 8.6 s at
250 MHz); after a longer silence the 32-bit stamps may alias into an old
window once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

from host.book.records import FLAG_DEGRADED, FLAG_STALE
from host.protocols.ouch50 import MAX_LIMIT_PRICE
from host.quoting.records import (KIND_CANCEL, KIND_QUOTE, REASON_BOOK, REASON_KILL,
                                  REASON_WITHDRAWN, SIDE_ASK, SIDE_BID)
from rtl.quoter.model import OPTIONS, QP_FRAC

UNDERLYINGS = 16
DEFAULT_PULL_MASK = FLAG_STALE | FLAG_DEGRADED
DEFAULT_RATE_COUNT = 4
DEFAULT_RATE_WINDOW = 250_000        # 1 ms at 250 MHz
CYCLE_MASK = 0xFFFF_FFFF
COUNTER_MASK = 0xFFFF_FFFF

SIDE_REASONS = ("unknown_underlying", "side_disabled", "through_theo", "outside_range")
REFUSALS = ("killed", "stale", "degraded", "book_flag", "rate_limited")
COUNTERS = ("words", "quotes", "cancel_kill", "cancel_book", "cancel_withdrawn", "book_pulls",
            "book_recoveries", "bad_option") + REFUSALS + SIDE_REASONS


@dataclass(frozen=True)
class UnderlyingEntry:
    """One row of the underlying table: a locate and its side enables."""

    locate: int = 0
    bid_enable: bool = False
    ask_enable: bool = False
    valid: bool = False

    def __post_init__(self):
        if not 0 <= self.locate <= 0xFFFF:
            raise ValueError(f"locate {self.locate} does not fit 16 bits")


def _u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{name}={value} does not fit 32 bits")


@dataclass(frozen=True)
class GateSettings:
    """The gate's registers (raw values); defaults are the reset values."""

    kill: bool = True
    pull_mask: int = DEFAULT_PULL_MASK
    through_limit: int = 0           # price4
    min_price: int = 1               # price4
    max_price: int = MAX_LIMIT_PRICE
    rate_count: int = DEFAULT_RATE_COUNT
    rate_window: int = DEFAULT_RATE_WINDOW    # cycles
    underlyings: tuple[UnderlyingEntry, ...] = ()

    def __post_init__(self):
        for name in ("through_limit", "min_price", "max_price", "rate_window"):
            _u32(name, getattr(self, name))
        if not 0 <= self.pull_mask <= 0xFF:
            raise ValueError(f"pull_mask={self.pull_mask} does not fit 8 bits")
        if not 0 <= self.rate_count <= 0xFF:
            raise ValueError(f"rate_count={self.rate_count} does not fit 8 bits")
        table = tuple(self.underlyings)
        if len(table) > UNDERLYINGS:
            raise ValueError(f"the underlying table has {UNDERLYINGS} entries, got {len(table)}")
        object.__setattr__(self, "underlyings",
                           table + (UnderlyingEntry(),) * (UNDERLYINGS - len(table)))

    def lookup(self, locate: int) -> int | None:
        for i, entry in enumerate(self.underlyings):
            if entry.valid and entry.locate == locate:
                return i
        return None


@dataclass
class OptionState:
    live: int = 0            # SIDE_* bits resting at the host
    owed: bool = False
    locate: int = 0
    window_start: int = 0
    window_count: int = 0


def _record(kind: int, reason: int, option: int, underlying: int, flags: int = 0,
            trigger: dict | None = None, **fields) -> dict:
    trigger = trigger or {}
    record = {"kind": kind, "reason": reason, "sides": 0, "flags": flags, "option_id": option,
              "underlying": underlying, "bid_price": 0, "ask_price": 0, "bid_size": 0,
              "ask_size": 0, "theo": 0, "delta": 0, "seq": trigger.get("seq", 0),
              "msg_index": trigger.get("msg_index", 0), "position": 0,
              "ingress_cycle": trigger.get("ingress_cycle", 0)}
    record.update(fields)
    return record


@dataclass
class RiskGateModel:
    settings: GateSettings = field(default_factory=GateSettings)
    options: int = OPTIONS

    def __post_init__(self):
        self.state = [OptionState() for _ in range(self.options)]
        self.pulled = [False] * UNDERLYINGS
        self.counters = {name: 0 for name in COUNTERS}

    # ---- host side ------------------------------------------------------------
    def configure(self, **changes) -> list[dict]:
        """Write registers (GateSettings fields); returns the records a kill
        causes (the gate applies register writes between words)."""
        was_killed = self.settings.kill
        self.settings = replace(self.settings, **changes)
        if self.settings.kill and not was_killed:
            return self._pull(lambda st: True, REASON_KILL, "cancel_kill")
        return []

    def set_underlying(self, index: int, entry: UnderlyingEntry) -> list[dict]:
        table = list(self.settings.underlyings)
        table[index] = entry
        return self.configure(underlyings=tuple(table))

    def pulled_mask(self) -> int:
        return sum(1 << i for i, pulled in enumerate(self.pulled) if pulled)

    def live_options(self) -> int:
        return sum(1 for st in self.state if st.live)

    # ---- data path ------------------------------------------------------------
    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = (self.counters[name] + amount) & COUNTER_MASK

    def _pull(self, which, reason: int, counter: str, flags: int = 0,
              trigger: dict | None = None) -> list[dict]:
        out = []
        for option, st in enumerate(self.state):
            if st.live and which(st):
                out.append(_record(KIND_CANCEL, reason, option, st.locate, flags, trigger))
                st.live = 0
                st.owed = True
                self._count(counter)
        return out

    def side_reason(self, side: int, price: int, theo_qp: int,
                    entry_index: int | None) -> str | None:
        """Why the side rules remove ``side`` (SIDE_BID or SIDE_ASK) at ``price``
        from a word with theo ``theo_qp`` of underlying-table entry
        ``entry_index`` (None: no entry), or None when the side stays: the
        names of :data:`SIDE_REASONS`, first rule that applies."""
        s = self.settings
        if entry_index is None:
            return "unknown_underlying"
        entry = s.underlyings[entry_index]
        if not (entry.bid_enable if side == SIDE_BID else entry.ask_enable):
            return "side_disabled"
        limit = s.through_limit << QP_FRAC
        if side == SIDE_BID and (price << QP_FRAC) > theo_qp + limit:
            return "through_theo"
        if side == SIDE_ASK and (price << QP_FRAC) < theo_qp - limit:
            return "through_theo"
        if price < s.min_price or price > s.max_price:
            return "outside_range"
        return None

    def process(self, word: dict) -> list[dict]:
        """Records (QUOTE_DTYPE fields but egress_cycle) for one quote word."""
        self._count("words")
        option = word["option_id"]
        if option >= self.options:
            self._count("bad_option")
            return []
        s = self.settings
        st = self.state[option]
        entry = s.lookup(word["underlying"])
        bad = word["flags"] & s.pull_mask

        sides = word["sides"] & (SIDE_BID | SIDE_ASK)
        removed = []
        for side, price_name in ((SIDE_BID, "bid_price"), (SIDE_ASK, "ask_price")):
            if sides & side:
                reason = self.side_reason(side, word[price_name], word["theo_qp"], entry)
                if reason is not None:
                    removed.append(reason)
                    sides &= ~side

        out: list[dict] = []
        candidate = word["requote"] or st.owed or sides != st.live
        if candidate:
            if s.kill:
                self._count("killed")
                st.owed = True
            elif entry is not None and bad:
                self._count("stale" if bad & FLAG_STALE else
                            "degraded" if bad & FLAG_DEGRADED else "book_flag")
                st.owed = True
            else:
                for reason in removed:
                    self._count(reason)
                if not sides:
                    if st.live:
                        out.append(_record(KIND_CANCEL, REASON_WITHDRAWN, option,
                                           word["underlying"], word["flags"], word))
                        self._count("cancel_withdrawn")
                        st.live = 0
                    st.owed = False
                else:
                    t = word["ingress_cycle"]
                    roll = ((t - st.window_start) & CYCLE_MASK) >= s.rate_window
                    count = 0 if roll else st.window_count
                    if count >= s.rate_count:
                        self._count("rate_limited")
                        st.owed = True
                    else:
                        bid, ask = bool(sides & SIDE_BID), bool(sides & SIDE_ASK)
                        out.append(_record(
                            KIND_QUOTE, 0, option, word["underlying"], word["flags"], word,
                            sides=sides,
                            bid_price=word["bid_price"] if bid else 0,
                            bid_size=word["bid_size"] if bid else 0,
                            ask_price=word["ask_price"] if ask else 0,
                            ask_size=word["ask_size"] if ask else 0,
                            theo=word["theo"], delta=word["delta"], position=word["position"]))
                        self._count("quotes")
                        st.live = sides
                        st.locate = word["underlying"]
                        st.owed = False
                        if roll:
                            st.window_start = t
                        st.window_count = count + 1

        if entry is not None:
            if bad and not self.pulled[entry]:
                self.pulled[entry] = True
                self._count("book_pulls")
                locate = word["underlying"]
                out += self._pull(lambda other: other.locate == locate, REASON_BOOK,
                                  "cancel_book", word["flags"], word)
            elif not bad and self.pulled[entry]:
                self.pulled[entry] = False
                self._count("book_recoveries")
        return out

    def run(self, words: Iterable[dict]) -> list[dict]:
        out = []
        for word in words:
            out += self.process(word)
        return out


def underlying_table(entries: Sequence[UnderlyingEntry]) -> tuple[UnderlyingEntry, ...]:
    """A full-size table from the first entries."""
    return GateSettings(underlyings=tuple(entries)).underlyings
