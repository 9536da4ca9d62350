"""The securities of a generated day: tickers, Stock Directory attributes,
starting prices and how much each one trades.

Activity follows a Zipf-like law over ranks, so a handful of names (the
well-known ones first) carry a large share of the messages, as on a real
Nasdaq day.  Locate codes are 1..N in directory order; index ``i`` in every
array here is locate ``i + 1``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.marketday import rng as R

MAX_SYMBOLS = 0xFFFF - 1  # stock locate is a u16; 0 is reserved for market-wide messages

# Heavily traded names that lead the activity ranking:
# (ticker, market category, approximate price, ETP, leverage, inverse).
WELL_KNOWN = [
    ("AAPL", "Q", 190.0, False, 0, False),
    ("NVDA", "Q", 120.0, False, 0, False),
    ("TSLA", "Q", 240.0, False, 0, False),
    ("QQQ", "G", 440.0, True, 0, False),
    ("SPY", "P", 475.0, True, 0, False),
    ("MSFT", "Q", 415.0, False, 0, False),
    ("AMZN", "Q", 180.0, False, 0, False),
    ("AMD", "Q", 160.0, False, 0, False),
    ("META", "Q", 480.0, False, 0, False),
    ("TQQQ", "G", 60.0, True, 3, False),
    ("SQQQ", "G", 11.0, True, 3, True),
    ("GOOGL", "Q", 165.0, False, 0, False),
    ("INTC", "Q", 31.0, False, 0, False),
    ("PLTR", "Q", 24.0, False, 0, False),
    ("SOFI", "Q", 7.5, False, 0, False),
    ("F", "N", 12.0, False, 0, False),
    ("BAC", "N", 38.0, False, 0, False),
    ("NFLX", "Q", 470.0, False, 0, False),
    ("IWM", "P", 205.0, True, 0, False),
    ("MU", "Q", 115.0, False, 0, False),
    ("CSCO", "Q", 48.0, False, 0, False),
    ("AVGO", "Q", 140.0, False, 0, False),
    ("PFE", "N", 28.0, False, 0, False),
    ("RIVN", "Q", 11.0, False, 0, False),
    ("XLF", "P", 41.0, True, 0, False),
    ("SOXL", "P", 45.0, True, 3, False),
    ("COST", "Q", 455.0, False, 0, False),
    ("PEP", "Q", 170.0, False, 0, False),
    ("LCID", "Q", 3.2, False, 0, False),
    ("MARA", "Q", 19.0, False, 0, False),
]

NASDAQ_CATEGORIES = "QGS"
# market category -> share of the symbols that are not well known
_CATEGORY_MIX = [("Q", 0.18), ("G", 0.11), ("S", 0.17), ("N", 0.28), ("P", 0.16),
                 ("A", 0.05), ("Z", 0.04), ("V", 0.01)]
_FINANCIAL_STATUS_RARE = "DEQSGHJKC"


@dataclass
class Universe:
    tickers: list[str]
    stock: np.ndarray            # uint8[N, 8], space padded
    market_category: np.ndarray  # uint8[N]
    listed: np.ndarray           # bool[N]: Nasdaq-listed (Q, G, S)
    directory: np.ndarray        # uint8[N, 39]: the Stock Directory message, timestamp 0
    price: np.ndarray            # float64[N]: starting price in dollars
    weight: np.ndarray           # float64[N]: share of the order flow
    volatility: np.ndarray       # float64[N]: daily sigma of the log price
    spread: np.ndarray           # float64[N]: typical half spread as a fraction of price

    def __len__(self) -> int:
        return len(self.tickers)


def _random_tickers(state: np.ndarray, count: int, taken: set[str]) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    lengths = np.array([1, 2, 3, 4, 5])
    cum = np.cumsum([0.01, 0.07, 0.34, 0.52, 0.06])
    out: list[str] = []
    u = np.empty(6)
    while len(out) < count:
        R.fill_uniform(state, u)
        n = int(lengths[min(int(np.searchsorted(cum, u[0], "right")), 4)])
        name = "".join(letters[int(x * 26)] for x in u[1:1 + n])
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def build_universe(symbols: int, seed: int) -> Universe:
    if not 1 <= symbols <= MAX_SYMBOLS:
        raise ValueError(f"symbols must be 1..{MAX_SYMBOLS}, got {symbols}")
    state = R.stream_state(seed, R.STREAM_UNIVERSE)
    known = WELL_KNOWN[:symbols]
    taken = {k[0] for k in WELL_KNOWN}
    tickers = [k[0] for k in known] + _random_tickers(state, symbols - len(known), taken)

    n = symbols
    u = np.empty(n * 12)
    R.fill_uniform(state, u)
    u = u.reshape(n, 12)
    z = np.empty(n)
    R.fill_normal(state, z)

    cat_codes = np.array([ord(c) for c, _ in _CATEGORY_MIX], dtype=np.uint8)
    cat_cum = np.cumsum([p for _, p in _CATEGORY_MIX])
    cat_cum /= cat_cum[-1]
    category = cat_codes[np.minimum(np.searchsorted(cat_cum, u[:, 0], "right"), len(cat_codes) - 1)]
    # Log-normal prices around $30, kept inside $1.50..$480 so the walk stays in range.
    price = np.clip(np.exp(np.log(30.0) + 1.05 * z), 1.5, 480.0)
    etp = (category == ord("P")) | (u[:, 1] < 0.04)
    leverage = np.where(etp & (u[:, 2] < 0.15), np.where(u[:, 3] < 0.5, 2, 3), 0)
    inverse = etp & (leverage > 0) & (u[:, 4] < 0.4)
    for i, (_, cat, px, is_etp, lev, inv) in enumerate(known):
        category[i] = ord(cat)
        price[i] = px
        etp[i] = is_etp
        leverage[i] = lev
        inverse[i] = inv
    np.clip(price, 1.5, 480.0, out=price)
    # Locate 1 is always a Nasdaq-listed, always-trading anchor symbol.
    if chr(category[0]) not in NASDAQ_CATEGORIES:
        category[0] = ord("Q")
    listed = np.isin(category, np.frombuffer(NASDAQ_CATEGORIES.encode(), dtype=np.uint8))

    stock = np.full((n, 8), ord(" "), dtype=np.uint8)
    for i, t in enumerate(tickers):
        stock[i, :len(t)] = np.frombuffer(t.encode("ascii"), dtype=np.uint8)

    # Stock Directory fields, in layout order after the 11-byte header.
    directory = np.zeros((n, 39), dtype=np.uint8)
    directory[:, 0] = ord("R")
    directory[:, 1] = ((np.arange(n) + 1) >> 8) & 0xFF
    directory[:, 2] = (np.arange(n) + 1) & 0xFF
    directory[:, 11:19] = stock
    directory[:, 19] = category
    fsi = np.where(listed, ord("N"), ord(" ")).astype(np.uint8)
    rare = listed & (u[:, 5] < 0.04)
    fsi[rare] = np.frombuffer(_FINANCIAL_STATUS_RARE.encode(), dtype=np.uint8)[
        (u[rare, 6] * len(_FINANCIAL_STATUS_RARE)).astype(int)]
    directory[:, 20] = fsi
    directory[:, 21:25] = np.frombuffer((100).to_bytes(4, "big"), dtype=np.uint8)  # round lot
    directory[:, 25] = ord("N")  # round lots only: no
    issue_class = np.where(etp, ord("Q"), np.where(u[:, 7] < 0.08, ord("A"), ord("C")))
    directory[:, 26] = issue_class
    directory[:, 27] = np.where(etp, ord("E"), np.where(issue_class == ord("A"), ord("Z"), ord("C")))
    directory[:, 28] = ord(" ")
    directory[:, 29] = ord("P")  # live/production
    directory[:, 30] = np.where(listed, np.where(u[:, 8] < 0.02, ord("Y"), ord("N")), ord(" "))
    directory[:, 31] = np.where(listed, ord("N"), ord(" "))  # IPO flag; the day's IPO sets Y
    # Tier 1: S&P 500, Russell 1000 and selected ETPs; here the priciest and busiest names.
    tier1 = (price > 25.0) & (u[:, 9] < 0.6)
    tier1[:len(known)] = True
    directory[:, 32] = np.where(tier1, ord("1"), ord("2"))
    directory[:, 33] = np.where(etp, ord("Y"), ord("N"))
    directory[:, 34:38] = np.stack([(leverage >> s) & 0xFF for s in (24, 16, 8, 0)], axis=1)
    directory[:, 38] = np.where(inverse, ord("Y"), ord("N"))

    rank = np.arange(n, dtype=np.float64)
    weight = 1.0 / (rank + 4.0) ** 1.05
    weight /= weight.sum()
    volatility = np.clip(0.012 + 0.02 * u[:, 10] + 0.02 * (price < 10.0), 0.008, 0.06)
    # Busy names trade a penny wide, thin ones wider.
    spread = 1.5e-4 + 1.2e-3 * u[:, 11] * np.minimum(1.0, rank / 200.0)
    return Universe(tickers=tickers, stock=stock, market_category=category, listed=listed,
                    directory=directory, price=price, weight=weight, volatility=volatility,
                    spread=spread)
