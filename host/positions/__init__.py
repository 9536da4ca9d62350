"""Positions, average-cost P&L and Greeks per option and per underlying,
built from the exchange's executions and rebuildable from the journal."""
from host.positions.book import (
    Fill, Greeks, MissingMark, Position, PositionBook, greeks_of, side_sign,
)
from host.positions.instruments import (
    DEFAULT_MULTIPLIER, Instrument, InstrumentError, Instruments, normalize_symbol,
)
from host.positions.marks import PRICE_SCALE, Marks
from host.positions.theo import Theo, no_arbitrage_bounds, price_option, theo_from_record

__all__ = [
    "DEFAULT_MULTIPLIER", "Fill", "Greeks", "Instrument", "InstrumentError", "Instruments",
    "Marks", "MissingMark", "PRICE_SCALE", "Position", "PositionBook", "Theo", "greeks_of",
    "no_arbitrage_bounds", "normalize_symbol", "price_option", "side_sign", "theo_from_record",
]
