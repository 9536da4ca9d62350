"""``zynqmm book``: run a capture through the golden order book.

The capture's MoldUDP64 feeds are arbitrated (first copy of each sequence
number wins), the ITCH messages applied to the order-by-order book, and the
book's final top five levels printed for the busiest symbols, with counts of
book updates, trades and anomalies.  ``--updates FILE.npy`` saves the
book-update records (``host.book.records.BOOK_UPDATE_DTYPE``) for comparison
with the fabric's output.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def register(sub) -> None:
    p = sub.add_parser("book", help="build the golden order book from a capture and show its top levels",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("capture", help="pcap, pcapng or length-prefixed ITCH 5.0 file")
    p.add_argument("--top", type=int, default=5, metavar="N",
                   help="show the N symbols with the most book updates (default 5)")
    p.add_argument("--symbol", action="append", default=[], help="show this symbol (repeatable)")
    p.add_argument("--updates", metavar="FILE.npy", help="save every book-update record")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def build_book(path: str, fmt: str):
    """Runs the whole capture through arbiter and book; returns (book, updates, n_trades, stats)."""
    from host.book.fast import FastBook

    book = FastBook()
    updates = []
    n_trades = 0
    messages = 0
    feeds = {}
    if fmt == "itch":
        from host.feed.fastpath import itch_batch_to_messages
        from host.pcap.itchfile import iter_itch_batches

        first_seq = 1
        for batch in iter_itch_batches(path):
            mb = itch_batch_to_messages(batch, first_seq=first_seq)
            first_seq += len(mb)
            messages += len(mb)
            u, t = book.process(mb)
            updates.append(u)
            n_trades += len(t)
    else:
        from host.feed.fastpath import FeedArbiter
        from host.pcap.fast import CaptureReader

        arbiter = FeedArbiter()
        reader = CaptureReader(path)
        for batch in reader.udp_batches():
            mb = arbiter.process(batch)
            messages += len(mb)
            u, t = book.process(mb)
            updates.append(u)
            n_trades += len(t)
        feeds = arbiter.feed_stats()
    from host.book.records import BOOK_UPDATE_DTYPE

    all_updates = np.concatenate(updates) if updates else np.zeros(0, BOOK_UPDATE_DTYPE)
    return book, all_updates, n_trades, {"messages": messages, "feeds": feeds}


def run(args) -> int:
    from host.book.reference import ANOMALY_COUNTERS
    from host.pcap import detect_format

    try:
        fmt = detect_format(args.capture)
    except (OSError, ValueError) as exc:
        print(f"zynqmm book: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    book, updates, n_trades, stats = build_book(args.capture, fmt)
    elapsed = time.perf_counter() - t0
    if args.updates:
        np.save(args.updates, updates)

    locates = []
    wanted = {s.upper() for s in args.symbol}
    if wanted:
        locates = [loc for loc, sym in book.symbols().items() if sym.upper() in wanted]
    else:
        loc, counts = np.unique(updates["stock_locate"], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        locates = [int(x) for x in loc[order][: args.top]]

    result = {
        "capture": args.capture,
        "messages": stats["messages"],
        "book_updates": int(len(updates)),
        "trades": int(n_trades),
        "seconds": round(elapsed, 3),
        "counts": {k: int(v) for k, v in book.counters.items() if k not in ANOMALY_COUNTERS},
        "anomalies": {k: int(v) for k, v in book.counters.items() if k in ANOMALY_COUNTERS and v},
        "feeds": stats["feeds"],
        "books": {},
    }
    for loc in locates:
        bids, asks = book.top(loc)
        result["books"][book.symbols().get(loc, str(loc))] = {
            "stock_locate": loc,
            "bids": [list(map(int, lv)) for lv in bids],
            "asks": [list(map(int, lv)) for lv in asks],
        }
    if args.json:
        print(json.dumps(result, default=str))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    console.print(f"[bold]{args.capture}[/]: {result['messages']} messages, {result['book_updates']} book "
                  f"updates, {result['trades']} trades in {elapsed:.2f} s")
    console.print("anomalies: " + (json.dumps(result["anomalies"]) if result["anomalies"] else "none"))
    for sym, b in result["books"].items():
        t = Table(title=f"{sym} (locate {b['stock_locate']})")
        for col in ("bid orders", "bid shares", "bid", "ask", "ask shares", "ask orders"):
            t.add_column(col, justify="right")
        for i in range(max(len(b["bids"]), len(b["asks"]))):
            bid = b["bids"][i] if i < len(b["bids"]) else None
            ask = b["asks"][i] if i < len(b["asks"]) else None
            t.add_row(
                str(bid[2]) if bid else "", str(bid[1]) if bid else "", price_text(bid[0]) if bid else "",
                price_text(ask[0]) if ask else "", str(ask[1]) if ask else "", str(ask[2]) if ask else "",
            )
        console.print(t)
    return 0


def price_text(price4: int) -> str:
    """ITCH Price(4): an integer with four implied decimals."""
    return f"{price4 // 10000}.{price4 % 10000:04d}"
