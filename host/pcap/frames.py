"""Ethernet II / 802.1Q / IPv4 / UDP / TCP frames, parsed and built in Python.

This is the general (slow) path used for inspection and for the order-entry
TCP streams: :func:`parse_frame` turns one captured Ethernet frame into a
:class:`Frame` or names why it was rejected, and :func:`build_udp_frame` /
:func:`build_tcp_frame` make complete frames with correct checksums.  The
market-data fast path (``host.pcap.fast``) applies the same acceptance rules in
numba; both use the reason names in :data:`REJECT_REASONS` as counter keys.

IPv4 addresses are handled as ``int`` values (the host-order value of the
dotted quad), the same representation as the ``UdpBatch`` arrays.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

ETHERTYPE_IPV4 = 0x0800
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
TPID_QINQ_LEGACY = 0x9100
VLAN_TPIDS = (TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY)
MAX_VLAN_TAGS = 2

IPPROTO_TCP = 6
IPPROTO_UDP = 17

ETH_HEADER_LEN = 14
VLAN_TAG_LEN = 4
IPV4_MIN_HEADER_LEN = 20
UDP_HEADER_LEN = 8
TCP_MIN_HEADER_LEN = 20
# IPv4 total length is 16 bits: 65535 - 20 (IP) - 8 (UDP).
MAX_UDP_PAYLOAD = 65507

IP_FLAG_MF = 0x2000
IP_FRAGMENT_OFFSET_MASK = 0x1FFF

# Locally administered unicast addresses (bit 1 of the first octet set) so
# built frames never collide with a real vendor's MAC.
DEFAULT_SRC_MAC = bytes.fromhex("020000000001")
DEFAULT_UNICAST_DST_MAC = bytes.fromhex("020000000002")

# Reasons a frame is not accepted.  The numba fast path counts the same names
# (by index into this tuple), so the order here is part of that contract.
REJECT_REASONS = (
    "truncated",        # shorter than the headers it announces
    "too_many_vlans",   # more than MAX_VLAN_TAGS stacked tags
    "not_ipv4",         # ethertype after the tags is not IPv4
    "bad_ip_header",    # IP version != 4 or IHL < 5
    "bad_ip_length",    # total length smaller than the header
    "bad_ip_checksum",  # header checksum does not verify
    "ip_fragment",      # MF set or fragment offset != 0
    "not_udp",          # IPv4 but not UDP (fast path only)
    "bad_udp_length",   # UDP length < 8 or past the IP payload
    "bad_tcp_header",   # TCP data offset < 5 or past the IP payload
)
REASON_INDEX = {name: i for i, name in enumerate(REJECT_REASONS)}


class VlanTag(NamedTuple):
    """One 802.1Q / 802.1ad tag as it appears on the wire."""

    tpid: int
    pcp: int
    dei: int
    vid: int


@dataclass(frozen=True)
class Frame:
    """An accepted IPv4 frame.  Ports are ``None`` unless UDP or TCP; the
    ``tcp_*`` fields are ``None`` unless TCP.  ``payload`` is the UDP / TCP
    payload, or the whole IP payload for other protocols."""

    vlans: tuple[VlanTag, ...]
    src_mac: bytes
    dst_mac: bytes
    ethertype: int
    src_ip: int
    dst_ip: int
    ip_proto: int
    src_port: int | None
    dst_port: int | None
    payload: bytes
    tcp_seq: int | None = None
    tcp_flags: int | None = None
    tcp_ack: int | None = None
    ip_id: int = 0
    ttl: int = 0

    @property
    def vlan_ids(self) -> tuple[int, ...]:
        return tuple(tag.vid for tag in self.vlans)


def ip_to_int(addr: int | str) -> int:
    """Accept ``"233.54.12.1"`` or an int; return the int value."""
    if isinstance(addr, int):
        if not 0 <= addr <= 0xFFFFFFFF:
            raise ValueError(f"IPv4 address out of range: {addr}")
        return addr
    return int(ipaddress.IPv4Address(addr))


def ip_to_str(addr: int) -> str:
    return str(ipaddress.IPv4Address(addr))


def multicast_mac(dst_ip: int) -> bytes:
    """The Ethernet address an IPv4 multicast group maps to (RFC 1112):
    01:00:5e followed by the low 23 bits of the group address."""
    return bytes((0x01, 0x00, 0x5E, (dst_ip >> 16) & 0x7F, (dst_ip >> 8) & 0xFF, dst_ip & 0xFF))


def is_multicast(ip: int) -> bool:
    return (ip >> 28) == 0xE


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 ones'-complement sum of 16-bit big-endian words, complemented."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _transport_checksum(src_ip: int, dst_ip: int, proto: int, segment: bytes) -> int:
    pseudo = struct.pack("!IIBBH", src_ip, dst_ip, 0, proto, len(segment))
    return internet_checksum(pseudo + segment)


def parse_frame(data: bytes | bytearray | memoryview, verify_checksum: bool = True) -> Frame | str:
    """Parse an Ethernet II frame carrying IPv4.

    Returns a :class:`Frame`, or the rejection reason (one of
    :data:`REJECT_REASONS`) as a string so callers can count it.  Trailing
    bytes past the IP total length (Ethernet padding, FCS) are ignored.
    """
    data = bytes(data)
    size = len(data)
    if size < ETH_HEADER_LEN:
        return "truncated"
    dst_mac, src_mac = data[0:6], data[6:12]
    ethertype = (data[12] << 8) | data[13]
    pos = ETH_HEADER_LEN
    vlans: list[VlanTag] = []
    while ethertype in VLAN_TPIDS:
        if len(vlans) == MAX_VLAN_TAGS:
            return "too_many_vlans"
        if size < pos + VLAN_TAG_LEN:
            return "truncated"
        tci = (data[pos] << 8) | data[pos + 1]
        vlans.append(VlanTag(ethertype, tci >> 13, (tci >> 12) & 1, tci & 0x0FFF))
        ethertype = (data[pos + 2] << 8) | data[pos + 3]
        pos += VLAN_TAG_LEN
    if ethertype != ETHERTYPE_IPV4:
        return "not_ipv4"
    if size < pos + IPV4_MIN_HEADER_LEN:
        return "truncated"
    version_ihl = data[pos]
    ihl_bytes = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl_bytes < IPV4_MIN_HEADER_LEN:
        return "bad_ip_header"
    if size < pos + ihl_bytes:
        return "truncated"
    total_length, ip_id, flags_frag, ttl, proto = struct.unpack_from("!HHHBB", data, pos + 2)
    if total_length < ihl_bytes:
        return "bad_ip_length"
    if size < pos + total_length:
        return "truncated"
    if verify_checksum and internet_checksum(data[pos:pos + ihl_bytes]) != 0:
        return "bad_ip_checksum"
    if flags_frag & (IP_FLAG_MF | IP_FRAGMENT_OFFSET_MASK):
        return "ip_fragment"
    src_ip, dst_ip = struct.unpack_from("!II", data, pos + 12)
    l4 = pos + ihl_bytes
    l4_end = pos + total_length
    common = dict(vlans=tuple(vlans), src_mac=src_mac, dst_mac=dst_mac, ethertype=ethertype,
                  src_ip=src_ip, dst_ip=dst_ip, ip_proto=proto, ip_id=ip_id, ttl=ttl)
    if proto == IPPROTO_UDP:
        if l4_end - l4 < UDP_HEADER_LEN:
            return "bad_udp_length"
        src_port, dst_port, udp_length = struct.unpack_from("!HHH", data, l4)
        if udp_length < UDP_HEADER_LEN or udp_length > l4_end - l4:
            return "bad_udp_length"
        return Frame(src_port=src_port, dst_port=dst_port,
                     payload=data[l4 + UDP_HEADER_LEN:l4 + udp_length], **common)
    if proto == IPPROTO_TCP:
        if l4_end - l4 < TCP_MIN_HEADER_LEN:
            return "bad_tcp_header"
        src_port, dst_port, seq, ack, offset_byte, flags = struct.unpack_from("!HHIIBB", data, l4)
        tcp_header_len = (offset_byte >> 4) * 4
        if tcp_header_len < TCP_MIN_HEADER_LEN or tcp_header_len > l4_end - l4:
            return "bad_tcp_header"
        return Frame(src_port=src_port, dst_port=dst_port, payload=data[l4 + tcp_header_len:l4_end],
                     tcp_seq=seq, tcp_flags=flags, tcp_ack=ack, **common)
    return Frame(src_port=None, dst_port=None, payload=data[l4:l4_end], **common)


def _vlan_bytes(vlans: Iterable[int | VlanTag]) -> tuple[bytes, int]:
    tags = list(vlans)
    if len(tags) > MAX_VLAN_TAGS:
        raise ValueError(f"at most {MAX_VLAN_TAGS} VLAN tags, got {len(tags)}")
    out = b""
    for tag in tags:
        if not isinstance(tag, VlanTag):
            tag = VlanTag(TPID_8021Q, 0, 0, int(tag))
        if not 0 <= tag.vid <= 0x0FFF or not 0 <= tag.pcp <= 7 or tag.dei not in (0, 1):
            raise ValueError(f"bad VLAN tag {tag}")
        out += struct.pack("!HH", tag.tpid, (tag.pcp << 13) | (tag.dei << 12) | tag.vid)
    return out, len(tags)


def _ethernet_ipv4(src_ip: int, dst_ip: int, vlans: Sequence[int | VlanTag], src_mac: bytes | None,
                   dst_mac: bytes | None) -> bytes:
    if dst_mac is None:
        dst_mac = multicast_mac(dst_ip) if is_multicast(dst_ip) else DEFAULT_UNICAST_DST_MAC
    if src_mac is None:
        src_mac = DEFAULT_SRC_MAC
    if len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    tags, _ = _vlan_bytes(vlans)
    return bytes(dst_mac) + bytes(src_mac) + tags + struct.pack("!H", ETHERTYPE_IPV4)


def _ipv4_header(src_ip: int, dst_ip: int, proto: int, l4_len: int, ip_id: int, ttl: int) -> bytes:
    total_length = IPV4_MIN_HEADER_LEN + l4_len
    if total_length > 0xFFFF:
        raise ValueError(f"IPv4 datagram of {total_length} bytes exceeds 65535")
    header = struct.pack("!BBHHHBBHII", 0x45, 0, total_length, ip_id & 0xFFFF, 0, ttl, proto, 0,
                         src_ip, dst_ip)
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]


def build_udp_frame(payload: bytes, src_ip: int | str, dst_ip: int | str, src_port: int,
                    dst_port: int, vlans: Sequence[int | VlanTag] = (), src_mac: bytes | None = None,
                    dst_mac: bytes | None = None, ip_id: int = 0, ttl: int = 64) -> bytes:
    """A complete Ethernet / [802.1Q]* / IPv4 / UDP frame with correct IP and
    UDP checksums.  The destination MAC defaults to the multicast MAC of a
    224/4 destination and to a fixed local address otherwise; DF is clear."""
    src, dst = ip_to_int(src_ip), ip_to_int(dst_ip)
    payload = bytes(payload)
    if len(payload) > MAX_UDP_PAYLOAD:
        raise ValueError(f"UDP payload of {len(payload)} bytes exceeds {MAX_UDP_PAYLOAD}")
    udp_len = UDP_HEADER_LEN + len(payload)
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    checksum = _transport_checksum(src, dst, IPPROTO_UDP, udp) or 0xFFFF  # 0 means "none" in UDP
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    return (_ethernet_ipv4(src, dst, vlans, src_mac, dst_mac)
            + _ipv4_header(src, dst, IPPROTO_UDP, udp_len, ip_id, ttl) + udp)


def build_tcp_frame(payload: bytes, src_ip: int | str, dst_ip: int | str, src_port: int,
                    dst_port: int, seq: int, ack: int = 0, flags: int = 0x18, window: int = 65535,
                    vlans: Sequence[int | VlanTag] = (), src_mac: bytes | None = None,
                    dst_mac: bytes | None = None, ip_id: int = 0, ttl: int = 64) -> bytes:
    """A complete Ethernet / [802.1Q]* / IPv4 / TCP frame (no TCP options) with
    correct checksums; ``flags`` defaults to PSH|ACK."""
    src, dst = ip_to_int(src_ip), ip_to_int(dst_ip)
    payload = bytes(payload)
    tcp = struct.pack("!HHIIBBHHH", src_port, dst_port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (TCP_MIN_HEADER_LEN // 4) << 4, flags & 0xFF, window, 0, 0) + payload
    checksum = _transport_checksum(src, dst, IPPROTO_TCP, tcp)
    tcp = tcp[:16] + struct.pack("!H", checksum) + tcp[18:]
    return (_ethernet_ipv4(src, dst, vlans, src_mac, dst_mac)
            + _ipv4_header(src, dst, IPPROTO_TCP, len(tcp), ip_id, ttl) + tcp)
