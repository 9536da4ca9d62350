"""Frame parsing and building against scapy's dissectors and builders."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw, bind_bottom_up

from host.pcap.frames import (
    DEFAULT_SRC_MAC,
    DEFAULT_UNICAST_DST_MAC,
    REJECT_REASONS,
    Frame,
    VlanTag,
    build_tcp_frame,
    build_udp_frame,
    internet_checksum,
    ip_to_int,
    ip_to_str,
    multicast_mac,
    parse_frame,
)

SRC, DST = "10.20.30.40", "233.54.12.1"

# Scapy dissects 0x8100 and 0x88a8 tags but not the legacy Q-in-Q TPID 0x9100
# (bound for dissection only, so scapy still builds 0x8100 by default).
bind_bottom_up(Ether, Dot1Q, type=0x9100)
bind_bottom_up(Dot1Q, Dot1Q, type=0x9100)


def _udp(payload=b"hello itch", **ip):
    return IP(src=SRC, dst=DST, **ip) / UDP(sport=26400, dport=26401) / Raw(payload)


def _tags_of(pkt) -> list[tuple[int, int, int]]:
    """(tpid, pcp, vid) of each tag, as scapy dissects it."""
    out = []
    layer, tpid = pkt[Ether].payload, pkt[Ether].type
    while isinstance(layer, (Dot1Q, Dot1AD)):
        out.append((tpid, layer.prio, layer.vlan))
        tpid, layer = layer.type, layer.payload
    return out


ACCEPTED_UDP = {
    "untagged": Ether(src="00:11:22:33:44:55", dst="01:00:5e:36:0c:01") / _udp(),
    "one_tag": Ether() / Dot1Q(vlan=100, prio=5) / _udp(b"x" * 300),
    "qinq_88a8": Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / _udp(b""),
    "qinq_8100": Ether() / Dot1Q(vlan=4094) / Dot1Q(vlan=1) / _udp(b"\x00" * 7),
    "qinq_9100": Ether(type=0x9100) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / _udp(b"odd"),
    "ip_options": Ether() / IP(src=SRC, dst=DST, options=[IPOption_RR()]) / UDP(sport=1, dport=2) / Raw(b"opt"),
    "padded_min_frame": Ether() / _udp(b"ab") / Raw(b"\x00" * 20),  # trailer after IP total length
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_UDP))
def test_udp_fields_match_scapy(name):
    pkt = ACCEPTED_UDP[name]
    raw = bytes(pkt)
    dissected = Ether(raw)
    frame = parse_frame(raw)
    assert isinstance(frame, Frame), frame
    assert [(t.tpid, t.pcp, t.vid) for t in frame.vlans] == _tags_of(dissected)
    assert frame.src_mac == bytes.fromhex(dissected.src.replace(":", ""))
    assert frame.dst_mac == bytes.fromhex(dissected.dst.replace(":", ""))
    assert frame.ethertype == 0x0800
    assert ip_to_str(frame.src_ip) == dissected[IP].src
    assert ip_to_str(frame.dst_ip) == dissected[IP].dst
    assert frame.ip_proto == 17
    assert (frame.src_port, frame.dst_port) == (dissected[UDP].sport, dissected[UDP].dport)
    assert frame.payload == bytes(dissected[UDP].payload)[:dissected[UDP].len - 8]
    assert frame.tcp_seq is None and frame.tcp_flags is None
    assert frame.ip_id == dissected[IP].id and frame.ttl == dissected[IP].ttl


def test_tcp_fields_match_scapy():
    pkt = (Ether() / Dot1Q(vlan=7) / IP(src="10.1.1.1", dst="10.1.1.2")
           / TCP(sport=40000, dport=15000, seq=0xFFFFFFF0, ack=12345, flags="PA",
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / Raw(b"\x00\x0bU" + b"order-entry"))
    frame = parse_frame(bytes(pkt))
    assert isinstance(frame, Frame)
    assert frame.ip_proto == 6
    assert (frame.src_port, frame.dst_port) == (40000, 15000)
    assert frame.tcp_seq == 0xFFFFFFF0 and frame.tcp_ack == 12345
    assert frame.tcp_flags == int(pkt[TCP].flags) == 0x18
    assert frame.payload == b"\x00\x0bU" + b"order-entry"
    assert frame.vlan_ids == (7,)


def test_other_ip_protocol_is_accepted_with_ip_payload():
    pkt = Ether() / IP(src=SRC, dst="10.0.0.1") / ICMP(type=8) / Raw(b"ping")
    frame = parse_frame(bytes(pkt))
    assert isinstance(frame, Frame)
    assert frame.ip_proto == 1 and frame.src_port is None
    assert frame.payload == bytes(pkt[ICMP])


def _bad_udp_length_frame() -> bytes:
    raw = bytearray(bytes(Ether() / _udp(b"12345678")))
    struct.pack_into("!H", raw, 14 + 20 + 4, 200)  # UDP length beyond the IP payload
    return bytes(raw)


def _bad_tcp_offset_frame() -> bytes:
    raw = bytearray(bytes(Ether() / IP(src=SRC, dst=DST) / TCP() / Raw(b"abc")))
    raw[14 + 20 + 12] = 0x40  # data offset 4 words < 5
    return bytes(raw)


def _ip_total_length(value: int) -> bytes:
    pkt = Ether() / IP(src=SRC, dst=DST, len=value) / UDP() / Raw(b"abcd")
    return bytes(pkt)


REJECTED = {
    "arp": (Ether() / ARP(), "not_ipv4"),
    "ipv6": (Ether() / IPv6() / UDP() / Raw(b"x"), "not_ipv4"),
    "tagged_arp": (Ether() / Dot1Q(vlan=5) / ARP(), "not_ipv4"),
    "three_tags": (Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / _udp(), "too_many_vlans"),
    "bad_ip_checksum": (Ether() / _udp(chksum=0x1234), "bad_ip_checksum"),
    "ip_version_6_in_v4_type": (Ether(type=0x0800) / IPv6() / UDP(), "bad_ip_header"),
    "more_fragments": (Ether() / _udp(flags="MF"), "ip_fragment"),
    "fragment_offset": (Ether() / _udp(frag=10), "ip_fragment"),
    "bad_udp_length": (_bad_udp_length_frame(), "bad_udp_length"),
    "ip_length_past_frame": (_ip_total_length(500), "truncated"),
    "ip_length_below_header": (_ip_total_length(12), "bad_ip_length"),
    "bad_tcp_offset": (_bad_tcp_offset_frame(), "bad_tcp_header"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejection_reasons(name):
    pkt, reason = REJECTED[name]
    assert reason in REJECT_REASONS
    assert parse_frame(bytes(pkt)) == reason


def test_real_fragments_are_rejected():
    frags = fragment(Ether() / IP(src=SRC, dst=DST) / UDP(sport=1, dport=2) / Raw(b"z" * 3000),
                     fragsize=1000)
    assert len(frags) >= 3
    assert [parse_frame(bytes(f)) for f in frags] == ["ip_fragment"] * len(frags)


def test_checksum_verification_can_be_disabled():
    raw = bytes(Ether() / _udp(chksum=0))
    assert parse_frame(raw) == "bad_ip_checksum"
    assert isinstance(parse_frame(raw, verify_checksum=False), Frame)


def test_every_cut_of_a_tagged_frame_is_truncated():
    raw = bytes(Ether() / Dot1Q(vlan=9) / Dot1Q(vlan=10) / _udp(b"payload!"))
    for cut in range(len(raw)):
        assert parse_frame(raw[:cut]) == "truncated", cut
    assert isinstance(parse_frame(raw), Frame)


def _scapy_recomputed(raw: bytes) -> bytes:
    pkt = Ether(raw)
    del pkt[IP].chksum
    if UDP in pkt:
        del pkt[UDP].chksum
    if TCP in pkt:
        del pkt[TCP].chksum
    return bytes(pkt)


@pytest.mark.parametrize("vlans", [(), (100,), (10, 20)])
@pytest.mark.parametrize("payload", [b"", b"a", b"itch message", bytes(range(256)) * 5])
def test_build_udp_frame_matches_scapy(vlans, payload):
    raw = build_udp_frame(payload, SRC, DST, 26400, 26401, vlans=vlans, ip_id=77)
    assert raw == _scapy_recomputed(raw)
    pkt = Ether(raw)
    assert [layer.vlan for layer in (pkt.getlayer(Dot1Q, i) for i in (1, 2)) if layer] == list(vlans)
    assert pkt.dst == "01:00:5e:36:0c:01"
    assert pkt.src == "02:00:00:00:00:01"
    assert pkt[IP].ttl == 64 and pkt[IP].flags == 0 and pkt[IP].id == 77
    assert bytes(pkt[UDP].payload) == payload


def test_build_udp_frame_equals_scapy_construction():
    raw = build_udp_frame(b"abc", SRC, DST, 5, 6, vlans=(300,), ip_id=9)
    ref = (Ether(dst="01:00:5e:36:0c:01", src="02:00:00:00:00:01") / Dot1Q(vlan=300)
           / IP(src=SRC, dst=DST, id=9, ttl=64, flags=0) / UDP(sport=5, dport=6) / Raw(b"abc"))
    assert raw == bytes(ref)


def test_build_unicast_and_explicit_macs():
    raw = build_udp_frame(b"x", SRC, "10.0.0.9", 1, 2)
    assert raw[:6] == DEFAULT_UNICAST_DST_MAC and raw[6:12] == DEFAULT_SRC_MAC
    raw = build_udp_frame(b"x", SRC, DST, 1, 2, src_mac=b"\xaa" * 6, dst_mac=b"\xbb" * 6)
    assert raw[:12] == b"\xbb" * 6 + b"\xaa" * 6
    assert multicast_mac(ip_to_int("239.255.128.1")) == bytes.fromhex("01005e7f8001")


def test_build_tcp_frame_matches_scapy():
    raw = build_tcp_frame(b"\x00\x05Uhey!", "10.0.0.1", "10.0.0.2", 40000, 15000, seq=2**32 + 5,
                          ack=99, flags=0x18, vlans=(5, 6))
    assert raw == _scapy_recomputed(raw)
    frame = parse_frame(raw)
    assert isinstance(frame, Frame)
    assert frame.tcp_seq == 5 and frame.tcp_ack == 99 and frame.tcp_flags == 0x18
    assert frame.payload == b"\x00\x05Uhey!"


def test_builder_rejects_bad_arguments():
    with pytest.raises(ValueError):
        build_udp_frame(b"", SRC, DST, 1, 2, vlans=(1, 2, 3))
    with pytest.raises(ValueError):
        build_udp_frame(b"", SRC, DST, 1, 2, vlans=(4096,))
    with pytest.raises(ValueError):
        build_udp_frame(b"x" * 65508, SRC, DST, 1, 2)
    with pytest.raises(ValueError):
        ip_to_int(2**32)


def test_internet_checksum_known_value():
    # RFC 1071's worked example: words 0001 f203 f4f5 f6f7 sum to ddf2 (after
    # the end-around carry), so the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2) & 0xFFFF


@settings(max_examples=60)
@given(payload=st.binary(max_size=600),
       src_ip=st.integers(0, 2**32 - 1), dst_ip=st.integers(0, 2**32 - 1),
       src_port=st.integers(0, 65535), dst_port=st.integers(0, 65535),
       vlans=st.lists(st.builds(VlanTag, st.sampled_from([0x8100, 0x88A8, 0x9100]),
                                st.integers(0, 7), st.integers(0, 1), st.integers(0, 4095)),
                      max_size=2),
       ip_id=st.integers(0, 65535))
def test_build_parse_round_trip(payload, src_ip, dst_ip, src_port, dst_port, vlans, ip_id):
    raw = build_udp_frame(payload, src_ip, dst_ip, src_port, dst_port, vlans=vlans, ip_id=ip_id)
    frame = parse_frame(raw)
    assert isinstance(frame, Frame)
    assert frame.vlans == tuple(vlans)
    assert (frame.src_ip, frame.dst_ip, frame.src_port, frame.dst_port) == (src_ip, dst_ip, src_port, dst_port)
    assert frame.payload == payload and frame.ip_id == ip_id
    assert raw == _scapy_recomputed(raw)
