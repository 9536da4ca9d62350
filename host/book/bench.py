"""Throughput of the feed decode and the order book, for ``make bench``.

``bench_book(capture)`` measures, in one process and on the same data:

* ``decode_msgs_per_s``: capture -> MoldUDP64 arbitration -> ITCH messages
  (``host.pcap.fast`` + ``host.feed.fastpath``), whole capture;
* ``book_msgs_per_s``: the same plus ``FastBook`` (decode + book);
* ``fastbook_msgs_per_s``: the ``FastBook.process`` calls alone (ITCH
  decode + book on the arbitrated messages);
* ``python_baseline_msgs_per_s``: the readable pure-Python path -- itch50
  decoding plus ``ReferenceBook`` -- on a prefix of the arbitrated messages;
* ``python_baseline_ratio`` = book_msgs_per_s / python_baseline_msgs_per_s.

The numba kernels are compiled (or loaded from cache) on a small synthetic
day before any clock starts.  ``synthetic_day`` writes such days directly as
ITCH messages -- order references increasing, prices clustered at the touch,
roughly 40% adds, 40% deletes, 12% executions, 4% cancels, 4% replaces --
so the book can be measured without a capture (``bench_synthetic``), and it
can sprinkle counted anomalies for tests.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from host.protocols import itch50

TICK = 100  # one cent in price4


@dataclass
class SyntheticDay:
    """Raw ITCH messages: message i is ``buf[msg_off[i]:msg_off[i] + msg_len[i]]``."""

    buf: np.ndarray
    msg_off: np.ndarray
    msg_len: np.ndarray
    anomalies: dict

    def __len__(self) -> int:
        return len(self.msg_off)


def _packer(cls):
    """Fast encoder for one itch50 class: values in field order, u48 split as
    the layout's struct expects (high 16 bits, low 32 bits)."""
    st = cls.LAYOUT.struct
    type_byte = cls.TYPE.encode("ascii")
    size = cls.fixed_size()
    ts_pos = cls.LAYOUT.names.index("timestamp")
    alpha = [(i, f.size) for i, f in enumerate(cls.LAYOUT.fields) if f.is_alpha]

    def pack(values):
        args = list(values)
        for i, width in alpha:
            if isinstance(args[i], str):
                args[i] = args[i].encode("ascii").ljust(width, b" ")
        ts = args[ts_pos]
        args[ts_pos:ts_pos + 1] = [ts >> 32, ts & 0xFFFFFFFF]
        return type_byte + st.pack(*args)

    pack.size = size
    return pack


_P = {cls.TYPE: _packer(cls) for cls in itch50.MESSAGE_CLASSES}


class _Side:
    """The generator's own view of one side of one stock: levels and FIFO queues."""

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.queues: dict[int, deque] = {}
        self.heap: list[int] = []  # best first: negated prices for bids

    def best(self):
        while self.heap:
            price = -self.heap[0] if self.is_bid else self.heap[0]
            if self.queues.get(price):
                return price
            heapq.heappop(self.heap)
            self.queues.pop(price, None)
        return None

    def add(self, price: int, ref: int) -> None:
        q = self.queues.get(price)
        if q is None:
            q = self.queues[price] = deque()
            heapq.heappush(self.heap, -price if self.is_bid else price)
        q.append(ref)

    def remove(self, price: int, ref: int) -> None:
        self.queues[price].remove(ref)


def synthetic_day(messages: int = 100_000, symbols: int = 50, seed: int = 1,
                  anomaly_rate: float = 0.0) -> SyntheticDay:
    """A realistic-looking ITCH day of about ``messages`` messages (see module doc).

    With ``anomaly_rate`` > 0 that fraction of the messages is replaced by a
    malformed or inconsistent one (unknown or duplicate references, over-
    executions, bad sides, zero shares, truncated or over-long bytes, unknown
    types, non-ASCII alpha fields, wrong or undeclared locates); ``anomalies``
    counts what was injected by kind.
    """
    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    ts = 34_200_000_000_000  # 09:30
    anomalies: dict[str, int] = {}
    names = [f"S{i:04d}" for i in range(symbols)]
    for i, name in enumerate(names):
        out.append(_P["R"]([i + 1, 0, ts, name, "Q", "N", 100, "N", "C", "  ", "P", "N", " ",
                            "1", "N", 0, " "]))
        out.append(_P["H"]([i + 1, 0, ts, name, "T", " ", "    "]))
    mids = (rng.integers(10, 300, symbols) * 10_000).tolist()
    bids = [_Side(True) for _ in range(symbols)]
    asks = [_Side(False) for _ in range(symbols)]
    live: list[list[int]] = [[] for _ in range(symbols)]   # refs, for random picks
    where: dict[int, int] = {}                             # ref -> index in live[stock]
    orders: dict[int, list] = {}                           # ref -> [stock, is_bid, price, shares]
    next_ref = 1
    match = 1

    weights = 1.0 / np.arange(1, symbols + 1) ** 0.9
    weights /= weights.sum()
    batch = 1 << 16
    picks = iter(())
    dice = iter(())
    extra = iter(())

    def forget(ref: int) -> None:
        stock, is_bid, price, _ = orders.pop(ref)
        (bids if is_bid else asks)[stock].remove(price, ref)
        lst = live[stock]
        k = where.pop(ref)
        last = lst.pop()
        if last != ref:
            lst[k] = last
            where[last] = k

    def book(stock: int, is_bid: bool, price: int, shares: int) -> int:
        nonlocal next_ref
        ref = next_ref
        next_ref += 1
        orders[ref] = [stock, is_bid, price, shares]
        (bids if is_bid else asks)[stock].add(price, ref)
        where[ref] = len(live[stock])
        live[stock].append(ref)
        return ref

    def add_price(stock: int, is_bid: bool, u: float) -> int:
        side = bids[stock] if is_bid else asks[stock]
        other = asks[stock] if is_bid else bids[stock]
        best = side.best()
        opp = other.best()
        step = -TICK if is_bid else TICK
        if best is None:
            anchor = opp + step if opp is not None else mids[stock] + step
            return max(TICK, anchor + step * int(u * 4))
        # mostly at or just behind the touch, a tail of deep orders, and
        # sometimes one tick better than the touch
        if u > 0.93:
            depth = -1
        elif u > 0.85:
            depth = 5 + int((u - 0.85) * 500)
        else:
            depth = int(-math.log(max(u / 0.85, 1e-9)) * 2.0)
        price = best + step * depth
        if opp is not None and (price >= opp if is_bid else price <= opp):
            price = best
        return max(TICK, price)

    # Each stock keeps a resting book around its own size: busier names deeper.
    targets = np.minimum(30 + 2000 * weights, 250).astype(int).tolist()
    produced = 0
    while produced < messages:
        try:
            stock = next(picks)
            r, u, v = next(dice)
            w = next(extra)
        except StopIteration:
            picks = iter(rng.choice(symbols, batch, p=weights).tolist())
            dice = iter(rng.random((batch, 3)).tolist())
            extra = iter(rng.integers(1, 10, batch).tolist())
            continue
        ts += int(v * 20_000) + 1
        locate = stock + 1
        produced += 1
        if anomaly_rate and u < anomaly_rate:
            out.append(_anomaly(rng, out, orders, live, locate, stock, ts, symbols, anomalies,
                                forget, next_ref))
            next_ref += 1
            continue
        n_live = len(live[stock])
        target = targets[stock]
        if n_live < target // 2:
            r = 0.0  # still building the opening book
        elif n_live > 2 * target:
            r = 0.40 + r * 0.60
        if r < 0.40 or n_live < 4:
            is_bid = v < 0.5
            price = add_price(stock, is_bid, u)
            shares = 100 * w
            ref = book(stock, is_bid, price, shares)
            kind = "F" if w == 9 else "A"
            values = [locate, 0, ts, ref, "B" if is_bid else "S", shares, names[stock], price]
            out.append(_P[kind](values + (["NSDQ"] if kind == "F" else [])))
        elif r < 0.80:
            ref = live[stock][int(u * n_live)]
            out.append(_P["D"]([locate, 0, ts, ref]))
            forget(ref)
        elif r < 0.92:
            is_bid = v < 0.5
            side = bids[stock] if is_bid else asks[stock]
            best = side.best()
            if best is None:
                side = asks[stock] if is_bid else bids[stock]
                best = side.best()
            ref = side.queues[best][0]
            order = orders[ref]
            executed = min(order[3], 100 * w)
            if r < 0.905:
                out.append(_P["E"]([locate, 0, ts, ref, executed, match]))
            else:
                printable = "Y" if w > 2 else "N"
                out.append(_P["C"]([locate, 0, ts, ref, executed, match, printable,
                                    order[2] + (TICK if w == 5 else 0)]))
            match += 1
            order[3] -= executed
            if order[3] == 0:
                forget(ref)
        elif r < 0.96:
            ref = live[stock][int(u * n_live)]
            order = orders[ref]
            if order[3] > 100:
                cut = 100 * max(1, min(w, order[3] // 100 - 1))
                out.append(_P["X"]([locate, 0, ts, ref, cut]))
                order[3] -= cut
            else:
                out.append(_P["D"]([locate, 0, ts, ref]))
                forget(ref)
        elif r < 0.995:
            ref = live[stock][int(u * n_live)]
            _, is_bid, _, _ = orders[ref]
            forget(ref)
            price = add_price(stock, is_bid, v)
            shares = 100 * w
            new_ref = book(stock, is_bid, price, shares)
            out.append(_P["U"]([locate, 0, ts, ref, new_ref, shares, price]))
        else:
            best = bids[stock].best() or mids[stock]
            out.append(_P["P"]([locate, 0, ts, 0, "B" if w & 1 else "S", 100 * w,
                                names[stock], best, match]))
            match += 1
    return _pack_day(out, anomalies)


def _anomaly(rng, out, orders, live, locate, stock, ts, symbols, anomalies, forget, fresh_ref):
    """One injected bad message; keeps the generator's view of the book right."""
    kinds = ("unknown_ref", "duplicate_ref", "over_execution", "over_cancel", "bad_side",
             "zero_shares", "truncated", "length_mismatch", "unknown_type", "bad_field",
             "locate_mismatch", "unknown_locate")
    kind = kinds[int(rng.integers(len(kinds)))]
    refs = live[stock]
    if not refs and kind in ("duplicate_ref", "over_execution", "over_cancel",
                             "locate_mismatch"):
        kind = "unknown_ref"
    anomalies[kind] = anomalies.get(kind, 0) + 1
    add = _P["A"]
    if kind == "unknown_ref":
        return _P["D"]([locate, 0, ts, (1 << 62) + fresh_ref])
    if kind == "duplicate_ref":
        return add([locate, 0, ts, refs[0], "B", 100, "DUP", 10_000])
    if kind in ("over_execution", "over_cancel"):
        ref = refs[-1]
        shares = orders[ref][3] + 100
        forget(ref)
        if kind == "over_cancel":
            return _P["X"]([locate, 0, ts, ref, shares])
        return _P["E"]([locate, 0, ts, ref, shares, 999_999_999])
    if kind == "bad_side":
        return add([locate, 0, ts, fresh_ref, "Z", 100, "BAD", 10_000])
    if kind == "zero_shares":
        return add([locate, 0, ts, fresh_ref, "B", 0, "ZERO", 10_000])
    if kind == "truncated":
        return add([locate, 0, ts, fresh_ref, "B", 100, "CUT", 10_000])[:20]
    if kind == "length_mismatch":
        return add([locate, 0, ts, fresh_ref, "B", 100, "LONG", 10_000]) + b"\x00"
    if kind == "unknown_type":
        return b"z" + bytes(20)
    if kind == "bad_field":
        msg = bytearray(add([locate, 0, ts, fresh_ref, "B", 100, "ASCII", 10_000]))
        msg[24] = 0xC3
        return bytes(msg)
    if kind == "locate_mismatch":
        ref = refs[0]
        forget(ref)
        return _P["D"]([(locate % symbols) + 1 if symbols > 1 else locate + 1, 0, ts, ref])
    # an order on a locate no directory message declared
    return add([symbols + 7, 0, ts, fresh_ref, "S", 100, "NODIR", 1_000_000])


def _pack_day(msgs: list[bytes], anomalies: dict) -> SyntheticDay:
    lengths = np.fromiter((len(m) for m in msgs), np.int32, len(msgs))
    offsets = np.zeros(len(msgs), np.int64)
    if len(msgs) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    buf = np.frombuffer(bytearray(b"".join(msgs)), np.uint8)
    return SyntheticDay(buf, offsets, lengths, anomalies)


def day_as_batches(day: SyntheticDay, size: int = 1 << 18):
    """The day as consecutive MessageBatches of ``size`` messages (seq from 1)."""
    from host.feed.fastpath import MessageBatch

    n = len(day)
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        yield MessageBatch(day.buf, day.msg_off[lo:hi], day.msg_len[lo:hi],
                           np.arange(lo + 1, hi + 1, dtype=np.uint64),
                           np.zeros(hi - lo, np.int32), np.zeros(hi - lo, np.int64))


# -- measurements -----------------------------------------------------------------------
def warm_up() -> None:
    """Compile (or load) the numba kernels outside any timed region."""
    from host.book.fast import FastBook

    day = synthetic_day(2_000, symbols=4, seed=0, anomaly_rate=0.01)
    book = FastBook()
    for batch in day_as_batches(day, 500):
        book.process(batch)


def bench_synthetic(messages: int = 5_000_000, symbols: int = 200, seed: int = 2026,
                    baseline_messages: int = 200_000, repeat: int = 3) -> dict:
    """Book throughput on a synthetic day held in memory (no capture needed)."""
    from host.book.fast import FastBook
    from host.book.reference import ReferenceBook

    warm_up()
    day = synthetic_day(messages, symbols=symbols, seed=seed)
    batches = list(day_as_batches(day))
    best = float("inf")
    for _ in range(repeat):
        book = FastBook()
        t0 = time.perf_counter()
        for batch in batches:
            book.process(batch)
        best = min(best, time.perf_counter() - t0)
    rate = len(day) / best
    m = min(baseline_messages, len(day))
    ref = ReferenceBook()
    t0 = time.perf_counter()
    ref.process_messages(day.buf, day.msg_off[:m], day.msg_len[:m],
                         np.arange(1, m + 1), np.zeros(m, np.int64))
    base = m / (time.perf_counter() - t0)
    return {"messages": len(day), "book_msgs_per_s": rate, "python_baseline_msgs_per_s": base,
            "python_baseline_ratio": rate / base, "counters": book.counters}


def _message_batches(path: str, chunk_bytes: int | None = None):
    """(MessageBatch, arbiter or None) for every chunk of a capture or ITCH file
    (chunks of the readers' default size unless ``chunk_bytes`` is given)."""
    from host.feed.fastpath import FeedArbiter, itch_batch_to_messages
    from host.pcap import detect_format

    chunk = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    if detect_format(path) == "itch":
        from host.pcap.itchfile import iter_itch_batches

        first = 1
        for batch in iter_itch_batches(path, **chunk):
            mb = itch_batch_to_messages(batch, first_seq=first)
            first += len(mb)
            yield mb, None
    else:
        from host.pcap.fast import iter_udp_batches

        arbiter = FeedArbiter()
        for batch in iter_udp_batches(path, **chunk):
            yield arbiter.process(batch), arbiter


def _baseline_prefix(path: str, limit: int):
    """The first ``limit`` arbitrated messages, copied out as one contiguous day."""
    parts, seqs, idxs = [], [], []
    n = 0
    for mb, _ in _message_batches(path):
        take = min(len(mb), limit - n)
        for i in range(take):
            parts.append(mb.message(i))
        seqs.append(mb.seq[:take].copy())
        idxs.append(mb.msg_index[:take].copy())
        n += take
        if n >= limit:
            break
    day = _pack_day(parts, {})
    seq = np.concatenate(seqs) if seqs else np.zeros(0, np.uint64)
    idx = np.concatenate(idxs) if idxs else np.zeros(0, np.int32)
    return day, seq, idx


def bench_book(path: str, baseline_messages: int = 300_000, repeat: int = 3,
               chunk_bytes: int | None = None) -> dict:
    """Decode, decode+book and pure-Python baseline rates on one capture (see module doc).

    Each figure is the best of ``repeat`` passes: on a shared machine the
    least disturbed pass is the most repeatable one.  ``fastbook_msgs_per_s``
    times only the ``FastBook.process`` calls inside the decode+book passes
    (ITCH decode and book, without capture reading and arbitration).
    ``chunk_bytes`` sets the capture reader's chunk (its default otherwise),
    which bounds how much data each stage streams through the caches before
    the next stage reads it again.
    """
    from host.book.fast import FastBook
    from host.book.reference import ReferenceBook

    warm_up()
    # Let a first pass compile the arbiter and page the file in.
    for _ in _message_batches(path, chunk_bytes):
        break

    decode_s = book_s = fastbook_s = base_s = float("inf")
    decoded = booked = updates = 0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        decoded = 0
        for mb, _ in _message_batches(path, chunk_bytes):
            decoded += len(mb)
        decode_s = min(decode_s, time.perf_counter() - t0)

        book = FastBook()
        inside = 0.0
        booked = updates = 0
        t0 = time.perf_counter()
        for mb, _ in _message_batches(path, chunk_bytes):
            t1 = time.perf_counter()
            u, _t = book.process(mb)
            inside += time.perf_counter() - t1
            booked += len(mb)
            updates += len(u)
        book_s = min(book_s, time.perf_counter() - t0)
        fastbook_s = min(fastbook_s, inside)

    day, seq, idx = _baseline_prefix(path, baseline_messages)
    for _ in range(max(1, repeat)):
        ref = ReferenceBook()
        t0 = time.perf_counter()
        ref.process_messages(day.buf, day.msg_off, day.msg_len, seq, idx)
        base_s = min(base_s, time.perf_counter() - t0)

    def rate(count: int, seconds: float) -> float:
        return count / seconds if seconds > 0 else float("nan")

    book_rate = rate(booked, book_s)
    base_rate = rate(len(day), base_s)
    return {
        "decode_msgs_per_s": rate(decoded, decode_s),
        "book_msgs_per_s": book_rate,
        "fastbook_msgs_per_s": rate(booked, fastbook_s),
        "python_baseline_msgs_per_s": base_rate,
        "python_baseline_ratio": book_rate / base_rate,
        "book_messages": booked,
        "book_updates": updates,
        "baseline_messages": len(day),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host.book.bench",
                                 description="order book throughput")
    ap.add_argument("capture", nargs="?", help="pcap/pcapng/ITCH file; synthetic day if omitted")
    ap.add_argument("--messages", type=int, default=5_000_000)
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--baseline-messages", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-bytes", type=int, default=None,
                    help="capture reader chunk size (default: the reader's)")
    args = ap.parse_args(argv)
    if args.capture:
        result = bench_book(args.capture, baseline_messages=args.baseline_messages,
                            repeat=args.repeat, chunk_bytes=args.chunk_bytes)
    else:
        result = bench_synthetic(args.messages, args.symbols,
                                 baseline_messages=args.baseline_messages)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
