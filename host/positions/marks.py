"""Current market marks: the underlying's best bid and offer and each
option's theo and Greeks, as the caller last supplied them.

The runtime feeds :meth:`Marks.set_bbo` from the book records and
:meth:`Marks.set_theo` from the fabric's theo records; :meth:`Marks.reprice`
fills theos in with the host's float pricer instead.  A theo that arrives
without gamma, vega or theta gets them from the float pricer at the theo's
own spot, so risk never runs on a half-known option.  :attr:`Marks.listeners`
are told the underlying whenever one of its marks changes.
"""
from __future__ import annotations

from typing import Callable

from host.positions.instruments import Instrument, Instruments, normalize_symbol
from host.positions.theo import Theo, price_option
from host.protocols.ouch50 import PRICE_DECIMALS

PRICE_SCALE = 10 ** PRICE_DECIMALS


class Marks:
    def __init__(self, instruments: Instruments):
        self.instruments = instruments
        self._theo: dict[str, Theo] = {}
        self._bbo: dict[str, tuple[int, int]] = {}
        self._last_spot: dict[str, float] = {}
        self.listeners: list[Callable[[str], None]] = []

    def _changed(self, underlying: str) -> None:
        for listener in self.listeners:
            listener(underlying)

    # -- input --------------------------------------------------------------------
    def set_bbo(self, underlying: str, bid: int, ask: int) -> None:
        """The underlying's best bid and offer in OUCH/ITCH price units
        (4 implied decimals); 0 means that side is empty."""
        if bid < 0 or ask < 0:
            raise ValueError(f"{underlying}: BBO prices must not be negative ({bid}, {ask})")
        self._bbo[underlying] = (int(bid), int(ask))
        self._changed(underlying)

    def set_theo(self, symbol: str, theo: Theo) -> None:
        symbol = normalize_symbol(symbol)
        instrument = self.instruments.get(symbol)
        if instrument is not None and not theo.complete and instrument.option is not None:
            theo = theo.completed_from(price_option(instrument.option, theo.spot))
        self._theo[symbol] = theo
        underlying = symbol if instrument is None else instrument.underlying
        if instrument is not None:
            self._last_spot[underlying] = theo.spot
        self._changed(underlying)

    def reprice(self, underlying: str, spot: float | None = None) -> int:
        """Price every option of ``underlying`` with the float pricer at
        ``spot`` (default: the BBO mid); returns how many were priced."""
        if spot is None:
            spot = self.mid(underlying)
            if spot is None:
                raise ValueError(f"{underlying}: no two-sided BBO to price at")
        priced = 0
        for instrument in self.instruments.of_underlying(underlying):
            if instrument.option is not None:
                self.set_theo(instrument.symbol, price_option(instrument.option, spot))
                priced += 1
        self._last_spot[underlying] = float(spot)
        self._changed(underlying)
        return priced

    # -- views --------------------------------------------------------------------
    def bbo(self, underlying: str) -> tuple[int, int] | None:
        """(bid, ask) when both sides are present and not crossed, else None."""
        quote = self._bbo.get(underlying)
        if quote is None or quote[0] <= 0 or quote[1] <= 0 or quote[0] > quote[1]:
            return None
        return quote

    def mid(self, underlying: str) -> float | None:
        quote = self.bbo(underlying)
        if quote is None:
            return None
        return (quote[0] + quote[1]) / (2 * PRICE_SCALE)

    def spot(self, underlying: str) -> float | None:
        """The underlying's reference price: BBO mid, else the spot of the
        latest theo of one of its options."""
        mid = self.mid(underlying)
        return mid if mid is not None else self._last_spot.get(underlying)

    def theo(self, symbol: str) -> Theo | None:
        """Option theo, or for the underlying's shares a delta-one mark at spot."""
        symbol = normalize_symbol(symbol)
        theo = self._theo.get(symbol)
        if theo is not None:
            return theo
        instrument = self.instruments.get(symbol)
        if instrument is not None and instrument.option is None:
            spot = self.spot(instrument.underlying)
            if spot is not None:
                return Theo(price=spot, delta=1.0, spot=spot, gamma=0.0, vega=0.0, theta=0.0)
        return None

    def theo_for(self, instrument: Instrument) -> Theo | None:
        return self.theo(instrument.symbol)
