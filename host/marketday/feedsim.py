"""MoldUDP64 packetising and the A/B feeds of a generated day, with faults.

Messages close in time share a packet (within ``WINDOW_NS`` of the packet's
first message and at most ``MAX_PAYLOAD`` bytes of UDP payload including the
20-byte MoldUDP64 header).  Each packet goes out on every feed: feed 0 a
little after its last message was generated, the others a few microseconds
behind it, every feed serialised at 10 Gb/s.  A feed that has been silent
for a second sends a heartbeat; the day ends with an end-of-session packet
on each feed.

Faults follow a contract with the decoders: per feed and per data
packet, with the given rates, a packet is dropped, sent twice in a row, or
sent after its successor; faults on one feed are at least 4 packets apart,
never among the first or last 3 data packets, and never next to a heartbeat
(the packets around a fault are less than half a heartbeat interval apart).  Hence a
decoder counting each feed alone must find exactly: gaps = drops,
missing_messages = messages in dropped packets, duplicate_packets =
duplicates, out_of_order_packets = reorders.

Timing and fault draws are keyed by the packet's index in the day
(:func:`host.marketday.rng.keyed_uniform`), so the output does not depend
on how the day is cut into chunks: the packetiser keeps the last few
packets of a chunk (``LOOKAHEAD``) to decide them with the next one.
"""
from __future__ import annotations

import numpy as np

from host.marketday.rng import inline_kernel, kernel, keyed_uniform

MAX_PAYLOAD = 1400
MOLD_HEADER = 20
WINDOW_NS = 25_000
HEARTBEAT_NS = 1_000_000_000   # default: a real feed heartbeats every idle second
LOOKAHEAD = 6
END_OF_SESSION_COUNT = 0xFFFF

# per-feed state columns
FS_LAST_TS = 0
FS_NEXT_SEQ = 1     # next sequence number the server will send (for heartbeats)
FS_LAST_FAULT = 2   # day index of the last packet involved in a fault
FS_SKIP = 3         # day index of a packet already sent early by a reorder
FS_DATA = 4
FS_HEARTBEATS = 5
FS_EOS = 6
FS_DROPS = 7
FS_MISSING = 8
FS_DUPLICATES = 9
FS_REORDERS = 10
FS_MESSAGES = 11
FS_HEARTBEAT_NS = 12  # silence after which a heartbeat goes out (>= HEARTBEAT_NS)
N_FS = 13

# global state
GS_PACKETS = 0          # data packets of the day decided so far
GS_SEQ = 1              # sequence number of the first message not yet decided
GS_PREV_LAST_TS = 2     # generation time of the last message of the previous packet
GS_LOST_ALL = 3         # packets dropped on every feed
GS_LOST_ALL_MESSAGES = 4
N_GS = 5

# draw purposes for keyed_uniform
_D_LATENCY = 0
_D_JITTER = 1
_D_FAULT = 2
_D_DUP_GAP = 3


@kernel
def packetize(mlen, mts, n, pk_first, pk_count, pk_bytes):
    """Greedy MoldUDP64 packets over messages [0, n); returns the packet count."""
    npk = 0
    i = 0
    while i < n:
        first = i
        size = MOLD_HEADER + 2 + mlen[i]
        t0 = mts[i]
        i += 1
        while i < n and size + 2 + mlen[i] <= MAX_PAYLOAD and mts[i] - t0 <= WINDOW_NS:
            size += 2 + mlen[i]
            i += 1
        pk_first[npk] = first
        pk_count[npk] = i - first
        pk_bytes[npk] = size
        npk += 1
    return npk


@inline_kernel
def _put_header(pay, p, session, seq, count):
    for k in range(10):
        pay[p + k] = session[k]
    for k in range(8):
        pay[p + 10 + k] = (seq >> (56 - 8 * k)) & 0xFF
    pay[p + 18] = (count >> 8) & 0xFF
    pay[p + 19] = count & 0xFF


@kernel
def write_payloads(buf, moff, mlen, pk_first, pk_count, npk, session, seq0, pay, pos, pk_off):
    """MoldUDP64 payloads of packets [0, npk) into pay from pos; returns the end."""
    seq = seq0
    for k in range(npk):
        pk_off[k] = pos
        count = pk_count[k]
        _put_header(pay, pos, session, seq, count)
        pos += MOLD_HEADER
        for i in range(pk_first[k], pk_first[k] + count):
            length = mlen[i]
            pay[pos] = (length >> 8) & 0xFF
            pay[pos + 1] = length & 0xFF
            src = moff[i]
            for j in range(length):
                pay[pos + 2 + j] = buf[src + j]
            pos += 2 + length
        seq += count
    return pos


@inline_kernel
def _wire_gap(length):
    # Preamble, Ethernet/IP/UDP headers, FCS and inter-frame gap at 10 Gb/s.
    return np.int64((length + 42 + 24 + 4) * 0.8) + 1


@inline_kernel
def _record(f, ts, off, length, s_ts, s_off, s_len, s_feed, ns):
    s_ts[ns] = ts
    s_off[ns] = off
    s_len[ns] = length
    s_feed[ns] = f
    return ns + 1


@kernel
def _send(f, ts, off, length, fstate, session, pay, pos, s_ts, s_off, s_len, s_feed, ns):
    """Send one data packet on feed f no earlier than ts, preceded by the
    heartbeats its feed's silence calls for.  Returns (ns, pos, sent ts)."""
    last = fstate[f, FS_LAST_TS]
    if last >= 0:
        ts = max(ts, last + _wire_gap(length))
        interval = fstate[f, FS_HEARTBEAT_NS]
        while ts - last >= interval:
            last += interval
            _put_header(pay, pos, session, fstate[f, FS_NEXT_SEQ], 0)
            ns = _record(f, last, pos, MOLD_HEADER, s_ts, s_off, s_len, s_feed, ns)
            pos += MOLD_HEADER
            fstate[f, FS_HEARTBEATS] += 1
    ns = _record(f, ts, off, length, s_ts, s_off, s_len, s_feed, ns)
    fstate[f, FS_LAST_TS] = ts
    fstate[f, FS_DATA] += 1
    return ns, pos, ts


@inline_kernel
def _nominal(key, day_index, f, last_msg_ts):
    """When packet day_index would leave on feed f, before serialisation."""
    ts = last_msg_ts + 1_500 + np.int64(keyed_uniform(key, day_index, 0, _D_LATENCY) * 4_500)
    if f > 0:
        ts += 1_000 + np.int64(keyed_uniform(key, day_index, f, _D_JITTER) * 11_000)
    return ts


@kernel
def build_sends(npk_done, npk, final, pk_count, pk_bytes, pk_off, pk_last_ts, nfeeds, rates, key,
                fstate, gstate, session, pay, pos, s_ts, s_off, s_len, s_feed, ns):
    """Decide and record the sends of packets [0, npk_done) on every feed.

    ``npk`` packets are known (the ones after npk_done are the lookahead);
    ``final`` says no packet follows them.  Returns (ns, pos).
    """
    g0 = gstate[GS_PACKETS]
    total = g0 + npk  # meaningful when final
    seq = gstate[GS_SEQ]
    drop_rate = rates[0]
    dup_rate = rates[1]
    reorder_rate = rates[2]
    for k in range(npk_done):
        g = g0 + k
        count = pk_count[k]
        prev_ts = gstate[GS_PREV_LAST_TS]
        lost_on = 0
        for f in range(nfeeds):
            if fstate[f, FS_SKIP] == g:
                continue  # already sent ahead of its predecessor
            # Eligibility for a fault (see module doc).
            eligible = (g >= 3 and g - fstate[f, FS_LAST_FAULT] >= 4 and k + 2 < npk
                        and pk_last_ts[k + 2] - prev_ts < fstate[f, FS_HEARTBEAT_NS] // 2)
            if final and g + 1 > total - 4:
                eligible = False  # a reorder's successor must not be among the last 3 either
            fault = 0
            if eligible:
                u = keyed_uniform(key, g, f, _D_FAULT)
                if u < drop_rate:
                    fault = 1
                elif u < drop_rate + dup_rate:
                    fault = 2
                elif u < drop_rate + dup_rate + reorder_rate:
                    fault = 3
            ts = _nominal(key, g, f, pk_last_ts[k])
            if fault == 1:
                fstate[f, FS_DROPS] += 1
                fstate[f, FS_MISSING] += count
                fstate[f, FS_LAST_FAULT] = g
                lost_on += 1
            elif fault == 3:
                # The successor goes first, this packet right behind it.
                ts_next = _nominal(key, g + 1, f, pk_last_ts[k + 1])
                ns, pos, sent = _send(f, max(ts, ts_next), pk_off[k + 1], pk_bytes[k + 1], fstate,
                                      session, pay, pos, s_ts, s_off, s_len, s_feed, ns)
                fstate[f, FS_MESSAGES] += pk_count[k + 1]
                ns, pos, sent = _send(f, sent, pk_off[k], pk_bytes[k], fstate, session, pay, pos,
                                      s_ts, s_off, s_len, s_feed, ns)
                fstate[f, FS_MESSAGES] += count
                fstate[f, FS_REORDERS] += 1
                fstate[f, FS_SKIP] = g + 1
                fstate[f, FS_LAST_FAULT] = g + 1
            else:
                ns, pos, sent = _send(f, ts, pk_off[k], pk_bytes[k], fstate, session, pay, pos,
                                      s_ts, s_off, s_len, s_feed, ns)
                fstate[f, FS_MESSAGES] += count
                if fault == 2:
                    gap = 2_000 + np.int64(keyed_uniform(key, g, f, _D_DUP_GAP) * 8_000)
                    ns, pos, sent = _send(f, sent + gap, pk_off[k], pk_bytes[k], fstate, session,
                                          pay, pos, s_ts, s_off, s_len, s_feed, ns)
                    fstate[f, FS_MESSAGES] += count
                    fstate[f, FS_DUPLICATES] += 1
                    fstate[f, FS_LAST_FAULT] = g
        for f in range(nfeeds):
            if seq + count > fstate[f, FS_NEXT_SEQ]:
                fstate[f, FS_NEXT_SEQ] = seq + count
        if lost_on == nfeeds:
            gstate[GS_LOST_ALL] += 1
            gstate[GS_LOST_ALL_MESSAGES] += count
        seq += count
        gstate[GS_PREV_LAST_TS] = pk_last_ts[k]
    gstate[GS_PACKETS] = g0 + npk_done
    gstate[GS_SEQ] = seq
    if final:
        for f in range(nfeeds):
            ts = fstate[f, FS_LAST_TS] + 1_000_000
            _put_header(pay, pos, session, seq, END_OF_SESSION_COUNT)
            ns = _record(f, ts, pos, MOLD_HEADER, s_ts, s_off, s_len, s_feed, ns)
            pos += MOLD_HEADER
            fstate[f, FS_LAST_TS] = ts
            fstate[f, FS_EOS] += 1
    return ns, pos


# -- expected A/B arbitration -------------------------------------------------------
# state columns
AS_NEXT = 0       # next expected sequence number, 0 until the first data packet
AS_FIRST = 1
AS_PASSED = 2
AS_DUPLICATES = 3
AS_LATE = 4
AS_MISSING = 5
AS_GAPS = 6       # gap events recorded
N_AS = 7


@kernel
def _has_passed(q, astate, gap_lo, gap_hi):
    if astate[AS_NEXT] == 0 or q < astate[AS_FIRST] or q >= astate[AS_NEXT]:
        return False
    # Skipped ranges [gap_lo, gap_hi) are sorted: next_seq only grows.
    lo = 0
    hi = astate[AS_GAPS]
    while lo < hi:  # the last range starting at or before q
        mid = (lo + hi) // 2
        if gap_lo[mid] <= q:
            lo = mid + 1
        else:
            hi = mid
    k = lo - 1
    return not (k >= 0 and q < gap_hi[k])


@kernel
def _open_gap(received, astate, gap_lo, gap_hi):
    n = astate[AS_GAPS]
    gap_lo[n] = astate[AS_NEXT]
    gap_hi[n] = received
    astate[AS_GAPS] = n + 1
    astate[AS_MISSING] += received - astate[AS_NEXT]


@kernel
def arbitrate(pay, s_off, order, astate, gap_lo, gap_hi):
    """Run the packets pay[s_off[i]:] for i in order (capture order) through
    the A/B arbitration rules; gap_lo/gap_hi need room for len(order) more."""
    for i in order:
        p = s_off[i]
        seq = np.int64(0)
        for k in range(8):
            seq = (seq << 8) | pay[p + 10 + k]
        count = (np.int64(pay[p + 18]) << 8) | pay[p + 19]
        if count == 0 or count == END_OF_SESSION_COUNT:
            if astate[AS_NEXT] != 0 and seq > astate[AS_NEXT]:
                _open_gap(seq, astate, gap_lo, gap_hi)
                astate[AS_NEXT] = seq
            continue
        if astate[AS_NEXT] == 0:
            astate[AS_NEXT] = seq
            astate[AS_FIRST] = seq
        for q in range(seq, seq + count):
            if q >= astate[AS_NEXT]:
                if q > astate[AS_NEXT]:
                    _open_gap(q, astate, gap_lo, gap_hi)
                astate[AS_NEXT] = q + 1
                astate[AS_PASSED] += 1
            elif _has_passed(q, astate, gap_lo, gap_hi):
                astate[AS_DUPLICATES] += 1
            else:
                astate[AS_LATE] += 1
