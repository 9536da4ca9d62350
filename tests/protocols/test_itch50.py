"""ITCH 5.0 codec: layouts pinned to the specification, round trips, bad input."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.protocols import itch50
from host.protocols.errors import (
    BadFieldValue,
    DecodeError,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
    UnknownMessageType,
)
from host.protocols.itch50 import ITCH, MESSAGE_SIZES, decode_message

# Written from the Nasdaq TotalView-ITCH 5.0 specification's message tables:
# type -> (total length, [(field, offset, length), ...]); offsets count the
# message type byte at offset 0.  Kept apart from the declarations on purpose.
HDR = [("stock_locate", 1, 2), ("tracking_number", 3, 2), ("timestamp", 5, 6)]
SPEC = {
    "S": (12, HDR + [("event_code", 11, 1)]),
    "R": (39, HDR + [
        ("stock", 11, 8), ("market_category", 19, 1), ("financial_status_indicator", 20, 1),
        ("round_lot_size", 21, 4), ("round_lots_only", 25, 1), ("issue_classification", 26, 1),
        ("issue_sub_type", 27, 2), ("authenticity", 29, 1),
        ("short_sale_threshold_indicator", 30, 1), ("ipo_flag", 31, 1),
        ("luld_reference_price_tier", 32, 1), ("etp_flag", 33, 1),
        ("etp_leverage_factor", 34, 4), ("inverse_indicator", 38, 1)]),
    "H": (25, HDR + [("stock", 11, 8), ("trading_state", 19, 1), ("reserved", 20, 1),
                     ("reason", 21, 4)]),
    "Y": (20, HDR + [("stock", 11, 8), ("reg_sho_action", 19, 1)]),
    "L": (26, HDR + [("mpid", 11, 4), ("stock", 15, 8), ("primary_market_maker", 23, 1),
                     ("market_maker_mode", 24, 1), ("market_participant_state", 25, 1)]),
    "V": (35, HDR + [("level_1", 11, 8), ("level_2", 19, 8), ("level_3", 27, 8)]),
    "W": (12, HDR + [("breached_level", 11, 1)]),
    "K": (28, HDR + [("stock", 11, 8), ("ipo_quotation_release_time", 19, 4),
                     ("ipo_quotation_release_qualifier", 23, 1), ("ipo_price", 24, 4)]),
    "J": (35, HDR + [("stock", 11, 8), ("auction_collar_reference_price", 19, 4),
                     ("upper_auction_collar_price", 23, 4),
                     ("lower_auction_collar_price", 27, 4),
                     ("auction_collar_extension", 31, 4)]),
    "h": (21, HDR + [("stock", 11, 8), ("market_code", 19, 1),
                     ("operational_halt_action", 20, 1)]),
    "A": (36, HDR + [("order_reference_number", 11, 8), ("buy_sell_indicator", 19, 1),
                     ("shares", 20, 4), ("stock", 24, 8), ("price", 32, 4)]),
    "F": (40, HDR + [("order_reference_number", 11, 8), ("buy_sell_indicator", 19, 1),
                     ("shares", 20, 4), ("stock", 24, 8), ("price", 32, 4),
                     ("attribution", 36, 4)]),
    "E": (31, HDR + [("order_reference_number", 11, 8), ("executed_shares", 19, 4),
                     ("match_number", 23, 8)]),
    "C": (36, HDR + [("order_reference_number", 11, 8), ("executed_shares", 19, 4),
                     ("match_number", 23, 8), ("printable", 31, 1),
                     ("execution_price", 32, 4)]),
    "X": (23, HDR + [("order_reference_number", 11, 8), ("canceled_shares", 19, 4)]),
    "D": (19, HDR + [("order_reference_number", 11, 8)]),
    "U": (35, HDR + [("original_order_reference_number", 11, 8),
                     ("new_order_reference_number", 19, 8), ("shares", 27, 4),
                     ("price", 31, 4)]),
    "P": (44, HDR + [("order_reference_number", 11, 8), ("buy_sell_indicator", 19, 1),
                     ("shares", 20, 4), ("stock", 24, 8), ("price", 32, 4),
                     ("match_number", 36, 8)]),
    "Q": (40, HDR + [("shares", 11, 8), ("stock", 19, 8), ("cross_price", 27, 4),
                     ("match_number", 31, 8), ("cross_type", 39, 1)]),
    "B": (19, HDR + [("match_number", 11, 8)]),
    "I": (50, HDR + [("paired_shares", 11, 8), ("imbalance_shares", 19, 8),
                     ("imbalance_direction", 27, 1), ("stock", 28, 8), ("far_price", 36, 4),
                     ("near_price", 40, 4), ("current_reference_price", 44, 4),
                     ("cross_type", 48, 1), ("price_variation_indicator", 49, 1)]),
    "N": (20, HDR + [("stock", 11, 8), ("interest_flag", 19, 1)]),
    "O": (48, HDR + [("stock", 11, 8), ("open_eligibility_status", 19, 1),
                     ("minimum_allowable_price", 20, 4), ("maximum_allowable_price", 24, 4),
                     ("near_execution_price", 28, 4), ("near_execution_time", 32, 8),
                     ("lower_price_range_collar", 40, 4),
                     ("upper_price_range_collar", 44, 4)]),
}

# The specification's Price(4) and Price(8) fields; every other numeric field
# is a plain integer.
PRICE4 = {
    ("K", "ipo_price"), ("J", "auction_collar_reference_price"),
    ("J", "upper_auction_collar_price"), ("J", "lower_auction_collar_price"),
    ("A", "price"), ("F", "price"), ("C", "execution_price"), ("U", "price"),
    ("P", "price"), ("Q", "cross_price"), ("I", "far_price"), ("I", "near_price"),
    ("I", "current_reference_price"), ("O", "minimum_allowable_price"),
    ("O", "maximum_allowable_price"), ("O", "near_execution_price"),
    ("O", "lower_price_range_collar"), ("O", "upper_price_range_collar"),
}
PRICE8 = {("V", "level_1"), ("V", "level_2"), ("V", "level_3")}

ALL_TYPES = sorted(SPEC)
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


# -- layout pinned to the specification --------------------------------------
def test_spec_table_is_self_consistent():
    # Guards the hand-written table above against its own typos.
    for t, (total, fields) in SPEC.items():
        pos = 1
        for name, offset, length in fields:
            assert offset == pos, (t, name)
            pos += length
        assert pos == total, t


def test_every_spec_type_is_declared_and_nothing_else():
    assert len(SPEC) == 23
    assert set(MESSAGE_SIZES) == set(SPEC)
    assert {cls.TYPE for cls in ITCH} == set(SPEC)
    assert len(itch50.MESSAGE_CLASSES) == 23


@pytest.mark.parametrize("type_code", ALL_TYPES)
def test_layout_matches_spec(type_code):
    total, fields = SPEC[type_code]
    cls = ITCH.cls_for(type_code)
    assert cls.fixed_size() == total
    assert MESSAGE_SIZES[type_code] == total
    assert [(f.name, f.offset, f.size) for f in cls.LAYOUT.fields] == fields


@pytest.mark.parametrize("type_code", ALL_TYPES)
def test_price_fields_have_price_kinds(type_code):
    cls = ITCH.cls_for(type_code)
    for f in cls.LAYOUT.fields:
        key = (type_code, f.name)
        expected = "price4" if key in PRICE4 else "price8" if key in PRICE8 else None
        if expected is not None:
            assert f.kind == expected, key
        else:
            assert not f.kind.startswith("price"), key


def test_readable_class_names():
    assert itch50.AddOrder.TYPE == "A"
    assert itch50.AddOrderMPID.TYPE == "F"
    assert itch50.OrderExecutedWithPrice.TYPE == "C"
    assert itch50.OperationalHalt.TYPE == "h"
    assert itch50.DLCRPriceDiscovery.TYPE == "O"
    assert itch50.SystemEvent.TYPE == "S"


# -- round trips --------------------------------------------------------------
def _field_strategy(f):
    if f.is_alpha:
        if f.size == 1:
            return st.sampled_from(PRINTABLE)
        # Right padding is not part of the value, so values never end in a space.
        return st.text(alphabet=PRINTABLE, max_size=f.size).filter(lambda s: not s.endswith(" "))
    lo, hi = f.int_range
    return st.integers(lo, hi)


@pytest.mark.parametrize("type_code", ALL_TYPES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_value_round_trip(type_code, data):
    cls = ITCH.cls_for(type_code)
    values = {f.name: data.draw(_field_strategy(f), label=f.name) for f in cls.LAYOUT.fields}
    msg = cls(**values)
    raw = msg.encode()
    assert len(raw) == SPEC[type_code][0]
    assert raw[0:1] == type_code.encode()
    back = decode_message(raw)
    assert type(back) is cls
    assert back == msg
    assert back.to_dict() == {"message_type": type_code, **values}


def _wire_bytes(type_code):
    """Arbitrary wire images of one type: any integers, ASCII text in alpha fields."""
    cls = ITCH.cls_for(type_code)
    parts = [st.just(type_code.encode())]
    for f in cls.LAYOUT.fields:
        if f.is_alpha:
            parts.append(st.binary(min_size=f.size, max_size=f.size).map(
                lambda b: bytes(x & 0x7F for x in b)))
        else:
            parts.append(st.binary(min_size=f.size, max_size=f.size))
    return st.tuples(*parts).map(b"".join)


@pytest.mark.parametrize("type_code", ALL_TYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_wire_round_trip(type_code, data):
    raw = data.draw(_wire_bytes(type_code))
    assert decode_message(raw).encode() == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.integers(0, 4))
def test_arbitrary_bytes_never_crash(raw, offset):
    try:
        msg = decode_message(raw, offset)
    except DecodeError:
        return
    assert len(raw) - offset == MESSAGE_SIZES[msg.TYPE]


# -- messages built by hand from the specification's layout ----------------------
def test_known_add_order_bytes():
    raw = bytes.fromhex(
        "41"                  # A
        "0007"                # stock locate 7
        "0000"                # tracking number
        "1f1aced9f000"        # 34_200_000_000_000 ns = 09:30:00
        "0000000000000fa1"    # order reference number 4001
        "42"                  # B
        "00000064"            # 100 shares
        "4141504c20202020"    # "AAPL    "
        "001b8ac8"            # 180.5000
    )
    msg = decode_message(raw)
    assert isinstance(msg, itch50.AddOrder)
    assert msg.stock_locate == 7
    assert msg.tracking_number == 0
    assert msg.timestamp == 34_200 * 10**9
    assert msg.order_reference_number == 4001
    assert msg.buy_sell_indicator == "B"
    assert msg.shares == 100
    assert msg.stock == "AAPL"
    assert msg.price == 1_805_000
    assert msg.encode() == raw


def test_known_order_executed_with_price_bytes():
    raw = bytes.fromhex(
        "43" "0007" "0001" "1f1aceda2039"   # C, locate 7, tracking 1, 09:30:00.000012345
        "0000000000000fa1"                  # order 4001
        "00000028"                          # 40 shares executed
        "00000000000003e8"                  # match 1000
        "59"                                # printable Y
        "001b8a64"                          # 180.4900
    )
    msg = decode_message(raw)
    assert isinstance(msg, itch50.OrderExecutedWithPrice)
    assert (msg.timestamp, msg.order_reference_number, msg.executed_shares) == (
        34_200_000_012_345, 4001, 40)
    assert (msg.match_number, msg.printable, msg.execution_price) == (1000, "Y", 1_804_900)


def test_known_system_event_and_mwcb_bytes():
    start = decode_message(bytes.fromhex("53" "0000" "0000" "09d29229e000" "4f"))  # 03:00:00
    assert isinstance(start, itch50.SystemEvent)
    assert start.timestamp == 3 * 3600 * 10**9
    assert start.event_code == "O"
    assert itch50.SYSTEM_EVENT_CODES[start.event_code] == "Start of Messages"
    levels = decode_message(bytes.fromhex(
        "56" "0000" "0000" "000000000001"
        "00000068c6171400"      # 4500.00000000 (8 implied decimals)
        "0000000000000001"
        "ffffffffffffffff"))
    assert isinstance(levels, itch50.MWCBDeclineLevel)
    assert levels.level_1 == 450_000_000_000
    assert levels.level_2 == 1
    assert levels.level_3 == 2**64 - 1


def test_decode_at_offset_inside_a_larger_buffer():
    msg = itch50.OrderDelete(stock_locate=1, tracking_number=2, timestamp=3,
                             order_reference_number=4).encode()
    buf = b"\x00\x13" + msg + b"junk"
    assert decode_message(buf, 2, 2 + len(msg)).order_reference_number == 4


# -- bad input ------------------------------------------------------------------
def _add_order():
    return itch50.AddOrder(stock_locate=1, tracking_number=0, timestamp=5,
                           order_reference_number=9, buy_sell_indicator="S",
                           shares=10, stock="MSFT", price=1234).encode()


def test_truncated():
    raw = _add_order()
    with pytest.raises(TruncatedMessage) as info:
        decode_message(raw[:-1])
    assert info.value.reason == "truncated"
    with pytest.raises(TruncatedMessage):
        decode_message(b"")
    with pytest.raises(TruncatedMessage):
        decode_message(raw, 0, len(raw) + 5)  # end past the buffer


def test_unknown_type():
    raw = b"Z" + _add_order()[1:]
    with pytest.raises(UnknownMessageType) as info:
        decode_message(raw)
    assert info.value.reason == "unknown_type"


def test_length_mismatch():
    with pytest.raises(LengthMismatch) as info:
        decode_message(_add_order() + b"\x00")
    assert info.value.reason == "length_mismatch"


def test_non_ascii_alpha():
    raw = bytearray(_add_order())
    raw[24] = 0xC3  # first byte of the stock symbol
    with pytest.raises(BadFieldValue) as info:
        decode_message(bytes(raw))
    assert info.value.reason == "bad_field"


def test_decode_or_count_counts_each_reason():
    good = _add_order()
    bad_alpha = bytearray(good)
    bad_alpha[19] = 0xFF  # buy/sell indicator
    counts: dict[str, int] = {}
    inputs = [good, good[:-3], b"z" + good[1:], good + b"x", bytes(bad_alpha), b"", good]
    decoded = [ITCH.decode_or_count(raw, counts) for raw in inputs]
    assert [d is not None for d in decoded] == [True, False, False, False, False, False, True]
    assert counts == {"truncated": 2, "unknown_type": 1, "length_mismatch": 1, "bad_field": 1}


def test_encode_refuses_out_of_range_and_long_text():
    with pytest.raises(EncodeError):
        itch50.OrderDelete(stock_locate=1, tracking_number=0, timestamp=2**48,
                           order_reference_number=1).encode()
    with pytest.raises(EncodeError):
        itch50.RegSHORestriction(stock_locate=1, tracking_number=0, timestamp=0,
                                 stock="TOOLONGSYM", reg_sho_action="0").encode()


def test_code_tables():
    assert itch50.describe_code("cross_type", "C") == "Nasdaq Closing Cross"
    assert itch50.describe_code("trading_state", "T") == "Trading on Nasdaq"
    assert itch50.describe_code("shares", "T") is None
    assert set(itch50.SYSTEM_EVENT_CODES) == set("OSQMEC")
