"""SoupBinTCP 3.00 packets and the stream deframer."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.protocols import soupbintcp as soup
from host.protocols.errors import (
    BadFieldValue,
    DecodeError,
    EncodeError,
    LengthMismatch,
    TruncatedMessage,
    UnknownMessageType,
)

# The specification's packet tables, written out by hand: packet type ->
# (packet class name, total bytes on the wire including the 2-byte length,
# [(field, offset from the first byte of the length prefix, width)]).
SPEC = {
    "A": ("LoginAccepted", 33, [("session", 3, 10), ("sequence_number", 13, 20)]),
    "J": ("LoginRejected", 4, [("reject_reason_code", 3, 1)]),
    "H": ("ServerHeartbeat", 3, []),
    "Z": ("EndOfSession", 3, []),
    "L": ("LoginRequest", 49, [("username", 3, 6), ("password", 9, 10),
                               ("requested_session", 19, 10),
                               ("requested_sequence_number", 29, 20)]),
    "R": ("ClientHeartbeat", 3, []),
    "O": ("LogoutRequest", 3, []),
}
VARIABLE = {"+": "Debug", "S": "SequencedData", "U": "UnsequencedData"}
SERVER_TYPES = set("+AJSHZ")
CLIENT_TYPES = set("+LURO")


def test_registries_hold_exactly_the_spec_types_per_direction():
    assert {chr(t) for t in soup.SERVER_PACKETS.by_type} == SERVER_TYPES
    assert {chr(t) for t in soup.CLIENT_PACKETS.by_type} == CLIENT_TYPES
    assert {chr(t) for t in soup.ALL_PACKETS.by_type} == SERVER_TYPES | CLIENT_TYPES


@pytest.mark.parametrize("type_code", sorted(SPEC))
def test_fixed_packet_layout_matches_spec(type_code):
    class_name, total, fields = SPEC[type_code]
    cls = getattr(soup, class_name)
    assert cls.TYPE == type_code
    declared = {f.name: (f.offset + 2, f.size) for f in cls.LAYOUT.fields}
    assert declared == {name: (off, width) for name, off, width in fields}
    assert cls.LAYOUT.size + 2 == total


def test_login_request_bytes_match_hand_built_packet():
    pkt = soup.LoginRequest(username="TRDR1", password="s3cret", requested_session="",
                            requested_sequence_number=1)
    expected = (b"\x00\x2f" + b"L" + b"TRDR1 " + b"s3cret    " + b" " * 10
                + b" " * 19 + b"1")
    assert pkt.packet() == expected
    assert len(expected) == SPEC["L"][1]
    assert soup.decode_packet(expected, soup.CLIENT) == pkt


def test_login_accepted_right_justifies_session_and_number():
    raw = b"\x00\x1f" + b"A" + b"  SESSION1" + b" " * 14 + b"123456"
    pkt = soup.decode_packet(raw, soup.SERVER)
    assert isinstance(pkt, soup.LoginAccepted)
    assert pkt.session == "SESSION1"
    assert pkt.sequence_number == 123456
    assert pkt.packet() == raw


def test_left_justified_numbers_are_accepted():
    raw = b"\x00\x1f" + b"A" + b"SESSION1  " + b"42" + b" " * 18
    pkt = soup.decode_packet(raw)
    assert (pkt.session, pkt.sequence_number) == ("SESSION1", 42)


@pytest.mark.parametrize("pkt,raw", [
    (soup.LoginRejected(reject_reason_code="A"), b"\x00\x02JA"),
    (soup.ServerHeartbeat(), b"\x00\x01H"),
    (soup.EndOfSession(), b"\x00\x01Z"),
    (soup.ClientHeartbeat(), b"\x00\x01R"),
    (soup.LogoutRequest(), b"\x00\x01O"),
    (soup.SequencedData(message=b"\x00\xffOUCH"), b"\x00\x07S\x00\xffOUCH"),
    (soup.UnsequencedData(message=b""), b"\x00\x01U"),
    (soup.Debug(text="hello"), b"\x00\x06+hello"),
])
def test_small_packets_golden(pkt, raw):
    assert soup.encode_packet(pkt) == raw
    assert soup.decode_packet(raw) == pkt


def test_reject_reason_codes():
    assert set(soup.LOGIN_REJECT_REASONS) == {"A", "S"}


# -- round trips ------------------------------------------------------------------

def _ascii(max_size, min_size=0):
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                   min_size=min_size, max_size=max_size)


SEQ = st.integers(0, 10**20 - 1)
PACKETS = st.one_of(
    st.builds(soup.Debug, text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                       max_size=40)),
    st.builds(soup.LoginAccepted, session=_ascii(10), sequence_number=SEQ),
    st.builds(soup.LoginRejected, reject_reason_code=st.sampled_from("AS")),
    st.builds(soup.SequencedData, message=st.binary(max_size=80)),
    st.builds(soup.ServerHeartbeat),
    st.builds(soup.EndOfSession),
    st.builds(soup.LoginRequest, username=_ascii(6), password=_ascii(10),
              requested_session=_ascii(10), requested_sequence_number=SEQ),
    st.builds(soup.UnsequencedData, message=st.binary(max_size=80)),
    st.builds(soup.ClientHeartbeat),
    st.builds(soup.LogoutRequest),
)


@settings(max_examples=300, deadline=None)
@given(PACKETS)
def test_every_packet_round_trips(pkt):
    raw = pkt.packet()
    assert int.from_bytes(raw[:2], "big") == len(raw) - 2
    assert raw[2] == ord(pkt.TYPE)
    direction = soup.SERVER if pkt.TYPE in SERVER_TYPES else soup.CLIENT
    back = soup.decode_packet(raw, direction)
    assert type(back) is type(pkt)
    assert back == pkt
    assert back.packet() == raw


# -- bad input ---------------------------------------------------------------------

def test_direction_is_enforced():
    login = soup.LoginRequest(username="u", password="p", requested_session="",
                              requested_sequence_number=0).packet()
    with pytest.raises(UnknownMessageType):
        soup.decode_packet(login, soup.SERVER)
    accepted = soup.LoginAccepted(session="S", sequence_number=1).packet()
    with pytest.raises(UnknownMessageType):
        soup.decode_packet(accepted, soup.CLIENT)
    debug = soup.Debug(text="x").packet()
    assert soup.decode_packet(debug, soup.SERVER) == soup.decode_packet(debug, soup.CLIENT)
    with pytest.raises(ValueError):
        soup.decode_packet(debug, "sideways")


@pytest.mark.parametrize("raw,error", [
    (b"", TruncatedMessage),
    (b"\x00", TruncatedMessage),
    (b"\x00\x00", soup.FramingError),
    (b"\x00\x05H", TruncatedMessage),               # length says more than there is
    (b"\x00\x01HH", LengthMismatch),                # trailing byte after the packet
    (b"\x00\x02HX", LengthMismatch),                # heartbeat with a payload
    (b"\x00\x01Q", UnknownMessageType),
    (b"\x00\x02J", TruncatedMessage),
    (b"\x00\x1fA" + b"S" * 10 + b" " * 19 + b"x", BadFieldValue),   # non-digit number
    (b"\x00\x1fA" + b"S" * 10 + b" " * 20, BadFieldValue),          # blank number
    (b"\x00\x1fA" + b"S" * 9 + b"\xe9" + b" " * 19 + b"1", BadFieldValue),
    (b"\x00\x1eA" + b"S" * 10 + b" " * 18 + b"1", TruncatedMessage),
    (b"\x00\x03+\xff\xfe", BadFieldValue),           # non-ASCII debug text
])
def test_bad_packets_raise_specific_errors(raw, error):
    with pytest.raises(error) as info:
        soup.decode_packet(raw)
    assert isinstance(info.value, DecodeError)


@pytest.mark.parametrize("make", [
    lambda: soup.LoginAccepted(session="S", sequence_number=10**20),
    lambda: soup.LoginAccepted(session="S", sequence_number=-1),
    lambda: soup.LoginAccepted(session="S", sequence_number="1"),
    lambda: soup.LoginAccepted(session="ELEVENCHARS", sequence_number=1),
    lambda: soup.LoginRequest(username="toolong", password="", requested_session="",
                              requested_sequence_number=0),
    lambda: soup.SequencedData(message="text, not bytes"),
    lambda: soup.Debug(text="caf\u00e9"),
    lambda: soup.SequencedData(message=b"x" * 0xFFFF),
])
def test_encode_refuses_bad_values(make):
    with pytest.raises(EncodeError):
        make().packet()


# -- stream deframing --------------------------------------------------------------

@st.composite
def stream_and_cuts(draw):
    pkts = draw(st.lists(PACKETS, min_size=0, max_size=25))
    raw = b"".join(p.packet() for p in pkts)
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    return pkts, raw, cuts


@settings(max_examples=200, deadline=None)
@given(stream_and_cuts())
def test_framer_yields_exactly_the_packets_for_any_split(case):
    pkts, raw, cuts = case
    framer = soup.SoupFramer()
    got = []
    prev = 0
    for cut in cuts + [len(raw)]:
        got += framer.feed(raw[prev:cut])
        prev = cut
    assert got == pkts
    assert [type(p) for p in got] == [type(p) for p in pkts]
    assert framer.pending == 0
    assert framer.packets == len(pkts)
    assert framer.counts == {}


def test_framer_byte_at_a_time_and_pending():
    pkts = [soup.LoginAccepted(session="ZYNQMM0001", sequence_number=1),
            soup.SequencedData(message=b"abc"), soup.ServerHeartbeat()]
    raw = b"".join(p.packet() for p in pkts)
    framer = soup.SoupFramer(soup.SERVER)
    got = []
    pendings = []
    for i in range(len(raw)):
        got += framer.feed(raw[i:i + 1])
        pendings.append(framer.pending)
    assert got == pkts
    assert pendings[0] == 1 and pendings[32] == 0       # after the 33-byte login
    assert pendings[-1] == 0


def test_framer_counts_and_skips_bad_packets():
    good1 = soup.SequencedData(message=b"one")
    good2 = soup.SequencedData(message=b"two")
    unknown = b"\x00\x02Qx"
    wrong_direction = soup.ClientHeartbeat().packet()
    bad_number = b"\x00\x1fA" + b"S" * 10 + b"x" * 20
    stream = (good1.packet() + unknown + wrong_direction + bad_number + good2.packet())
    seen = []
    framer = soup.SoupFramer(soup.SERVER, on_error=seen.append)
    assert framer.feed(stream) == [good1, good2]
    assert framer.counts == {"unknown_type": 2, "bad_field": 1}
    assert len(seen) == 3 and all(isinstance(e, DecodeError) for e in seen)


def test_framer_raise_mode_keeps_earlier_packets():
    good1 = soup.SequencedData(message=b"one")
    good2 = soup.ServerHeartbeat()
    framer = soup.SoupFramer(soup.SERVER, errors="raise")
    with pytest.raises(UnknownMessageType):
        framer.feed(good1.packet() + b"\x00\x01?" + good2.packet())
    assert framer.counts == {"unknown_type": 1}
    # The bad packet is consumed; what came before it and after it follows.
    assert framer.feed(b"") == [good1, good2]


@pytest.mark.parametrize("prefix", [b"\x00\x00", b"\x10\x01"])
def test_framing_error_stops_the_stream(prefix):
    good = soup.ServerHeartbeat()
    framer = soup.SoupFramer(max_packet_length=4096)
    with pytest.raises(soup.FramingError):
        framer.feed(good.packet() + prefix + b"junk")
    assert framer.counts == {"bad_length": 1}
    assert framer.failed is not None
    assert framer.pending == 0
    assert framer.feed(b"") == [good]          # the packet before the break
    assert framer.feed(good.packet()) == []    # nothing after it is trusted
    assert framer.discarded_bytes == len(prefix) + 4 + 3
    framer.reset()
    assert framer.feed(good.packet()) == [good]


def test_framer_split_length_prefix_of_oversize_packet():
    framer = soup.SoupFramer(max_packet_length=100)
    assert framer.feed(b"\x00") == []
    with pytest.raises(soup.FramingError):
        framer.feed(b"\x65")      # 101 > 100


def test_framer_parameters_are_checked():
    with pytest.raises(ValueError):
        soup.SoupFramer(errors="ignore")
    with pytest.raises(ValueError):
        soup.SoupFramer(max_packet_length=0)
    with pytest.raises(ValueError):
        soup.SoupFramer(direction="both")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_framer_never_crashes_on_garbage(junk):
    framer = soup.SoupFramer()
    try:
        out = framer.feed(junk)
    except soup.FramingError:
        out = framer.feed(b"")
    assert all(isinstance(p, soup.SoupPacket) for p in out)
    assert framer.pending <= len(junk)


# -- cross-check with Wireshark's SoupBinTCP dissector ------------------------------

@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_wireshark_dissects_our_packets_the_same_way(tmp_path):
    from scapy.all import IP, TCP, Ether, wrpcap

    client = [soup.LoginRequest(username="TRDR1", password="pw", requested_session="",
                                requested_sequence_number=7),
              soup.Debug(text="hello"), soup.UnsequencedData(message=b"Q\x00\x00"),
              soup.ClientHeartbeat(), soup.LogoutRequest()]
    server = [soup.LoginAccepted(session="ZYNQMM0001", sequence_number=12345),
              soup.SequencedData(message=b"S" + bytes(9)), soup.ServerHeartbeat(),
              soup.LoginRejected(reject_reason_code="S"), soup.EndOfSession()]
    cs = b"".join(p.packet() for p in client)
    ss = b"".join(p.packet() for p in server)
    c2s = dict(src="10.0.0.1", dst="10.0.0.2")
    s2c = dict(src="10.0.0.2", dst="10.0.0.1")
    frames = [  # the client stream split mid-packet, to exercise reassembly
        Ether() / IP(**c2s) / TCP(sport=40000, dport=15000, flags="PA", seq=1000) / cs[:20],
        Ether() / IP(**c2s) / TCP(sport=40000, dport=15000, flags="PA", seq=1020) / cs[20:],
        Ether() / IP(**s2c) / TCP(sport=15000, dport=40000, flags="PA", seq=5000) / ss]
    path = tmp_path / "soup.pcap"
    wrpcap(str(path), frames)
    text = subprocess.run(
        ["tshark", "-r", str(path), "-d", "tcp.port==15000,soupbintcp", "-V"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    dissected = re.findall(
        r"^SoupBinTCP, .*\n    Packet Length: (\d+)\n    Packet Type: .*\('(.)'\)$",
        text, flags=re.M)
    assert [(int(n), t) for n, t in dissected] == [
        (len(p.encode()), p.TYPE) for p in client + server]
    for line in ("User Name: TRDR1 ", "Requested sequence number: 7",
                 "Session: ZYNQMM0001", "Next sequence number: 12345",
                 "Debug Text: hello", "Message: 510000",
                 "Login Reject Code: Session not available ('S')"):
        assert line in text, line
