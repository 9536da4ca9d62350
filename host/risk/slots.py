"""Per-instrument state of the risk engine's fast path.

The engine judges most requests twice over in the same terms: once as the
straightforward checks of :mod:`host.risk.engine` (the specification, which
also names the reason of a refusal), once as the fast path, which only
answers "every check passes" and is taken when it can say so.  For the fast
path each instrument has an :class:`InstrumentSlot` holding what does not
change from one request to the next:

* the limits that apply to it (size, notional, position, its underlying's
  Greeks), taken when the slot is built, which is again whenever the
  engine's limits object is replaced;
* what follows from the marks of its underlying: the theo and spot the
  Greek and capital checks use and the price band as two integers, the
  highest buy price and the lowest sell price that pass both the band
  against the underlying's BBO (or the option's no-arbitrage bounds) and
  the band against the theo.  These are worked out again when a mark of
  the underlying changed (:class:`MarksVersion`).

A threshold is not a rounded copy of the limit: it is the exact integer at
which the straightforward check's own floating-point comparison changes its
answer (:func:`last_true`), so a price passes the integer test exactly when
it passes the float test.
"""
from __future__ import annotations

import math
from typing import Callable

from host.positions.instruments import Instrument
from host.positions.marks import PRICE_SCALE
from host.protocols.ouch50 import MAX_LIMIT_PRICE

#: Above every valid price: a sell threshold that refuses every price.
NO_SELL = MAX_LIMIT_PRICE + 1
#: Below every valid price: a buy threshold that refuses every price.
NO_BUY = -1


def last_true(holds: Callable[[int], bool], estimate: float, lowest: int, highest: int) -> int:
    """The largest n in ``lowest..highest`` for which ``holds(n)``, where
    ``holds`` is true up to some n and false above it; ``lowest - 1`` when
    it holds nowhere.  ``estimate`` (any float, even inf or nan) is where
    the search starts; a good one makes it a step or two."""
    if not holds(lowest):
        return lowest - 1
    if holds(highest):
        return highest
    start = int(estimate) if math.isfinite(estimate) else lowest
    start = min(max(start, lowest), highest)
    # Gallop from the estimate to a bracket good <= boundary < bad ...
    step = 1
    if holds(start):
        good, bad = start, highest
        while good + step < bad and holds(good + step):
            good += step
            step *= 2
        bad = min(bad, good + step)
    else:
        good, bad = lowest, start
        while bad - step > good and not holds(bad - step):
            bad -= step
            step *= 2
        good = max(good, bad - step)
    # ... then halve it.
    while bad - good > 1:
        middle = (good + bad) // 2
        if holds(middle):
            good = middle
        else:
            bad = middle
    return good


def highest_price_not_above(dollars: float) -> int:
    """Largest price p (OUCH units) with ``not p / PRICE_SCALE > dollars``,
    the test a buy fails; :data:`NO_BUY` when every valid price fails it."""
    bound = last_true(lambda p: not p / PRICE_SCALE > dollars, dollars * PRICE_SCALE,
                      0, MAX_LIMIT_PRICE)
    return NO_BUY if bound < 1 else bound


def lowest_price_not_below(dollars: float) -> int:
    """Smallest price p with ``not p / PRICE_SCALE < dollars``, the test a
    sell fails; :data:`NO_SELL` when every valid price fails it."""
    return last_true(lambda p: p / PRICE_SCALE < dollars, dollars * PRICE_SCALE,
                     0, MAX_LIMIT_PRICE) + 1


def notional_cap(multiplier: int, max_dollars: float, max_quantity: int) -> int:
    """Largest price * quantity whose notional ``price * quantity *
    multiplier / PRICE_SCALE`` is not above ``max_dollars``."""
    return last_true(lambda n: not n * multiplier / PRICE_SCALE > max_dollars,
                     max_dollars * PRICE_SCALE / multiplier, 0,
                     MAX_LIMIT_PRICE * max_quantity)


class MarksVersion:
    """Counts the changes of one underlying's marks (a slot compares it with
    the count it was priced at)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class InstrumentSlot:
    __slots__ = (
        "symbol", "underlying", "instrument", "is_option", "multiplier",
        "notional_cap", "position_limit", "underlying_limit", "max_delta", "max_gamma",
        "max_vega", "margin_fraction",
        # from the marks, as of marks version ``priced_at``
        "marks_version", "priced_at", "buy_max", "sell_min", "theo", "spot",
        "theo_delta", "theo_gamma", "theo_vega",
    )

    def __init__(self, instrument: Instrument, marks_version: MarksVersion, *,
                 notional_cap: int, position_limit: int, underlying_limit: int,
                 max_delta: float, max_gamma: float, max_vega: float,
                 margin_fraction: float):
        self.symbol = instrument.symbol
        self.underlying = instrument.underlying
        self.instrument = instrument
        self.is_option = instrument.option is not None
        self.multiplier = instrument.multiplier
        self.notional_cap = notional_cap
        self.position_limit = position_limit
        self.underlying_limit = underlying_limit
        self.max_delta = max_delta
        self.max_gamma = max_gamma
        self.max_vega = max_vega
        self.margin_fraction = margin_fraction
        self.marks_version = marks_version
        self.priced_at = -1          # never: priced before the first use
        self.buy_max = NO_BUY
        self.sell_min = NO_SELL
        self.theo = None
        self.spot = None
        self.theo_delta = self.theo_gamma = self.theo_vega = 0.0
