"""The tradable instruments the host knows: option contracts and their
underlying shares, keyed by the 8-character OUCH symbol.

An option carries its pricing description (:class:`host.pricing.params.OptionSpec`:
strike, sigma, expiry, r, q, model) and a contract multiplier (shares per
contract, 100 by default).  The underlying itself may be traded too (delta
hedges): it is an instrument without an option spec and a multiplier of 1.
Positions, P&L and Greeks are grouped by the ``underlying`` name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from host.pricing.params import OptionSpec

DEFAULT_MULTIPLIER = 100
#: OUCH symbols are alpha8: up to 8 ASCII characters, space padded on the wire.
SYMBOL_WIDTH = 8


class InstrumentError(ValueError):
    """An instrument definition the host cannot use."""


def normalize_symbol(symbol: str) -> str:
    """The symbol as OUCH decodes it (trailing padding removed)."""
    return symbol.rstrip(" ")


@dataclass(frozen=True)
class Instrument:
    symbol: str
    underlying: str
    option: OptionSpec | None = None
    multiplier: int = DEFAULT_MULTIPLIER

    def __post_init__(self):
        for name in ("symbol", "underlying"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not value.isascii() \
                    or len(value) > SYMBOL_WIDTH or value != value.strip(" "):
                raise InstrumentError(
                    f"{name} must be 1..{SYMBOL_WIDTH} ASCII characters without padding, "
                    f"got {value!r}")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int) \
                or self.multiplier <= 0:
            raise InstrumentError(f"{self.symbol}: multiplier must be a positive integer, "
                                  f"got {self.multiplier!r}")
        if self.option is None and self.symbol != self.underlying:
            raise InstrumentError(f"{self.symbol}: an instrument without an option spec is "
                                  f"the underlying's shares and must be named "
                                  f"{self.underlying!r}")

    @property
    def is_option(self) -> bool:
        return self.option is not None

    @classmethod
    def stock(cls, symbol: str) -> "Instrument":
        """The underlying's shares (delta one, multiplier one)."""
        return cls(symbol, symbol, None, 1)


class Instruments:
    """Symbol -> :class:`Instrument`, with the options of each underlying."""

    def __init__(self, instruments: Iterable[Instrument] = ()):
        self._by_symbol: dict[str, Instrument] = {}
        self._by_underlying: dict[str, list[Instrument]] = {}
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: Instrument) -> None:
        if instrument.symbol in self._by_symbol:
            raise InstrumentError(f"symbol {instrument.symbol!r} defined twice")
        self._by_symbol[instrument.symbol] = instrument
        self._by_underlying.setdefault(instrument.underlying, []).append(instrument)

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(normalize_symbol(symbol))

    def __getitem__(self, symbol: str) -> Instrument:
        instrument = self.get(symbol)
        if instrument is None:
            raise KeyError(symbol)
        return instrument

    def __contains__(self, symbol: str) -> bool:
        return self.get(symbol) is not None

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    def of_underlying(self, underlying: str) -> list[Instrument]:
        return list(self._by_underlying.get(underlying, ()))

    def underlyings(self) -> list[str]:
        return list(self._by_underlying)
