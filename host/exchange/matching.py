"""Price-time priority order book for one symbol.

Buys rest on the bid side, every sell flavour (sell, short, short exempt) on
the ask side.  Within a price, orders keep arrival order; an order that is
re-priced or replaced goes to the back of its new level.  The book only
stores orders: deciding who trades with whom (including the external market
and self-match prevention) is the engine's job, which walks the book through
:meth:`SymbolBook.front`.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator


@dataclass(eq=False)
class RestingOrder:
    owner: str
    user_ref_num: int
    side: str
    symbol: str
    price: int
    open_quantity: int
    order_reference_number: int
    firm: str = ""
    time_in_force: str = "0"
    display: str = "Y"
    capacity: str = "P"
    cl_ord_id: str = ""
    #: "L" limit, "M" midpoint peg (``price`` then follows the market).
    price_type: str = "L"
    #: the client's limit; for a peg the worst price it may be pegged to.
    limit_price: int = 0
    aiq_strategy: str = "N"
    #: a full cancel arrived while the symbol was halted; done at resume.
    cancel_pending: bool = False

    @property
    def is_buy(self) -> bool:
        return self.side == "B"


@dataclass
class _Side:
    is_bid: bool
    prices: list[int] = field(default_factory=list)   # ascending
    levels: dict[int, deque] = field(default_factory=dict)

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def add(self, order: RestingOrder) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = self.levels[order.price] = deque()
            bisect.insort(self.prices, order.price)
        level.append(order)

    def remove(self, order: RestingOrder) -> bool:
        level = self.levels.get(order.price)
        if level is None:
            return False
        try:
            level.remove(order)
        except ValueError:
            return False
        if not level:
            del self.levels[order.price]
            self.prices.remove(order.price)
        return True

    def __iter__(self) -> Iterator[RestingOrder]:
        for price in (reversed(self.prices) if self.is_bid else self.prices):
            yield from list(self.levels[price])


class SymbolBook:
    def __init__(self, symbol: str):
        self.symbol = symbol
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)

    def side_of(self, is_buy: bool) -> _Side:
        return self.bids if is_buy else self.asks

    def front(self, is_bid: bool) -> RestingOrder | None:
        """The order first in line on one side (best price, oldest)."""
        side = self.bids if is_bid else self.asks
        best = side.best()
        return None if best is None else side.levels[best][0]

    def rest(self, order: RestingOrder) -> None:
        self.side_of(order.is_buy).add(order)

    def remove(self, order: RestingOrder) -> bool:
        return self.side_of(order.is_buy).remove(order)

    def orders(self) -> list[RestingOrder]:
        return list(self.bids) + list(self.asks)
