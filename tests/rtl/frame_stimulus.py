"""Frames for the frame-filter tests: every acceptance rule hit from both
sides, built from the golden frame builder and then bent where a case needs
it.  Deterministic for a seed.

A stimulus is plain data (JSON-friendly) so the pytest side and the cocotb
bench, which runs in the simulator's Python, read the same thing.
"""
from __future__ import annotations

import json
import random
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from host.pcap.frames import (
    ETH_HEADER_LEN,
    IPV4_MIN_HEADER_LEN,
    TPID_8021AD,
    TPID_8021Q,
    TPID_QINQ_LEGACY,
    VLAN_TPIDS,
    VlanTag,
    build_tcp_frame,
    build_udp_frame,
    internet_checksum,
)
from rtl.common.axis import Packet
from rtl.frame_filter.model import FILTER_ENTRIES, MAX_PAYLOAD_BYTES, FilterEntry

FEED_GROUPS = ("233.54.12.1", "233.54.12.2", "233.49.196.73", "10.1.2.3")
SOURCE_IP = "10.0.0.7"


def default_table() -> list[FilterEntry | None]:
    """Eight entries: six live ones, a disabled one, and a duplicate of entry
    2 at entry 5 (the lowest index must win)."""
    from host.pcap.frames import ip_to_int

    table: list[FilterEntry | None] = [
        FilterEntry(ip_to_int(FEED_GROUPS[0]), 26400),
        FilterEntry(ip_to_int(FEED_GROUPS[1]), 26400),
        FilterEntry(ip_to_int(FEED_GROUPS[0]), 26401),
        FilterEntry(ip_to_int(FEED_GROUPS[2]), 18000),
        FilterEntry(ip_to_int(FEED_GROUPS[3]), 5001, enabled=False),
        FilterEntry(ip_to_int(FEED_GROUPS[0]), 26401),
        FilterEntry(ip_to_int(FEED_GROUPS[3]), 5000),
        FilterEntry(ip_to_int(FEED_GROUPS[2]), 18001),
    ]
    assert len(table) == FILTER_ENTRIES
    return table


@dataclass
class StimulusFrame:
    data: bytes
    error: bool = False
    error_beat: int | None = None   # beat carrying tuser; None: the last
    kind: str = ""

    def packet(self) -> Packet:
        return Packet(self.data, self.error)


@dataclass
class Stimulus:
    table: list[FilterEntry | None]
    frames: list[StimulusFrame]
    # Pause patterns for the bench: probability a cycle is paused, 0 = never.
    source_pause: float = 0.0
    sink_pause: float = 0.0
    gap_cycles: int = 0             # idle cycles the bench leaves after each frame
    seed: int = 0
    expected_packets: int = 0

    def save(self, path: Path) -> Path:
        doc = asdict(self)
        doc["table"] = [None if e is None else [e.dst_ip, e.dst_port, e.enabled]
                        for e in self.table]
        doc["frames"] = [dict(data=f.data.hex(), error=f.error, error_beat=f.error_beat,
                              kind=f.kind) for f in self.frames]
        path.write_text(json.dumps(doc))
        return path

    @classmethod
    def load(cls, path: Path) -> "Stimulus":
        doc = json.loads(Path(path).read_text())
        doc["table"] = [None if e is None else FilterEntry(*e) for e in doc["table"]]
        doc["frames"] = [StimulusFrame(bytes.fromhex(f["data"]), f["error"], f["error_beat"],
                                       f["kind"]) for f in doc["frames"]]
        return cls(**doc)


def _tags(rng: random.Random, count: int) -> list[VlanTag]:
    return [VlanTag(rng.choice(VLAN_TPIDS), rng.randrange(8), rng.randrange(2),
                    rng.randrange(4096)) for _ in range(count)]


def _ip_offset(frame: bytes) -> int:
    """Byte offset of the IP header of a frame we built (0..2 tags)."""
    pos = ETH_HEADER_LEN
    while struct.unpack_from("!H", frame, pos - 2)[0] in VLAN_TPIDS:
        pos += 4
    return pos


def payload_offset(frame: bytes) -> int:
    """Byte offset of the UDP payload of a frame we built."""
    ip = _ip_offset(frame)
    return ip + (frame[ip] & 0x0F) * 4 + 8


def reseal_ip(frame: bytes | bytearray, ip: int) -> bytes:
    """Recompute the IP header checksum of a frame whose header we edited."""
    frame = bytearray(frame)
    header_len = (frame[ip] & 0x0F) * 4
    frame[ip + 10:ip + 12] = b"\x00\x00"
    frame[ip + 10:ip + 12] = struct.pack("!H", internet_checksum(frame[ip:ip + header_len]))
    return bytes(frame)


def add_ip_options(frame: bytes, option_words: int, rng: random.Random) -> bytes:
    """Grow the IP header by ``option_words`` 32-bit words of option bytes."""
    ip = _ip_offset(frame)
    options = bytes(rng.randrange(256) for _ in range(4 * option_words))
    out = bytearray(frame[:ip + IPV4_MIN_HEADER_LEN] + options + frame[ip + IPV4_MIN_HEADER_LEN:])
    out[ip] = 0x40 | (5 + option_words)
    total = struct.unpack_from("!H", out, ip + 2)[0] + 4 * option_words
    struct.pack_into("!H", out, ip + 2, total)
    return reseal_ip(out, ip)


def patch_ip(frame: bytes, fmt: str, offset: int, value: int, reseal: bool = True) -> bytes:
    ip = _ip_offset(frame)
    out = bytearray(frame)
    struct.pack_into(fmt, out, ip + offset, value)
    return reseal_ip(out, ip) if reseal else bytes(out)


def patch_udp(frame: bytes, fmt: str, offset: int, value: int) -> bytes:
    ip = _ip_offset(frame)
    udp = ip + (frame[ip] & 0x0F) * 4
    out = bytearray(frame)
    struct.pack_into(fmt, out, udp + offset, value)
    return bytes(out)


class FrameFactory:
    """Random frames of each kind against a filter table."""

    def __init__(self, table: list[FilterEntry | None], seed: int):
        self.rng = random.Random(seed)
        self.table = table
        self.live = [e for e in table if e is not None and e.enabled]
        self.ip_id = 0

    def payload(self, lo: int = 1, hi: int = 1400) -> bytes:
        return self.rng.randbytes(self.rng.randint(lo, hi))

    def udp(self, payload: bytes | None = None, tags: int | None = None, matching: bool = True,
            options: int | None = None, dst: tuple[int, int] | None = None) -> bytes:
        rng = self.rng
        if dst is None:
            if matching:
                entry = rng.choice(self.live)
                dst = (entry.dst_ip, entry.dst_port)
            else:
                dst = self._unmatched()
        payload = self.payload() if payload is None else payload
        tags = rng.choice((0, 0, 1, 2)) if tags is None else tags
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        frame = build_udp_frame(payload, SOURCE_IP, dst[0], rng.randrange(1024, 65536), dst[1],
                                vlans=_tags(rng, tags), ip_id=self.ip_id)
        if options is None:
            options = rng.choice((0, 0, 0, 1, 2, 3, 10))
        if options:
            frame = add_ip_options(frame, options, rng)
        return frame

    def _unmatched(self) -> tuple[int, int]:
        rng = self.rng
        while True:
            entry = rng.choice([e for e in self.table if e is not None])
            how = rng.randrange(3)
            ip, port = entry.dst_ip, entry.dst_port
            if how == 0:
                port = (port + rng.randint(1, 50)) & 0xFFFF
            elif how == 1:
                ip ^= 1 << rng.randrange(32)
            if not any(e is not None and e.enabled and (e.dst_ip, e.dst_port) == (ip, port)
                       for e in self.table):
                return ip, port

    def padded(self, frame: bytes) -> bytes:
        """Ethernet minimum-size padding and/or trailing FCS-like bytes."""
        if len(frame) < 60:
            frame += bytes(60 - len(frame))
        if self.rng.random() < 0.5:
            frame += self.rng.randbytes(4)
        return frame

    def make(self, kind: str) -> StimulusFrame:
        rng = self.rng
        if kind == "pass":
            frame = self.udp()
            if rng.random() < 0.3:
                frame = self.padded(frame)
            return StimulusFrame(frame, kind=kind)
        if kind == "pass_small":
            # Unpadded, the shortest payloads end in the beat they start in.
            frame = self.udp(self.payload(1, 24))
            if rng.random() < 0.5:
                frame = self.padded(frame)
            return StimulusFrame(frame, kind="pass")
        if kind == "no_match":
            return StimulusFrame(self.udp(matching=False), kind=kind)
        if kind == "frame_error":
            frame = self.udp()
            beats = (len(frame) + 7) // 8
            beat = rng.choice((None, rng.randrange(beats)))
            return StimulusFrame(frame, error=True, error_beat=beat, kind=kind)
        if kind == "bad_ip_checksum":
            frame = self.udp(self.payload(1, 300))
            ip = _ip_offset(frame)
            out = bytearray(frame)
            out[ip + rng.choice((10, 11, 2, 8, 15))] ^= 1 << rng.randrange(8)
            return StimulusFrame(bytes(out), kind=kind)
        if kind == "ip_fragment":
            frame = self.udp(self.payload(1, 300))
            value = rng.choice((0x2000, 0x0001, 0x2000 | 0x00B9, 0x1FFF))
            return StimulusFrame(patch_ip(frame, "!H", 6, value), kind=kind)
        if kind == "dont_fragment":
            return StimulusFrame(patch_ip(self.udp(self.payload(1, 300)), "!H", 6, 0x4000),
                                 kind="pass")
        if kind == "not_udp":
            if rng.random() < 0.5:
                entry = rng.choice(self.live)
                frame = build_tcp_frame(self.payload(1, 200), SOURCE_IP, entry.dst_ip, 40000,
                                        entry.dst_port, seq=rng.randrange(1 << 32),
                                        vlans=_tags(rng, rng.randrange(3)))
            else:
                frame = patch_ip(self.udp(self.payload(1, 200)), "!B", 9, rng.choice((1, 6, 132)))
            return StimulusFrame(frame, kind=kind)
        if kind == "not_ipv4":
            frame = bytearray(self.udp(self.payload(1, 100), tags=rng.randrange(3)))
            ip = _ip_offset(frame)
            frame[ip - 2:ip] = struct.pack("!H", rng.choice((0x0806, 0x86DD, 0x88F7, 0x0801)))
            return StimulusFrame(bytes(frame), kind=kind)
        if kind == "too_many_vlans":
            frame = self.udp(self.payload(1, 100), tags=2)
            tag = struct.pack("!HH", rng.choice((TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY)), 7)
            return StimulusFrame(frame[:12] + tag + frame[12:], kind=kind)
        if kind == "bad_ip_header":
            frame = self.udp(self.payload(1, 100))
            version_ihl = rng.choice((0x65, 0x44, 0x40, 0x55))
            # An IHL under 5 leaves no header to checksum; keep the old one.
            reseal = version_ihl & 0x0F >= 5
            return StimulusFrame(patch_ip(frame, "!B", 0, version_ihl, reseal), kind=kind)
        if kind == "bad_ip_length":
            frame = self.udp(self.payload(1, 100), options=rng.choice((0, 2)))
            ip = _ip_offset(frame)
            header = (frame[ip] & 0x0F) * 4
            return StimulusFrame(patch_ip(frame, "!H", 2, rng.randrange(header)), kind=kind)
        if kind == "bad_udp_length":
            frame = self.udp(self.payload(8, 200))
            ip = _ip_offset(frame)
            room = struct.unpack_from("!H", frame, ip + 2)[0] - (frame[ip] & 0x0F) * 4
            choice = rng.randrange(3)
            if choice == 0:
                return StimulusFrame(patch_udp(frame, "!H", 4, rng.randrange(8)), kind=kind)
            if choice == 1:
                return StimulusFrame(patch_udp(frame, "!H", 4, room + rng.randint(1, 40)),
                                     kind=kind)
            # IP payload too short for a UDP header at all.
            return StimulusFrame(patch_ip(frame, "!H", 2, (frame[ip] & 0x0F) * 4
                                          + rng.randrange(8)), kind=kind)
        if kind == "short_udp_length":
            # UDP length below the IP payload: the rest is not payload.
            frame = self.udp(self.payload(20, 200))
            ip = _ip_offset(frame)
            room = struct.unpack_from("!H", frame, ip + 2)[0] - (frame[ip] & 0x0F) * 4
            return StimulusFrame(patch_udp(frame, "!H", 4, rng.randint(9, room - 1)), kind="pass")
        if kind == "empty_payload":
            return StimulusFrame(self.padded(self.udp(b"")), kind=kind)
        if kind == "truncated":
            frame = self.udp(self.payload(1, 200))
            return StimulusFrame(frame[:rng.randrange(1, len(frame))], kind=kind)
        if kind == "runt":
            return StimulusFrame(rng.randbytes(rng.randint(1, 21)), kind="truncated")
        if kind == "oversize":
            return StimulusFrame(self.udp(self.payload(MAX_PAYLOAD_BYTES + 1,
                                                       MAX_PAYLOAD_BYTES + 40), options=0),
                                 kind=kind)
        if kind == "largest":
            return StimulusFrame(self.udp(self.payload(MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES)),
                                 kind="pass")
        raise ValueError(kind)


# Relative frequencies of the kinds in a mixed run.
MIX = {
    "pass": 40, "pass_small": 8, "no_match": 8, "frame_error": 4, "bad_ip_checksum": 4,
    "ip_fragment": 4, "dont_fragment": 2, "not_udp": 4, "not_ipv4": 3, "too_many_vlans": 2,
    "bad_ip_header": 3, "bad_ip_length": 2, "bad_udp_length": 4, "short_udp_length": 2,
    "empty_payload": 2, "truncated": 4, "runt": 2,
}


def mixed_frames(count: int, seed: int, table: list[FilterEntry | None] | None = None,
                 big: bool = True) -> list[StimulusFrame]:
    """``count`` frames in a shuffled mix; ``big`` adds the largest passing
    payload and two oversize ones (about 260 beats each)."""
    factory = FrameFactory(table or default_table(), seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    picks = factory.rng.choices(kinds, weights, k=count)
    if big:
        picks[count // 3] = "largest"
        picks[count // 2] = "oversize"
        picks[-2] = "oversize"
    return [factory.make(kind) for kind in picks]
