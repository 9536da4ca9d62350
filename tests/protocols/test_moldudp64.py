"""MoldUDP64 framing: known bytes, round trips, every kind of bad packet."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.protocols import moldudp64 as mold
from host.protocols.errors import (
    BadFieldValue,
    BadLength,
    DecodeError,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
)
from host.protocols.moldudp64 import MoldPacket, decode_packet, encode_packet

SESSION = "ZYNQMM0001"
SESSION_HEX = "5a594e514d4d30303031"


def test_constants():
    assert mold.HEADER_SIZE == 20
    assert mold.MAX_UDP_PAYLOAD == 1400
    assert mold.END_OF_SESSION_COUNT == 0xFFFF
    assert mold.MAX_MESSAGES_PER_PACKET == 0xFFFE


def test_known_data_packet_bytes():
    raw = bytes.fromhex(
        SESSION_HEX
        + "0000000000000065"   # sequence number 101
        + "0002"               # two messages
        + "0003" + "414243"    # "ABC"
        + "0001" + "5a"        # "Z"
    )
    pkt = decode_packet(raw)
    assert pkt.session == SESSION
    assert pkt.sequence_number == 101
    assert pkt.messages == [b"ABC", b"Z"]
    assert pkt.kind == "data"
    assert pkt.message_count == 2
    assert pkt.next_sequence_number == 103
    assert list(pkt.iter_messages()) == [(101, 0, b"ABC"), (102, 1, b"Z")]
    assert pkt.encode() == raw
    assert encode_packet(SESSION, 101, [b"ABC", b"Z"]) == raw
    assert pkt.encoded_size == len(raw)


def test_known_heartbeat_and_end_of_session_bytes():
    hb = bytes.fromhex(SESSION_HEX + "00000000000003e8" + "0000")
    pkt = decode_packet(hb)
    assert (pkt.kind, pkt.sequence_number, pkt.messages) == ("heartbeat", 1000, [])
    assert MoldPacket.heartbeat(SESSION, 1000).encode() == hb

    eos = bytes.fromhex(SESSION_HEX + "00000000000003e8" + "ffff")
    pkt = decode_packet(eos)
    assert (pkt.kind, pkt.sequence_number, pkt.messages) == ("end_of_session", 1000, [])
    assert pkt.message_count == 0xFFFF
    assert MoldPacket.end_of_session_packet(SESSION, 1000).encode() == eos


def test_short_session_is_space_padded():
    raw = encode_packet("AB", 1, [b"x"])
    assert raw[:10] == b"AB        "
    assert decode_packet(raw).session == "AB"


def test_decodes_from_numpy_and_memoryview_at_an_offset():
    raw = encode_packet(SESSION, 7, [b"\x01" * 300, b"\x02"])
    buf = np.frombuffer(b"\xee" * 5 + raw + b"\xee" * 3, dtype=np.uint8)
    for view in (buf, memoryview(buf.tobytes())):
        pkt = decode_packet(view, 5, 5 + len(raw))
        assert pkt.messages == [b"\x01" * 300, b"\x02"]
        assert pkt.sequence_number == 7


# -- round trips ------------------------------------------------------------------
sessions = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)
seqs = st.integers(0, 2**64 - 1)
messages = st.lists(st.binary(min_size=1, max_size=80), max_size=20)


@settings(max_examples=200, deadline=None)
@given(sessions, seqs, messages, st.booleans())
def test_packet_round_trip(session, seq, msgs, eos):
    eos = eos and not msgs
    pkt = MoldPacket(session, seq, msgs, end_of_session=eos)
    raw = pkt.encode()
    assert len(raw) == mold.encoded_size(msgs)
    back = decode_packet(raw)
    assert back == pkt
    assert back.kind == ("end_of_session" if eos else "data" if msgs else "heartbeat")


@settings(max_examples=100, deadline=None)
@given(sessions, seqs, st.integers(0, 0xFFFF))
def test_request_round_trip(session, seq, count):
    raw = mold.encode_request(session, seq, count)
    assert len(raw) == 20
    req = mold.decode_request(raw)
    assert (req.session, req.sequence_number, req.requested_message_count) == (session, seq, count)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=60),
       st.integers(60, 1400))
def test_pack_messages_fills_packets_in_order(msgs, max_payload):
    msgs = [m[: max_payload - 22] for m in msgs]
    packets = list(mold.pack_messages(SESSION, 1, msgs, max_payload))
    assert [m for p in packets for m in p.messages] == msgs
    seq = 1
    for i, p in enumerate(packets):
        assert p.sequence_number == seq
        seq = p.next_sequence_number
        assert len(p.encode()) <= max_payload
        if i + 1 < len(packets):  # the next message did not fit
            nxt = packets[i + 1].messages[0]
            assert p.encoded_size + 2 + len(nxt) > max_payload


def test_request_bad_length():
    raw = mold.encode_request(SESSION, 5, 10)
    with pytest.raises(TruncatedMessage):
        mold.decode_request(raw[:-1])
    with pytest.raises(LengthMismatch):
        mold.decode_request(raw + b"\x00")


# -- bad packets ------------------------------------------------------------------
def _header(count, seq=1, session=SESSION):
    return session.encode().ljust(10) + seq.to_bytes(8, "big") + count.to_bytes(2, "big")


def test_header_truncated():
    for n in (0, 1, 19):
        with pytest.raises(mold.HeaderTruncated) as info:
            decode_packet(_header(1)[:n])
        assert info.value.reason == "truncated"


def test_block_length_past_the_end():
    with pytest.raises(mold.BlockPastEnd) as info:
        decode_packet(_header(1) + b"\x00\x05abc")
    assert info.value.reason == "block_past_end"
    assert isinstance(info.value, BadLength)
    with pytest.raises(mold.BlockPastEnd):  # length prefix itself cut in half
        decode_packet(_header(2) + b"\x00\x01a" + b"\x00")


def test_zero_length_block():
    with pytest.raises(mold.ZeroLengthBlock) as info:
        decode_packet(_header(2) + b"\x00\x01a" + b"\x00\x00")
    assert info.value.reason == "zero_length_block"


def test_count_mismatch():
    with pytest.raises(mold.CountMismatch):  # announces 3, holds 2
        decode_packet(_header(3) + b"\x00\x01a" + b"\x00\x01b")
    with pytest.raises(mold.CountMismatch):  # announces 1, holds 2
        decode_packet(_header(1) + b"\x00\x01a" + b"\x00\x01b")
    with pytest.raises(mold.CountMismatch):  # a heartbeat carrying a block
        decode_packet(_header(0) + b"\x00\x01a")


def test_trailing_bytes():
    with pytest.raises(mold.TrailingBytes) as info:
        decode_packet(_header(1) + b"\x00\x01a" + b"\x07")
    assert info.value.reason == "trailing_bytes"
    with pytest.raises(mold.TrailingBytes):
        decode_packet(_header(0xFFFF) + b"\x00\x00")


def test_non_ascii_session():
    raw = bytearray(encode_packet(SESSION, 1, [b"a"]))
    raw[3] = 0x80
    with pytest.raises(BadFieldValue):
        decode_packet(bytes(raw))


def test_tolerant_iterator_yields_good_and_counts_drops():
    good1 = encode_packet(SESSION, 1, [b"a", b"b"])
    good2 = encode_packet(SESSION, 3, [b"c"])
    hb = encode_packet(SESSION, 4)
    payloads = [
        good1,
        good1[:10],                                   # truncated
        _header(1) + b"\x00\x09a",                    # block past end
        _header(1) + b"\x00\x00",                     # zero-length block
        _header(2) + b"\x00\x01a",                    # count mismatch
        good2 + b"\xff",                              # trailing bytes
        b"\xff" + good2[1:],                          # non-ASCII session
        good2,
        hb,
    ]
    counts: dict[str, int] = {}
    got = list(mold.iter_packets(payloads, counts))
    assert [i for i, _ in got] == [0, 7, 8]
    assert [p.messages for _, p in got] == [[b"a", b"b"], [b"c"], []]
    assert counts == {"truncated": 1, "block_past_end": 1, "zero_length_block": 1,
                      "count_mismatch": 1, "trailing_bytes": 1, "bad_field": 1}
    assert set(counts) == set(mold.DROP_REASONS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(raw):
    try:
        pkt = decode_packet(raw)
    except DecodeError:
        return
    assert pkt.encode() == raw


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5), st.data())
def test_any_single_byte_corruption_is_decoded_or_rejected(msgs, data):
    raw = bytearray(encode_packet(SESSION, 42, msgs))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    try:
        pkt = decode_packet(bytes(raw))
    except DecodeError:
        return
    assert pkt.encode() == bytes(raw)


# -- encoding refusals ---------------------------------------------------------------
def test_encode_refuses_too_many_messages():
    with pytest.raises(EncodeError):
        encode_packet(SESSION, 1, [b"x"] * 0xFFFF)
    assert len(encode_packet(SESSION, 1, [b"x"] * 0xFFFE)) == 20 + 3 * 0xFFFE


def test_encode_refuses_long_and_empty_messages():
    with pytest.raises(EncodeError):
        encode_packet(SESSION, 1, [b"\x00" * 0x10000])
    assert decode_packet(encode_packet(SESSION, 1, [b"\x00" * 0xFFFF])).messages[0] == b"\x00" * 0xFFFF
    with pytest.raises(EncodeError):
        encode_packet(SESSION, 1, [b"a", b""])


def test_encode_refuses_bad_header_values():
    with pytest.raises(EncodeError):
        encode_packet("ELEVENCHARS", 1, [b"a"])
    with pytest.raises(EncodeError):
        encode_packet(SESSION, 2**64, [b"a"])
    with pytest.raises(EncodeError):
        encode_packet(SESSION, 1, [b"a"], end_of_session=True)
    with pytest.raises(EncodeError):
        list(mold.pack_messages(SESSION, 1, [b"a" * 1379]))
