"""The option universe of a configuration: option ids, OUCH symbols, pricing specs.

The fabric knows an option only by its row in the pricer's parameter table
(``option_id``) and an underlying only by its ITCH stock locate.  This module
gives each configured option its row, in configuration order grouped by
underlying (the pricer walks one underlying's options as a contiguous run of
rows), and its 8-character OUCH symbol: ``ROOT`` (the chain's ``root``, or the
first four characters of the underlying) + ``C``/``P`` + a three-digit serial
within the root.  The same universe gives the host's
:class:`~host.positions.instruments.Instruments` for risk and positions.
"""
from __future__ import annotations

from dataclasses import dataclass

from host.positions.instruments import Instrument, Instruments
from host.pricing.params import OptionSpec

DAYS_PER_YEAR = 365.0


class UniverseError(ValueError):
    """The configured chains cannot be laid out (too many options, clashing symbols)."""


@dataclass(frozen=True)
class ListedOption:
    option_id: int
    symbol: str
    underlying: str          # ITCH symbol of the underlying
    locate: int              # its stock locate today
    is_put: bool
    strike: float
    expiry_years: float
    spec: OptionSpec


@dataclass
class Universe:
    options: list[ListedOption]
    locates: dict[str, int]                  # underlying symbol -> stock locate

    def by_id(self, option_id: int) -> ListedOption:
        return self.options[option_id]

    def instruments(self, multiplier: int = 100) -> Instruments:
        out = Instruments(Instrument(o.symbol, o.underlying, o.spec, multiplier)
                          for o in self.options)
        for underlying in self.locates:
            if underlying not in out:
                out.add(Instrument.stock(underlying))
        return out

    def specs(self) -> list[OptionSpec]:
        return [o.spec for o in self.options]


def build_universe(chains, locates: dict[str, int], max_options: int = 1024) -> Universe:
    """Lay out ``chains`` (config :class:`~host.runtime.config.Chain` items)
    given today's stock locates of their underlyings."""
    missing = sorted({c.underlying for c in chains} - set(locates))
    if missing:
        raise UniverseError(f"no stock locate for underlyings {missing}: not in today's "
                            f"stock directory")
    order = []
    for chain in chains:
        if chain.underlying not in order:
            order.append(chain.underlying)
    options: list[ListedOption] = []
    serials: dict[str, int] = {}
    roots: dict[str, str] = {}
    for underlying in order:
        for chain in (c for c in chains if c.underlying == underlying):
            root = (chain.root or underlying[:4]).upper()
            if roots.setdefault(root, underlying) != underlying:
                raise UniverseError(f"root {root!r} used for {roots[root]} and {underlying}")
            for days in chain.expiries_days:
                for kind in chain.kinds:
                    for strike in chain.strikes:
                        serial = serials.get(root, 0)
                        if serial > 999:
                            raise UniverseError(f"root {root!r} has more than 1000 options")
                        serials[root] = serial + 1
                        is_put = kind == "put"
                        spec = OptionSpec(
                            underlying=locates[underlying], is_put=is_put, strike=float(strike),
                            sigma=chain.sigma, expiry=days / DAYS_PER_YEAR, rate=chain.rate,
                            dividend=chain.dividend, black76=chain.model == "black76")
                        options.append(ListedOption(
                            option_id=len(options), symbol=f"{root}{'P' if is_put else 'C'}{serial:03d}",
                            underlying=underlying, locate=locates[underlying], is_put=is_put,
                            strike=float(strike), expiry_years=days / DAYS_PER_YEAR, spec=spec))
    if len(options) > max_options:
        raise UniverseError(f"{len(options)} options configured; the pricer table holds "
                            f"{max_options}")
    return Universe(options, {u: locates[u] for u in order})
