"""The golden order book (ReferenceBook) and its numba twin (FastBook).

Every scenario runs through both books and requires identical update rows,
trades, tops, live orders and counters; the scenarios themselves pin the
reference's semantics.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.book import fast
from host.book.bench import day_as_batches, synthetic_day
from host.book.fast import FastBook
from host.book.records import (
    BOOK_UPDATE_DTYPE,
    DEPTH,
    FLAG_CROSSED,
    FLAG_NO_DIRECTORY,
    FLAG_NOT_TRADING,
    FLAG_STALE,
    TRADE_DTYPE,
    flag_names,
    trades_array,
    updates_array,
)
from host.book.reference import COUNTER_NAMES, ReferenceBook
from host.protocols import itch50
from host.protocols.itch50 import (
    AddOrder,
    AddOrderMPID,
    CrossTrade,
    OrderCancel,
    OrderDelete,
    OrderExecuted,
    OrderExecutedWithPrice,
    OrderReplace,
    StockDirectory,
    StockTradingAction,
    SystemEvent,
    Trade,
)

TS = 34_200_000_000_000


# -- message builders ------------------------------------------------------------------
def add(ref, side, shares, price, locate=1, mpid=None, ts=TS):
    if mpid is not None:
        return AddOrderMPID(locate, 0, ts, ref, side, shares, "TEST", price, mpid).encode()
    return AddOrder(locate, 0, ts, ref, side, shares, "TEST", price).encode()


def execute(ref, shares, match=1, locate=1, ts=TS):
    return OrderExecuted(locate, 0, ts, ref, shares, match).encode()


def execute_at(ref, shares, price, printable="Y", match=1, locate=1, ts=TS):
    return OrderExecutedWithPrice(locate, 0, ts, ref, shares, match, printable, price).encode()


def cancel(ref, shares, locate=1, ts=TS):
    return OrderCancel(locate, 0, ts, ref, shares).encode()


def delete(ref, locate=1, ts=TS):
    return OrderDelete(locate, 0, ts, ref).encode()


def replace(old, new, shares, price, locate=1, ts=TS):
    return OrderReplace(locate, 0, ts, old, new, shares, price).encode()


def directory(locate=1, stock="TEST"):
    return StockDirectory(locate, 0, TS, stock, "Q", "N", 100, "N", "C", "  ", "P", "N", " ",
                          "1", "N", 0, " ").encode()


def action(state, locate=1):
    return StockTradingAction(locate, 0, TS, "TEST", state, " ", "    ").encode()


def trade(side, shares, price, match=7, locate=1, ref=0):
    return Trade(locate, 0, TS, ref, side, shares, "TEST", price, match).encode()


def cross(shares, price, match=8, locate=1):
    return CrossTrade(locate, 0, TS, shares, "TEST", price, match, "O").encode()


def pack(msgs):
    lengths = np.array([len(m) for m in msgs], np.int32)
    offsets = np.zeros(len(msgs), np.int64)
    if len(msgs) > 1:
        offsets[1:] = np.cumsum(lengths[:-1])
    buf = np.frombuffer(b"".join(msgs), np.uint8).copy() if msgs else np.zeros(0, np.uint8)
    return buf, offsets, lengths


# -- running both books --------------------------------------------------------------------
def live_orders(ref: ReferenceBook):
    return {k: (o.locate, o.side, o.price, o.shares) for k, o in ref.orders.items()}


def run_both(msgs, seq=None, batch=None, locates=None, order_capacity=4, level_capacity=16):
    """Apply ``msgs`` to both books; assert they agree; return (updates, trades, ref, fb)."""
    buf, off, length = pack(msgs)
    n = len(msgs)
    seq = np.zeros(n, np.uint64) if seq is None else np.asarray(seq, np.uint64)
    idx = np.arange(n, dtype=np.int32) % 7
    ref = ReferenceBook()
    ru, rt = ref.process_messages(buf, off, length, seq, idx)
    fb = FastBook(order_capacity=order_capacity, level_capacity=level_capacity)
    step = batch or max(n, 1)
    fu, ft = [], []
    for lo in range(0, max(n, 1), step):
        u, t = fb.process_arrays(buf, off[lo:lo + step], length[lo:lo + step],
                                 seq[lo:lo + step], idx[lo:lo + step])
        fu.append(u.copy())
        ft.append(t.copy())
    RU, RT = updates_array(ru), trades_array(rt)
    FU, FT = np.concatenate(fu), np.concatenate(ft)
    assert len(FU) == len(RU) and len(FT) == len(RT)
    assert FU.tobytes() == RU.tobytes()
    assert FT.tobytes() == RT.tobytes()
    assert fb.counters == ref.counters
    assert fb.orders() == live_orders(ref)
    assert fb.stale == ref.stale
    for loc in locates or sorted(set(ref.books) | {1}):
        assert fb.top(loc) == ref.top(loc)
    assert fb.symbols() == ref.symbols()
    return RU, RT, ref, fb


def levels(row, side):
    p, s, o = (row[f"{side}_price"], row[f"{side}_shares"], row[f"{side}_orders"])
    return [(int(p[k]), int(s[k]), int(o[k])) for k in range(DEPTH) if o[k]]


# -- record layouts ------------------------------------------------------------------------
def test_record_layouts_are_fixed():
    assert BOOK_UPDATE_DTYPE.itemsize == 144 and TRADE_DTYPE.itemsize == 56
    offsets = {name: BOOK_UPDATE_DTYPE.fields[name][1] for name in BOOK_UPDATE_DTYPE.names}
    assert offsets == {"stock_locate": 0, "flags": 2, "reserved": 3, "msg_index": 4, "seq": 8,
                       "timestamp": 16, "bid_price": 24, "bid_shares": 44, "bid_orders": 64,
                       "ask_price": 84, "ask_shares": 104, "ask_orders": 124}
    offsets = {name: TRADE_DTYPE.fields[name][1] for name in TRADE_DTYPE.names}
    assert offsets == {"stock_locate": 0, "kind": 2, "side": 3, "msg_index": 4, "seq": 8,
                       "timestamp": 16, "order_reference_number": 24, "match_number": 32,
                       "shares": 40, "price": 48, "reserved": 52}
    assert flag_names(FLAG_STALE | FLAG_CROSSED) == ["stale", "crossed"]


def test_fast_decoder_offsets_match_itch50_layouts():
    for (type_code, name), offset in fast.FIELD_OFFSETS.items():
        cls = itch50.ITCH.cls_for(type_code)
        assert cls.LAYOUT.field(name).offset == offset, (type_code, name)
    for type_code, size in itch50.MESSAGE_SIZES.items():
        assert fast.MESSAGE_SIZE_TABLE[ord(type_code)] == size
    assert int((fast.MESSAGE_SIZE_TABLE > 0).sum()) == len(itch50.MESSAGE_SIZES)


def test_fast_decoder_alpha_windows_cover_exactly_the_alpha_bytes():
    for cls in itch50.MESSAGE_CLASSES:
        t = ord(cls.TYPE)
        expected = {p for f in cls.LAYOUT.fields if f.is_alpha
                    for p in range(f.offset, f.offset + f.size)}
        covered = []
        for k in range(fast.ALPHA_STARTS[t], fast.ALPHA_STARTS[t + 1]):
            start, mask = int(fast.ALPHA_OFFSETS[k]), int(fast.ALPHA_MASKS[k]) & (2**64 - 1)
            assert 0 <= start <= cls.fixed_size() - 8
            lanes = [lane for lane in range(8) if mask >> (8 * lane) & 0xFF]
            assert all(mask >> (8 * lane) & 0xFF == 0x80 for lane in lanes)
            covered += [start + lane for lane in lanes]
        assert sorted(covered) == sorted(expected), cls.TYPE


@pytest.mark.parametrize("msg", [add(5, "B", 100, 100_000), add(5, "S", 100, 100_000, mpid="ABCD"),
                                 trade("B", 100, 100_000), cross(100, 100_000),
                                 execute_at(1, 10, 100_500)], ids="AFPQC")
def test_every_alpha_byte_is_checked(msg):
    cls = itch50.ITCH.cls_for(chr(msg[0]))
    positions = [p for f in cls.LAYOUT.fields if f.is_alpha
                 for p in range(f.offset, f.offset + f.size)]
    bad = [msg[:p] + bytes([0x80 | msg[p]]) + msg[p + 1:] for p in positions]
    _, _, ref, _ = run_both([directory(), add(1, "B", 100, 100_000)] + bad + [msg])
    assert ref.counters["decode_bad_field"] == len(positions) > 0


# -- reference semantics (each also checked against FastBook) -----------------------------
def test_adds_build_sorted_sides_and_rows():
    msgs = [directory(), add(1, "B", 100, 100_000), add(2, "B", 200, 101_000),
            add(3, "S", 300, 102_000), add(4, "S", 50, 102_000), add(5, "B", 10, 100_000)]
    ru, rt, ref, _ = run_both(msgs)
    assert len(ru) == 5 and len(rt) == 0
    assert ref.top(1) == ([(101_000, 200, 1), (100_000, 110, 2)], [(102_000, 350, 2)])
    last = ru[-1]
    assert levels(last, "bid") == [(101_000, 200, 1), (100_000, 110, 2)]
    assert levels(last, "ask") == [(102_000, 350, 2)]
    assert last["stock_locate"] == 1 and last["flags"] == 0 and last["timestamp"] == TS
    assert list(last["bid_price"][2:]) == [0, 0, 0]


def test_row_carries_seq_and_msg_index():
    msgs = [directory(), add(1, "B", 100, 100_000)]
    ru, _, _, _ = run_both(msgs, seq=[41, 42])
    assert (int(ru[0]["seq"]), int(ru[0]["msg_index"])) == (42, 1)


def test_executions_print_trades_and_reduce_the_book():
    msgs = [directory(), add(1, "S", 300, 102_000), execute(1, 100, match=11),
            execute_at(1, 50, 101_900, "Y", match=12), execute_at(1, 50, 101_800, "N", match=13),
            execute(1, 100, match=14)]
    ru, rt, ref, _ = run_both(msgs)
    assert [(chr(t["kind"]), chr(t["side"]), int(t["price"]), int(t["shares"]),
             int(t["match_number"]), int(t["order_reference_number"])) for t in rt] == [
        ("E", "S", 102_000, 100, 11, 1), ("C", "S", 101_900, 50, 12, 1),
        ("E", "S", 102_000, 100, 14, 1)]
    assert [levels(r, "ask") for r in ru] == [[(102_000, 300, 1)], [(102_000, 200, 1)],
                                              [(102_000, 150, 1)], [(102_000, 100, 1)], []]
    assert ref.orders == {} and ref.top(1) == ([], [])


def test_cancel_delete_replace():
    msgs = [directory(), add(1, "B", 300, 100_000), add(2, "B", 100, 99_000),
            cancel(1, 100), replace(1, 7, 500, 100_500), delete(2)]
    ru, _, ref, _ = run_both(msgs)
    assert [levels(r, "bid") for r in ru][-3:] == [
        [(100_000, 200, 1), (99_000, 100, 1)],
        [(100_500, 500, 1), (99_000, 100, 1)],
        [(100_500, 500, 1)]]
    assert list(ref.orders) == [7] and ref.orders[7].side == "B"


def test_replace_same_price_and_shares_changes_nothing_visible():
    msgs = [directory(), add(1, "B", 300, 100_000), replace(1, 2, 300, 100_000)]
    ru, _, ref, _ = run_both(msgs)
    assert len(ru) == 1 and list(ref.orders) == [2]


def test_rows_only_when_top_five_changes():
    msgs = [directory()] + [add(i, "B", 100, 100_000 - 100 * i) for i in range(1, 7)]
    # level 6 (99_400) is outside the top five: adding to it, cancelling from it
    # and deleting it emit nothing
    msgs += [add(20, "B", 100, 99_400), cancel(20, 50), delete(20), delete(6)]
    msgs += [add(21, "B", 100, 99_300), delete(1)]   # the first visible change: level 1 goes
    ru, _, ref, _ = run_both(msgs)
    assert len(ru) == 5 + 1
    assert levels(ru[-1], "bid")[-1] == (99_300, 100, 1)
    assert [p for p, _, _ in ref.top(1)[0]] == [99_800, 99_700, 99_600, 99_500, 99_300]


def test_trades_from_p_and_q_do_not_touch_the_book():
    msgs = [directory(), add(1, "B", 100, 100_000), trade("S", 400, 100_100, ref=0),
            cross(2**40, 100_050)]
    ru, rt, _, _ = run_both(msgs)
    assert len(ru) == 1
    assert [(chr(t["kind"]), t["side"], int(t["shares"]), int(t["price"])) for t in rt] == [
        ("P", ord("S"), 400, 100_100), ("Q", 0, 2**40, 100_050)]


def test_flags():
    msgs = [add(1, "B", 100, 100_000, locate=2),          # no directory for locate 2
            directory(), action("H"), add(2, "S", 100, 101_000),
            action("T"), add(3, "B", 100, 101_000)]      # locks the book
    ru, _, _, _ = run_both(msgs, locates=[1, 2])
    assert [int(r["flags"]) for r in ru] == [FLAG_NO_DIRECTORY, FLAG_NOT_TRADING, FLAG_CROSSED]


def test_sequence_gap_marks_the_book_stale():
    msgs = [directory(), add(1, "B", 100, 100_000), add(2, "B", 100, 100_100),
            add(3, "B", 100, 100_200)]
    ru, _, ref, fb = run_both(msgs, seq=[1, 2, 5, 4])
    assert [int(r["flags"]) & FLAG_STALE for r in ru] == [0, FLAG_STALE, FLAG_STALE]
    assert ref.counters["seq_gaps"] == 1 and ref.counters["seq_regressions"] == 1
    fb.clear_stale()
    ref.clear_stale()
    assert not fb.stale and not ref.stale


def test_aggregate_shares_saturate_in_rows():
    big = 2**32 - 1
    msgs = [directory(), add(1, "B", big, 100_000), add(2, "B", big, 100_000)]
    ru, _, ref, _ = run_both(msgs)
    assert ref.top(1)[0] == [(100_000, 2 * big, 2)]
    assert int(ru[-1]["bid_shares"][0]) == big and int(ru[-1]["bid_orders"][0]) == 2


def test_fields_keep_every_bit():
    """u64 references and match numbers with the top bit set, u32 shares and
    prices at their maximum, a u48 timestamp near its top."""
    ref, top = 2**64 - 5, 2**32 - 1
    msgs = [directory(), add(ref, "S", top, top, ts=2**48 - 2),
            execute(ref, 7, match=2**63 + 3, ts=2**48 - 1),
            replace(ref, 2**63, top - 7, 1, ts=12_345),
            cross(2**64 - 1, top, match=2**64 - 2)]
    ru, rt, ref_book, fb = run_both(msgs)
    assert int(rt[0]["match_number"]) == 2**63 + 3 and int(rt[0]["order_reference_number"]) == ref
    assert int(rt[1]["shares"]) == 2**64 - 1 and int(ru[0]["timestamp"]) == 2**48 - 2
    assert fb.orders() == {2**63: (1, "S", 1, top - 7)}


def test_anomalies_are_counted_not_fatal():
    a = add(9, "B", 100, 100_000)
    msgs = [
        directory(),
        add(1, "B", 100, 100_000), add(2, "S", 100, 101_000),
        delete(99), execute(98, 1), cancel(97, 1), replace(96, 95, 1, 1),  # unknown refs
        add(1, "S", 100, 100_500),                                   # duplicate reference
        execute(1, 150),                                             # over-execution: gone
        cancel(2, 500),                                              # over-cancel: gone
        add(3, "X", 100, 100_000),                                   # bad side
        add(4, "B", 0, 100_000),                                     # zero shares
        add(5, "B", 100, 100_000, locate=3),                         # no directory: booked
        add(6, "B", 100, 99_000), delete(6, locate=3),               # wrong locate: applied
        a[:20], a + b"\x00", b"z" + bytes(20), b"",                   # decode errors
        a[:24] + b"\xff" + a[25:],                                   # non-ASCII stock
        add(10, "B", 100, 99_000), replace(10, 1, 0, 99_000),        # replace to zero shares
        add(11, "B", 100, 99_000), add(12, "B", 100, 99_100), replace(11, 12, 5, 99_000),
    ]
    _, rt, ref, _ = run_both(msgs, locates=[1, 3])
    c = ref.counters
    expected = {"unknown_order_reference": 4, "duplicate_order_reference": 2,
                "over_execution": 1, "over_cancel": 1, "bad_side": 1, "zero_shares": 2,
                "unknown_locate": 2, "locate_mismatch": 1, "decode_truncated": 2,
                "decode_length_mismatch": 1, "decode_unknown_type": 1, "decode_bad_field": 1}
    assert {k: c[k] for k in expected} == expected
    assert c["messages"] == len(msgs)
    assert ref.top(3) == ([(100_000, 100, 1)], [])
    assert ref.top(1) == ([(99_100, 100, 1)], [])
    # the over-execution still prints what the exchange sent
    assert [(int(t["order_reference_number"]), int(t["shares"])) for t in rt] == [(1, 150)]


def test_apply_with_decoded_messages():
    ref = ReferenceBook()
    assert ref.apply(itch50.decode_message(directory())) is None
    row = ref.apply(itch50.decode_message(add(1, "B", 100, 100_000)), seq=3, msg_index=2)
    assert row is not None and row[0] == 1 and row[3:5] == (2, 3)
    assert ref.apply(SystemEvent(0, 0, TS, "O")) is None
    assert ref.apply(itch50.decode_message(execute(1, 40))) is not None
    assert [t[1] for t in ref.take_trades()] == [ord("E")] and ref.trades == []


# -- FastBook == ReferenceBook on generated flow --------------------------------------------
REFS = st.integers(1, 16)
LOCS = st.sampled_from([1, 1, 1, 1, 2, 3])
PRICES = st.sampled_from([99_500 + 100 * k for k in range(14)])
# Each random example starts from six levels a side on locate 1 (references
# 1..12, which the random operations then hit), so that depth past DEPTH and
# the edge of the top five are exercised.
OPENING = [directory()] + [add(1 + k, "B", 100 + k, 99_600 + 100 * k) for k in range(6)] + [
    add(7 + k, "S", 100 + k, 100_200 + 100 * k) for k in range(6)]
SHARES = st.sampled_from([0, 1, 100, 250, 2**32 - 1])


def _op():
    adds = st.builds(lambda r, s, n, p, l, m: add(r, s, n, p, locate=l, mpid="MPID" if m else None),
                     REFS, st.sampled_from("BBBBSSSSX"), SHARES, PRICES, LOCS, st.booleans())
    # adds weigh more so that books grow past DEPTH levels
    return st.one_of(
        adds, adds, adds, adds,
        st.builds(lambda r, n, l: execute(r, n, locate=l), REFS, SHARES, LOCS),
        st.builds(lambda r, n, p, y: execute_at(r, n, p, y), REFS, SHARES, PRICES,
                  st.sampled_from("YN")),
        st.builds(lambda r, n: cancel(r, n), REFS, SHARES),
        st.builds(lambda r, l: delete(r, locate=l), REFS, LOCS),
        st.builds(replace, REFS, REFS, SHARES, PRICES),
        st.builds(lambda s, n, p, l: trade(s, n, p, locate=l), st.sampled_from("BS"), SHARES,
                  PRICES, LOCS),
        st.builds(lambda l: directory(l, f"SYM{l}"), LOCS),
        st.builds(lambda s, l: action(s, l), st.sampled_from("THPQ"), LOCS),
        st.binary(max_size=40),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(_op(), max_size=80), st.integers(1, 8), st.lists(st.integers(0, 3), max_size=80))
def test_fast_equals_reference_on_random_flow(msgs, batch, seq_steps):
    msgs = OPENING + msgs
    seq = np.zeros(len(msgs), np.uint64)
    if seq_steps:
        steps = (seq_steps * (len(msgs) // len(seq_steps) + 1))[:len(msgs)]
        seq = np.cumsum(np.array(steps, np.uint64) + 1).astype(np.uint64) if msgs else seq
    run_both(msgs, seq=seq, batch=batch, locates=[1, 2, 3])


@pytest.mark.parametrize("seed,anomaly_rate,batch", [(1, 0.0, 4_096), (2, 0.02, 997),
                                                     (3, 0.005, 20_000)])
def test_fast_equals_reference_on_synthetic_days(seed, anomaly_rate, batch):
    day = synthetic_day(12_000, symbols=12, seed=seed, anomaly_rate=anomaly_rate)
    msgs = [day.buf[o:o + n].tobytes() for o, n in zip(day.msg_off, day.msg_len)]
    # tiny starting tables so that rehash and arena growth both happen
    _, _, ref, fb = run_both(msgs, seq=np.arange(1, len(msgs) + 1), batch=batch,
                             locates=list(range(1, 21)), order_capacity=4, level_capacity=64)
    assert fb.order_capacity > 4
    # every injected anomaly is counted under its own name, and nothing else is
    counter_of = {"unknown_ref": "unknown_order_reference",
                  "duplicate_ref": "duplicate_order_reference",
                  "over_execution": "over_execution", "over_cancel": "over_cancel",
                  "bad_side": "bad_side", "zero_shares": "zero_shares",
                  "truncated": "decode_truncated", "length_mismatch": "decode_length_mismatch",
                  "unknown_type": "decode_unknown_type", "bad_field": "decode_bad_field",
                  "locate_mismatch": "locate_mismatch", "unknown_locate": "unknown_locate"}
    assert {counter_of[k]: v for k, v in day.anomalies.items()} == {
        name: ref.counters[name] for name in counter_of.values() if ref.counters[name]}
    assert sum(day.anomalies.values()) > 0 if anomaly_rate else not day.anomalies


def test_offsets_outside_the_buffer_are_truncated_and_skipped():
    """The kernel reads messages ahead of the one it applies (to prefetch their
    order slots); offsets outside the buffer, or a short message ending the
    buffer, must neither be read past nor disturb the messages around them."""
    good = OPENING + [delete(3), execute(8, 50, match=4), add(20, "B", 300, 99_700),
                      cancel(20, 100), replace(9, 21, 70, 100_100), delete(4)]
    buf, off, length = pack(good)
    assert int(off[-1]) + int(length[-1]) == len(buf) and int(length[-1]) == 19
    # Every third slot a message that cannot be read: before the buffer, past
    # its end, or running over its end.
    bad = [(-40, 36), (len(buf), 36), (len(buf) - 5, 36), (2**40, 19), (len(buf) - 19, 36)]
    offsets, lengths, k = [], [], 0
    for i in range(len(good)):
        if i % 3 == 1 and k < len(bad):
            offsets.append(bad[k][0])
            lengths.append(bad[k][1])
            k += 1
        offsets.append(int(off[i]))
        lengths.append(int(length[i]))
    assert k == len(bad)
    offsets.append(-1)
    lengths.append(19)
    fb = FastBook(order_capacity=4, level_capacity=16)
    fu, ft = fb.process_arrays(buf, np.array(offsets, np.int64), np.array(lengths, np.int32))
    ref = ReferenceBook()
    n = len(good)
    ru, rt = ref.process_messages(buf, off, length, np.zeros(n, np.uint64), np.zeros(n, np.int32))
    assert fu.tobytes() == updates_array(ru).tobytes() and len(fu) > 5
    assert ft.tobytes() == trades_array(rt).tobytes() and len(ft) == 1
    expected = dict(ref.counters)
    expected["messages"] += len(bad) + 1
    expected["decode_truncated"] += len(bad) + 1
    assert fb.counters == expected
    assert fb.orders() == live_orders(ref)



# -- invariants ------------------------------------------------------------------------------
def check_invariants(fb: FastBook, locates, never_crossed=True):
    orders = fb.orders()
    expected: dict[tuple, list] = {}
    for locate, side, price, shares in orders.values():
        assert shares > 0
        level = expected.setdefault((locate, side, price), [0, 0])
        level[0] += shares
        level[1] += 1
    seen = {}
    for loc in locates:
        bids, asks = fb.levels(loc, "B"), fb.levels(loc, "S")
        assert all(a[0] > b[0] for a, b in zip(bids, bids[1:])), "bids strictly descending"
        assert all(a[0] < b[0] for a, b in zip(asks, asks[1:])), "asks strictly ascending"
        if never_crossed and bids and asks:
            assert bids[0][0] < asks[0][0]
        for side, lv in (("B", bids), ("S", asks)):
            for price, shares, count in lv:
                assert shares > 0 and count > 0
                seen[(loc, side, price)] = [shares, count]
        assert fb.top(loc) == (bids[:DEPTH], asks[:DEPTH])
    assert seen == expected


def test_invariants_hold_through_a_synthetic_day():
    day = synthetic_day(20_000, symbols=10, seed=9)
    fb = FastBook(order_capacity=8, level_capacity=32)
    crossed = 0
    for batch in day_as_batches(day, 2_500):
        updates, _ = fb.process(batch)
        crossed += int((updates["flags"] & FLAG_CROSSED != 0).sum())
        check_invariants(fb, range(1, 11))
    assert crossed == 0
    assert fb.counters["adds"] > 5_000 and fb.counters["deletes"] > 5_000


def test_update_emitted_exactly_when_top_five_changes():
    """Message by message: a row appears iff some book's top five changed."""
    day = synthetic_day(2_000, symbols=3, seed=4)
    fb = FastBook()
    locates = (1, 2, 3)
    tops = {loc: fb.top(loc) for loc in locates}
    rows = 0
    for i in range(len(day)):
        updates, _ = fb.process_arrays(day.buf, day.msg_off[i:i + 1], day.msg_len[i:i + 1])
        after = {loc: fb.top(loc) for loc in locates}
        changed = [loc for loc in locates if after[loc] != tops[loc]]
        assert len(updates) == len(changed) <= 1
        if changed:
            row = updates[0]
            assert int(row["stock_locate"]) == changed[0]
            assert (levels(row, "bid"), levels(row, "ask")) == after[changed[0]]
            rows += 1
        tops = after
    assert rows > 500


def test_counter_names_are_complete():
    assert set(FastBook().counters) == set(COUNTER_NAMES) == set(ReferenceBook().counters)
