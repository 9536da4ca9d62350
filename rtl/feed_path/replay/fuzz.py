"""Robustness fuzz of the feed path: a generated market day's frames with bad
frames mixed in, for the replay harness.

Every bad frame is derived from the good frame it is inserted next to (so
it carries that frame's addresses, VLAN tags and MoldUDP64 sequence range)
or made of random bytes.  They go after the first frames of the day, so the
sequencer has latched the day's session before anything else can claim it.
What each kind is meant to hit:

filter drops (never reach the sequencer)
    ``frame_error`` (``tuser`` on a random beat), ``truncated`` (``tlast``
    early: the frame cut short), ``runt``, ``random_bytes``,
    ``bad_ip_header``, ``bad_ip_length``, ``bad_ip_checksum``,
    ``ip_fragment``, ``not_udp``, ``not_ipv4``, ``too_many_vlans``,
    ``bad_udp_length``, ``empty_payload``, ``no_match``, ``oversize``
sequencer drops (pass the filter, malformed or foreign MoldUDP64)
    ``short_udp_length`` (UDP length below the datagram: the payload loses
    its tail), ``mold_truncated``, ``mold_block_past_end``,
    ``mold_zero_block``, ``mold_count_mismatch``, ``mold_trailing``,
    ``mold_bad_session``, ``mold_other_session``, ``mold_random``,
    ``mold_seq_out_of_range``
decoder drops
    ``itch_corrupt``: a copy of a data packet whose first message has an
    unknown type or a bad side, sent just before the genuine copies, which
    then count as duplicates (the book misses that message, as it would on
    the wire)

Good frames keep their content but some change their form
(:data:`GOOD_VARIANTS`): other VLAN tags (none, one, two; 802.1Q, 802.1ad,
0x9100), trailing bytes after the IP datagram (``tlast`` late), IP options,
a zero or wrong UDP checksum (not checked by the fabric, as by the host).
"""
from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from host.pcap.frames import (IPV4_MIN_HEADER_LEN, TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY,
                              VLAN_TPIDS, VlanTag, build_udp_frame, internet_checksum,
                              parse_frame)
from host.protocols.itch50 import MESSAGE_SIZES
from host.protocols.moldudp64 import HEADER_SIZE, SESSION_LENGTH
from rtl.feed_path.model import FEED_A, FEED_B, Frame
from rtl.frame_filter.model import MAX_PAYLOAD_BYTES

# Relative frequencies of the bad kinds.
BAD_KINDS = {
    "frame_error": 6, "truncated": 8, "runt": 2, "random_bytes": 4, "bad_ip_header": 3,
    "bad_ip_length": 3, "bad_ip_checksum": 4, "ip_fragment": 3, "not_udp": 3, "not_ipv4": 3,
    "too_many_vlans": 3, "bad_udp_length": 4, "empty_payload": 2, "no_match": 4, "oversize": 1,
    "short_udp_length": 4, "mold_truncated": 3, "mold_block_past_end": 4, "mold_zero_block": 3,
    "mold_count_mismatch": 4, "mold_trailing": 4, "mold_bad_session": 3,
    "mold_other_session": 3, "mold_random": 4, "mold_seq_out_of_range": 2, "itch_corrupt": 1,
}
GOOD_VARIANTS = ("retag", "extended", "ip_options", "udp_checksum")
# Frames of the day before the first bad one: the session is latched by then.
LEAD_IN = 16
OTHER_SESSION = b"FUZZ000001"
ORDER_SIDE_OFFSET = {"A": 19, "F": 19}  # buy/sell indicator in Add Order (and MPID)


@dataclass
class FuzzFrame:
    feed: int
    data: bytes
    error: bool = False
    error_beat: int | None = None
    kind: str = "good"


@dataclass
class _Parsed:
    """A good frame's parts, to rebuild it in another form."""

    vlans: tuple
    src_ip: int
    dst_ip: int
    src_port: int
    dst_port: int
    payload: bytes
    ip_id: int


def _ip_offset(frame: bytes) -> int:
    pos = 14
    while struct.unpack_from("!H", frame, pos - 2)[0] in VLAN_TPIDS:
        pos += 4
    return pos


def _reseal(frame: bytearray, ip: int) -> bytes:
    header = (frame[ip] & 0x0F) * 4
    frame[ip + 10:ip + 12] = b"\0\0"
    frame[ip + 10:ip + 12] = struct.pack("!H", internet_checksum(bytes(frame[ip:ip + header])))
    return bytes(frame)


def _patch_ip(frame: bytes, fmt: str, offset: int, value: int, reseal: bool = True) -> bytes:
    ip = _ip_offset(frame)
    out = bytearray(frame)
    struct.pack_into(fmt, out, ip + offset, value)
    return _reseal(out, ip) if reseal else bytes(out)


def _patch_udp(frame: bytes, fmt: str, offset: int, value: int) -> bytes:
    ip = _ip_offset(frame)
    out = bytearray(frame)
    struct.pack_into(fmt, out, ip + (frame[ip] & 0x0F) * 4 + offset, value)
    return bytes(out)


def _with_ip_options(frame: bytes, words: int, rng: random.Random) -> bytes:
    ip = _ip_offset(frame)
    out = bytearray(frame[:ip + IPV4_MIN_HEADER_LEN] + rng.randbytes(4 * words)
                    + frame[ip + IPV4_MIN_HEADER_LEN:])
    out[ip] = 0x40 | (5 + words)
    struct.pack_into("!H", out, ip + 2, struct.unpack_from("!H", out, ip + 2)[0] + 4 * words)
    return _reseal(out, ip)


class Mutator:
    """Bad frames and good variants, from good frames; deterministic for a seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.ip_id = 0

    def _tags(self, count: int) -> list[VlanTag]:
        rng = self.rng
        return [VlanTag(rng.choice((TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY)), rng.randrange(8),
                        rng.randrange(2), rng.randrange(4096)) for _ in range(count)]

    def _build(self, p: _Parsed, payload: bytes | None = None, vlans=None,
               dst: tuple[int, int] | None = None) -> bytes:
        dst_ip, dst_port = dst or (p.dst_ip, p.dst_port)
        return build_udp_frame(p.payload if payload is None else payload, p.src_ip, dst_ip,
                               p.src_port, dst_port, vlans=p.vlans if vlans is None else vlans,
                               ip_id=p.ip_id)

    @staticmethod
    def parse(data: bytes) -> _Parsed | None:
        parsed = parse_frame(data)
        if isinstance(parsed, str) or parsed.dst_port is None or parsed.ip_proto != 17:
            return None
        return _Parsed(parsed.vlans, parsed.src_ip, parsed.dst_ip, parsed.src_port,
                       parsed.dst_port, parsed.payload, parsed.ip_id)

    # -- good frames in another form -------------------------------------------------------
    def variant(self, frame: Frame) -> FuzzFrame:
        rng = self.rng
        p = self.parse(frame.data)
        if p is None:
            return FuzzFrame(frame.feed, frame.data, frame.error)
        kind = rng.choice(GOOD_VARIANTS)
        if kind == "retag":
            data = self._build(p, vlans=self._tags(rng.randrange(3)))
        elif kind == "extended":
            data = frame.data + rng.randbytes(rng.randint(1, 64))
        elif kind == "ip_options":
            data = _with_ip_options(frame.data, rng.randint(1, 10), rng)
        else:
            data = _patch_udp(frame.data, "!H", 6, rng.choice((0, rng.randrange(1, 0x10000))))
        return FuzzFrame(frame.feed, data, kind=f"good_{kind}")

    # -- bad frames ------------------------------------------------------------------------
    def bad(self, kind: str, source: Frame) -> FuzzFrame:
        rng = self.rng
        feed = source.feed
        data = source.data
        p = self.parse(data)
        if p is None and kind not in ("random_bytes", "runt", "truncated", "frame_error"):
            kind = "random_bytes"
        out = None
        if kind == "frame_error":
            beats = (len(data) + 7) // 8
            return FuzzFrame(feed, data, True, rng.choice((None, rng.randrange(beats))), kind)
        if kind == "truncated":
            out = data[:rng.randrange(1, len(data))] if len(data) > 1 else b"\0"
        elif kind == "runt":
            out = rng.randbytes(rng.randint(1, 21))
        elif kind == "random_bytes":
            feed = rng.choice((FEED_A, FEED_B))
            out = rng.randbytes(rng.randint(1, 1600))
        elif kind == "bad_ip_header":
            value = rng.choice((0x65, 0x44, 0x40, 0x55, 0x35, 0x00))
            out = _patch_ip(data, "!B", 0, value, reseal=value & 0x0F >= 5)
        elif kind == "bad_ip_length":
            ip = _ip_offset(data)
            header = (data[ip] & 0x0F) * 4
            total = struct.unpack_from("!H", data, ip + 2)[0]
            out = _patch_ip(data, "!H", 2, rng.choice((rng.randrange(header),
                                                       total + rng.randint(1, 200))))
        elif kind == "bad_ip_checksum":
            ip = _ip_offset(data)
            buf = bytearray(data)
            buf[ip + rng.choice((10, 11, 2, 8, 12, 19))] ^= 1 << rng.randrange(8)
            out = bytes(buf)
        elif kind == "ip_fragment":
            out = _patch_ip(data, "!H", 6, rng.choice((0x2000, 0x0001, 0x20B9, 0x1FFF)))
        elif kind == "not_udp":
            out = _patch_ip(data, "!B", 9, rng.choice((1, 6, 47, 132)))
        elif kind == "not_ipv4":
            ip = _ip_offset(data)
            buf = bytearray(data)
            buf[ip - 2:ip] = struct.pack("!H", rng.choice((0x0806, 0x86DD, 0x88F7, 0x0801)))
            out = bytes(buf)
        elif kind == "too_many_vlans":
            out = self._build(p, vlans=self._tags(2))
            out = out[:12] + struct.pack("!HH", rng.choice(VLAN_TPIDS), 7) + out[12:]
        elif kind == "bad_udp_length":
            ip = _ip_offset(data)
            room = struct.unpack_from("!H", data, ip + 2)[0] - (data[ip] & 0x0F) * 4
            out = _patch_udp(data, "!H", 4, rng.choice((rng.randrange(8),
                                                        room + rng.randint(1, 40))))
        elif kind == "short_udp_length":
            ip = _ip_offset(data)
            udp_length = struct.unpack_from("!H", data, ip + (data[ip] & 0x0F) * 4 + 4)[0]
            if udp_length <= 9:
                return self.bad("bad_udp_length", source)
            out = _patch_udp(data, "!H", 4, rng.randint(9, udp_length - 1))
        elif kind == "empty_payload":
            out = self._build(p, payload=b"")
        elif kind == "no_match":
            if rng.random() < 0.5:
                out = self._build(p, dst=(p.dst_ip, (p.dst_port + rng.randint(1, 100)) & 0xFFFF))
            else:
                out = self._build(p, dst=(p.dst_ip ^ (1 << rng.randrange(32)), p.dst_port))
        elif kind == "oversize":
            out = self._build(p, payload=p.payload + rng.randbytes(
                max(1, MAX_PAYLOAD_BYTES + rng.randint(1, 64) - len(p.payload))))
        else:
            out = self._build(p, payload=self._mold(kind, p.payload))
        return FuzzFrame(feed, out, kind=kind)

    def _mold(self, kind: str, payload: bytes) -> bytes:
        rng = self.rng
        if len(payload) < HEADER_SIZE:
            return rng.randbytes(rng.randint(1, 60))
        header, body = bytearray(payload[:HEADER_SIZE]), payload[HEADER_SIZE:]
        count = struct.unpack_from("!H", header, 18)[0]
        if kind == "mold_truncated":
            return payload[:rng.randrange(1, HEADER_SIZE)]
        if kind == "mold_block_past_end":
            if not body:
                return bytes(header) + struct.pack("!H", rng.randint(1, 200))
            first = struct.unpack_from("!H", body, 0)[0]
            return bytes(header) + struct.pack("!H", first + rng.randint(len(body), len(body) + 50)) \
                + body[2:]
        if kind == "mold_zero_block":
            struct.pack_into("!H", header, 18, (count + 1) & 0xFFFF if count < 0xFFFE else 1)
            cut = rng.choice((0, len(body)))
            return bytes(header) + body[:cut] + b"\0\0" + body[cut:]
        if kind == "mold_count_mismatch":
            # A heartbeat or end of session claiming messages it lacks, or a data
            # packet miscounting its blocks.
            wrong = rng.randint(1, 5) if count in (0, 0xFFFF) else count
            while wrong == count or not 0 < wrong < 0xFFFF:
                wrong = count + rng.choice((-2, -1, 1, 2, 5))
            struct.pack_into("!H", header, 18, wrong)
            return bytes(header) + body
        if kind == "mold_trailing":
            return bytes(header) + body + rng.randbytes(rng.randint(1, 3))
        if kind == "mold_bad_session":
            header[rng.randrange(SESSION_LENGTH)] |= 0x80
            return bytes(header) + body
        if kind == "mold_other_session":
            header[:SESSION_LENGTH] = OTHER_SESSION
            return bytes(header) + body
        if kind == "mold_seq_out_of_range":
            struct.pack_into("!Q", header, 10, (1 << 63) - rng.randint(1, 1000))
            return bytes(header) + body
        if kind == "mold_random":
            return rng.randbytes(rng.randint(1, 400))
        if kind == "itch_corrupt":
            return self._itch_corrupt(bytes(header), body)
        raise ValueError(f"unknown fuzz kind {kind!r}")

    def _itch_corrupt(self, header: bytes, body: bytes) -> bytes:
        rng = self.rng
        if len(body) < 3:
            return header + body
        length = struct.unpack_from("!H", body, 0)[0]
        message = bytearray(body[2:2 + length])
        kind = chr(message[0])
        if kind in ORDER_SIDE_OFFSET and rng.random() < 0.5 and len(message) > 19:
            message[ORDER_SIDE_OFFSET[kind]] = ord(rng.choice("XZ0 "))
        else:
            unknown = [c for c in "abcdfgjkmoqrstuvwxz0123456789" if c not in MESSAGE_SIZES]
            message[0] = ord(rng.choice(unknown))
        return header + body[:2] + bytes(message) + body[2 + length:]


def _is_data_packet(frame: Frame) -> bool:
    p = Mutator.parse(frame.data)
    if p is None or len(p.payload) < HEADER_SIZE + 3:
        return False
    count = struct.unpack_from("!H", p.payload, 18)[0]
    return 0 < count < 0xFFFF


def fuzz_frames(day: Sequence[Frame], bad_frames: int, seed: int,
                variant_rate: float = 0.1) -> list[FuzzFrame]:
    """The ``day``'s frames in order, a ``variant_rate`` share of them in another
    good form, with ``bad_frames`` bad frames inserted at random places."""
    if len(day) <= LEAD_IN:
        raise ValueError(f"a fuzz day needs more than {LEAD_IN} frames")
    mutator = Mutator(seed)
    rng = mutator.rng
    kinds = list(BAD_KINDS)
    weights = [BAD_KINDS[k] for k in kinds]
    # Where each bad frame goes: before day frame `at`, derived from it.
    places = sorted(rng.randrange(LEAD_IN, len(day)) for _ in range(bad_frames))
    picks = rng.choices(kinds, weights, k=bad_frames)
    out: list[FuzzFrame] = []
    nxt = 0
    for i, frame in enumerate(day):
        while nxt < len(places) and places[nxt] == i:
            kind = picks[nxt]
            if kind == "itch_corrupt" and not _is_data_packet(frame):
                kind = "mold_count_mismatch"
            out.append(mutator.bad(kind, frame))
            nxt += 1
        if rng.random() < variant_rate:
            out.append(mutator.variant(frame))
        else:
            out.append(FuzzFrame(frame.feed, frame.data, frame.error))
    return out


def kind_counts(frames: Sequence[FuzzFrame]) -> dict[str, int]:
    return dict(sorted(Counter(f.kind for f in frames).items()))
