"""Stimulus for the order book tests: ITCH messages as internal events, golden
records from the host book, and the comparison that excuses only what the
block flagged as degraded.

The ITCH -> event mapping follows ``rtl.common.events`` field by field; it
lives here because in the fabric the ITCH decoder block does it.  One
liberty: the Trade (P) event carries the printed buy/sell indicator in
``side`` (the events table lists ``side`` for adds only), since a trade
record needs it.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from host.book.fast import FastBook
from host.feed.fastpath import MessageBatch, itch_batch_to_messages
from host.marketday.generator import generate_day
from host.pcap.itchfile import ItchFileReader
from host.protocols.errors import DecodeError
from host.protocols.itch50 import decode_message
from rtl.common.events import (EV_ADD, EV_CANCEL, EV_DELETE, EV_DIRECTORY, EV_EXECUTE,
                               EV_EXECUTE_PRICE, EV_REPLACE, EV_SYSTEM, EV_TRADE,
                               EV_TRADING_STATE, ITCH_EVENT_DTYPE, pack_event,
                               unpack_event)
from host.book.records import DEPTH
from rtl.order_book.model import Output, order_set



def _side_bit(indicator: str) -> int:
    return 1 if indicator == "S" else 0


def _alpha_word(text: str, width: int) -> int:
    return int.from_bytes(text.ljust(width).encode("ascii"), "big")


def message_event(msg, seq: int, msg_index: int):
    """One decoded ITCH message as an event row (a dict), or None for the
    types the decoder does not pass on."""
    kind = msg.TYPE
    row = {"stock_locate": msg.stock_locate, "timestamp": msg.timestamp, "seq": seq,
           "msg_index": msg_index}
    if kind in "AF":
        row.update(kind=EV_ADD, side=_side_bit(msg.buy_sell_indicator), price=msg.price,
                   shares=msg.shares, order_ref=msg.order_reference_number)
    elif kind == "E":
        row.update(kind=EV_EXECUTE, shares=msg.executed_shares,
                   order_ref=msg.order_reference_number, match_number=msg.match_number)
    elif kind == "C":
        row.update(kind=EV_EXECUTE_PRICE, shares=msg.executed_shares, price=msg.execution_price,
                   order_ref=msg.order_reference_number, match_number=msg.match_number,
                   aux=ord(msg.printable))
    elif kind == "X":
        row.update(kind=EV_CANCEL, shares=msg.canceled_shares, order_ref=msg.order_reference_number)
    elif kind == "D":
        row.update(kind=EV_DELETE, order_ref=msg.order_reference_number)
    elif kind == "U":
        row.update(kind=EV_REPLACE, order_ref=msg.original_order_reference_number,
                   new_order_ref=msg.new_order_reference_number, shares=msg.shares,
                   price=msg.price)
    elif kind == "P":
        row.update(kind=EV_TRADE, side=_side_bit(msg.buy_sell_indicator), price=msg.price,
                   shares=msg.shares, order_ref=msg.order_reference_number,
                   match_number=msg.match_number)
    elif kind == "R":
        row.update(kind=EV_DIRECTORY, aux=_alpha_word(msg.stock, 8))
    elif kind == "H":
        row.update(kind=EV_TRADING_STATE, aux=ord(msg.trading_state))
    elif kind == "S":
        row.update(kind=EV_SYSTEM, aux=ord(msg.event_code))
    else:
        return None
    return row


def batch_events(batch: MessageBatch) -> np.ndarray:
    """Events of every message of a MessageBatch that decodes and matters."""
    rows = []
    buf = batch.buf
    for off, length, seq, index in zip(batch.msg_off.tolist(), batch.msg_len.tolist(),
                                       batch.seq.tolist(), batch.msg_index.tolist()):
        try:
            msg = decode_message(buf, off, off + length)
        except DecodeError:
            continue
        row = message_event(msg, seq, index)
        if row is not None:
            rows.append(row)
    return rows_to_events(rows)


def rows_to_events(rows: Sequence[dict]) -> np.ndarray:
    out = np.zeros(len(rows), ITCH_EVENT_DTYPE)
    for name in ITCH_EVENT_DTYPE.names:
        out[name] = [row.get(name, 0) for row in rows]
    return out


@dataclass
class Day:
    """A generated market day: its events and the golden book's output."""

    events: np.ndarray
    golden_updates: np.ndarray
    golden_trades: np.ndarray
    golden_counters: dict


def generated_day(directory: Path, symbols: int, messages: int, seed: int) -> Day:
    """Generate an ITCH file day, run the golden FastBook on it and turn its
    messages into events."""
    path = Path(directory) / f"day-{symbols}-{messages}-{seed}.itch"
    generate_day(str(path), symbols=symbols, messages=messages, seed=seed, write_summary=False)
    book = FastBook()
    events, updates, trades = [], [], []
    first = 1
    for chunk in ItchFileReader(path).batches():
        batch = itch_batch_to_messages(chunk, first)
        first += len(batch)
        upd, trd = book.process(batch)
        updates.append(upd.copy())
        trades.append(trd.copy())
        events.append(batch_events(batch))
    return Day(np.concatenate(events), np.concatenate(updates), np.concatenate(trades),
               book.counters)


# -- hand-made event streams ------------------------------------------------------------
def event(kind: int, locate: int, **fields) -> dict:
    return {"kind": kind, "stock_locate": locate, **fields}


def colliding_refs(count: int, set_bits: int, start: int = 1 << 20) -> list[int]:
    """``count`` order references that all fall in one order-table set."""
    target = order_set(start, set_bits)
    refs, ref = [], start
    while len(refs) < count:
        if order_set(ref, set_bits) == target:
            refs.append(ref)
        ref += 1
    return refs


class Scenario:
    """Builds event rows with running seq numbers and timestamps."""

    def __init__(self, seed: int = 1):
        self.rng = random.Random(seed)
        self.rows: list[dict] = []
        self.seq = 0

    def add(self, kind: int, locate: int, **fields) -> None:
        self.seq += 1
        self.rows.append({"kind": kind, "stock_locate": locate, "seq": self.seq,
                          "msg_index": self.seq % 7, "timestamp": 1_000 * self.seq, **fields})

    def directory(self, locate: int, symbol: str) -> None:
        self.add(EV_DIRECTORY, locate, aux=_alpha_word(symbol, 8))

    def order(self, locate: int, ref: int, side: int, price: int, shares: int) -> None:
        self.add(EV_ADD, locate, order_ref=ref, side=side, price=price, shares=shares)

    def take(self) -> np.ndarray:
        rows, self.rows = self.rows, []
        return rows_to_events(rows)


def crafted_phases(config, seed: int = 1, host_assigns: bool = False) -> list:
    """Every path of the block on a few locates, in three phases: the slot
    table set up by host commands and directory events (all by commands
    when ``host_assigns``, for a block with ``auto_assign`` off); then host
    commands mid-stream; then a book reset."""
    from rtl.order_book.model import (CMD_ASSIGN, CMD_CLEAR_DEGRADED, CMD_RELEASE,
                                      CMD_RESET_BOOK)
    sc = Scenario(seed)
    rng = sc.rng
    # Phase 1 -- slots 3 and 10 by the host (901 never gets a directory
    # event), the rest by directory events or the host.
    setup = [(CMD_ASSIGN, 3, 900), (CMD_ASSIGN, 10, 901)]
    if host_assigns:
        setup += [(CMD_ASSIGN, slot, locate) for slot, locate in ((0, 11), (1, 12), (2, 13), (4, 14))]
    for locate, symbol in ((11, "AAPL"), (12, "MSFT"), (13, "ZZZT"), (900, "HOSTED"), (14, "QQQ"),
                           (66, "OTHER")):
        sc.directory(locate, symbol)
    sc.add(EV_TRADING_STATE, 11, aux=ord("T"))
    sc.add(EV_TRADING_STATE, 12, aux=ord("H"))
    sc.add(EV_SYSTEM, 0, aux=ord("O"))
    ref = 1000
    live: list[tuple[int, int, int]] = []          # (ref, locate, shares)
    for i in range(60):
        locate = rng.choice((11, 12, 13, 900, 901))
        side = rng.randrange(2)
        price = 100_000 + (rng.randrange(6) * 100 if side else -rng.randrange(6) * 100) + \
            (100 if side else 0)
        shares = rng.choice((100, 200, 300, 1_000))
        sc.order(locate, ref, side, price, shares)
        live.append((ref, locate, shares))
        ref += 1
    # Crossing orders, executions, cancels, replaces, trades.
    sc.order(11, ref, 0, 100_600, 100); ref += 1
    sc.order(11, ref, 1, 99_000, 100); ref += 1
    for r, locate, shares in live[:12]:
        sc.add(EV_EXECUTE, locate, order_ref=r, shares=shares // 2, match_number=r + 5)
    for r, locate, shares in live[12:16]:
        sc.add(EV_EXECUTE_PRICE, locate, order_ref=r, shares=50, price=123_400,
               match_number=r + 7, aux=ord("Y" if r % 2 else "N"))
    for r, locate, shares in live[16:22]:
        sc.add(EV_CANCEL, locate, order_ref=r, shares=shares // 4)
    for r, locate, shares in live[22:28]:
        sc.add(EV_DELETE, locate, order_ref=r)
    for r, locate, shares in live[28:34]:
        sc.add(EV_REPLACE, locate, order_ref=r, new_order_ref=ref, shares=shares + 1,
               price=100_050)
        ref += 1
    r, locate, shares = live[34]
    sc.add(EV_REPLACE, locate, order_ref=r, new_order_ref=r, shares=7, price=99_950)  # same ref
    r, locate, shares = live[35]
    sc.add(EV_REPLACE, locate, order_ref=r, new_order_ref=live[36][0], shares=5, price=1)  # dup
    r, locate, shares = live[37]
    sc.add(EV_REPLACE, locate, order_ref=r, new_order_ref=ref, shares=0, price=1)  # zero
    ref += 1
    r, locate, shares = live[38]
    sc.add(EV_EXECUTE, locate, order_ref=r, shares=shares + 500, match_number=1)  # over
    r, locate, shares = live[39]
    sc.add(EV_CANCEL, locate, order_ref=r, shares=shares + 1)                     # over
    r, locate, shares = live[40]
    sc.add(EV_CANCEL, 14, order_ref=r, shares=1)          # another locate than the order's
    sc.add(EV_EXECUTE, 12, order_ref=live[41][0], shares=0, match_number=9)  # zero shares
    sc.order(11, live[42][0], 0, 100_000, 100)            # duplicate reference
    sc.order(11, ref, 1, 100_300, 0)                       # zero shares
    ref += 1
    sc.add(EV_TRADE, 11, side=1, price=100_100, shares=40, order_ref=0, match_number=77)
    sc.add(EV_TRADE, 12, side=0, price=100_200, shares=41, order_ref=5, match_number=78)
    sc.add(EV_TRADE, 55, side=0, price=1, shares=1, match_number=79)      # untracked
    sc.order(55, ref, 0, 5, 5)                                          # untracked
    sc.add(EV_DELETE, 55, order_ref=ref)
    ref += 1
    sc.add(EV_TRADING_STATE, 55, aux=ord("T"))
    for kind in (0, 11, 15):
        sc.add(kind, 11, order_ref=live[43][0])
    sc.add(EV_DELETE, 13, order_ref=123_456_789)          # unknown reference: 13 is lost
    sc.add(EV_EXECUTE, 13, order_ref=123_456_789, shares=1)  # already lost: no new record
    # A full order-table set: the last add is dropped and locate 12 is lost.
    for r in colliding_refs(config.order_ways + 1, config.set_bits):
        sc.order(12, r, 1, 101_000 + r % 5, 10)
    # A deep book on locate 14: more levels than tracked, then the top
    # levels go, so deeper ones are needed (refill, or depth degraded).
    deep = []
    for k in range(config.levels + 6):
        sc.order(14, ref, 0, 90_000 - 10 * k, 100 + k)
        deep.append(ref)
        ref += 1
    sc.order(14, ref, 0, 90_000 - 10 * (config.levels + 8), 5)   # beyond, at a new price
    ref += 1
    for r in deep[:config.levels - 2]:
        sc.add(EV_DELETE, 14, order_ref=r)
    sc.order(14, ref, 1, 95_000, 10)
    ref += 1
    # New best bids: the side tracks DEPTH levels again (with refill off
    # its depth degradation ends).
    for k in range(DEPTH):
        sc.order(14, ref, 0, 91_000 + 10 * k, 50)
        ref += 1
    first = sc.take()
    # Phase 2 -- host commands, then trading on the changed slots.
    commands = [(CMD_CLEAR_DEGRADED, 2, 0), (CMD_RELEASE, 0, 0), (CMD_ASSIGN, 0, 77),
                (6, 1, 0), (CMD_ASSIGN, 200, 5), (CMD_ASSIGN, 5, 12)]
    sc.directory(77, "NEWONE")
    for k in range(5):
        sc.order(77, ref, k % 2, 50_000 + 100 * k, 10 * (k + 1))
        ref += 1
    sc.add(EV_EXECUTE, 11, order_ref=live[0][0], shares=1, match_number=3)   # released: untracked
    sc.add(EV_DELETE, 13, order_ref=live[45][0])
    sc.order(13, ref, 0, 100_000, 100)
    ref += 1
    # Arbitrary event words on the tracked locates: any kind, any fields.
    refs = [r for r, _, _ in live] + [ref, ref + 1]
    for _ in range(40):
        sc.add(rng.randrange(16), rng.choice((12, 13, 14, 77, 900)), side=rng.randrange(2),
               price=rng.choice((0, 100_000, rng.randrange(1 << 32))),
               shares=rng.choice((0, 1, 100, rng.randrange(1 << 32))),
               order_ref=rng.choice(refs), new_order_ref=rng.choice(refs + [ref + 2]),
               match_number=rng.randrange(1 << 64), aux=rng.randrange(1 << 64))
    second = sc.take()
    # Phase 3 -- everything reset; directory events assign slots again.
    for locate, symbol in ((14, "QQQ"), (11, "AAPL")):
        sc.directory(locate, symbol)
    sc.order(14, ref, 0, 100, 100)
    sc.add(EV_DELETE, 14, order_ref=deep[-1])             # an order from before the reset
    third = sc.take()
    return [phase(first, setup), phase(second, commands), phase(third, [(CMD_RESET_BOOK, 0, 0)])]


# -- RTL stimulus ----------------------------------------------------------------------
@dataclass
class Phase:
    """Host commands (op, slot, locate), run one after another once the block
    is idle, then events."""

    commands: list = field(default_factory=list)
    events: list = field(default_factory=list)      # packed event words


@dataclass
class Stimulus:
    """What the cocotb bench plays, and what the model expects to come out."""

    phases: list
    auto_assign: bool = True
    refill: bool = True
    stale: bool = False
    source_pause: float = 0.0
    sink_pause: float = 0.0
    gap_cycles: int = 0
    seed: int = 1
    expected_records: int = 0
    info_slots: list = field(default_factory=list)

    def save(self, path: Path) -> Path:
        payload = {**self.__dict__,
                   "phases": [{"commands": [list(c) for c in ph.commands],
                               "events": [format(e, "x") for e in ph.events]}
                              for ph in self.phases]}
        Path(path).write_text(json.dumps(payload))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "Stimulus":
        payload = json.loads(Path(path).read_text())
        payload["phases"] = [Phase([tuple(c) for c in ph["commands"]],
                                   [int(e, 16) for e in ph["events"]])
                             for ph in payload["phases"]]
        return cls(**payload)

    @property
    def event_count(self) -> int:
        return sum(len(ph.events) for ph in self.phases)


def phase(events: np.ndarray | Sequence = (), commands: Sequence = ()) -> Phase:
    """A Phase from event rows (ITCH_EVENT_DTYPE) and command tuples."""
    return Phase([tuple(c) for c in commands], [pack_event(row) for row in events])


def run_model(model, stimulus: Stimulus) -> list[Output]:
    """Play a stimulus through the model the way the bench plays it."""
    model.auto_assign, model.refill, model.stale = (stimulus.auto_assign, stimulus.refill,
                                                    stimulus.stale)
    out: list[Output] = []
    for ph in stimulus.phases:
        for op, slot, locate in ph.commands:
            model.command(op, slot, locate)
        for word in ph.events:
            out.extend(model.process(unpack_event(word)))
    return out


def expected_packets(outputs: Sequence[Output]) -> list[tuple[int, str]]:
    return [(o.dest, o.to_bytes().hex()) for o in outputs]


__all__ = ["message_event", "batch_events", "rows_to_events", "Day", "generated_day",
           "Phase", "Stimulus", "phase", "run_model",
           "expected_packets", "event", "colliding_refs", "Scenario",
           "crafted_phases"]
