"""The ITCH decoder's model against the golden codec (host.protocols.itch50).

The expected event of a message is derived here from the golden decoder's
message object, field by field by name, never from byte offsets, so the
model's offset tables are checked rather than repeated.  The message makers
below also feed the RTL tests.
"""
from __future__ import annotations

import random
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.marketday.generator import generate_day
from host.pcap.itchfile import iter_itch_batches
from host.protocols.errors import DecodeError
from host.protocols.itch50 import ITCH, MESSAGE_CLASSES, MESSAGE_SIZES, decode_message
from rtl.common.events import ITCH_EVENT_DTYPE, KIND_OF_TYPE, pack_event, unpack_event
from rtl.common.message_stream import pack_sideband, unpack_sideband
from rtl.itch_decoder.model import (COUNTER_MASK, COUNTERS, DROP_REASONS, EVENT, SKIPPED, STICKY,
                                    SUBSCRIPTION_ENTRIES, TYPE_COUNTERS, ItchDecoderModel,
                                    ItchInput, SubscriptionEntry, judge)

CLASS_OF_TYPE = {cls.TYPE: cls for cls in MESSAGE_CLASSES}
ALPHA = string.ascii_uppercase + string.digits + " "
UNKNOWN_TYPE_BYTES = bytes(b for b in range(256) if b not in ITCH.by_type)
_INT_BITS = {"u8": 8, "u16": 16, "u32": 32, "u48": 48, "u64": 64, "price4": 32, "price8": 64}


# ---- message makers (also used by test_itch_decoder_rtl) ------------------

def _random_int(rng: random.Random, bits: int) -> int:
    # Edges are where packing and byte order go wrong: favour them.
    pick = rng.random()
    if pick < 0.1:
        return 0
    if pick < 0.2:
        return (1 << bits) - 1
    if pick < 0.3:
        return 1 << rng.randrange(bits)
    return rng.getrandbits(bits)


def random_message(rng: random.Random, type_code: str, locates=range(1, 200)) -> bytes:
    """A well-formed message of ``type_code`` with random field values,
    encoded by the golden codec."""
    cls = CLASS_OF_TYPE[type_code]
    values = {}
    for fld in cls.LAYOUT.fields:
        if fld.name == "stock_locate":
            values[fld.name] = rng.choice(locates)
        elif fld.name == "buy_sell_indicator":
            values[fld.name] = rng.choice("BS")
        elif fld.is_alpha:
            values[fld.name] = "".join(rng.choice(ALPHA) for _ in range(fld.size))
        else:
            values[fld.name] = _random_int(rng, _INT_BITS[fld.kind])
    return cls(**values).encode()


def malformed_message(rng: random.Random, locates=range(1, 200)) -> bytes:
    """One message that must be dropped: unknown type, cut short, too long,
    or an add order or trade with a side that is neither B nor S."""
    kind = rng.choice(("unknown", "short", "long", "bad_side"))
    if kind == "unknown":
        return bytes([rng.choice(UNKNOWN_TYPE_BYTES)]) + rng.randbytes(rng.randrange(0, 60))
    if kind == "bad_side":
        data = bytearray(random_message(rng, rng.choice("AFP"), locates))
        data[19] = rng.choice([b for b in range(256) if b not in b"BS"])
        return bytes(data)
    data = random_message(rng, rng.choice(list(MESSAGE_SIZES)), locates)
    if kind == "short":
        return data[:rng.randrange(1, len(data))]
    return data + rng.randbytes(rng.randrange(1, 80))


def day_messages(path, count: int, symbols: int = 80, seed: int = 3) -> list[bytes]:
    """The first ``count`` messages of a generated market day with every type."""
    generate_day(str(path), symbols=symbols, messages=count, seed=seed, all_types=True,
                 write_summary=False)
    out = []
    for batch in iter_itch_batches(path):
        out += [batch.message(i) for i in range(len(batch))]
    return out


def sequenced(datas, seed: int, first_seq: int = 1,
              stale_from: int | None = None) -> list[ItchInput]:
    """Wrap messages with a sideband like the sequencer's: consecutive sequence
    numbers, indexes inside made-up packets, a random feed, stale from a point."""
    rng = random.Random(seed)
    out, index = [], 0
    for i, data in enumerate(datas):
        index = 0 if rng.random() < 0.2 else (index + 1) & 0xFFFF
        stale = stale_from is not None and i >= stale_from
        out.append(ItchInput(data, first_seq + i, index, rng.getrandbits(1), stale))
    return out


# ---- the golden view ------------------------------------------------------

def golden_expectation(data: bytes, seq: int = 0, msg_index: int = 0):
    """(verdict, event) from the golden decoder; verdict ``bad_field`` means
    the golden decoder refused bytes the fabric does not check."""
    try:
        msg = decode_message(data)
    except DecodeError as exc:
        return exc.reason, None
    t = msg.TYPE
    if t not in KIND_OF_TYPE:
        return SKIPPED, None
    # ``stale`` comes from the sideband, not the message: checked on the rows.
    event = dict.fromkeys((n for n in ITCH_EVENT_DTYPE.names if n != "stale"), 0)
    event.update(kind=KIND_OF_TYPE[t], stock_locate=msg.stock_locate, timestamp=msg.timestamp,
                 seq=seq, msg_index=msg_index)
    if t in "AF":
        if msg.buy_sell_indicator not in ("B", "S"):
            return "bad_side", None
        event.update(side=int(msg.buy_sell_indicator == "S"), order_ref=msg.order_reference_number,
                     shares=msg.shares, price=msg.price)
    elif t == "E":
        event.update(order_ref=msg.order_reference_number, shares=msg.executed_shares,
                     match_number=msg.match_number)
    elif t == "C":
        event.update(order_ref=msg.order_reference_number, shares=msg.executed_shares,
                     match_number=msg.match_number, price=msg.execution_price,
                     aux=ord(msg.printable))
    elif t == "X":
        event.update(order_ref=msg.order_reference_number, shares=msg.canceled_shares)
    elif t == "D":
        event.update(order_ref=msg.order_reference_number)
    elif t == "U":
        event.update(order_ref=msg.original_order_reference_number,
                     new_order_ref=msg.new_order_reference_number, shares=msg.shares,
                     price=msg.price)
    elif t == "P":
        if msg.buy_sell_indicator not in ("B", "S"):
            return "bad_side", None
        event.update(side=int(msg.buy_sell_indicator == "S"), order_ref=msg.order_reference_number,
                     shares=msg.shares, price=msg.price, match_number=msg.match_number)
    elif t == "R":
        event.update(aux=int.from_bytes(msg.stock.ljust(8).encode("ascii"), "big"))
    elif t == "H":
        event.update(aux=ord(msg.trading_state))
    elif t == "S":
        event.update(aux=ord(msg.event_code))
    return EVENT, event


def assert_model_matches_golden(message: ItchInput, model: ItchDecoderModel) -> str:
    verdict = model.verdict(message)
    golden, event = golden_expectation(message.data, message.seq, message.msg_index)
    if golden == EVENT and message.data[0] != ord("S") and \
            not model.subscribed(event["stock_locate"]):
        golden = "unsubscribed"
    if golden == "bad_field":
        # Non-ASCII text, which the fabric copies without looking.  The golden
        # decoder reads the fields before it compares the length, so a message
        # too long may still hide behind it; nothing else may.
        if len(message.data) > MESSAGE_SIZES[chr(message.data[0])]:
            assert verdict.reason == "length_mismatch", verdict
        else:
            assert verdict.reason in (EVENT, SKIPPED, "bad_side", "unsubscribed"), verdict
        return verdict.reason
    assert verdict.reason == golden, (message.data.hex(), verdict.reason, golden)
    if golden == EVENT:
        assert verdict.event == event, message.data.hex()
    return golden


def subscription_table(locates, rng: random.Random) -> list[SubscriptionEntry | None]:
    """A table holding ``locates`` plus a disabled entry, a duplicate and holes."""
    table: list[SubscriptionEntry | None] = [SubscriptionEntry(n) for n in locates]
    table.append(SubscriptionEntry(rng.randrange(1 << 16), enabled=False))
    if table:
        table.append(table[0])
    table.append(None)
    assert len(table) <= SUBSCRIPTION_ENTRIES
    return table


# ---- tests ------------------------------------------------------------------

@pytest.fixture(scope="module")
def day(tmp_path_factory):
    return day_messages(tmp_path_factory.mktemp("itch") / "day.itch", 6000)


def test_generated_day_matches_golden(day):
    rng = random.Random(1)
    model = ItchDecoderModel(subscription_table(rng.sample(range(1, 81), 40), rng))
    messages = sequenced(day, seed=2, stale_from=5500)
    seen = {assert_model_matches_golden(m, model) for m in messages}
    assert seen == {EVENT, SKIPPED, "unsubscribed"}
    events = model.run(messages)
    assert model.counters["messages"] == len(day)
    assert model.counters["events"] == len(events) > 1000
    for type_code, name in TYPE_COUNTERS.items():
        assert model.counters[name] == sum(m[0] == ord(type_code) for m in day), type_code
        assert model.counters[name] > 0, f"the day lacks '{type_code}'"
    assert model.counters["stale"] == 500
    assert model.counters["feed_b"] == sum(m.feed for m in messages)
    assert model.sticky_status() == 1 << STICKY.index("stale")
    # Rows carry the sideband and survive the event word.
    emitted = [m for m in messages if model.verdict(m).reason == EVENT]
    assert list(events["seq"]) == [m.seq for m in emitted]
    assert list(events["msg_index"]) == [m.msg_index for m in emitted]
    assert list(events["stale"]) == [int(m.stale) for m in emitted]
    assert 0 < events["stale"].sum() < len(events)
    for row in events[:200]:
        assert unpack_event(pack_event(row)) == row


def test_every_type_and_every_drop_reason():
    rng = random.Random(7)
    locates = range(1, 40)
    model = ItchDecoderModel(subscription_table(range(1, 20), rng))
    datas = [random_message(rng, t, locates) for t in MESSAGE_SIZES for _ in range(30)]
    datas += [malformed_message(rng, locates) for _ in range(400)]
    messages = sequenced(datas, seed=3)
    seen = {assert_model_matches_golden(m, model) for m in messages}
    assert seen == {EVENT, SKIPPED} | set(DROP_REASONS)
    model.run(messages)
    reasons = sum(model.counters[r] for r in DROP_REASONS)
    assert model.counters["events"] + reasons + model.verdicts[SKIPPED] == len(messages)
    well_formed = len(messages) - sum(model.counters[r] for r in
                                      ("unknown_type", "truncated", "length_mismatch"))
    assert sum(model.counters[name] for name in TYPE_COUNTERS.values()) == well_formed


message_strategy = st.sampled_from(MESSAGE_CLASSES).flatmap(
    lambda cls: st.fixed_dictionaries({
        fld.name: (st.sampled_from("BS") if fld.name == "buy_sell_indicator"
                   else st.text(ALPHA, min_size=fld.size, max_size=fld.size) if fld.is_alpha
                   else st.integers(0, (1 << _INT_BITS[fld.kind]) - 1))
        for fld in cls.LAYOUT.fields
    }).map(lambda values: cls(**values).encode()))


@settings(max_examples=300)
@given(message_strategy, st.integers(0, (1 << 64) - 1), st.integers(0, 0xFFFF))
def test_random_messages_of_every_type_match_golden(data, seq, msg_index):
    model = ItchDecoderModel(pass_all_locates=True)
    message = ItchInput(data, seq, msg_index)
    assert assert_model_matches_golden(message, model) == \
        (EVENT if chr(data[0]) in KIND_OF_TYPE else SKIPPED)
    row = model.process(message)
    assert (row is not None) == (chr(data[0]) in KIND_OF_TYPE)


@settings(max_examples=300)
@given(message_strategy, st.integers(-60, 60), st.binary(max_size=60))
def test_cut_and_extended_messages_are_dropped_like_golden(data, change, filler):
    """A message cut to any shorter length or grown by any bytes."""
    bent = data[:max(1, len(data) + change)] if change < 0 else data + filler[:change]
    verdict = assert_model_matches_golden(ItchInput(bent), ItchDecoderModel(pass_all_locates=True))
    if len(bent) != len(data):
        assert verdict == ("truncated" if len(bent) < len(data) else "length_mismatch")


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=64))
def test_any_bytes_are_judged_like_golden(data):
    assert_model_matches_golden(ItchInput(data), ItchDecoderModel(pass_all_locates=True))


def test_subscription_rules():
    rng = random.Random(5)
    locate = 77
    table = [SubscriptionEntry(locate), SubscriptionEntry(78, enabled=False)]
    model = ItchDecoderModel(table)
    for type_code in KIND_OF_TYPE:
        for where, expected in ((locate, EVENT), (78, "unsubscribed"), (79, "unsubscribed")):
            data = bytearray(random_message(rng, type_code))
            data[1:3] = where.to_bytes(2, "big")
            got = model.verdict(ItchInput(bytes(data))).reason
            # System events are about no stock: they always pass.
            assert got == (EVENT if type_code == "S" else expected), (type_code, where)
    assert ItchDecoderModel(table, pass_all_locates=True).subscribed(79)
    with pytest.raises(ValueError):
        ItchDecoderModel([SubscriptionEntry(1)] * (SUBSCRIPTION_ENTRIES + 1))
    with pytest.raises(ValueError):
        SubscriptionEntry(1 << 16)


def test_add_order_side_and_mpid():
    rng = random.Random(9)
    buy = bytearray(random_message(rng, "F"))
    buy[19] = ord("B")
    sell = bytearray(buy)
    sell[19] = ord("S")
    assert judge(bytes(buy)).event["side"] == 0
    assert judge(bytes(sell)).event["side"] == 1
    # The attribution (last four bytes of F) does not reach the event.
    other = bytes(sell[:36]) + b"ZZZZ"
    assert judge(other).event == judge(bytes(sell)).event
    sell[19] = ord("s")
    assert judge(bytes(sell)).reason == "bad_side"


def test_trade_carries_its_side():
    rng = random.Random(10)
    trade = bytearray(random_message(rng, "P"))
    for indicator, side in ((b"B", 0), (b"S", 1)):
        trade[19] = indicator[0]
        assert judge(bytes(trade)).event["side"] == side
    trade[19] = ord("X")
    assert judge(bytes(trade)).reason == "bad_side"


def test_counters_wrap_and_stale_is_flagged():
    model = ItchDecoderModel(pass_all_locates=True)
    model.counters["messages"] = COUNTER_MASK
    model.process(ItchInput(b"\x00", stale=True, feed=1))
    assert model.counters["messages"] == 0
    assert model.counters["unknown_type"] == model.counters["stale"] == 1
    assert model.counters["feed_b"] == 1
    assert model.sticky_status() == \
        (1 << STICKY.index("unknown_type")) | (1 << STICKY.index("stale"))
    assert set(COUNTERS) >= {"messages", "events", *DROP_REASONS, *TYPE_COUNTERS.values()}


def test_sideband_round_trip():
    word = pack_sideband((1 << 64) - 1, 0x1234, 1, True)
    assert word >> 80 == 0b11
    assert unpack_sideband(word) == {"seq": (1 << 64) - 1, "msg_index": 0x1234, "feed": 1,
                                     "stale": 1}
    with pytest.raises(ValueError):
        pack_sideband(0, 1 << 16)


def test_run_returns_event_rows():
    rng = random.Random(4)
    datas = [random_message(rng, t) for t in "AXUS"]
    rows = ItchDecoderModel(pass_all_locates=True).run(sequenced(datas, seed=1, first_seq=100))
    assert rows.dtype == ITCH_EVENT_DTYPE
    assert list(rows["kind"]) == [KIND_OF_TYPE[t] for t in "AXUS"]
    assert list(rows["seq"]) == [100, 101, 102, 103]
    assert np.all(rows["new_order_ref"][[0, 1, 3]] == 0)


def test_event_fields_are_the_values_of_the_event_row():
    """process_fields (what the feed path hands the order book) and process
    (the numpy row) agree on every field and count alike."""
    rng = random.Random(11)
    locates = range(1, 40)
    datas = [random_message(rng, t, locates) for t in MESSAGE_SIZES for _ in range(20)]
    datas += [malformed_message(rng, locates) for _ in range(200)]
    messages = sequenced(datas, seed=4, stale_from=300)
    as_rows = ItchDecoderModel(subscription_table(range(1, 20), rng))
    as_fields = ItchDecoderModel(as_rows.table)
    emitted = 0
    for m in messages:
        row = as_rows.process(m)
        fields = as_fields.process_fields(m.data, m.seq, m.msg_index, m.feed, m.stale)
        assert (row is None) == (fields is None)
        if row is not None:
            emitted += 1
            assert set(fields) == set(ITCH_EVENT_DTYPE.names)
            assert {name: int(row[name]) for name in ITCH_EVENT_DTYPE.names} == fields
    assert emitted > 100
    assert as_rows.counters == as_fields.counters and as_rows.verdicts == as_fields.verdicts
