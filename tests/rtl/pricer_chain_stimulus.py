"""Stimulus for the chain pricer and the replay of its model against what the
RTL did.

:func:`option_book` draws random options (``host.pricing.accuracy.random_sample``
chains) for a few underlyings and lays them out with the host loader;
:func:`book_updates` makes book-update records that move each underlying's
best bid and ask around its spot, with every special case the block has a
verdict for mixed in; :class:`Replay` feeds the model the records in order
and takes a walk each time the RTL output shows one, then compares every
lane's words and the counters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.book.records import (BOOK_UPDATE_DTYPE, FLAG_CROSSED, FLAG_NOT_TRADING, FLAG_STALE,
                               TRADE_DTYPE)
from host.pricing.chain_tables import ChainTableWriter, Layout, chain_layout
from rtl.common.theo_stream import THEO_FIELDS
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE
from rtl.pricer_chain.model import COUNTERS, RESULTS, THEO_DTYPE, ChainConfig, ChainModel
from rtl.regmap.map import PRICER_CHAIN


@dataclass
class OptionBook:
    config: ChainConfig
    layout: Layout
    spots: dict[int, float]          # locate -> reference spot of the draw
    positions: np.ndarray

    def writes_named(self, writer: ChainTableWriter) -> list[tuple[str, int]]:
        return writer.load(self.layout, self.positions)

    def writes(self, writer: ChainTableWriter) -> list[tuple[int, int]]:
        return relative(self.writes_named(writer))

    def load_model(self, model: ChainModel) -> None:
        for i, row in enumerate(self.layout.rows):
            model.write_row(i, row)
        for i, entry in enumerate(self.layout.entries):
            model.write_underlying(i, entry)
        for i, contracts in enumerate(self.positions.tolist()):
            model.write_position(i, contracts)


def relative(writes) -> list[tuple[int, int]]:
    """(offset in the block's window, value) of named register writes."""
    return [(PRICER_CHAIN.register(name).offset, value) for name, value in writes]


def option_book(config: ChainConfig, options: int, underlyings: int, seed: int,
                model: str = "bs", spot_range=(2.0, 3000.0)) -> OptionBook:
    """``options`` random options (``host.pricing.accuracy.random_sample``'s
    terms and moneyness) spread evenly over ``underlyings`` stocks with
    locates 100, 101, ... and spots log-uniform in ``spot_range``."""
    from host.pricing.accuracy import random_sample
    from host.pricing.params import precompute_arrays

    sample = random_sample(options, seed, model)
    rng = np.random.default_rng(seed + 1)
    spots = np.round(np.exp(rng.uniform(*np.log(spot_range), underlyings)), 2)
    which = np.arange(options) * underlyings // options
    strike = sample.strike / sample.spot * spots[which]
    rows = precompute_arrays(100 + which, sample.is_put, strike, sample.sigma, sample.expiry,
                             sample.rate, sample.dividend, sample.black76)
    positions = rng.integers(-50, 51, len(rows))
    positions[rng.random(len(rows)) < 0.05] = rng.choice([-(1 << 31), (1 << 31) - 1])
    return OptionBook(config, chain_layout(rows, config),
                      {100 + u: float(spots[u]) for u in range(underlyings)}, positions)


def update_record(locate: int, bid: int, bid_shares: int, ask: int, ask_shares: int, flags: int = 0,
                  seq: int = 0, msg_index: int = 0) -> bytes:
    row = np.zeros(1, dtype=BOOK_UPDATE_DTYPE)
    row["stock_locate"] = locate
    row["flags"] = flags
    row["msg_index"] = msg_index
    row["seq"] = seq
    row["timestamp"] = 34_200_000_000_000 + seq
    row["bid_price"][0, 0] = bid
    row["bid_shares"][0, 0] = bid_shares
    row["bid_orders"][0, 0] = 1 if bid else 0
    row["ask_price"][0, 0] = ask
    row["ask_shares"][0, 0] = ask_shares
    row["ask_orders"][0, 0] = 1 if ask else 0
    # A second level, so the lower lanes of the record are not all zero.
    if bid > 100:
        row["bid_price"][0, 1], row["bid_shares"][0, 1] = bid - 100, 300
    row["ask_price"][0, 1], row["ask_shares"][0, 1] = ask + 100, 200
    return row.tobytes()


def trade_record(locate: int, seq: int) -> bytes:
    row = np.zeros(1, dtype=TRADE_DTYPE)
    row["stock_locate"] = locate
    row["kind"] = ord("P")
    row["side"] = ord("B")
    row["seq"] = seq
    row["shares"] = 100
    row["price"] = 1_000_000
    return row.tobytes()


def book_updates(book: OptionBook, count: int, seed: int, specials: bool = True,
                 drift: float = 0.002) -> list[tuple[bytes, int, bool]]:
    """``count`` packets: updates moving each underlying around its spot,
    plus (with ``specials``) untracked locates, one-sided books, prices out of
    range, repeats, flag-only changes, huge sizes, trades and malformed packets."""
    rng = np.random.default_rng(seed)
    locates = sorted(book.spots)
    mids = {u: book.spots[u] for u in locates}
    packets: list[tuple[bytes, int, bool]] = []
    seq = 1000
    last: dict[int, tuple] = {}
    while len(packets) < count:
        seq += 1
        u = int(rng.choice(locates))
        kind = rng.random() if specials else 1.0
        if kind < 0.03:
            packets.append((trade_record(u, seq), TDEST_TRADE, False))
            continue
        if kind < 0.05:
            data = update_record(u, 100, 1, 200, 1, seq=seq)
            cut = int(rng.choice([0, 8, 40, 88, 104, 112, 136, 143]))
            if rng.random() < 0.5 and cut:
                packets.append((data[:cut], TDEST_UPDATE, False))      # short (tlast early)
            elif rng.random() < 0.5:
                packets.append((data + bytes(8), TDEST_UPDATE, False))  # one beat too long
            else:
                packets.append((data, TDEST_UPDATE, True))              # frame error
            continue
        if kind < 0.07 and u in last:
            fields = last[u]
            flags = fields[4] ^ (FLAG_STALE if rng.random() < 0.5 else 0)
            packets.append((update_record(u, *fields[:4], flags=flags, seq=seq,
                                          msg_index=int(rng.integers(0, 70000))),
                            TDEST_UPDATE, False))
            last[u] = (*fields[:4], flags)
            continue
        if kind < 0.09:
            packets.append((update_record(9999, 1_000_000, 100, 1_000_100, 100, seq=seq),
                            TDEST_UPDATE, False))
            continue
        if kind < 0.11:
            side = rng.integers(0, 4)
            bid, ask, bq, aq = 1_000_000, 1_000_500, 100, 100
            bid, ask, bq, aq = [(0, ask, bq, aq), (bid, 0, bq, aq), (bid, ask, 0, aq),
                                (bid, ask, bq, 0)][side]
            packets.append((update_record(u, bid, bq, ask, aq, seq=seq), TDEST_UPDATE, False))
            continue
        if kind < 0.12:
            price = int(rng.choice([1, 4999, 327_680_000, 4_000_000_000]))
            packets.append((update_record(u, price, 10, price + 1, 10, seq=seq), TDEST_UPDATE,
                            False))
            continue
        mids[u] *= float(np.exp(rng.normal(0.0, drift)))
        tick = 100 if mids[u] >= 1.0 else 1
        bid = max(tick, int(round(mids[u] * 10_000 / tick)) * tick)
        ask = bid + tick * int(rng.integers(1, 4))
        if rng.random() < 0.02:
            ask = bid - tick                  # crossed
        bq, aq = (int(x) for x in rng.integers(1, 5000, 2))
        if rng.random() < 0.03:
            bq, aq = 0xFFFF_FFFF, int(rng.choice([1, 0xFFFF_FFFF]))
        flags = 0
        if rng.random() < 0.05:
            flags = int(rng.choice([FLAG_STALE, FLAG_NOT_TRADING, FLAG_CROSSED]))
        last[u] = (bid, bq, ask, aq, flags)
        packets.append((update_record(u, bid, bq, ask, aq, flags=flags, seq=seq,
                                      msg_index=int(rng.integers(0, 70000))), TDEST_UPDATE, False))
    return packets


def observed_lanes(observed, lanes: int) -> list[np.ndarray]:
    out = []
    for k in range(lanes):
        words = np.zeros(len(observed[f"lane{k}_option_id"]), dtype=THEO_DTYPE)
        for name, _ in THEO_FIELDS:
            words[name] = observed[f"lane{k}_{name}"]
        words["lane"] = k
        out.append(words)
    return out


class Replay:
    """The model given the records in order and a walk taken wherever the
    RTL's output shows one (the walks' order is the order their first words
    were taken: lanes run in lock step, so walks never overlap)."""

    def __init__(self, book: OptionBook, packets, observed, microprice: bool = False,
                 extra_entries=None, split: int = 0, at_split=None):
        """``split``: the packets from there on came in a second stream (its
        own cycle count), and ``at_split(model)`` runs once every packet
        before it has been committed and walked."""
        self.config = book.config
        self.model = ChainModel(book.config, microprice=microprice)
        book.load_model(self.model)
        for index, entry in (extra_entries or {}).items():
            self.model.write_underlying(index, entry)
        self.lanes = observed_lanes(observed, self.config.lanes)
        taken = [observed[f"lane{k}_taken"] for k in range(self.config.lanes)]
        first: dict[tuple[int, int], int] = {}
        for words, cycles in zip(self.lanes, taken):
            for w, cycle in zip(words, cycles.tolist()):
                key = (int(w["seq"]), int(w["ingress_cycle"]))
                first[key] = (min(first[key][0], cycle), first[key][1]) if key in first \
                    else (cycle, len(first))
        # Walks in the order their first words were taken; with two streams
        # the second's cycle count restarts, so the first stream's come first.
        by_seq = {}
        for i, (data, dest, error) in enumerate(packets):
            if dest == TDEST_UPDATE and len(data) == BOOK_UPDATE_DTYPE.itemsize and not error:
                by_seq[int(np.frombuffer(data, BOOK_UPDATE_DTYPE)[0]["seq"])] = i
        part = [int(split > 0 and by_seq[seq] >= split) for seq, _ in first]
        self.walk_keys = [key for _, key in sorted(zip(part, first),
                                                   key=lambda pk: (pk[0], first[pk[1]][0]))]
        last_cycles = observed["last_cycles"]
        # The fabric stamps ingress with its cycle counter, the bench counts
        # cycles from each stream's start: one constant apart per stream.
        self.offsets = {}
        for seq, ingress in self.walk_keys:
            index = by_seq[seq]
            stream = int(split > 0 and index >= split)
            offset = (ingress - int(last_cycles[index])) & 0xFFFF_FFFF
            assert self.offsets.setdefault(stream, offset) == offset, \
                f"ingress of seq {seq} is not its last beat's cycle + the stream's constant"
        expected = []
        self._split, self._at_split = split, at_split
        self._pos = 0
        for seq, _ in self.walk_keys:
            target = by_seq[seq]
            while self._pos <= target:
                self._next(packets, last_cycles)
            walk = self.model.take()
            assert walk is not None, f"the RTL walked seq {seq}, the model has nothing pending"
            assert walk.context.seq == seq, \
                f"the RTL walked seq {seq}, the model's oldest pending is seq {walk.context.seq}"
            expected.append(self.model.walk(walk))
        while self._pos < len(packets):
            self._next(packets, last_cycles)
        if self._at_split is not None and 0 < self._split >= len(packets):
            self._at_split(self.model)
        self.left_pending = len(self.model.pending)
        words = np.concatenate(expected) if expected else np.zeros(0, dtype=THEO_DTYPE)
        self.expected = [words[words["lane"] == k] for k in range(self.config.lanes)]

    def _next(self, packets, last_cycles) -> None:
        if self._split and self._pos == self._split and self._at_split is not None:
            self._at_split(self.model)
        data, dest, error = packets[self._pos]
        stream = int(self._split > 0 and self._pos >= self._split)
        self.model.record(data, dest, error, ingress_cycle=int(last_cycles[self._pos])
                          + self.offsets.get(stream, 0))
        self._pos += 1

    def assert_words_match(self) -> None:
        assert self.left_pending == 0, f"{self.left_pending} accepted prices were never walked"
        for k, (got, want) in enumerate(zip(self.lanes, self.expected)):
            assert len(got) == len(want), f"lane {k}: {len(got)} words, model {len(want)}"
            for name, _ in THEO_FIELDS:
                wrong = np.flatnonzero(got[name] != want[name])
                if len(wrong):
                    i = int(wrong[0])
                    raise AssertionError(
                        f"lane {k} {name}: {len(wrong)} of {len(got)} differ; first word {i} "
                        f"(option {int(want['option_id'][i])}): rtl {int(got[name][i])} "
                        f"!= model {int(want[name][i])}")

    def assert_entries_match(self, observed) -> None:
        """UL_INFO* of every entry: the table, the last accepted prices, nothing pending."""
        for i, got in enumerate(observed["entries"].tolist()):
            e = self.model.entries[i]
            spot = self.model.last_spot(i)
            want = [e.locate, int(e.enabled), int(spot is not None), int(i in self.model.pending),
                    e.first, e.count, spot or 0]
            assert got == want, f"entry {i}: rtl {got} != model {want}"

    def assert_counters_match(self, observed) -> None:
        got = dict(zip(COUNTERS, observed["counters"].tolist()))
        assert got == self.model.counters, {n: (got[n], self.model.counters[n])
                                            for n in COUNTERS if got[n] != self.model.counters[n]}


def scenario_results(observed) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in row) for row in observed["scenario_results"]]


__all__ = ["OptionBook", "option_book", "book_updates", "Replay", "update_record",
           "trade_record", "relative", "scenario_results", "RESULTS"]
