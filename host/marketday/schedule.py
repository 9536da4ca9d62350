"""The shape of a generated day: its clock, how busy each moment is, and the
events that are not order flow.

* :class:`DayClock` — start of messages (O), system hours (S..E), market
  hours (Q 09:30 .. M 16:00) and end of messages (C), in ns since midnight.
* :func:`flow_bins` — the order-flow messages of each 100 ms bin of system
  hours: a U-shaped intraday profile (busy open, quiet lunch, busy close,
  thin pre- and post-market) times a persistent random activity level with
  short bursts, rounded so the bins add up to exactly the requested count.
* :func:`build_schedule` — everything else, sorted by time: the Stock
  Directory, trading actions, Reg SHO, market participant positions and the
  MWCB levels before the open; NOII before the opening and closing crosses;
  the crosses themselves (Q, with non-printable C fills); halts with their
  LULD collars and halt crosses; an IPO with its quoting-period update;
  operational halts, retail interest, broken trades and the rarer types.

Sizes here grow with the number of symbols, never with the number of
messages, except the NOII budget which is capped per symbol.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.marketday import rng as R
from host.marketday.rng import kernel
from host.marketday.kernel import (
    K_BROKEN, K_CROSS, K_CROSS_FILL, K_CROSS_PREP, K_DIRECTORY, K_DLCR, K_IPO_UPDATE,
    K_LULD_COLLAR, K_MWCB_DECLINE, K_MWCB_STATUS, K_NOII, K_OPERATIONAL_HALT, K_PARTICIPANT,
    K_REG_SHO, K_RPII, K_SYSTEM, K_TRADING_ACTION, REASON_IPO1, REASON_IPOQ, REASON_LUDP,
    REASON_NONE, REASON_T1, REASON_T3, SILENT_KINDS, SKIPPABLE_KINDS,
)
from host.marketday.universe import Universe

NS = 1_000_000_000
US = 1_000
MS = 1_000_000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
BIN_NS = 100 * MS

MARKET_OPEN = 9 * HOUR + 30 * MINUTE
MARKET_CLOSE = 16 * HOUR

# Market participant identifiers used for F attributions and L positions.
MPIDS = ["GSCO", "MSCO", "UBSS", "CDRG", "NITE", "VIRT", "JPMS", "SUSQ", "HRTF", "CITD",
         "TMBR", "JNST", "ETMM", "BARD", "RBCM", "LATS", "GTSM", "IMCC", "XTXM", "NSDQ"]

# Share of the day's messages spent on NOII, and the cap per symbol and cross.
NOII_SHARE = 0.02
NOII_MAX_PER_CROSS = 150


def parse_hhmm(text: str) -> int:
    """'HH:MM' -> ns since midnight."""
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"time must be HH:MM, got {text!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"time out of range: {text!r}")
    return h * HOUR + m * MINUTE


@dataclass(frozen=True)
class DayClock:
    start: int                   # S: start of system hours
    end: int                     # E: end of system hours
    open: int = MARKET_OPEN      # Q
    close: int = MARKET_CLOSE    # M

    def __post_init__(self):
        if not 30 * MINUTE <= self.start <= self.open - 5 * MINUTE:
            raise ValueError("start of system hours must be between 00:30 and 09:25")
        if not self.close + 5 * MINUTE <= self.end <= 23 * HOUR + 50 * MINUTE:
            raise ValueError("end of system hours must be between 16:05 and 23:50")

    @property
    def messages_start(self) -> int:  # O
        return max(0, self.start - 25 * MINUTE)

    @property
    def messages_end(self) -> int:  # C
        return self.end + 5 * MINUTE

    @property
    def bins(self) -> int:
        return (self.end - self.start) // BIN_NS


def intraday_profile(t_ns: np.ndarray, clock: DayClock) -> np.ndarray:
    """Relative message intensity at times of day (no noise)."""
    t = t_ns.astype(np.float64)
    out = np.zeros_like(t)
    pre = t < clock.open
    post = t >= clock.close
    mkt = ~(pre | post)
    to_open = (clock.open - t[pre]) / NS
    # Pre-market: thin, building towards the open, with the 08:30 data releases.
    out[pre] = (0.015 + 0.12 * np.exp(-to_open / 2400.0)
                + 0.08 * np.exp(-(((t[pre] - (8 * HOUR + 30 * MINUTE)) / NS) / 90.0) ** 2))
    x = (t[mkt] - clock.open) / (clock.close - clock.open)
    out[mkt] = (0.55 + 0.9 * (2.0 * x - 1.0) ** 2 + 2.5 * np.exp(-x / 0.012)
                + 1.6 * np.exp(-(1.0 - x) / 0.008))
    since_close = (t[post] - clock.close) / NS
    out[post] = 0.02 + 0.25 * np.exp(-since_close / 900.0)
    return out


@kernel
def _activity_noise(rs, n, out):
    """A persistent log-normal activity level with sparse decaying bursts."""
    level = 0.0
    burst = 0.0
    phi = 0.995
    shock = np.sqrt(1.0 - phi * phi)
    for i in range(n):
        level = phi * level + shock * R.normal(rs)
        burst *= 0.6
        if R.uniform(rs) < 0.003:
            burst += 3.0 + 8.0 * R.exponential(rs)
        out[i] = np.exp(0.5 * level - 0.125) * (1.0 + burst)


def flow_bins(clock: DayClock, flow_messages: int, seed: int) -> np.ndarray:
    """Order-flow messages per 100 ms bin of system hours; sums to flow_messages."""
    nb = clock.bins
    t = clock.start + np.arange(nb, dtype=np.int64) * BIN_NS + BIN_NS // 2
    weight = intraday_profile(t, clock)
    noise = np.empty(nb)
    _activity_noise(R.stream_state(seed, R.STREAM_PROFILE), nb, noise)
    weight *= noise
    cum = np.cumsum(weight)
    cum /= cum[-1]
    # Systematic rounding of the cumulative share: exact total, no extra randomness.
    edges = np.floor(cum * flow_messages + 1e-9).astype(np.int64)
    edges[-1] = flow_messages
    return np.diff(np.concatenate(([0], edges)))


@dataclass
class Schedule:
    t: np.ndarray      # int64, sorted
    kind: np.ndarray   # int64
    loc: np.ndarray    # int64
    a: np.ndarray      # int64
    b: np.ndarray      # int64
    messages: int      # messages these events produce when none is skipped
    skippable: int     # events that may produce nothing
    roles: dict        # which symbols play which part, for the summary

    def __len__(self) -> int:
        return len(self.t)


class _Builder:
    def __init__(self):
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, t, kind, loc=0, a=0, b=0):
        t = np.atleast_1d(np.asarray(t, dtype=np.int64))
        n = len(t)

        def col(v):
            arr = np.asarray(v, dtype=np.int64)
            return arr if arr.shape == (n,) else np.full(n, arr, dtype=np.int64)

        if n:
            self.parts.append((t, col(kind), col(loc), col(a), col(b)))

    def build(self, roles) -> Schedule:
        if not self.parts:
            empty = np.zeros(0, dtype=np.int64)
            return Schedule(empty, empty, empty, empty, empty, 0, 0, roles)
        t, kind, loc, a, b = (np.concatenate([p[i] for p in self.parts]) for i in range(5))
        # Stable by time: events at the same instant keep their insertion order.
        order = np.argsort(t, kind="stable")
        t, kind, loc, a, b = t[order], kind[order], loc[order], a[order], b[order]
        silent = np.isin(kind, SILENT_KINDS)
        skippable = np.isin(kind, SKIPPABLE_KINDS)
        return Schedule(t, kind, loc, a, b, int((~silent).sum()), int(skippable.sum()), roles)


def _pick(state, candidates: np.ndarray, count: int, used: set[int]) -> list[int]:
    """Up to count distinct symbol indices from candidates, avoiding used ones."""
    pool = [int(c) for c in candidates if int(c) not in used]
    out = []
    while pool and len(out) < count:
        i = R.randint(state, len(pool))
        out.append(pool.pop(i))
    used.update(out)
    return out


def _uniforms(state, n: int) -> np.ndarray:
    u = np.empty(n)
    R.fill_uniform(state, u)
    return u


def _uniform_times(state, n: int, lo: int, hi: int) -> np.ndarray:
    return lo + (_uniforms(state, n) * (hi - lo)).astype(np.int64)


def _count(state, expected: float) -> int:
    """A whole number with the given mean: the integer part plus one with the
    probability of the fractional part."""
    whole = int(expected)
    return whole + (1 if R.uniform(state) < expected - whole else 0)


def build_schedule(universe: Universe, clock: DayClock, messages: int, seed: int,
                   all_types: bool = False) -> Schedule:
    state = R.stream_state(seed, R.STREAM_SCHEDULE)
    n = len(universe)
    locs = np.arange(1, n + 1, dtype=np.int64)
    listed = np.flatnonzero(universe.listed)
    sb = _Builder()
    roles: dict[str, list[str]] = {}
    used = {0}  # the anchor symbol is never halted

    def tick(sym_list):
        return [universe.tickers[i] for i in sym_list]

    # -- before system hours --------------------------------------------------
    t0 = clock.messages_start
    sb.add(t0, K_SYSTEM, a=ord("O"))
    sb.add(t0 + NS + locs * 3 * US, K_DIRECTORY, loc=locs)

    ipo = []
    if all_types or R.uniform(state) < min(1.0, n / 4000.0):
        ipo = _pick(state, listed, 1, used)
    roles["ipo"] = tick(ipo)
    dlcr = bool(ipo) and (all_types or R.uniform(state) < 0.25)
    if ipo:
        universe.directory[ipo[0], 31] = ord("Y")

    actions = np.full(n, ord("T"), dtype=np.int64)
    reasons = np.full(n, REASON_NONE, dtype=np.int64)
    if ipo:
        actions[ipo[0]] = ord("H")
        reasons[ipo[0]] = REASON_IPO1
    sb.add(t0 + 5 * MINUTE + locs * 2 * US, K_TRADING_ACTION, loc=locs, a=actions, b=reasons)

    # Reg SHO status of every issue at the start of the day.
    sho = np.where(_uniforms(state, n) < 0.03, ord("2"), ord("0"))
    sb.add(t0 + 10 * MINUTE + locs * 2 * US, K_REG_SHO, loc=locs, a=sho)

    # Market maker positions on a quarter of the Nasdaq-listed issues, 1-3 each.
    u = _uniforms(state, 3 * len(listed))
    mm_syms = listed[u[:len(listed)] < 0.25]
    if all_types and len(mm_syms) == 0 and len(listed):
        mm_syms = listed[:1]
    per_sym = 1 + (u[len(listed):len(listed) + len(mm_syms)] * 3).astype(np.int64)
    mm_loc = np.repeat(mm_syms + 1, per_sym)
    rank = np.arange(len(mm_loc)) - np.repeat(np.cumsum(per_sym) - per_sym, per_sym)
    mpid = (_uniforms(state, len(mm_loc)) * len(MPIDS)).astype(np.int64)
    sb.add(t0 + 12 * MINUTE + np.arange(len(mm_loc), dtype=np.int64) * 5 * US, K_PARTICIPANT,
           loc=mm_loc, a=mpid, b=np.where(rank == 0, ord("Y"), ord("N")))

    sb.add(t0 + 15 * MINUTE, K_MWCB_DECLINE, a=520_000)  # S&P 500 at 5200.00
    sb.add(clock.start, K_SYSTEM, a=ord("S"))

    # -- the day's non-flow events, chosen before the crosses so that halted
    # or IPO symbols sit out the opening cross
    halts_luld = _pick(state, listed, max(int(all_types), _count(state, n * 0.0015)), used)
    halts_news = _pick(state, listed, max(int(all_types), _count(state, n * 0.0005)), used)
    op_halts = _pick(state, listed, max(int(all_types), _count(state, n / 3000.0)), used)
    roles["luld_pause"] = tick(halts_luld)
    roles["news_halt"] = tick(halts_news)
    roles["operational_halt"] = tick(op_halts)

    # The IPO opens in its own cross later in the morning; it joins the close.
    opening = listed[~np.isin(listed, ipo)]

    # -- NOII and crosses -------------------------------------------------------
    open_grid = np.concatenate([
        MARKET_OPEN - 5 * MINUTE + np.arange(18, dtype=np.int64) * 10 * NS,
        MARKET_OPEN - 2 * MINUTE + np.arange(120, dtype=np.int64) * NS])
    close_grid = np.concatenate([
        MARKET_CLOSE - 10 * MINUTE + np.arange(30, dtype=np.int64) * 10 * NS,
        MARKET_CLOSE - 5 * MINUTE + np.arange(300, dtype=np.int64) * NS])
    noii_budget = int(NOII_SHARE * messages)
    per_cross = min(NOII_MAX_PER_CROSS, noii_budget // (2 * len(listed))) if len(listed) else 0
    for grid, cross_type, syms in ((open_grid, ord("O"), opening), (close_grid, ord("C"), listed)):
        if per_cross >= 1:
            noii_syms, per = syms, min(per_cross, len(grid))
        else:
            # Too few messages for every symbol: the busiest ones (lowest locates) get one.
            noii_syms, per = syms[:max(int(all_types), noii_budget // 2)], 1
        # At each grid time, one NOII per symbol, 2 us apart in locate order.
        times = grid[-per:, None] + np.arange(len(noii_syms), dtype=np.int64)[None, :] * 2 * US
        sb.add(times.ravel(), K_NOII, loc=np.tile(noii_syms + 1, per), a=cross_type)

    sb.add(MARKET_OPEN, K_SYSTEM, a=ord("Q"))
    _add_crosses(sb, state, opening, MARKET_OPEN + 100 * US, ord("O"), universe)
    _add_crosses(sb, state, listed, MARKET_CLOSE + 100 * US, ord("C"), universe)
    sb.add(MARKET_CLOSE, K_SYSTEM, a=ord("M"))

    # -- halts --------------------------------------------------------------------
    for s in halts_luld:
        t = _uniform_times(state, 1, MARKET_OPEN + 30 * MINUTE, MARKET_CLOSE - 60 * MINUTE)[0]
        sb.add(t, K_TRADING_ACTION, loc=s + 1, a=ord("P"), b=REASON_LUDP)
        sb.add(t + 2 * MS, K_LULD_COLLAR, loc=s + 1)
        resume = t + 5 * MINUTE
        _add_crosses(sb, state, np.array([s]), resume, ord("H"), universe)
        sb.add(resume + 20 * US, K_TRADING_ACTION, loc=s + 1, a=ord("T"), b=REASON_LUDP)
    for s in halts_news:
        t = _uniform_times(state, 1, MARKET_OPEN + 30 * MINUTE, MARKET_CLOSE - 60 * MINUTE)[0]
        sb.add(t, K_TRADING_ACTION, loc=s + 1, a=ord("H"), b=REASON_T1)
        sb.add(t + 20 * MINUTE, K_TRADING_ACTION, loc=s + 1, a=ord("Q"), b=REASON_T3)
        resume = t + 25 * MINUTE
        _add_crosses(sb, state, np.array([s]), resume, ord("H"), universe)
        sb.add(resume + 20 * US, K_TRADING_ACTION, loc=s + 1, a=ord("T"), b=REASON_T3)
    for s in op_halts:
        t = _uniform_times(state, 1, MARKET_OPEN + 60 * MINUTE, MARKET_CLOSE - 60 * MINUTE)[0]
        sb.add(t, K_OPERATIONAL_HALT, loc=s + 1, a=ord("Q"), b=ord("H"))
        sb.add(t + 10 * MINUTE, K_OPERATIONAL_HALT, loc=s + 1, a=ord("Q"), b=ord("T"))

    # -- the IPO: quotation period, release time, IPO cross ---------------------------
    if ipo:
        s = ipo[0]
        quote = MARKET_OPEN + 90 * MINUTE
        release = quote + 15 * MINUTE
        sb.add(quote, K_TRADING_ACTION, loc=s + 1, a=ord("Q"), b=REASON_IPOQ)
        sb.add(quote + 1 * MS, K_IPO_UPDATE, loc=s + 1, a=release // NS, b=ord("A"))
        if dlcr:
            sb.add(quote + np.array([5, 10], dtype=np.int64) * MINUTE, K_DLCR, loc=s + 1,
                   a=np.array([ord("N"), ord("Y")]))
        _add_crosses(sb, state, np.array([s]), release, ord("H"), universe)
        sb.add(release + 20 * US, K_TRADING_ACTION, loc=s + 1, a=ord("T"), b=REASON_NONE)

    # -- sparse intraday events -----------------------------------------------------------
    day = (MARKET_OPEN + 15 * MINUTE, MARKET_CLOSE - 30 * MINUTE)
    sho_syms = _pick(state, np.arange(1, n), max(int(all_types), _count(state, n * 0.01)), set(used))
    sb.add(_uniform_times(state, len(sho_syms), *day), K_REG_SHO,
           loc=np.array(sho_syms, dtype=np.int64) + 1, a=ord("1"))
    rpi_syms = _pick(state, np.arange(n), max(int(all_types), _count(state, n * 0.03)), set())
    if rpi_syms:
        per_sym = 1 + (_uniforms(state, len(rpi_syms)) * 3).astype(np.int64)
        flags = np.frombuffer(b"BSAN", dtype=np.uint8).astype(np.int64)
        total = int(per_sym.sum())
        sb.add(_uniform_times(state, total, *day), K_RPII,
               loc=np.repeat(np.array(rpi_syms, dtype=np.int64) + 1, per_sym),
               a=flags[(_uniforms(state, total) * 4).astype(np.int64)])
    n_broken = max(int(all_types), _count(state, messages * 2e-6))
    if n_broken:
        sb.add(np.sort(_uniform_times(state, n_broken, MARKET_OPEN + 10 * MINUTE, day[1])), K_BROKEN)
    if all_types or R.uniform(state) < 0.02:
        # A level 1 breach after 15:25 does not halt trading: only the status is sent.
        sb.add(MARKET_CLOSE - 20 * MINUTE, K_MWCB_STATUS, a=ord("1"))

    sb.add(clock.end, K_SYSTEM, a=ord("E"))
    sb.add(clock.messages_end, K_SYSTEM, a=ord("C"))
    return sb.build(roles)


def _add_crosses(sb: _Builder, state, symbols: np.ndarray, base: int, cross_type: int,
                 universe: Universe) -> None:
    """A cross per symbol, 20 us apart: fix the price, fill 0-2 resting
    orders (busy names more), print Q."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if len(symbols) == 0:
        return
    t = base + np.arange(len(symbols), dtype=np.int64) * 20 * US
    sb.add(t, K_CROSS_PREP, loc=symbols + 1)
    most = np.where(universe.weight[symbols] > 1e-4, 3, 2)
    fills = (_uniforms(state, len(symbols)) * most).astype(np.int64)
    fill_loc = np.repeat(symbols + 1, fills)
    fill_rank = np.arange(len(fill_loc)) - np.repeat(np.cumsum(fills) - fills, fills)
    sb.add(np.repeat(t, fills) + (1 + fill_rank) * US, K_CROSS_FILL, loc=fill_loc)
    sb.add(t + 5 * US, K_CROSS, loc=symbols + 1, a=cross_type)
