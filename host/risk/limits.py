"""Pre-trade risk limits: one pydantic model, ready to be a section of the
appliance's TOML configuration (``[risk]``, ``[risk.throttle]``,
``[risk.underlyings.AAPL]``, ``[risk.actions]``).

Unknown keys are refused, so a misspelt limit is an error naming it, never a
silently ignored line.  Units: money in dollars; prices of options per share
of the underlying (as quoted); quantities in contracts for options and
shares for the underlying; Greeks as :mod:`host.positions.book` defines them
(delta and gamma in shares, vega in dollars per 1.00 of volatility, totals
across underlyings in dollar delta and dollar gamma per 1% move).

What each limit means exactly is in :mod:`host.risk.engine`.
"""
from __future__ import annotations

import enum
import tomllib
from pathlib import Path

from pydantic import (
    BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt,
    field_validator, model_validator,
)

from host.positions.instruments import SYMBOL_WIDTH


class Check(str, enum.Enum):
    """The pre-trade checks whose breach action is configurable."""

    ORDER_STATE = "order_state"        # replace of an unknown or not working order
    INVALID_ORDER = "invalid_order"    # side, zero quantity, price outside the limit range
    UNKNOWN_SYMBOL = "unknown_symbol"
    RESTRICTED = "restricted"
    ORDER_SIZE = "order_size"
    ORDER_NOTIONAL = "order_notional"
    MARKS = "marks"                    # no theo, no underlying BBO, stale theo
    PRICE_BAND = "price_band"          # against theo and against the underlying's BBO
    DUPLICATE = "duplicate"            # same order again, reused UserRefNum or ClOrdID
    SELF_TRADE = "self_trade"
    POSITION = "position"
    GREEKS = "greeks"
    CAPITAL = "capital"
    THROTTLE = "throttle"


class Action(str, enum.Enum):
    """What a breach does besides refusing the message."""

    REJECT = "reject"          # refuse this message only
    PULL_SIDE = "pull_side"    # also cancel our working orders on that option and side
    PULL_ALL = "pull_all"      # also cancel every order on the port (Mass Cancel)
    KILL = "kill"              # pull all, then refuse new orders until reset


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThrottleLimits(_Section):
    """Message rates over sliding windows (one second, and ``window_seconds``).

    ``orders`` are Enter and Replace; ``cancels`` are Cancel, Modify and Mass
    Cancel; ``messages`` are every request.  None switches a limit off.
    """

    window_seconds: float = Field(60.0, gt=0, le=86_400,
                                  description="length of the second sliding window")
    orders_per_second: PositiveInt | None = Field(100, description="Enter + Replace per second")
    orders_per_window: PositiveInt | None = Field(3_000, description="Enter + Replace per window")
    cancels_per_second: PositiveInt | None = Field(200, description="cancels per second")
    cancels_per_window: PositiveInt | None = Field(6_000, description="cancels per window")
    messages_per_second: PositiveInt | None = Field(300, description="all requests per second")
    messages_per_window: PositiveInt | None = Field(9_000, description="all requests per window")

    @model_validator(mode="after")
    def _second_fits_window(self):
        if self.window_seconds < 1.0:
            return self
        for kind in ("orders", "cancels", "messages"):
            per_second = getattr(self, f"{kind}_per_second")
            per_window = getattr(self, f"{kind}_per_window")
            if per_second is not None and per_window is not None and per_second > per_window:
                raise ValueError(
                    f"{kind}_per_second ({per_second}) exceeds {kind}_per_window "
                    f"({per_window}) although the window is {self.window_seconds} s long")
        return self


class UnderlyingLimits(_Section):
    """Per-underlying overrides of the position and Greek limits."""

    max_option_position: PositiveInt | None = None
    max_underlying_contracts: PositiveInt | None = None
    max_stock_position: PositiveInt | None = None
    max_delta: PositiveFloat | None = None
    max_gamma: PositiveFloat | None = None
    max_vega: PositiveFloat | None = None


class RiskLimits(_Section):
    """Every pre-trade limit, with defaults sized for a small options book."""

    # -- the order itself -----------------------------------------------------------
    max_order_quantity: PositiveInt = Field(
        100, description="contracts (shares for the underlying) per order")
    max_order_notional: PositiveFloat = Field(
        250_000.0, description="price * quantity * multiplier of one order, dollars")
    restricted_symbols: frozenset[str] = Field(
        frozenset(), description="option symbols or underlyings nothing may be sent for")

    # -- price bands ----------------------------------------------------------------
    theo_band_fraction: NonNegativeFloat = Field(
        0.10, le=10.0, description="allowed aggressiveness past theo, fraction of theo")
    theo_band_min: NonNegativeFloat = Field(
        0.05, description="allowed aggressiveness past theo at least this many dollars")
    max_theo_spot_drift: PositiveFloat = Field(
        0.01, le=1.0, description="theo is stale when the underlying's mid has moved "
                                  "this fraction away from the spot it was priced at")
    bound_tolerance: NonNegativeFloat = Field(
        0.01, description="dollars of slack on the no-arbitrage bounds from the underlying's BBO")
    stock_band_fraction: NonNegativeFloat = Field(
        0.01, le=1.0, description="underlying orders: allowed distance through the BBO")

    # -- positions (worst case with working orders) ---------------------------------
    max_option_position: PositiveInt = Field(500, description="contracts per option")
    max_underlying_contracts: PositiveInt = Field(
        2_000, description="gross contracts over all options of one underlying")
    max_stock_position: PositiveInt = Field(50_000, description="shares of one underlying")

    # -- Greeks (positions plus the order, as if it filled) -------------------------
    max_delta: PositiveFloat = Field(20_000.0, description="|delta| per underlying, shares")
    max_gamma: PositiveFloat = Field(2_000.0, description="|gamma| per underlying, shares per $1")
    max_vega: PositiveFloat = Field(
        500_000.0, description="|vega| per underlying, dollars per 1.00 of volatility")
    max_total_delta_dollars: PositiveFloat = Field(
        5_000_000.0, description="|sum of delta * S| over underlyings, dollars")
    max_total_gamma_dollars: PositiveFloat = Field(
        500_000.0, description="|sum of gamma * S^2 / 100| over underlyings, dollars per 1% move")
    max_total_vega: PositiveFloat = Field(
        2_000_000.0, description="|sum of vega| over underlyings, dollars per 1.00 of volatility")

    # -- capital ----------------------------------------------------------------------
    capital: PositiveFloat = Field(
        1_000_000.0, description="dollars that premium plus margin may use")
    short_option_margin: PositiveFloat = Field(
        0.20, le=1.0, description="margin per short option: this fraction of the "
                                  "underlying notional (S * multiplier)")
    short_stock_margin: PositiveFloat = Field(
        0.50, le=1.0, description="margin per short share: this fraction of S")

    # -- message hygiene --------------------------------------------------------------
    throttle: ThrottleLimits = Field(
        default_factory=ThrottleLimits, description="message-rate limits ([risk.throttle])")
    duplicate_window_seconds: NonNegativeFloat = Field(
        1.0, description="the same symbol, side, price and size again within this is a "
                         "duplicate (0: off)")

    underlyings: dict[str, UnderlyingLimits] = Field(
        default_factory=dict, description="per-underlying overrides")
    actions: dict[Check, Action] = Field(
        default_factory=dict, description="breach action per check (default: reject)")

    @field_validator("restricted_symbols", mode="before")
    @classmethod
    def _symbols(cls, value):
        if isinstance(value, str):
            raise ValueError("give a list of symbols, not one string")
        out = set()
        for symbol in value:
            if not isinstance(symbol, str) or not symbol.strip() or not symbol.isascii() \
                    or len(symbol.strip()) > SYMBOL_WIDTH:
                raise ValueError(f"a symbol is 1..{SYMBOL_WIDTH} ASCII characters, "
                                 f"got {symbol!r}")
            out.add(symbol.strip())
        return frozenset(out)

    @field_validator("underlyings")
    @classmethod
    def _underlying_names(cls, value):
        for name in value:
            if not name or not name.isascii() or len(name) > SYMBOL_WIDTH:
                raise ValueError(f"underlying names are 1..{SYMBOL_WIDTH} ASCII characters, "
                                 f"got {name!r}")
        return value

    def action_for(self, check: Check | None) -> Action:
        if check is None:
            return Action.REJECT
        return self.actions.get(check, Action.REJECT)

    def for_underlying(self, underlying: str, name: str):
        """The limit ``name`` for one underlying (its override, else the default)."""
        override = self.underlyings.get(underlying)
        if override is not None:
            value = getattr(override, name)
            if value is not None:
                return value
        return getattr(self, name)

    @classmethod
    def from_toml(cls, source: str | Path, table: str = "risk") -> "RiskLimits":
        """Limits from a TOML file (a Path) or TOML text (a str), reading the
        ``[risk]`` table when the document has one."""
        text = source.read_text() if isinstance(source, Path) else source
        document = tomllib.loads(text)
        return cls.model_validate(document.get(table, document))
