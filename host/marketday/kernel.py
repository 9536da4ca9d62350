"""The numba core of the market-day generator: order flow and ITCH encoding.

One call of :func:`run_chunk` generates the ITCH 5.0 messages of a range of
time bins (plus the scheduled, non-order-flow events that fall in them) into
preallocated numpy buffers; the per-symbol books, reference prices and global
counters live in arrays that persist between calls, so a day is produced
chunk by chunk in constant memory and the bytes do not depend on where the
chunks are cut.

Order-flow model, per event on one symbol:

* the symbol's reference price does a geometric random walk in continuous
  time (daily sigma per symbol), reflected inside $1..$600;
* passive adds (A, some F) are placed around the touch implied by the
  reference price, with geometric depth decay, never crossing or locking
  the opposite side;
* cancels (D, some partial X) prefer orders near the touch;
* replaces (U) move an order a few ticks, again never crossing;
* marketable orders sweep the opposite side in price-time priority as
  executions (E, some C) and may rest their remainder at their limit;
* hidden executions print as P at the touch or the midpoint.

The live orders of each symbol sit in a fixed-capacity pool, and the add /
cancel balance leans towards a target depth, so memory never grows with the
number of messages.  Every message refers only to live orders, never
executes or cancels more than remains, and no add, replace or remainder
crosses or locks the book.
"""
from __future__ import annotations

import math

import numpy as np

from host.marketday.rng import (
    exponential, geometric, inline_kernel, kernel, normal, randint, uniform,
)
from host.protocols.itch50 import MESSAGE_SIZES

# -- scheduled event kinds (see host/marketday/schedule.py) -------------------
K_SYSTEM = 0            # S; a = event code
K_DIRECTORY = 1         # R
K_TRADING_ACTION = 2    # H; a = trading state, b = reason index
K_REG_SHO = 3           # Y; a = action
K_PARTICIPANT = 4       # L; a = MPID index, b = primary market maker flag
K_MWCB_DECLINE = 5      # V; a = index level in cents
K_MWCB_STATUS = 6       # W; a = breached level
K_IPO_UPDATE = 7        # K; a = release time (s since midnight), b = qualifier
K_LULD_COLLAR = 8       # J
K_OPERATIONAL_HALT = 9  # h; a = market code, b = action
K_NOII = 10             # I; a = cross type
K_RPII = 11             # N; a = interest flag
K_CROSS_PREP = 12       # no message: fixes the cross price and the side that fills
K_CROSS_FILL = 13       # C (non-printable) at the cross price, or nothing
K_CROSS = 14            # Q; a = cross type
K_BROKEN = 15           # B, or nothing before the first trade
K_DLCR = 16             # O; a = open eligibility

# kinds that produce no message (weight 0 in the schedule's message count)
SILENT_KINDS = (K_CROSS_PREP,)
# kinds that may produce nothing; their missing message goes to the order flow
SKIPPABLE_KINDS = (K_CROSS_FILL, K_BROKEN)

# Stock Trading Action reason codes, indexed by the schedule's b argument.
REASONS = ["    ", "T1  ", "T3  ", "LUDP", "IPO1", "IPOQ"]
REASON_NONE, REASON_T1, REASON_T3, REASON_LUDP, REASON_IPO1, REASON_IPOQ = range(6)

# -- per-symbol integer state columns -----------------------------------------
SI_STATE = 0        # 0 trading, 1 quotation only / paused, 2 halted or not yet open
SI_OPHALT = 1       # operational halt in effect on Nasdaq
SI_NLIVE = 2        # live orders in the pool
SI_BID = 3          # best bid in ticks, 0 if none
SI_ASK = 4          # best ask in ticks, 0 if none
SI_LAST_T = 5       # time of the last price-walk step
SI_CROSS_PX = 6     # price of the cross being run, in ticks
SI_CROSS_SIDE = 7   # side that fills in that cross, -1 none
SI_TARGET = 8       # target number of live orders
SI_BID_N = 9        # live orders at the best bid
SI_ASK_N = 10       # live orders at the best ask
N_SI = 11

# -- per-symbol float state columns -------------------------------------------
SF_REF = 0          # reference price in ticks (cents)
SF_VOL = 1          # daily sigma of log price
SF_SPREAD = 2       # half spread as a fraction of price
N_SF = 3

# -- global counters ------------------------------------------------------------
G_NEXT_REF = 0
G_NEXT_MATCH = 1
G_LAST_MATCH = 2    # match number of the latest E/C/P execution
G_LAST_LOC = 3
G_DEFICIT = 4       # messages owed to the order flow by skipped scheduled events
G_POS = 5           # output write position
G_N = 6             # output message count
G_SPECIAL = 7       # next scheduled event index
N_G = 8

# -- tunables (params array) ----------------------------------------------------
P_ADD = 0
P_CANCEL = 1
P_REPLACE = 2
P_AGGRESSIVE = 3
P_HIDDEN = 4
P_PARTIAL_CANCEL = 5   # share of cancels that are partial (X)
P_MPID = 6             # share of adds that carry an MPID (F)
P_EXEC_PRICE = 7       # share of continuous executions sent as C
P_REST = 8             # chance a marketable order rests its remainder
P_CLUSTER = 9          # mean events per burst within a bin
P_BURST_GAP_NS = 10    # mean gap between the events of a burst, ns
P_SESSION_NS = 11      # length of the regular session (volatility clock)
N_P = 12

DEFAULT_PARAMS = np.zeros(N_P)
DEFAULT_PARAMS[P_ADD] = 0.365
DEFAULT_PARAMS[P_CANCEL] = 0.395
DEFAULT_PARAMS[P_REPLACE] = 0.042
DEFAULT_PARAMS[P_AGGRESSIVE] = 0.10
DEFAULT_PARAMS[P_HIDDEN] = 0.016
DEFAULT_PARAMS[P_PARTIAL_CANCEL] = 0.09
DEFAULT_PARAMS[P_MPID] = 0.08
DEFAULT_PARAMS[P_EXEC_PRICE] = 0.04
DEFAULT_PARAMS[P_REST] = 0.35
DEFAULT_PARAMS[P_CLUSTER] = 5.0
DEFAULT_PARAMS[P_BURST_GAP_NS] = 3_000.0
DEFAULT_PARAMS[P_SESSION_NS] = 23_400e9

# Geometric number of extra round lots with mean 1.6, as floor(E * scale).
_LOT_SCALE = 1.0 / math.log(2.6 / 1.6)

# Message lengths come from the protocol declarations; field offsets below
# follow the same layouts (checked by decoding every generated message).
_LEN_SYSTEM = MESSAGE_SIZES["S"]
_LEN_DIRECTORY = MESSAGE_SIZES["R"]
_LEN_TRADING_ACTION = MESSAGE_SIZES["H"]
_LEN_REG_SHO = MESSAGE_SIZES["Y"]
_LEN_PARTICIPANT = MESSAGE_SIZES["L"]
_LEN_MWCB_DECLINE = MESSAGE_SIZES["V"]
_LEN_MWCB_STATUS = MESSAGE_SIZES["W"]
_LEN_IPO_UPDATE = MESSAGE_SIZES["K"]
_LEN_LULD_COLLAR = MESSAGE_SIZES["J"]
_LEN_OPERATIONAL_HALT = MESSAGE_SIZES["h"]
_LEN_ADD = MESSAGE_SIZES["A"]
_LEN_ADD_MPID = MESSAGE_SIZES["F"]
_LEN_EXECUTED = MESSAGE_SIZES["E"]
_LEN_EXECUTED_PRICE = MESSAGE_SIZES["C"]
_LEN_CANCEL = MESSAGE_SIZES["X"]
_LEN_DELETE = MESSAGE_SIZES["D"]
_LEN_REPLACE = MESSAGE_SIZES["U"]
_LEN_TRADE = MESSAGE_SIZES["P"]
_LEN_CROSS = MESSAGE_SIZES["Q"]
_LEN_BROKEN = MESSAGE_SIZES["B"]
_LEN_NOII = MESSAGE_SIZES["I"]
_LEN_RPII = MESSAGE_SIZES["N"]
_LEN_DLCR = MESSAGE_SIZES["O"]
MAX_MESSAGE_BYTES = max(MESSAGE_SIZES.values())
MIN_TICKS = 100          # $1.00
MAX_TICKS = 60_000       # $600.00

# A plain int64 zero: a literal 0 argument would compile a second copy of
# the callee specialised for it.
_ZERO = np.int64(0)
_B = ord("B")
_S = ord("S")
_Y = ord("Y")
_N = ord("N")
_SP = ord(" ")


# -- big-endian writers -------------------------------------------------------
@kernel
def _put16(b, p, v):
    b[p] = (v >> 8) & 0xFF
    b[p + 1] = v & 0xFF


@kernel
def _put32(b, p, v):
    b[p] = (v >> 24) & 0xFF
    b[p + 1] = (v >> 16) & 0xFF
    b[p + 2] = (v >> 8) & 0xFF
    b[p + 3] = v & 0xFF


@kernel
def _put48(b, p, v):
    _put16(b, p, v >> 32)
    _put32(b, p + 2, v & 0xFFFFFFFF)


@kernel
def _put64(b, p, v):
    _put32(b, p, (v >> 32) & 0xFFFFFFFF)
    _put32(b, p + 4, v & 0xFFFFFFFF)


@inline_kernel
def _begin(g, buf, moff, mlen, mts, typ, loc, t, length):
    """Reserve one message, write its common header; returns its offset."""
    p = g[G_POS]
    n = g[G_N]
    moff[n] = p
    mlen[n] = length
    mts[n] = t
    g[G_POS] = p + length
    g[G_N] = n + 1
    buf[p] = typ
    _put16(buf, p + 1, loc)
    buf[p + 3] = 0
    buf[p + 4] = 0
    _put48(buf, p + 5, t)
    return p


@kernel
def _put_stock(buf, p, stock, s):
    for k in range(8):
        buf[p + k] = stock[s, k]


# -- order-flow messages ------------------------------------------------------
@kernel
def _emit_add(g, buf, moff, mlen, mts, t, s, ref, side, shares, ticks, stock, mpids, mpid):
    length = _LEN_ADD if mpid < 0 else _LEN_ADD_MPID
    p = _begin(g, buf, moff, mlen, mts, ord("A") if mpid < 0 else ord("F"), s + 1, t, length)
    _put64(buf, p + 11, ref)
    buf[p + 19] = _B if side == 0 else _S
    _put32(buf, p + 20, shares)
    _put_stock(buf, p + 24, stock, s)
    _put32(buf, p + 32, ticks * 100)
    if mpid >= 0:
        for k in range(4):
            buf[p + 36 + k] = mpids[mpid, k]


@kernel
def _emit_executed(g, buf, moff, mlen, mts, t, s, ref, shares, match, printable, price4):
    """E when printable < 0, else C with that printable flag and price."""
    if printable < 0:
        p = _begin(g, buf, moff, mlen, mts, ord("E"), s + 1, t, _LEN_EXECUTED)
    else:
        p = _begin(g, buf, moff, mlen, mts, ord("C"), s + 1, t, _LEN_EXECUTED_PRICE)
        buf[p + 31] = printable
        _put32(buf, p + 32, price4)
    _put64(buf, p + 11, ref)
    _put32(buf, p + 19, shares)
    _put64(buf, p + 23, match)


@kernel
def _recompute_best(s, side, sym_i, pool_px, pool_side):
    n = sym_i[s, SI_NLIVE]
    best = 0
    count = 0
    for j in range(n):
        if pool_side[s, j] == side:
            px = pool_px[s, j]
            if best == 0 or (side == 0 and px > best) or (side == 1 and px < best):
                best = px
                count = 1
            elif px == best:
                count += 1
    if side == 0:
        sym_i[s, SI_BID] = best
        sym_i[s, SI_BID_N] = count
    else:
        sym_i[s, SI_ASK] = best
        sym_i[s, SI_ASK_N] = count


@inline_kernel
def _reprice(s, side, old_px, new_px, sym_i, pool_px, pool_side):
    """Keep the best price and its order count right after one order moved
    from old_px to new_px (0 = absent); the pool already holds the change."""
    col = SI_BID if side == 0 else SI_ASK
    ncol = SI_BID_N if side == 0 else SI_ASK_N
    best = sym_i[s, col]
    if old_px != 0 and old_px == best:
        sym_i[s, ncol] -= 1
    if new_px != 0 and (best == 0 or (side == 0 and new_px > best) or (side == 1 and new_px < best)):
        sym_i[s, col] = new_px
        sym_i[s, ncol] = 1
    elif new_px != 0 and new_px == best:
        sym_i[s, ncol] += 1
    elif sym_i[s, ncol] == 0:
        # The last order at the best price left: only now is a scan needed.
        _recompute_best(s, side, sym_i, pool_px, pool_side)


@kernel
def _insert(s, ref, side, ticks, shares, sym_i, pool_ref, pool_px, pool_qty, pool_side):
    j = sym_i[s, SI_NLIVE]
    pool_ref[s, j] = ref
    pool_px[s, j] = ticks
    pool_qty[s, j] = shares
    pool_side[s, j] = side
    sym_i[s, SI_NLIVE] = j + 1
    _reprice(s, side, 0, ticks, sym_i, pool_px, pool_side)


@kernel
def _remove(s, j, sym_i, pool_ref, pool_px, pool_qty, pool_side):
    side = np.int64(pool_side[s, j])
    px = np.int64(pool_px[s, j])
    last = sym_i[s, SI_NLIVE] - 1
    pool_ref[s, j] = pool_ref[s, last]
    pool_px[s, j] = pool_px[s, last]
    pool_qty[s, j] = pool_qty[s, last]
    pool_side[s, j] = pool_side[s, last]
    sym_i[s, SI_NLIVE] = last
    _reprice(s, side, px, 0, sym_i, pool_px, pool_side)


@kernel
def _best_order(s, side, sym_i, pool_ref, pool_px, pool_side):
    """Index of the order first in price-time priority on a side, or -1."""
    n = sym_i[s, SI_NLIVE]
    best = -1
    for j in range(n):
        if pool_side[s, j] != side:
            continue
        if best < 0:
            best = j
            continue
        px = pool_px[s, j]
        bpx = pool_px[s, best]
        better = px > bpx if side == 0 else px < bpx
        if better or (px == bpx and pool_ref[s, j] < pool_ref[s, best]):
            best = j
    return best


# -- order-flow helpers ---------------------------------------------------------
@kernel
def _walk(s, t, sym_i, sym_f, rs, session_ns):
    last = sym_i[s, SI_LAST_T]
    if last == 0:
        sym_i[s, SI_LAST_T] = t
        return
    if t > last:
        # A name idle for hours (pre-market to open) moves as if for one hour
        # at most: otherwise its first quotes of the day would gap wildly.
        dt = min(t - last, 3_600_000_000_000)
        sigma = sym_f[s, SF_VOL] * math.sqrt(dt / session_ns)
        ref = sym_f[s, SF_REF] * math.exp(sigma * normal(rs))
        if ref < MIN_TICKS:
            ref = 2.0 * MIN_TICKS - ref
        if ref > MAX_TICKS:
            ref = 2.0 * MAX_TICKS - ref
        sym_f[s, SF_REF] = ref
        sym_i[s, SI_LAST_T] = t


@kernel
def _half_spread(s, sym_f):
    return max(0.5, sym_f[s, SF_REF] * sym_f[s, SF_SPREAD])


@kernel
def _draw_shares(rs, ticks):
    u = uniform(rs)
    # Odd lots are far more common in names above $100.
    odd_share = 0.16 if ticks < 10_000 else 0.42
    if u < odd_share:
        return 1 + randint(rs, 99)
    if u < 0.9:
        return 100 * (1 + np.int64(exponential(rs) * _LOT_SCALE))
    return 100 + randint(rs, 1900)


@kernel
def _passive_price(s, side, sym_i, sym_f, rs):
    """A resting price for a new order on side; 0 when the side has no room."""
    ref = sym_f[s, SF_REF]
    hs = _half_spread(s, sym_f)
    bid = sym_i[s, SI_BID]
    ask = sym_i[s, SI_ASK]
    k = geometric(rs, 0.8 + 1.2 * hs)
    improve = bid > 0 and ask > 0 and ask - bid > 1 and uniform(rs) < 0.12
    if side == 0:
        p = np.int64(math.floor(ref - hs)) - k
        if improve:
            p = bid + 1 + randint(rs, ask - bid - 1)
        if ask > 0 and p >= ask:
            p = ask - 1
        if p < 1:
            return 0
    else:
        p = np.int64(math.ceil(ref + hs)) + k
        if improve:
            p = ask - 1 - randint(rs, ask - bid - 1)
        if bid > 0 and p <= bid:
            p = bid + 1
    return p


@kernel
def _pick_near_touch(s, sym_i, pool_px, pool_side, rs):
    """One of two random live orders: the one closer to its own touch."""
    n = sym_i[s, SI_NLIVE]
    j1 = randint(rs, n)
    j2 = randint(rs, n)
    d1 = sym_i[s, SI_BID] - pool_px[s, j1] if pool_side[s, j1] == 0 else pool_px[s, j1] - sym_i[s, SI_ASK]
    d2 = sym_i[s, SI_BID] - pool_px[s, j2] if pool_side[s, j2] == 0 else pool_px[s, j2] - sym_i[s, SI_ASK]
    return j1 if d1 <= d2 else j2


@kernel
def _add_event(t, s, side, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
               pool_ref, pool_px, pool_qty, pool_side, params, rs):
    if sym_i[s, SI_NLIVE] >= pool_ref.shape[1]:
        # No room for another order: cancel one instead.
        return _cancel_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                             pool_side, params, rs)
    ticks = _passive_price(s, side, sym_i, sym_f, rs)
    if ticks == 0:
        side = 1 - side
        ticks = _passive_price(s, side, sym_i, sym_f, rs)
    shares = _draw_shares(rs, ticks)
    ref = g[G_NEXT_REF]
    g[G_NEXT_REF] = ref + 1
    mpid = randint(rs, mpids.shape[0]) if uniform(rs) < params[P_MPID] else -1
    _emit_add(g, buf, moff, mlen, mts, t, s, ref, side, shares, ticks, stock, mpids, mpid)
    _insert(s, ref, side, ticks, shares, sym_i, pool_ref, pool_px, pool_qty, pool_side)
    return 1


@kernel
def _cancel_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                  pool_side, params, rs):
    j = _pick_near_touch(s, sym_i, pool_px, pool_side, rs)
    qty = pool_qty[s, j]
    if qty >= 2 and uniform(rs) < params[P_PARTIAL_CANCEL]:
        if qty >= 200 and qty % 100 == 0:
            cut = 100 * (1 + randint(rs, qty // 100 - 1))
        else:
            cut = 1 + randint(rs, qty - 1)
        p = _begin(g, buf, moff, mlen, mts, ord("X"), s + 1, t, _LEN_CANCEL)
        _put64(buf, p + 11, pool_ref[s, j])
        _put32(buf, p + 19, cut)
        pool_qty[s, j] = qty - cut
    else:
        p = _begin(g, buf, moff, mlen, mts, ord("D"), s + 1, t, _LEN_DELETE)
        _put64(buf, p + 11, pool_ref[s, j])
        _remove(s, j, sym_i, pool_ref, pool_px, pool_qty, pool_side)
    return 1


@kernel
def _replace_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                   pool_side, rs):
    j = randint(rs, sym_i[s, SI_NLIVE])
    side = np.int64(pool_side[s, j])
    old_px = np.int64(pool_px[s, j])
    step = 1 + geometric(rs, 1.0)
    toward = uniform(rs) < 0.6
    if (side == 0) == toward:
        px = old_px + step
    else:
        px = old_px - step
    if side == 0:
        ask = sym_i[s, SI_ASK]
        if ask > 0 and px >= ask:
            px = ask - 1
        if px < 1:
            px = old_px
    else:
        bid = sym_i[s, SI_BID]
        if bid > 0 and px <= bid:
            px = bid + 1
    shares = pool_qty[s, j] if uniform(rs) < 0.6 else _draw_shares(rs, px)
    new_ref = g[G_NEXT_REF]
    g[G_NEXT_REF] = new_ref + 1
    p = _begin(g, buf, moff, mlen, mts, ord("U"), s + 1, t, _LEN_REPLACE)
    _put64(buf, p + 11, pool_ref[s, j])
    _put64(buf, p + 19, new_ref)
    _put32(buf, p + 27, shares)
    _put32(buf, p + 31, px * 100)
    pool_ref[s, j] = new_ref
    pool_px[s, j] = px
    pool_qty[s, j] = shares
    _reprice(s, side, old_px, px, sym_i, pool_px, pool_side)
    return 1


@kernel
def _aggressive_event(t, s, budget, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
                      pool_ref, pool_px, pool_qty, pool_side, params, rs):
    """A marketable order: executions against the opposite side, then maybe
    its remainder rests at its limit.  Returns the messages written (>= 1)."""
    bid = sym_i[s, SI_BID]
    ask = sym_i[s, SI_ASK]
    hs = _half_spread(s, sym_f)
    ref = sym_f[s, SF_REF]
    if bid > 0 and ask > 0:
        mid = 0.5 * (bid + ask)
    else:
        mid = ref
    # Order flow leans towards where the reference price has moved.
    lean = min(0.35, max(-0.35, 0.3 * (ref - mid) / max(hs, 1.0)))
    side = 0 if uniform(rs) < 0.5 + lean else 1
    opp = 1 - side
    touch = ask if side == 0 else bid
    if touch == 0:
        return _add_event(t, s, side, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
                          pool_ref, pool_px, pool_qty, pool_side, params, rs)
    extra = geometric(rs, 0.6)
    limit = touch + extra if side == 0 else touch - extra
    if limit < 1:
        limit = 1
    remaining = np.int64(_draw_shares(rs, touch) * (1.0 + exponential(rs)))
    with_price = uniform(rs) < params[P_EXEC_PRICE]
    m = 0
    swept = True
    while remaining > 0:
        if m >= budget:
            swept = False
            break
        j = _best_order(s, opp, sym_i, pool_ref, pool_px, pool_side)
        if j < 0:
            break
        px = pool_px[s, j]
        if (side == 0 and px > limit) or (side == 1 and px < limit):
            break
        qty = pool_qty[s, j]
        x = min(remaining, qty)
        match = g[G_NEXT_MATCH]
        g[G_NEXT_MATCH] = match + 1
        _emit_executed(g, buf, moff, mlen, mts, t, s, pool_ref[s, j], x, match,
                       _Y if with_price else -1, px * 100)
        g[G_LAST_MATCH] = match
        g[G_LAST_LOC] = s + 1
        m += 1
        remaining -= x
        if x == qty:
            _remove(s, j, sym_i, pool_ref, pool_px, pool_qty, pool_side)
        else:
            pool_qty[s, j] = qty - x
    if (remaining > 0 and swept and m < budget and uniform(rs) < params[P_REST]
            and sym_i[s, SI_NLIVE] < pool_ref.shape[1]):
        # Everything at or through the limit is gone, so resting there
        # neither crosses nor locks.
        ref_no = g[G_NEXT_REF]
        g[G_NEXT_REF] = ref_no + 1
        _emit_add(g, buf, moff, mlen, mts, t, s, ref_no, side, remaining, limit, stock, mpids,
                  np.int64(-1))
        _insert(s, ref_no, side, limit, remaining, sym_i, pool_ref, pool_px, pool_qty, pool_side)
        m += 1
    if m == 0:
        return _add_event(t, s, side, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
                          pool_ref, pool_px, pool_qty, pool_side, params, rs)
    return m


@kernel
def _hidden_event(t, s, g, buf, moff, mlen, mts, sym_i, sym_f, stock, rs):
    bid = sym_i[s, SI_BID]
    ask = sym_i[s, SI_ASK]
    side = randint(rs, 2)
    if bid > 0 and ask > 0:
        u = uniform(rs)
        if u < 0.5:
            price4 = (bid + ask) * 50  # midpoint, a half tick when the spread is odd
        elif u < 0.75:
            price4 = bid * 100
        else:
            price4 = ask * 100
    else:
        price4 = np.int64(round(sym_f[s, SF_REF])) * 100
    shares = _draw_shares(rs, price4 // 100)
    match = g[G_NEXT_MATCH]
    g[G_NEXT_MATCH] = match + 1
    p = _begin(g, buf, moff, mlen, mts, ord("P"), s + 1, t, _LEN_TRADE)
    _put64(buf, p + 11, _ZERO)  # non-displayed orders carry no reference number
    buf[p + 19] = _B if side == 0 else _S
    _put32(buf, p + 20, shares)
    _put_stock(buf, p + 24, stock, s)
    _put32(buf, p + 32, price4)
    _put64(buf, p + 36, match)
    g[G_LAST_MATCH] = match
    g[G_LAST_LOC] = s + 1
    return 1


@kernel
def _flow_event(t, s, budget, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
                pool_ref, pool_px, pool_qty, pool_side, params, rs):
    """One order-flow event on symbol s; returns messages written (0 if the
    symbol can do nothing now)."""
    n = sym_i[s, SI_NLIVE]
    cap = pool_ref.shape[1]
    state = sym_i[s, SI_STATE]
    if sym_i[s, SI_OPHALT] != 0:
        state = 2
    if state == 2:
        # Halted: only cancellations reach the book.
        if n == 0:
            return 0
        return _cancel_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                             pool_side, params, rs)
    _walk(s, t, sym_i, sym_f, rs, params[P_SESSION_NS])
    ratio = n / max(1, sym_i[s, SI_TARGET])
    p_add = params[P_ADD] * min(1.7, max(0.3, 2.0 - ratio))
    p_cancel = params[P_CANCEL] * min(1.7, max(0.3, ratio))
    p_replace = params[P_REPLACE]
    p_aggr = params[P_AGGRESSIVE]
    p_hidden = params[P_HIDDEN]
    if state == 1:
        p_aggr = 0.0
        p_hidden = 0.0
    total = p_add + p_cancel + p_replace + p_aggr + p_hidden
    u = uniform(rs) * total
    if n == 0:
        u = 0.0  # nothing to cancel, replace or hit: add
    elif n >= cap and u < p_add:
        u = p_add  # pool full: cancel instead
    if u < p_add:
        return _add_event(t, s, randint(rs, 2), g, buf, moff, mlen, mts, sym_i, sym_f, stock,
                          mpids, pool_ref, pool_px, pool_qty, pool_side, params, rs)
    u -= p_add
    if u < p_cancel:
        return _cancel_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                             pool_side, params, rs)
    u -= p_cancel
    if u < p_replace:
        return _replace_event(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px,
                              pool_qty, pool_side, rs)
    u -= p_replace
    if u < p_aggr:
        return _aggressive_event(t, s, budget, g, buf, moff, mlen, mts, sym_i, sym_f, stock,
                                 mpids, pool_ref, pool_px, pool_qty, pool_side, params, rs)
    return _hidden_event(t, s, g, buf, moff, mlen, mts, sym_i, sym_f, stock, rs)


# -- scheduled events -----------------------------------------------------------
@kernel
def _ref_ticks(s, sym_f):
    return max(1, np.int64(round(sym_f[s, SF_REF])))


@kernel
def _round_tick4(x):
    """A price4 value rounded to a whole cent."""
    return np.int64(round(x / 100.0)) * 100


@kernel
def _variation_indicator(near4, ref4):
    if near4 == 0 or ref4 == 0:
        return _SP
    pct = abs(near4 - ref4) * 100.0 / ref4
    if pct < 1.0:
        return ord("L")
    if pct < 10.0:
        return ord("0") + np.int64(pct)
    if pct < 20.0:
        return ord("A")
    if pct < 30.0:
        return ord("B")
    return ord("C")


@kernel
def _do_cross_fill(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                   pool_side, rs):
    """Fill part of the best order on the cross's side at the cross price,
    as a non-printable C (the cross itself prints as Q)."""
    side = sym_i[s, SI_CROSS_SIDE]
    if side < 0:
        g[G_DEFICIT] += 1
        return 0
    j = _best_order(s, side, sym_i, pool_ref, pool_px, pool_side)
    if j < 0 or pool_px[s, j] != sym_i[s, SI_CROSS_PX]:
        g[G_DEFICIT] += 1
        return 0
    qty = pool_qty[s, j]
    x = qty if uniform(rs) < 0.5 else 1 + randint(rs, qty)
    match = g[G_NEXT_MATCH]
    g[G_NEXT_MATCH] = match + 1
    _emit_executed(g, buf, moff, mlen, mts, t, s, pool_ref[s, j], x, match, np.int64(_N),
                   np.int64(pool_px[s, j]) * 100)
    if x == qty:
        _remove(s, j, sym_i, pool_ref, pool_px, pool_qty, pool_side)
    else:
        pool_qty[s, j] = qty - x
    return 1


@kernel
def _emit_special(k, sp_t, sp_kind, sp_loc, sp_a, sp_b, g, buf, moff, mlen, mts, sym_i, sym_f,
                  stock, directory, mpids, reasons, pool_ref, pool_px, pool_qty, pool_side, rs):
    """Write scheduled event k; returns the messages written (0 or 1)."""
    t = sp_t[k]
    kind = sp_kind[k]
    loc = sp_loc[k]
    s = loc - 1
    a = sp_a[k]
    b = sp_b[k]
    if kind == K_CROSS_FILL:
        return _do_cross_fill(t, s, g, buf, moff, mlen, mts, sym_i, pool_ref, pool_px, pool_qty,
                              pool_side, rs)
    if kind == K_SYSTEM:
        p = _begin(g, buf, moff, mlen, mts, ord("S"), _ZERO, t, _LEN_SYSTEM)
        buf[p + 11] = a
    elif kind == K_DIRECTORY:
        p = _begin(g, buf, moff, mlen, mts, ord("R"), loc, t, _LEN_DIRECTORY)
        for j in range(11, 39):
            buf[p + j] = directory[s, j]
    elif kind == K_TRADING_ACTION:
        p = _begin(g, buf, moff, mlen, mts, ord("H"), loc, t, _LEN_TRADING_ACTION)
        _put_stock(buf, p + 11, stock, s)
        buf[p + 19] = a
        buf[p + 20] = _SP
        for j in range(4):
            buf[p + 21 + j] = reasons[b, j]
        if a == ord("T"):
            sym_i[s, SI_STATE] = 0
        elif a == ord("H"):
            sym_i[s, SI_STATE] = 2
        else:
            sym_i[s, SI_STATE] = 1
    elif kind == K_REG_SHO:
        p = _begin(g, buf, moff, mlen, mts, ord("Y"), loc, t, _LEN_REG_SHO)
        _put_stock(buf, p + 11, stock, s)
        buf[p + 19] = a
    elif kind == K_PARTICIPANT:
        p = _begin(g, buf, moff, mlen, mts, ord("L"), loc, t, _LEN_PARTICIPANT)
        for j in range(4):
            buf[p + 11 + j] = mpids[a, j]
        _put_stock(buf, p + 15, stock, s)
        buf[p + 23] = b
        buf[p + 24] = _N   # normal market maker mode
        buf[p + 25] = ord("A")  # active
    elif kind == K_MWCB_DECLINE:
        p = _begin(g, buf, moff, mlen, mts, ord("V"), _ZERO, t, _LEN_MWCB_DECLINE)
        # Levels 1-3: 7%, 13% and 20% below the prior close, price8 from cents.
        _put64(buf, p + 11, (a * 93 // 100) * 1_000_000)
        _put64(buf, p + 19, (a * 87 // 100) * 1_000_000)
        _put64(buf, p + 27, (a * 80 // 100) * 1_000_000)
    elif kind == K_MWCB_STATUS:
        p = _begin(g, buf, moff, mlen, mts, ord("W"), _ZERO, t, _LEN_MWCB_STATUS)
        buf[p + 11] = a
    elif kind == K_IPO_UPDATE:
        p = _begin(g, buf, moff, mlen, mts, ord("K"), loc, t, _LEN_IPO_UPDATE)
        _put_stock(buf, p + 11, stock, s)
        _put32(buf, p + 19, a)
        buf[p + 23] = b
        _put32(buf, p + 24, _ref_ticks(s, sym_f) * 100)
    elif kind == K_LULD_COLLAR:
        ref4 = _ref_ticks(s, sym_f) * 100
        p = _begin(g, buf, moff, mlen, mts, ord("J"), loc, t, _LEN_LULD_COLLAR)
        _put_stock(buf, p + 11, stock, s)
        _put32(buf, p + 19, ref4)
        _put32(buf, p + 23, _round_tick4(ref4 * 1.1))
        _put32(buf, p + 27, _round_tick4(ref4 * 0.9))
        _put32(buf, p + 31, _ZERO)
    elif kind == K_OPERATIONAL_HALT:
        p = _begin(g, buf, moff, mlen, mts, ord("h"), loc, t, _LEN_OPERATIONAL_HALT)
        _put_stock(buf, p + 11, stock, s)
        buf[p + 19] = a
        buf[p + 20] = b
        sym_i[s, SI_OPHALT] = 1 if b == ord("H") else 0
    elif kind == K_NOII:
        ref4 = _ref_ticks(s, sym_f) * 100
        hs4 = np.int64(max(1.0, _half_spread(s, sym_f))) * 100
        paired = 100 * geometric(rs, 60.0)
        u = uniform(rs)
        if u < 0.06:
            direction = ord("O")  # insufficient orders to calculate
            imbalance = 0
            near4 = 0
            far4 = 0
        else:
            imbalance = 0 if u < 0.16 else 100 * (1 + geometric(rs, 12.0)) + randint(rs, 100)
            if imbalance == 0:
                direction = _N
                near4 = ref4
            else:
                direction = _B if uniform(rs) < 0.5 else _S
                step = hs4 * randint(rs, 4)
                near4 = ref4 + step if direction == _B else max(100, ref4 - step)
            far4 = 0 if uniform(rs) < 0.2 else max(100, near4 + hs4 * (randint(rs, 5) - 2))
        p = _begin(g, buf, moff, mlen, mts, ord("I"), loc, t, _LEN_NOII)
        _put64(buf, p + 11, paired)
        _put64(buf, p + 19, imbalance)
        buf[p + 27] = direction
        _put_stock(buf, p + 28, stock, s)
        _put32(buf, p + 36, far4)
        _put32(buf, p + 40, near4)
        _put32(buf, p + 44, ref4)
        buf[p + 48] = a
        buf[p + 49] = _variation_indicator(near4, ref4)
    elif kind == K_RPII:
        p = _begin(g, buf, moff, mlen, mts, ord("N"), loc, t, _LEN_RPII)
        _put_stock(buf, p + 11, stock, s)
        buf[p + 19] = a
    elif kind == K_CROSS_PREP:
        bid = sym_i[s, SI_BID]
        ask = sym_i[s, SI_ASK]
        if bid > 0 and ask > 0:
            side = randint(rs, 2)
        elif bid > 0:
            side = 0
        elif ask > 0:
            side = 1
        else:
            side = -1
        sym_i[s, SI_CROSS_SIDE] = side
        if side == 0:
            sym_i[s, SI_CROSS_PX] = bid
        elif side == 1:
            sym_i[s, SI_CROSS_PX] = ask
        else:
            sym_i[s, SI_CROSS_PX] = _ref_ticks(s, sym_f)
    elif kind == K_CROSS:
        u = uniform(rs)
        shares = 0 if u < 0.04 else 100 * geometric(rs, 40.0) + randint(rs, 100)
        match = g[G_NEXT_MATCH]
        g[G_NEXT_MATCH] = match + 1
        p = _begin(g, buf, moff, mlen, mts, ord("Q"), loc, t, _LEN_CROSS)
        _put64(buf, p + 11, shares)
        _put_stock(buf, p + 19, stock, s)
        _put32(buf, p + 27, sym_i[s, SI_CROSS_PX] * 100)
        _put64(buf, p + 31, match)
        buf[p + 39] = a
    elif kind == K_BROKEN:
        if g[G_LAST_MATCH] == 0:
            g[G_DEFICIT] += 1
            return 0
        p = _begin(g, buf, moff, mlen, mts, ord("B"), g[G_LAST_LOC], t, _LEN_BROKEN)
        _put64(buf, p + 11, g[G_LAST_MATCH])
    elif kind == K_DLCR:
        ref4 = _ref_ticks(s, sym_f) * 100
        p = _begin(g, buf, moff, mlen, mts, ord("O"), loc, t, _LEN_DLCR)
        _put_stock(buf, p + 11, stock, s)
        buf[p + 19] = a
        _put32(buf, p + 20, _round_tick4(ref4 * 0.8))
        _put32(buf, p + 24, _round_tick4(ref4 * 1.2))
        _put32(buf, p + 28, ref4)
        _put64(buf, p + 32, t)
        _put32(buf, p + 40, _round_tick4(ref4 * 0.9))
        _put32(buf, p + 44, _round_tick4(ref4 * 1.1))
    return 1


# -- time slots within a bin ------------------------------------------------------
@kernel
def _slot_times(rs, t0, bin_ns, n, slots, counts, starts, cluster_mean, gap_ns):
    """n non-decreasing event times in [t0, t0 + bin_ns), gathered in bursts.

    Burst starts are sorted uniforms (normalised exponential spacings), each
    event joins a random burst (a counting sort, no comparison sort), and the
    events of a burst follow each other at exponential gaps.
    """
    nclusters = 1 + n // (1 + geometric(rs, cluster_mean))
    acc = 0.0
    for c in range(nclusters + 1):
        acc += exponential(rs)
        starts[c] = acc
    scale = bin_ns / acc
    for c in range(nclusters):
        counts[c] = 0
    for i in range(n):
        counts[randint(rs, nclusters)] += 1
    end = t0 + bin_ns - 1
    prev = t0
    i = 0
    for c in range(nclusters):
        t = t0 + starts[c] * scale
        for _ in range(counts[c]):
            ts = np.int64(t)
            if ts > end:
                ts = end
            if ts < prev:
                ts = prev
            slots[i] = ts
            prev = ts
            i += 1
            t += exponential(rs) * gap_ns


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker / Vose alias table for drawing index i with probability
    weights[i] / sum(weights) in constant time."""
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * (n / float(np.sum(weights)))
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        lo = small.pop()
        hi = large.pop()
        prob[lo] = scaled[lo]
        alias[lo] = hi
        scaled[hi] -= 1.0 - scaled[lo]
        (small if scaled[hi] < 1.0 else large).append(hi)
    return prob, alias


# -- the chunk driver -------------------------------------------------------------
@kernel
def run_chunk(b_lo, b_hi, bin_counts, bin_t0, bin_ns, sp_hi, sp_t, sp_kind, sp_loc, sp_a, sp_b,
              sym_i, sym_f, alias_p, alias_i, stock, directory, mpids, reasons,
              pool_ref, pool_px, pool_qty, pool_side, params, g, rs, slots, counts, starts,
              buf, moff, mlen, mts):
    """Generate bins [b_lo, b_hi) and the scheduled events up to index sp_hi.

    Writes from position 0 of the output buffers; returns the message count.
    """
    g[G_POS] = 0
    g[G_N] = 0
    k = g[G_SPECIAL]
    nsym = sym_i.shape[0]
    for b in range(b_lo, b_hi):
        t0 = bin_t0 + b * bin_ns
        n = bin_counts[b] + g[G_DEFICIT]
        g[G_DEFICIT] = 0
        if n > 0:
            _slot_times(rs, t0, bin_ns, n, slots, counts, starts, params[P_CLUSTER],
                        params[P_BURST_GAP_NS])
        i = 0
        while i < n:
            t = slots[i]
            while k < sp_hi and sp_t[k] <= t:
                _emit_special(k, sp_t, sp_kind, sp_loc, sp_a, sp_b, g, buf, moff, mlen, mts,
                              sym_i, sym_f, stock, directory, mpids, reasons, pool_ref,
                              pool_px, pool_qty, pool_side, rs)
                k += 1
            m = 0
            tries = 0
            while m == 0:
                if tries < 16:
                    # Walker's alias method: one column, one coin.
                    s = randint(rs, nsym)
                    if uniform(rs) >= alias_p[s]:
                        s = alias_i[s]
                else:
                    s = 0  # the anchor symbol always trades
                tries += 1
                m = _flow_event(t, s, n - i, g, buf, moff, mlen, mts, sym_i, sym_f, stock, mpids,
                                pool_ref, pool_px, pool_qty, pool_side, params, rs)
            i += m
        end = t0 + bin_ns
        while k < sp_hi and sp_t[k] < end:
            _emit_special(k, sp_t, sp_kind, sp_loc, sp_a, sp_b, g, buf, moff, mlen, mts, sym_i,
                          sym_f, stock, directory, mpids, reasons, pool_ref, pool_px, pool_qty,
                          pool_side, rs)
            k += 1
    while k < sp_hi:
        _emit_special(k, sp_t, sp_kind, sp_loc, sp_a, sp_b, g, buf, moff, mlen, mts, sym_i,
                      sym_f, stock, directory, mpids, reasons, pool_ref, pool_px, pool_qty,
                      pool_side, rs)
        k += 1
    g[G_SPECIAL] = k
    return g[G_N]
