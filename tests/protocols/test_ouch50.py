"""OUCH 5.0 messages and the options appendage."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.protocols import ouch50 as ouch
from host.protocols import soupbintcp as soup
from host.protocols.errors import (
    BadFieldValue,
    BadLength,
    DecodeError,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
    UnknownMessageType,
)

# The specification's message tables, written out by hand (sections 2 and 3):
# type -> (class name, fixed length including the Appendage Length field,
#          [(field, offset, width, kind)], offset of the Appendage Length or None).
# kind: "u" unsigned integer, "a" alpha.
TS = ("timestamp", 1, 8, "u")
INBOUND_SPEC = {
    "O": ("EnterOrder", 47, [
        ("user_ref_num", 1, 4, "u"), ("side", 5, 1, "a"), ("quantity", 6, 4, "u"),
        ("symbol", 10, 8, "a"), ("price", 18, 8, "u"), ("time_in_force", 26, 1, "a"),
        ("display", 27, 1, "a"), ("capacity", 28, 1, "a"),
        ("intermarket_sweep_eligibility", 29, 1, "a"), ("cross_type", 30, 1, "a"),
        ("cl_ord_id", 31, 14, "a")], 45),
    "U": ("ReplaceOrderRequest", 40, [
        ("orig_user_ref_num", 1, 4, "u"), ("user_ref_num", 5, 4, "u"),
        ("quantity", 9, 4, "u"), ("price", 13, 8, "u"), ("time_in_force", 21, 1, "a"),
        ("display", 22, 1, "a"), ("intermarket_sweep_eligibility", 23, 1, "a"),
        ("cl_ord_id", 24, 14, "a")], 38),
    "X": ("CancelOrderRequest", 11, [
        ("user_ref_num", 1, 4, "u"), ("quantity", 5, 4, "u")], 9),
    "M": ("ModifyOrderRequest", 12, [
        ("user_ref_num", 1, 4, "u"), ("side", 5, 1, "a"), ("quantity", 6, 4, "u")], 10),
    "C": ("MassCancelRequest", 19, [
        ("user_ref_num", 1, 4, "u"), ("firm", 5, 4, "a"), ("symbol", 9, 8, "a")], 17),
    "D": ("DisableOrderEntryRequest", 11, [
        ("user_ref_num", 1, 4, "u"), ("firm", 5, 4, "a")], 9),
    "E": ("EnableOrderEntryRequest", 11, [
        ("user_ref_num", 1, 4, "u"), ("firm", 5, 4, "a")], 9),
    "Q": ("AccountQueryRequest", 3, [], 1),
}
OUTBOUND_SPEC = {
    "S": ("SystemEvent", 10, [TS, ("event_code", 9, 1, "a")], None),
    "A": ("OrderAccepted", 64, [
        TS, ("user_ref_num", 9, 4, "u"), ("side", 13, 1, "a"), ("quantity", 14, 4, "u"),
        ("symbol", 18, 8, "a"), ("price", 26, 8, "u"), ("time_in_force", 34, 1, "a"),
        ("display", 35, 1, "a"), ("order_reference_number", 36, 8, "u"),
        ("capacity", 44, 1, "a"), ("intermarket_sweep_eligibility", 45, 1, "a"),
        ("cross_type", 46, 1, "a"), ("order_state", 47, 1, "a"),
        ("cl_ord_id", 48, 14, "a")], 62),
    "U": ("OrderReplaced", 68, [
        TS, ("orig_user_ref_num", 9, 4, "u"), ("user_ref_num", 13, 4, "u"),
        ("side", 17, 1, "a"), ("quantity", 18, 4, "u"), ("symbol", 22, 8, "a"),
        ("price", 30, 8, "u"), ("time_in_force", 38, 1, "a"), ("display", 39, 1, "a"),
        ("order_reference_number", 40, 8, "u"), ("capacity", 48, 1, "a"),
        ("intermarket_sweep_eligibility", 49, 1, "a"), ("cross_type", 50, 1, "a"),
        ("order_state", 51, 1, "a"), ("cl_ord_id", 52, 14, "a")], 66),
    "C": ("OrderCanceled", 20, [
        TS, ("user_ref_num", 9, 4, "u"), ("quantity", 13, 4, "u"), ("reason", 17, 1, "a")],
        18),
    "D": ("AiqCanceled", 34, [
        TS, ("user_ref_num", 9, 4, "u"), ("decrement_shares", 13, 4, "u"),
        ("reason", 17, 1, "a"), ("quantity_prevented_from_trading", 18, 4, "u"),
        ("execution_price", 22, 8, "u"), ("liquidity_flag", 30, 1, "a"),
        ("aiq_strategy", 31, 1, "a")], 32),
    "E": ("OrderExecuted", 36, [
        TS, ("user_ref_num", 9, 4, "u"), ("quantity", 13, 4, "u"), ("price", 17, 8, "u"),
        ("liquidity_flag", 25, 1, "a"), ("match_number", 26, 8, "u")], 34),
    "B": ("BrokenTrade", 38, [
        TS, ("user_ref_num", 9, 4, "u"), ("match_number", 13, 8, "u"),
        ("reason", 21, 1, "a"), ("cl_ord_id", 22, 14, "a")], 36),
    "J": ("OrderRejected", 31, [
        TS, ("user_ref_num", 9, 4, "u"), ("reason", 13, 2, "u"),
        ("cl_ord_id", 15, 14, "a")], 29),
    "P": ("CancelPending", 15, [TS, ("user_ref_num", 9, 4, "u")], 13),
    "I": ("CancelReject", 15, [TS, ("user_ref_num", 9, 4, "u")], 13),
    "T": ("OrderPriorityUpdate", 32, [
        TS, ("user_ref_num", 9, 4, "u"), ("price", 13, 8, "u"), ("display", 21, 1, "a"),
        ("order_reference_number", 22, 8, "u")], 30),
    "M": ("OrderModified", 20, [
        TS, ("user_ref_num", 9, 4, "u"), ("side", 13, 1, "a"), ("quantity", 14, 4, "u")],
        18),
    "R": ("OrderRestated", 16, [TS, ("user_ref_num", 9, 4, "u"), ("reason", 13, 1, "a")],
          14),
    "X": ("MassCancelResponse", 27, [
        TS, ("user_ref_num", 9, 4, "u"), ("firm", 13, 4, "a"), ("symbol", 17, 8, "a")], 25),
    "G": ("DisableOrderEntryResponse", 19, [
        TS, ("user_ref_num", 9, 4, "u"), ("firm", 13, 4, "a")], 17),
    "K": ("EnableOrderEntryResponse", 19, [
        TS, ("user_ref_num", 9, 4, "u"), ("firm", 13, 4, "a")], 17),
    "Q": ("AccountQueryResponse", 15, [TS, ("next_user_ref_num", 9, 4, "u")], 13),
}
# Types that earlier revisions of the specification sent without an
# Appendage Length.
APPENDAGE_MAY_BE_ABSENT = {"inbound": set("XMQ"), "outbound": set("CDEBJPITMQ")}
# Appendix A: option tag -> (name, value width).
OPTION_SPEC = {
    1: ("secondary_ord_ref_num", 8), 2: ("firm", 4), 3: ("min_qty", 4),
    4: ("customer_type", 1), 5: ("max_floor", 4), 6: ("price_type", 1),
    7: ("peg_offset", 4), 9: ("discretion_price", 8), 10: ("discretion_price_type", 1),
    11: ("discretion_peg_offset", 4), 12: ("post_only", 1), 13: ("random_reserves", 4),
    14: ("route", 4), 15: ("expire_time", 4), 16: ("trade_now", 1), 17: ("handle_inst", 1),
    18: ("bbo_weight_indicator", 1), 22: ("display_quantity", 4), 23: ("display_price", 8),
    24: ("group_id", 2), 25: ("shares_located", 1), 26: ("locate_broker", 4),
    27: ("side", 1), 28: ("user_ref_idx", 1), 29: ("aiq_strategy", 1),
    30: ("aiq_group_id", 2),
}

CASES = ([("inbound", t, spec) for t, spec in INBOUND_SPEC.items()]
         + [("outbound", t, spec) for t, spec in OUTBOUND_SPEC.items()])
CASE_IDS = [f"{d}-{t}" for d, t, _ in CASES]


def _registry(direction):
    return ouch.OUCH_INBOUND if direction == "inbound" else ouch.OUCH_OUTBOUND


def _decode(direction, raw):
    fn = ouch.decode_inbound if direction == "inbound" else ouch.decode_outbound
    return fn(raw)


def test_registries_hold_exactly_the_spec_messages():
    assert {chr(t) for t in ouch.OUCH_INBOUND.by_type} == set(INBOUND_SPEC)
    assert {chr(t) for t in ouch.OUCH_OUTBOUND.by_type} == set(OUTBOUND_SPEC)


def test_option_table_matches_appendix_a():
    assert {tag: (s.name, s.width) for tag, s in ouch.OPTIONS.items()} == OPTION_SPEC


def _distinct_values(fields):
    """One recognisable value per field (so offsets can be probed in the bytes)."""
    values = {}
    for i, (name, _off, width, kind) in enumerate(fields):
        if kind == "u":
            values[name] = int.from_bytes(bytes((0x11 * (i + 1) + k) & 0xFF
                                                for k in range(width)), "big")
        else:
            values[name] = "".join(chr(0x41 + (i + k) % 26) for k in range(width))
    return values


@pytest.mark.parametrize("direction,type_code,spec", CASES, ids=CASE_IDS)
def test_layout_matches_spec_by_probing_the_bytes(direction, type_code, spec):
    class_name, total, fields, app_off = spec
    cls = getattr(ouch, class_name)
    assert _registry(direction).cls_for(type_code) is cls
    values = _distinct_values(fields)
    msg = cls(**values)
    raw = msg.encode()
    assert len(raw) == total == ouch.fixed_length(cls)
    assert raw[0:1] == type_code.encode()
    covered = 1 + (0 if app_off is None else 2)
    for name, off, width, kind in fields:
        chunk = raw[off:off + width]
        if kind == "u":
            assert int.from_bytes(chunk, "big") == values[name], name
        else:
            assert chunk == values[name].encode(), name
        covered += width
    assert covered == total   # no byte unaccounted for
    if app_off is None:
        assert cls.TAIL is None
    else:
        assert raw[app_off:app_off + 2] == b"\x00\x00"
        assert app_off + 2 == total
    # The declaration agrees with the table too.
    assert {f.name: (f.offset, f.size) for f in cls.LAYOUT.fields} == {
        name: (off, width) for name, off, width, _ in fields}
    assert _decode(direction, raw) == msg


@pytest.mark.parametrize("direction,type_code,spec", CASES, ids=CASE_IDS)
def test_appendage_length_presence_rules(direction, type_code, spec):
    class_name, total, fields, app_off = spec
    cls = getattr(ouch, class_name)
    if app_off is None:
        return
    raw = cls(**_distinct_values(fields)).encode()
    without = raw[:app_off]
    if type_code in APPENDAGE_MAY_BE_ABSENT[direction]:
        assert cls.APPENDAGE_OPTIONAL
        msg = _decode(direction, without)
        assert msg.appendage is None
        assert msg.encode() == without
    else:
        assert not cls.APPENDAGE_OPTIONAL
        with pytest.raises(TruncatedMessage):
            _decode(direction, without)
        with pytest.raises(EncodeError):
            cls(**_distinct_values(fields), appendage=None).encode()
    with pytest.raises(TruncatedMessage):
        _decode(direction, raw[:app_off + 1])


def test_enter_order_golden_bytes_with_user_ref_idx():
    msg = ouch.EnterOrder(
        user_ref_num=1, side="B", quantity=100, symbol="AAPL", price=1_234_500,
        time_in_force="0", display="Y", capacity="P", intermarket_sweep_eligibility="N",
        cross_type="N", cl_ord_id="ORD1", appendage={"user_ref_idx": 5})
    expected = bytes.fromhex(
        "4f"                 # 'O'
        "00000001"           # UserRefNum 1
        "42"                 # 'B'
        "00000064"           # 100 shares
        "4141504c20202020"   # "AAPL    "
        "000000000012d644"   # $123.4500
        "3059504e4e"         # TIF '0', display 'Y', capacity 'P', ISO 'N', cross 'N'
    ) + b"ORD1" + b" " * 10 + bytes.fromhex(
        "0003"               # appendage length
        "021c05")            # len 2, tag 28, UserRefIdx 5
    assert len(expected) == 50
    assert msg.encode() == expected
    assert ouch.decode_inbound(expected) == msg


def test_order_rejected_golden_and_reason_text():
    raw = (b"J" + (34_200_000_000_123).to_bytes(8, "big") + (7).to_bytes(4, "big")
           + b"\x00\x13" + b"ORD7          " + b"\x00\x00")
    msg = ouch.decode_outbound(raw)
    assert isinstance(msg, ouch.OrderRejected)
    assert (msg.timestamp, msg.user_ref_num, msg.reason, msg.cl_ord_id) == (
        34_200_000_000_123, 7, 0x13, "ORD7")
    assert ouch.reject_reason_text(msg.reason) == "Invalid quantity"
    assert "0x0099" in ouch.reject_reason_text(0x99)


def test_signed_and_price_options_decode():
    app = ouch.Appendage(peg_offset=-100, discretion_price=ouch.MARKET_PRICE,
                         customer_type=" ", firm="AB")
    raw = app.encode()
    assert raw == (bytes([5, 7]) + (-100).to_bytes(4, "big", signed=True)
                   + bytes([9, 9]) + (0x7FFFFFFF).to_bytes(8, "big")
                   + bytes([2, 4]) + b" " + bytes([5, 2]) + b"AB  ")
    back = ouch.Appendage.decode(raw, 0, len(raw))
    assert back == app and list(back) == list(app)


def test_unknown_option_tags_are_preserved():
    raw_app = bytes([3, 99, 0xAB, 0xCD, 2, 28, 9, 1, 200])
    raw = ouch.CancelOrderRequest(user_ref_num=9, quantity=0).encode()[:9]
    raw += len(raw_app).to_bytes(2, "big") + raw_app
    msg = ouch.decode_inbound(raw)
    assert list(msg.appendage.items()) == [("tag_99", b"\xab\xcd"), ("user_ref_idx", 9),
                                           ("tag_200", b"")]
    assert msg.encode() == raw
    assert msg.to_dict()["appendage"] == {"tag_99": "abcd", "user_ref_idx": 9, "tag_200": ""}
    assert list(ouch.iter_options(msg.appendage)) == [
        (99, "tag_99", b"\xab\xcd"), (28, "user_ref_idx", 9), (200, "tag_200", b"")]


# -- round trips ------------------------------------------------------------------

def _field_strategy(field):
    if field.is_alpha:
        if field.size == 1:
            return st.characters(min_codepoint=0x20, max_codepoint=0x7E)
        return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                       max_size=field.size).map(lambda s: s.rstrip(" "))
    lo, hi = field.int_range
    return st.integers(lo, hi)


def _option_strategy(spec):
    if spec.kind in ("uint", "price"):
        return st.integers(0, 2 ** (8 * spec.width) - 1)
    if spec.kind == "int":
        return st.integers(-(2 ** (8 * spec.width - 1)), 2 ** (8 * spec.width - 1) - 1)
    if spec.kind == "char":
        return st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                   max_size=spec.width).map(lambda s: s.rstrip(" "))


UNKNOWN_TAGS = [t for t in range(256) if t not in ouch.OPTIONS]


@st.composite
def appendages(draw):
    entries = draw(st.lists(
        st.one_of(st.sampled_from(sorted(ouch.OPTIONS)), st.sampled_from(UNKNOWN_TAGS)),
        max_size=8, unique=True))
    app = ouch.Appendage()
    for tag in entries:
        spec = ouch.OPTIONS.get(tag)
        if spec is None:
            app[f"tag_{tag}"] = draw(st.binary(max_size=12))
        else:
            app[spec.name] = draw(_option_strategy(spec))
    return app


@st.composite
def messages(draw, classes):
    cls = draw(st.sampled_from(classes))
    values = {f.name: draw(_field_strategy(f)) for f in cls.LAYOUT.fields}
    if cls.TAIL is not None:
        if cls.APPENDAGE_OPTIONAL and draw(st.booleans()):
            values["appendage"] = None
        else:
            values["appendage"] = draw(appendages())
    return cls(**values)


@settings(max_examples=400, deadline=None)
@given(messages(ouch.INBOUND_MESSAGES))
def test_inbound_round_trip(msg):
    raw = msg.encode()
    back = ouch.decode_inbound(raw)
    assert type(back) is type(msg) and back == msg
    assert back.encode() == raw


@settings(max_examples=400, deadline=None)
@given(messages(ouch.OUTBOUND_MESSAGES))
def test_outbound_round_trip(msg):
    raw = msg.encode()
    back = ouch.decode_outbound(raw)
    assert type(back) is type(msg) and back == msg
    assert back.encode() == raw
    if msg.TAIL is not None and msg.appendage is not None:
        assert int.from_bytes(raw[ouch.fixed_length(type(msg)) - 2:][:2], "big") == (
            len(raw) - ouch.fixed_length(type(msg)))


# -- bad input ---------------------------------------------------------------------

def _cancel_with(app_bytes, declared=None):
    head = ouch.CancelOrderRequest(user_ref_num=1, quantity=0).encode()[:9]
    n = len(app_bytes) if declared is None else declared
    return head + n.to_bytes(2, "big") + app_bytes


@pytest.mark.parametrize("raw,error", [
    (b"", TruncatedMessage),
    (b"Z", UnknownMessageType),
    (b"O" + b"\x00" * 10, TruncatedMessage),
    (_cancel_with(b"\x00\x1c"), BadLength),                  # element length 0
    (_cancel_with(b"\x05\x1c\x01"), BadLength),              # element runs past the end
    (_cancel_with(b"\x03\x1c\x01\x02"), BadLength),          # UserRefIdx is 1 byte, not 2
    (_cancel_with(b"\x01\x03"), BadLength),                  # MinQty with no value
    (_cancel_with(b"\x02\x1c\x01\x02\x1c\x02"), BadFieldValue),  # tag repeated
    (_cancel_with(b"\x02\x02\xff"), BadLength),              # Firm is 4 bytes
    (_cancel_with(b"\x05\x02AB\xe9D"), BadFieldValue),       # non-ASCII Firm
    (_cancel_with(b"\x02\x1c\x01", declared=5), TruncatedMessage),
    (_cancel_with(b"\x02\x1c\x01", declared=2), LengthMismatch),
    (b"S" + b"\x00" * 8 + b"S" + b"\x00", LengthMismatch),   # System Event has no appendage
])
def test_bad_messages_raise_specific_errors(raw, error):
    direction = "outbound" if raw[:1] == b"S" else "inbound"
    with pytest.raises(error) as info:
        _decode(direction, raw)
    assert isinstance(info.value, DecodeError)


def test_non_ascii_fixed_field_is_bad_field():
    raw = bytearray(ouch.MassCancelRequest(user_ref_num=1, firm="F", symbol="S").encode())
    raw[9] = 0xC3
    with pytest.raises(BadFieldValue):
        ouch.decode_inbound(bytes(raw))


def test_decode_or_count_counts_reasons():
    counts = {}
    assert ouch.OUCH_OUTBOUND.decode_or_count(b"?", counts) is None
    assert ouch.OUCH_INBOUND.decode_or_count(_cancel_with(b"\x00"), counts) is None
    assert counts == {"unknown_type": 1, "bad_length": 1}


@pytest.mark.parametrize("app", [
    {"no_such_option": 1},
    {"tag_3": b"\x00\x00\x00\x01"},        # tag 3 is min_qty: must use its name
    {"tag_300": b""},
    {"tag_99": "text"},
    {"tag_99": b"x" * 255},
    {"min_qty": -1},
    {"min_qty": 2 ** 32},
    {"min_qty": "1"},
    {"peg_offset": 2 ** 31},
    {"customer_type": "RN"},
    {"customer_type": ""},
    {"firm": "FIVE5"},
    {"firm": "\u00e9"},
    {"user_ref_idx": True},
])
def test_bad_appendage_values_are_refused(app):
    with pytest.raises(EncodeError):
        ouch.CancelOrderRequest(user_ref_num=1, quantity=0, appendage=app).encode()


def test_appendage_must_be_a_mapping():
    with pytest.raises(EncodeError):
        ouch.CancelOrderRequest(user_ref_num=1, quantity=0, appendage=[1, 2]).encode()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=90), st.sampled_from(["inbound", "outbound"]))
def test_garbage_is_rejected_or_decoded_exactly(junk, direction):
    try:
        msg = _decode(direction, junk)
    except DecodeError:
        return
    # Whatever is accepted must re-encode to the very same bytes.
    assert msg.encode() == junk


# -- riding on SoupBinTCP ----------------------------------------------------------

def test_decode_from_soup_stream():
    accepted = ouch.OrderAccepted(
        timestamp=1, user_ref_num=2, side="S", quantity=300, symbol="MSFT", price=4_100_000,
        time_in_force="0", display="Y", order_reference_number=77, capacity="A",
        intermarket_sweep_eligibility="N", cross_type="N", order_state="L",
        cl_ord_id="X1", appendage={"firm": "ZYNQ"})
    event = ouch.SystemEvent(timestamp=5, event_code="S")
    stream = (soup.LoginAccepted(session="S1", sequence_number=1).packet()
              + soup.SequencedData(message=event.encode()).packet()
              + soup.SequencedData(message=accepted.encode()).packet())
    framer = soup.SoupFramer(soup.SERVER)
    packets = framer.feed(stream[:40]) + framer.feed(stream[40:])
    assert [ouch.decode_from_soup(p) for p in packets] == [None, event, accepted]
    enter = ouch.AccountQueryRequest()
    assert ouch.decode_from_soup(soup.UnsequencedData(message=enter.encode())) == enter


def test_code_tables_are_one_character_codes():
    for table in (ouch.SIDES, ouch.TIME_IN_FORCE, ouch.DISPLAY, ouch.CAPACITY,
                  ouch.CROSS_TYPES, ouch.ORDER_STATES, ouch.EVENT_CODES,
                  ouch.CANCEL_REASONS, ouch.BROKEN_TRADE_REASONS, ouch.RESTATED_REASONS,
                  ouch.PRICE_TYPES, ouch.INTERMARKET_SWEEP):
        assert table and all(len(k) == 1 for k in table)
    assert set(ouch.EVENT_CODES) == {"S", "E"}
    assert ouch.CANCEL_REASONS["U"].startswith("User")
    assert all(0 < code <= 0xFFFF for code in ouch.REJECT_REASONS)


@settings(max_examples=300, deadline=None)
@given(messages(ouch.OUTBOUND_MESSAGES + ouch.INBOUND_MESSAGES),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 8))
def test_mutated_messages_are_rejected_or_decoded_exactly(msg, flips, cut):
    raw = bytearray(msg.encode())
    for pos, value in flips:
        if pos < len(raw):
            raw[pos] = value
    raw = bytes(raw[:len(raw) - cut])
    direction = "inbound" if type(msg) in ouch.INBOUND_MESSAGES else "outbound"
    try:
        back = _decode(direction, raw)
    except DecodeError:
        return
    assert back.encode() == raw
