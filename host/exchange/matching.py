"""Price-time priority matching for one symbol.

Buys rest on the bid side, every sell flavour (sell, short, short exempt) on
the ask side.  An incoming order trades against the best opposite price while
it crosses, oldest order first at each price, at the resting order's price.
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

    @property
    def is_buy(self) -> bool:
        return self.side == "B"


@dataclass(frozen=True)
class Fill:
    taker: RestingOrder
    maker: RestingOrder
    quantity: int
    price: int


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

    def remove(self, order: RestingOrder) -> None:
        level = self.levels.get(order.price)
        if level is None:
            return
        try:
            level.remove(order)
        except ValueError:
            return
        if not level:
            del self.levels[order.price]
            self.prices.remove(order.price)

    def __iter__(self) -> Iterator[RestingOrder]:
        for price in (reversed(self.prices) if self.is_bid else self.prices):
            yield from self.levels[price]


class SymbolBook:
    def __init__(self, symbol: str):
        self.symbol = symbol
        self.bids = _Side(is_bid=True)
        self.asks = _Side(is_bid=False)

    def _side(self, order: RestingOrder) -> _Side:
        return self.bids if order.is_buy else self.asks

    def match(self, taker: RestingOrder) -> list[Fill]:
        """Trade ``taker`` against the opposite side; its open quantity and
        the makers' shrink, emptied makers leave the book."""
        opposite = self.asks if taker.is_buy else self.bids
        fills: list[Fill] = []
        while taker.open_quantity > 0:
            best = opposite.best()
            if best is None or (best > taker.price if taker.is_buy else best < taker.price):
                break
            maker = opposite.levels[best][0]
            qty = min(taker.open_quantity, maker.open_quantity)
            taker.open_quantity -= qty
            maker.open_quantity -= qty
            fills.append(Fill(taker, maker, qty, best))
            if maker.open_quantity == 0:
                opposite.remove(maker)
        return fills

    def rest(self, order: RestingOrder) -> None:
        self._side(order).add(order)

    def remove(self, order: RestingOrder) -> None:
        self._side(order).remove(order)

    def orders(self) -> list[RestingOrder]:
        return list(self.bids) + list(self.asks)
