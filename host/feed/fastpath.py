"""MoldUDP64 feeds to one arbitrated ITCH message stream, in numba.

``FeedArbiter.process(UdpBatch) -> MessageBatch`` unpacks the MoldUDP64
packets of a capture chunk, keeps the per-feed accounting and arbitrates the
A/B copies of each session exactly as the golden ``host.feed.sequencer``
specifies (the tests compare the two reports field for field), and returns
the messages that pass arbitration as offsets into the chunk's buffer --
nothing is copied.

A feed is one UDP destination (dst_ip, dst_port); a stream is a MoldUDP64
session name.  Datagrams are validated as strictly as
``host.protocols.moldudp64.decode_packet`` does and a bad one is counted on
its feed under the same reason and skipped (a payload reaching outside its
chunk's buffer counts as ``truncated``).  One reason exists only here:
``sequence_out_of_range``, a sequence number (plus message count) that does
not fit 63 bits -- the compiled state is int64, and a real session never
comes near 2**63 messages, so such a datagram is treated as corrupt rather
than wrapped.

Per feed the arbiter keeps the runs of sequence numbers received (a few per
fault) and per session the gap events, in arrays that double when full.
``itch_batch_to_messages`` turns a batch of Nasdaq's length-prefixed daily
file into the same ``MessageBatch`` so the book runs on either input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from host.pcap.frames import ip_to_str
from host.protocols.moldudp64 import (
    BLOCK_HEADER_SIZE,
    DROP_REASONS,
    END_OF_SESSION_COUNT,
    HEADER_SIZE,
    SESSION_LENGTH,
)


@dataclass
class MessageBatch:
    """ITCH messages in stream order; message i is ``buf[msg_off[i]:][:msg_len[i]]``."""

    buf: np.ndarray        # uint8
    msg_off: np.ndarray    # int64, offset of each message's type byte in buf
    msg_len: np.ndarray    # int32
    seq: np.ndarray        # uint64, MoldUDP64 sequence number (running number for files)
    msg_index: np.ndarray  # int32, index of the message inside its Mold packet
    ts_ns: np.ndarray      # int64, capture time of the carrying packet (0 for files)

    def __len__(self) -> int:
        return len(self.msg_off)

    def message(self, i: int) -> bytes:
        off = int(self.msg_off[i])
        return self.buf[off:off + int(self.msg_len[i])].tobytes()


def empty_message_batch(buf: np.ndarray | None = None) -> MessageBatch:
    return MessageBatch(np.zeros(0, np.uint8) if buf is None else buf, np.zeros(0, np.int64),
                        np.zeros(0, np.int32), np.zeros(0, np.uint64), np.zeros(0, np.int32),
                        np.zeros(0, np.int64))


def itch_batch_to_messages(batch, first_seq: int = 1) -> MessageBatch:
    """An ItchBatch (``host.pcap.itchfile``) as a MessageBatch.

    Files carry no sequence numbers: message i gets ``first_seq + i`` (pass
    the running count so numbering continues across batches), index 0 and
    timestamp 0.
    """
    n = len(batch.msg_off)
    return MessageBatch(
        buf=batch.buf,
        msg_off=np.asarray(batch.msg_off, dtype=np.int64),
        msg_len=np.asarray(batch.msg_len, dtype=np.int32),
        seq=np.arange(first_seq, first_seq + n, dtype=np.uint64),
        msg_index=np.zeros(n, np.int32),
        ts_ns=np.zeros(n, np.int64),
    )


# -- layout of the compiled state ------------------------------------------------------
MALFORMED_REASONS = tuple(DROP_REASONS) + ("sequence_out_of_range",)
_R_TRUNCATED = MALFORMED_REASONS.index("truncated")
_R_BAD_FIELD = MALFORMED_REASONS.index("bad_field")
_R_BLOCK_PAST_END = MALFORMED_REASONS.index("block_past_end")
_R_ZERO_LENGTH = MALFORMED_REASONS.index("zero_length_block")
_R_COUNT_MISMATCH = MALFORMED_REASONS.index("count_mismatch")
_R_TRAILING = MALFORMED_REASONS.index("trailing_bytes")
_R_SEQ_RANGE = MALFORMED_REASONS.index("sequence_out_of_range")
_VALID = -1
_SEQ_LIMIT = (1 << 63) - 1 - 0xFFFF

# feed_cnt columns
FEED_PACKETS, FEED_MESSAGES, FEED_HEARTBEATS, FEED_END_OF_SESSION = 0, 1, 2, 3
FEED_DUPLICATES, FEED_OUT_OF_ORDER, FEED_FIRST_TS, FEED_LAST_TS = 4, 5, 6, 7
FEED_SESSION, FEED_RUNS, FEED_MALFORMED = 8, 9, 10
_FEED_COLUMNS = FEED_MALFORMED + len(MALFORMED_REASONS)

# sess columns
S_STARTED, S_NEXT, S_FIRST, S_PASSED, S_DUPLICATES, S_LATE = 0, 1, 2, 3, 4, 5
S_MISSING, S_STALE, S_END, S_GAPS = 6, 7, 8, 9
_SESSION_COLUMNS = 10

# meta
M_FEEDS, M_SESSIONS, M_LAST_FEED = 0, 1, 2

DONE, NEED_FEEDS, NEED_SESSIONS, NEED_RUNS, NEED_GAPS = 0, 1, 2, 3, 4

# Reference counting off and helpers inlined by numba: nothing here
# allocates, and otherwise each helper call that takes arrays pays atomic
# reference-count updates (and, when LLVM leaves it a call, seven stack words
# per array).  numba rejects an allocation without reference counting.
_kernel = njit(cache=True, _nrt=False)
_inline = njit(cache=True, _nrt=False, inline="always")


@_kernel
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@_kernel
def _be64(buf, p):
    v = np.int64(0)
    for k in range(8):
        v = (v << 8) | np.int64(buf[p + k])
    return v


@_inline
def _blocks_parse_whole(buf, pos, end):
    if pos >= end:
        return False
    while pos < end:
        if pos + BLOCK_HEADER_SIZE > end:
            return False
        n = _be16(buf, pos)
        pos += BLOCK_HEADER_SIZE + n
        if n == 0 or pos > end:
            return False
    return True


@_inline
def _validate(buf, off, length):
    """Malformed reason index, or _VALID; mirrors moldudp64.decode_packet."""
    if length < HEADER_SIZE:
        return _R_TRUNCATED
    for k in range(SESSION_LENGTH):
        if buf[off + k] >= 128:
            return _R_BAD_FIELD
    seq = _be64(buf, off + SESSION_LENGTH)
    count = _be16(buf, off + SESSION_LENGTH + 8)
    end = off + length
    pos = off + HEADER_SIZE
    if count != 0 and count != END_OF_SESSION_COUNT:
        for i in range(count):
            if pos == end:
                return _R_COUNT_MISMATCH
            if pos + BLOCK_HEADER_SIZE > end:
                return _R_BLOCK_PAST_END
            n = _be16(buf, pos)
            if n == 0:
                return _R_ZERO_LENGTH
            pos += BLOCK_HEADER_SIZE + n
            if pos > end:
                return _R_BLOCK_PAST_END
    if pos != end:
        if _blocks_parse_whole(buf, pos, end):
            return _R_COUNT_MISMATCH
        return _R_TRAILING
    if seq < 0 or seq > _SEQ_LIMIT:
        return _R_SEQ_RANGE
    return _VALID


@_inline
def _runs_add(run_lo, run_hi, f, n, lo, hi):
    """Add [lo, hi) to feed f's sorted, disjoint, non-touching runs.

    Returns (new number of runs, numbers not present before).  The caller
    guarantees room for one more run.
    """
    if n == 0 or lo > run_hi[f, n - 1]:
        run_lo[f, n] = lo
        run_hi[f, n] = hi
        return n + 1, hi - lo
    if lo == run_hi[f, n - 1]:
        run_hi[f, n - 1] = hi
        return n, hi - lo
    # i: first run ending at or after lo; j: first run starting after hi.
    a, b = 0, n
    while a < b:
        m = (a + b) >> 1
        if run_hi[f, m] < lo:
            a = m + 1
        else:
            b = m
    i = a
    a, b = 0, n
    while a < b:
        m = (a + b) >> 1
        if run_lo[f, m] <= hi:
            a = m + 1
        else:
            b = m
    j = a
    already = 0
    for k in range(i, j):
        overlap = min(run_hi[f, k], hi) - max(run_lo[f, k], lo)
        if overlap > 0:
            already += overlap
    new_lo = lo
    new_hi = hi
    if i < j:
        new_lo = min(lo, run_lo[f, i])
        new_hi = max(hi, run_hi[f, j - 1])
    new_n = n - (j - i) + 1
    if j - i == 0:
        for k in range(n, i, -1):
            run_lo[f, k] = run_lo[f, k - 1]
            run_hi[f, k] = run_hi[f, k - 1]
    elif j - i > 1:
        shift = j - i - 1
        for k in range(j, n):
            run_lo[f, k - shift] = run_lo[f, k]
            run_hi[f, k - shift] = run_hi[f, k]
    run_lo[f, i] = new_lo
    run_hi[f, i] = new_hi
    return new_n, (hi - lo) - already


@_inline
def _has_passed(sess, gap_exp, gap_recv, s, q):
    if q < sess[s, S_FIRST] or q >= sess[s, S_NEXT]:
        return False
    # last gap event with expected <= q; gap events are sorted by expected
    a, b = 0, sess[s, S_GAPS]
    while a < b:
        m = (a + b) >> 1
        if gap_exp[s, m] <= q:
            a = m + 1
        else:
            b = m
    k = a - 1
    return not (k >= 0 and q < gap_recv[s, k])


@_inline
def _open_gap(sess, gap_exp, gap_recv, s, received):
    k = sess[s, S_GAPS]
    gap_exp[s, k] = sess[s, S_NEXT]
    gap_recv[s, k] = received
    sess[s, S_GAPS] = k + 1
    sess[s, S_MISSING] += received - sess[s, S_NEXT]
    sess[s, S_STALE] = 1


@_kernel
def _message_bound(buf, payload_off, payload_len):
    """Sum of the message counts of the datagrams that could be valid: no
    datagram emits more messages than its header declares.  (The 3-bytes-a-
    block bound from the payload lengths alone is about ten times larger, and
    output arrays that large are fresh pages each batch: ~13 000 page faults
    per pass over a 2 M-message day against ~2 000.)"""
    total = 0
    for p in range(payload_off.shape[0]):
        off = payload_off[p]
        length = np.int64(payload_len[p])
        if off >= 0 and length >= HEADER_SIZE and off + length <= buf.shape[0]:
            count = _be16(buf, off + SESSION_LENGTH + 8)
            if count != END_OF_SESSION_COUNT:
                total += count
    return total


@_kernel
def _arbitrate(buf, ts_ns, dst_ip, dst_port, payload_off, payload_len, start,
               feed_key, feed_cnt, run_lo, run_hi, sess_key, sess, gap_exp, gap_recv,
               passed_by_feed, meta, out_off, out_len, out_seq, out_idx, out_ts, nout):
    """Account and arbitrate packets ``start..``; (exit code, packet reached)."""
    n_packets = payload_off.shape[0]
    p = start
    while p < n_packets:
        ip = np.int64(dst_ip[p])
        port = np.int64(dst_port[p])
        f = meta[M_LAST_FEED]
        if f < 0 or feed_key[f, 0] != ip or feed_key[f, 1] != port:
            f = -1
            for k in range(meta[M_FEEDS]):
                if feed_key[k, 0] == ip and feed_key[k, 1] == port:
                    f = k
                    break
            if f < 0:
                if meta[M_FEEDS] == feed_key.shape[0]:
                    return NEED_FEEDS, p
                f = meta[M_FEEDS]
                meta[M_FEEDS] = f + 1
                feed_key[f, 0] = ip
                feed_key[f, 1] = port
                feed_cnt[f, FEED_SESSION] = -1
            meta[M_LAST_FEED] = f

        off = payload_off[p]
        length = np.int64(payload_len[p])
        if off < 0 or length < 0 or off + length > buf.shape[0]:
            # not a datagram of this buffer at all: never read outside it
            reason = _R_TRUNCATED
        else:
            reason = _validate(buf, off, length)
        if reason != _VALID:
            feed_cnt[f, FEED_MALFORMED + reason] += 1
            p += 1
            continue

        key0 = _be64(buf, off)
        key1 = _be16(buf, off + 8)
        s = -1
        for k in range(meta[M_SESSIONS]):
            if sess_key[k, 0] == key0 and sess_key[k, 1] == key1:
                s = k
                break
        if s < 0:
            if meta[M_SESSIONS] == sess_key.shape[0]:
                return NEED_SESSIONS, p
            s = meta[M_SESSIONS]
            meta[M_SESSIONS] = s + 1
            sess_key[s, 0] = key0
            sess_key[s, 1] = key1
        first = _be64(buf, off + SESSION_LENGTH)
        count = _be16(buf, off + SESSION_LENGTH + 8)
        data = count != 0 and count != END_OF_SESSION_COUNT
        if data and feed_cnt[f, FEED_RUNS] + 1 > run_lo.shape[1]:
            return NEED_RUNS, p
        if sess[s, S_GAPS] + 1 > gap_exp.shape[1]:
            return NEED_GAPS, p

        p += 1
        ts = ts_ns[p - 1]
        if feed_cnt[f, FEED_PACKETS] == 0:
            feed_cnt[f, FEED_FIRST_TS] = ts
        feed_cnt[f, FEED_PACKETS] += 1
        feed_cnt[f, FEED_LAST_TS] = ts
        feed_cnt[f, FEED_SESSION] = s

        if not data:
            if count == 0:
                feed_cnt[f, FEED_HEARTBEATS] += 1
            else:
                feed_cnt[f, FEED_END_OF_SESSION] += 1
                sess[s, S_END] = 1
            if sess[s, S_STARTED] != 0 and first > sess[s, S_NEXT]:
                _open_gap(sess, gap_exp, gap_recv, s, first)
                sess[s, S_NEXT] = first
            continue

        feed_cnt[f, FEED_MESSAGES] += count
        runs = feed_cnt[f, FEED_RUNS]
        had_runs = runs > 0
        highest_end = run_hi[f, runs - 1] if had_runs else 0
        runs, added = _runs_add(run_lo, run_hi, f, runs, first, first + count)
        feed_cnt[f, FEED_RUNS] = runs
        if added == 0:
            feed_cnt[f, FEED_DUPLICATES] += 1
        elif had_runs and first < highest_end:
            feed_cnt[f, FEED_OUT_OF_ORDER] += 1

        if sess[s, S_STARTED] == 0:
            sess[s, S_STARTED] = 1
            sess[s, S_NEXT] = first
            sess[s, S_FIRST] = first
        pos = off + HEADER_SIZE
        emitted = 0
        k_out = nout[0]
        for index in range(count):
            block = _be16(buf, pos)
            q = first + index
            nxt = sess[s, S_NEXT]
            if q >= nxt:
                if q > nxt:
                    _open_gap(sess, gap_exp, gap_recv, s, q)
                sess[s, S_NEXT] = q + 1
                sess[s, S_PASSED] += 1
                out_off[k_out] = pos + BLOCK_HEADER_SIZE
                out_len[k_out] = block
                out_seq[k_out] = q
                out_idx[k_out] = index
                out_ts[k_out] = ts
                k_out += 1
                emitted += 1
            elif _has_passed(sess, gap_exp, gap_recv, s, q):
                sess[s, S_DUPLICATES] += 1
            else:
                sess[s, S_LATE] += 1
            pos += BLOCK_HEADER_SIZE + block
        nout[0] = k_out
        passed_by_feed[s, f] += emitted
    return DONE, p


def _grow_rows(a: np.ndarray, rows: int, fill: int = 0) -> np.ndarray:
    new = np.full((rows,) + a.shape[1:], fill, a.dtype)
    new[:a.shape[0]] = a
    return new


def _grow_cols(a: np.ndarray, cols: int) -> np.ndarray:
    new = np.zeros((a.shape[0], cols), a.dtype)
    new[:, :a.shape[1]] = a
    return new


class FeedArbiter:
    """Per-feed MoldUDP64 accounting and per-session A/B arbitration.

    Feed the capture's UdpBatches in order; each ``process`` returns the
    messages that passed arbitration in that batch.  ``report()`` has the
    same shape and values as ``Sequencer.report()`` with feeds named
    ``"dst_ip:dst_port"``.
    """

    def __init__(self, feeds: int = 4, sessions: int = 2, runs: int = 64, gaps: int = 64):
        self._feed_key = np.zeros((feeds, 2), np.int64)
        self._feed_cnt = np.zeros((feeds, _FEED_COLUMNS), np.int64)
        self._run_lo = np.zeros((feeds, runs), np.int64)
        self._run_hi = np.zeros((feeds, runs), np.int64)
        self._sess_key = np.zeros((sessions, 2), np.int64)
        self._sess = np.zeros((sessions, _SESSION_COLUMNS), np.int64)
        self._gap_exp = np.zeros((sessions, gaps), np.int64)
        self._gap_recv = np.zeros((sessions, gaps), np.int64)
        self._passed_by_feed = np.zeros((sessions, feeds), np.int64)
        self._meta = np.array([0, 0, -1], np.int64)

    def process(self, batch) -> MessageBatch:
        """Arbitrate one UdpBatch; the passing messages point into ``batch.buf``."""
        buf = batch.buf
        payload_off = np.asarray(batch.payload_off, dtype=np.int64)
        payload_len = np.asarray(batch.payload_len, dtype=np.int32)
        n = len(payload_off)
        if n == 0:
            return empty_message_batch(buf)
        cap = int(_message_bound(buf, payload_off, payload_len)) + 1
        out_off = np.empty(cap, np.int64)
        out_len = np.empty(cap, np.int32)
        out_seq = np.empty(cap, np.uint64)
        out_idx = np.empty(cap, np.int32)
        out_ts = np.empty(cap, np.int64)
        nout = np.zeros(1, np.int64)
        ts_ns = np.asarray(batch.ts_ns, dtype=np.int64)
        dst_ip = np.asarray(batch.dst_ip, dtype=np.uint32)
        dst_port = np.asarray(batch.dst_port, dtype=np.uint16)
        p = 0
        while True:
            code, p = _arbitrate(buf, ts_ns, dst_ip, dst_port, payload_off, payload_len, p,
                                 self._feed_key, self._feed_cnt, self._run_lo, self._run_hi,
                                 self._sess_key, self._sess, self._gap_exp, self._gap_recv,
                                 self._passed_by_feed, self._meta,
                                 out_off, out_len, out_seq, out_idx, out_ts, nout)
            if code == DONE:
                break
            self._grow(code)
        k = int(nout[0])
        return MessageBatch(buf, out_off[:k], out_len[:k], out_seq[:k], out_idx[:k],
                            out_ts[:k])

    def _grow(self, code: int) -> None:
        if code == NEED_FEEDS:
            rows = 2 * self._feed_key.shape[0]
            self._feed_key = _grow_rows(self._feed_key, rows)
            self._feed_cnt = _grow_rows(self._feed_cnt, rows)
            self._run_lo = _grow_rows(self._run_lo, rows)
            self._run_hi = _grow_rows(self._run_hi, rows)
            self._passed_by_feed = _grow_cols(self._passed_by_feed, rows)
        elif code == NEED_SESSIONS:
            rows = 2 * self._sess_key.shape[0]
            self._sess_key = _grow_rows(self._sess_key, rows)
            self._sess = _grow_rows(self._sess, rows)
            self._gap_exp = _grow_rows(self._gap_exp, rows)
            self._gap_recv = _grow_rows(self._gap_recv, rows)
            self._passed_by_feed = _grow_rows(self._passed_by_feed, rows)
        elif code == NEED_RUNS:
            cols = 2 * self._run_lo.shape[1]
            self._run_lo = _grow_cols(self._run_lo, cols)
            self._run_hi = _grow_cols(self._run_hi, cols)
        elif code == NEED_GAPS:
            cols = 2 * self._gap_exp.shape[1]
            self._gap_exp = _grow_cols(self._gap_exp, cols)
            self._gap_recv = _grow_cols(self._gap_recv, cols)
        else:
            raise AssertionError(f"unknown arbiter exit code {code}")

    # -- reports --------------------------------------------------------------
    def _session_name(self, s: int) -> str:
        raw = (int(self._sess_key[s, 0]) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        raw += int(self._sess_key[s, 1]).to_bytes(2, "big")
        return raw.decode("ascii").rstrip(" ")

    def _feed_name(self, f: int) -> str:
        return f"{ip_to_str(int(self._feed_key[f, 0]))}:{int(self._feed_key[f, 1])}"

    def feed_names(self) -> list[str]:
        return [self._feed_name(f) for f in range(int(self._meta[M_FEEDS]))]

    def sessions(self) -> list[str]:
        return [self._session_name(s) for s in range(int(self._meta[M_SESSIONS]))]

    def _feed_report(self, f: int) -> dict[str, Any]:
        c = [int(v) for v in self._feed_cnt[f]]
        runs = c[FEED_RUNS]
        lo = [int(v) for v in self._run_lo[f, :runs]]
        hi = [int(v) for v in self._run_hi[f, :runs]]
        holes = [(hi[k], lo[k + 1] - 1) for k in range(runs - 1)]
        seen = c[FEED_PACKETS] > 0
        return {
            "feed": self._feed_name(f),
            "session": self._session_name(c[FEED_SESSION]) if c[FEED_SESSION] >= 0 else None,
            "packets": c[FEED_PACKETS],
            "messages": c[FEED_MESSAGES],
            "heartbeats": c[FEED_HEARTBEATS],
            "end_of_session": c[FEED_END_OF_SESSION],
            "duplicate_packets": c[FEED_DUPLICATES],
            "out_of_order_packets": c[FEED_OUT_OF_ORDER],
            "gaps": len(holes),
            "missing_messages": sum(last - first + 1 for first, last in holes),
            "gap_ranges": holes,
            "lowest_seq": lo[0] if runs else None,
            "highest_seq": hi[-1] - 1 if runs else None,
            "malformed": {name: c[FEED_MALFORMED + i] for i, name in enumerate(MALFORMED_REASONS)
                          if c[FEED_MALFORMED + i]},
            "first_ts_ns": c[FEED_FIRST_TS] if seen else None,
            "last_ts_ns": c[FEED_LAST_TS] if seen else None,
        }

    def _stream_report(self, s: int) -> dict[str, Any]:
        c = [int(v) for v in self._sess[s]]
        g = c[S_GAPS]
        names = self.feed_names()
        return {
            "session": self._session_name(s),
            "passed": c[S_PASSED],
            "duplicates": c[S_DUPLICATES],
            "late": c[S_LATE],
            "gap_events": [(int(a), int(b)) for a, b in zip(self._gap_exp[s, :g],
                                                             self._gap_recv[s, :g])],
            "missing": c[S_MISSING],
            "stale": bool(c[S_STALE]),
            "next_seq": c[S_NEXT] if c[S_STARTED] else None,
            "end_of_session": bool(c[S_END]),
            "passed_by_feed": {names[f]: int(v) for f, v in enumerate(self._passed_by_feed[s])
                               if f < len(names) and v},
        }

    def feed_stats(self) -> dict[str, dict[str, Any]]:
        return {self._feed_name(f): self._feed_report(f) for f in range(int(self._meta[M_FEEDS]))}

    def stream_stats(self) -> dict[str, dict[str, Any]]:
        return {self._session_name(s): self._stream_report(s)
                for s in range(int(self._meta[M_SESSIONS]))}

    def report(self) -> dict[str, Any]:
        """Everything, JSON-ready, shaped like ``Sequencer.report()``."""
        return {"feeds": self.feed_stats(), "streams": self.stream_stats()}

    def malformed(self) -> dict[str, int]:
        """Malformed datagrams of all feeds by reason."""
        total = self._feed_cnt[:int(self._meta[M_FEEDS]), FEED_MALFORMED:].sum(axis=0)
        return {name: int(v) for name, v in zip(MALFORMED_REASONS, total) if v}

    @property
    def stale(self) -> bool:
        """True once any session lost messages that no feed delivered."""
        return bool(self._sess[:int(self._meta[M_SESSIONS]), S_STALE].any())


__all__ = ["MessageBatch", "FeedArbiter", "itch_batch_to_messages", "empty_message_batch",
           "MALFORMED_REASONS"]
