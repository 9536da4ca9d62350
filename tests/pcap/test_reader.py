"""pcap / pcapng reading: files written by scapy and hand-built pcapng,
every chunk size, torn files, corrupt files; fast path against general path."""
from __future__ import annotations

import gzip
import struct
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import EDecimal, PcapNgWriter, PcapWriter, rdpcap

from host.pcap import CaptureFormatError, UnsupportedLinkType, detect_format
from host.pcap.fast import FAST_PATH_REASONS, CaptureReader, iter_udp_batches
from host.pcap.frames import Frame, ip_to_str, parse_frame
from host.pcap.reader import RecordReader, iter_packets, tsresol_to_mode

T0 = Decimal("1700000000.123456789")


def _mixed_packets() -> list:
    """UDP packets with 0/1/2 tags among packets the fast path must skip."""
    base = lambda payload, **ip: IP(src="10.20.30.40", dst="233.54.12.1", **ip) / UDP(sport=26400, dport=26400) / Raw(payload)  # noqa: E731
    pkts = [
        Ether() / base(b"first" * 3),
        Ether() / Dot1Q(vlan=100) / base(b"tagged"),
        Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / base(b"qinq" * 50),
        Ether() / ARP(),
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="S"),
        Ether() / base(b"bad", chksum=0xBEEF),
        Ether() / IP(dst="10.0.0.2") / ICMP(),
        *fragment(Ether() / base(b"F" * 2500), fragsize=1200),
        Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / base(b"3 tags"),
        Ether() / IP(src="192.168.1.1", dst="233.54.12.2") / UDP(sport=9, dport=26401) / Raw(b"x" * 1400),
        Ether() / Dot1Q(vlan=4095) / base(b""),
    ]
    for i, pkt in enumerate(pkts):
        pkt.time = EDecimal(T0 + i * Decimal("0.001000001"))
    return pkts


MIXED = _mixed_packets()
MIXED_RAW = [bytes(p) for p in MIXED]
# Expected fast-path outcome, worked out from scapy's own dissection.
EXPECTED_UDP_INDEXES = [0, 1, 2, len(MIXED) - 2, len(MIXED) - 1]
EXPECTED_DROPS = {"not_ipv4": 1, "not_udp": 2, "bad_ip_checksum": 1,
                  "ip_fragment": len(MIXED) - 10, "too_many_vlans": 1}


def _write_scapy(path, pkts, kind: str) -> None:
    if kind == "pcapng":
        writer = PcapNgWriter(str(path))
    else:
        writer = PcapWriter(str(path), nano="ns" in kind, endianness=">" if "be" in kind else "")
    for p in pkts:
        writer.write(p)
    writer.close()


def _scapy_vlans(pkt) -> tuple[int, int]:
    vids = []
    layer = pkt[Ether].payload
    while isinstance(layer, (Dot1Q, Dot1AD)):
        vids.append(layer.vlan)
        layer = layer.payload
    vids += [-1, -1]
    return vids[0], vids[1]


def _collect(reader: CaptureReader) -> list[tuple]:
    rows = []
    for batch in reader.udp_batches():
        for i in range(len(batch)):
            rows.append((int(batch.frame_index[i]), int(batch.ts_ns[i]), int(batch.src_ip[i]),
                         int(batch.dst_ip[i]), int(batch.src_port[i]), int(batch.dst_port[i]),
                         int(batch.vlan0[i]), int(batch.vlan1[i]), batch.payload(i)))
    return rows


KINDS = ["us", "ns", "be-us", "be-ns", "pcapng"]


@pytest.fixture(scope="module", params=KINDS)
def mixed_capture(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("cap") / f"mixed-{request.param}.cap"
    _write_scapy(path, MIXED, request.param)
    return path


def test_general_path_matches_scapy(mixed_capture):
    expected = rdpcap(str(mixed_capture))
    reader = RecordReader(mixed_capture)
    packets = list(reader.packets())
    assert len(packets) == len(expected) == len(MIXED)
    for pkt, ref in zip(packets, expected):
        assert pkt.data == bytes(ref)
        assert pkt.orig_len == len(bytes(ref))
        assert pkt.ts_ns == int(ref.time * 10**9)
        assert pkt.linktype == 1
    assert [p.frame_index for p in packets] == list(range(len(MIXED)))
    assert reader.stats["packets"] == len(MIXED)
    assert reader.counters["truncated_record"] == 0


def test_fast_path_fields_match_scapy(mixed_capture):
    expected_times = [int(p.time * 10**9) for p in rdpcap(str(mixed_capture))]
    reader = CaptureReader(mixed_capture)
    rows = _collect(reader)
    assert [r[0] for r in rows] == EXPECTED_UDP_INDEXES
    for row in rows:
        pkt = Ether(MIXED_RAW[row[0]])
        assert row[1] == expected_times[row[0]]
        assert ip_to_str(row[2]) == pkt[IP].src and ip_to_str(row[3]) == pkt[IP].dst
        assert (row[4], row[5]) == (pkt[UDP].sport, pkt[UDP].dport)
        assert (row[6], row[7]) == _scapy_vlans(pkt)
        assert row[8] == bytes(pkt[UDP].payload)
    assert {k: v for k, v in reader.counters.items() if v} == EXPECTED_DROPS
    assert set(reader.counters) == {"truncated_record", "bad_interface", *FAST_PATH_REASONS}
    assert reader.stats["udp_packets"] == len(EXPECTED_UDP_INDEXES)
    assert reader.stats["packets"] == len(MIXED)


def test_drops_are_added_into_a_callers_counters(mixed_capture):
    drops = Counter({"mold_bad_length": 2})
    assert sum(len(b) for b in iter_udp_batches(mixed_capture, chunk_bytes=64, counters=drops)) == 5
    assert drops == Counter({"mold_bad_length": 2, **EXPECTED_DROPS})
    partial = Counter()
    for _ in iter_udp_batches(mixed_capture, chunk_bytes=64, counters=partial):
        break
    assert partial == Counter()  # the first UDP packets come before any drop
    torn = Counter()
    assert list(iter_packets(mixed_capture, counters=torn)) and torn == Counter()


def test_fast_path_agrees_with_parse_frame(mixed_capture):
    """Same acceptance and same reasons as the general path."""
    slow_rows, slow_reasons = [], Counter()
    for pkt in iter_packets(mixed_capture):
        frame = parse_frame(pkt.data)
        if isinstance(frame, str):
            slow_reasons[frame] += 1
        elif frame.ip_proto != 17:
            slow_reasons["not_udp"] += 1
        else:
            vids = [t.vid for t in frame.vlans] + [-1, -1]
            slow_rows.append((pkt.frame_index, pkt.ts_ns, frame.src_ip, frame.dst_ip, frame.src_port,
                              frame.dst_port, vids[0], vids[1], frame.payload))
    reader = CaptureReader(mixed_capture)
    assert _collect(reader) == slow_rows
    assert {k: v for k, v in reader.counters.items() if k in slow_reasons} == dict(slow_reasons)


@pytest.mark.parametrize("chunk_bytes", [16, 17, 61, 100, 1499, 4096])
def test_chunk_size_does_not_change_results(mixed_capture, chunk_bytes):
    reference = _collect(CaptureReader(mixed_capture))
    reader = CaptureReader(mixed_capture, chunk_bytes=chunk_bytes)
    assert _collect(reader) == reference
    assert reader.stats["packets"] == len(MIXED)
    assert [p.data for p in iter_packets(mixed_capture, chunk_bytes)] == MIXED_RAW


def test_buffers_stay_at_chunk_size_unless_a_record_is_bigger(tmp_path):
    path = tmp_path / "sizes.pcap"
    small = Ether() / IP(dst="233.54.12.1") / UDP() / Raw(b"s" * 100)
    big = Ether() / IP(dst="233.54.12.1") / UDP() / Raw(b"B" * 3000)
    _write_scapy(path, [small] * 40 + [big] + [small] * 40, "ns")
    sizes = [b.buf.nbytes for b in iter_udp_batches(path, chunk_bytes=1024)]
    assert sum(1 for s in sizes if s > 1024) >= 1
    assert max(sizes) == 16 + len(bytes(big))  # the big record's own buffer, no more
    assert sum(len(b) for b in iter_udp_batches(path, chunk_bytes=1024)) == 81


def test_gzipped_capture_reads_the_same(tmp_path, mixed_capture):
    gz = tmp_path / "mixed.pcap.gz"
    gz.write_bytes(gzip.compress(mixed_capture.read_bytes()))
    assert _collect(CaptureReader(gz, chunk_bytes=333)) == _collect(CaptureReader(mixed_capture))
    assert detect_format(gz) == detect_format(mixed_capture)


# -- torn and corrupt files ---------------------------------------------------


@pytest.mark.parametrize("kind", ["ns", "be-us", "pcapng"])
def test_every_cut_inside_the_last_record_counts_one_truncated(tmp_path, kind):
    full = tmp_path / "full.cap"
    pkts = MIXED[:3]
    _write_scapy(full, pkts, kind)
    data = full.read_bytes()
    last_len = len(MIXED_RAW[2])
    record_len = (16 + last_len) if kind != "pcapng" else 32 + ((last_len + 3) & ~3)
    last_start = len(data) - record_len
    torn = tmp_path / "torn.cap"
    for cut in list(range(last_start + 1, len(data), 7)) + [len(data) - 1]:
        torn.write_bytes(data[:cut])
        for chunk in (16, 64, 8 << 20):
            reader = CaptureReader(torn, chunk_bytes=chunk)
            rows = _collect(reader)
            assert [r[0] for r in rows] == [0, 1], (cut, chunk)
            assert reader.counters["truncated_record"] == 1
    torn.write_bytes(data[:last_start])
    reader = CaptureReader(torn)
    assert len(_collect(reader)) == 2 and reader.counters["truncated_record"] == 0


def test_cut_gzip_stream_is_a_torn_file(tmp_path, mixed_capture):
    compressed = gzip.compress(mixed_capture.read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(compressed[: len(compressed) * 2 // 3])
    reader = RecordReader(cut, chunk_bytes=64)
    packets = [p.data for p in reader.packets()]
    assert 0 < len(packets) < len(MIXED)
    assert packets == MIXED_RAW[: len(packets)]


def test_bad_magic_names_file_and_bytes(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a capture")
    with pytest.raises(CaptureFormatError) as info:
        list(iter_packets(path))
    assert "notes.txt" in str(info.value) and "68 65 6c 6c" in str(info.value)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty"):
        list(iter_udp_batches(empty))


def test_short_pcap_header_is_an_error(tmp_path):
    path = tmp_path / "short.pcap"
    path.write_bytes(struct.pack("<IHH", 0xA1B2C3D4, 2, 4))
    with pytest.raises(CaptureFormatError, match="cut short"):
        list(iter_packets(path))


def test_corrupt_record_length_raises_with_offset(tmp_path):
    path = tmp_path / "corrupt.pcap"
    _write_scapy(path, MIXED[:3], "us")
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(MIXED_RAW[0])
    struct.pack_into("<I", data, second + 8, 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    reader = RecordReader(path)
    got = []
    with pytest.raises(CaptureFormatError, match=f"byte {second}"):
        for pkt in reader.packets():
            got.append(pkt.data)
    assert got == MIXED_RAW[:1]


def test_other_linktype_pcap(tmp_path):
    path = tmp_path / "raw-ip.pcap"
    ip_only = bytes(MIXED[0][IP])
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
                     + struct.pack("<IIII", 5, 6, len(ip_only), len(ip_only)) + ip_only)
    with pytest.raises(UnsupportedLinkType, match="raw-ip.pcap.*link type 101"):
        list(iter_udp_batches(path))
    (pkt,) = list(iter_packets(path))
    assert (pkt.linktype, pkt.ts_ns, pkt.data) == (101, 5_000_006_000, ip_only)


def test_modified_pcap_magic_is_named(tmp_path):
    path = tmp_path / "kuz.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1))
    with pytest.raises(CaptureFormatError, match="a1b2cd34"):
        list(iter_packets(path))


# -- hand-built pcapng ---------------------------------------------------------


def _block(order: str, block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _shb(order: str) -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
                  + _option(order, 4, b"test") + _option(order, 0, b""))


def _idb(order: str, linktype: int = 1, snaplen: int = 0, tsresol: int | None = None,
         tsoffset: int | None = None) -> bytes:
    opts = _option(order, 2, b"eth0")
    if tsresol is not None:
        opts += _option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _option(order, 14, struct.pack(order + "q", tsoffset))
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts + _option(order, 0, b""))


def _epb(order: str, iface: int, ts: int, data: bytes, orig_len: int | None = None) -> bytes:
    body = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if orig_len is None else orig_len)
    body += data + b"\x00" * (-len(data) % 4) + _option(order, 1, b"a comment") + _option(order, 0, b"")
    return _block(order, 6, body)


def _opb(order: str, iface: int, ts: int, data: bytes) -> bytes:
    body = struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return _block(order, 2, body + data)


def _spb(order: str, data: bytes) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(data)) + data)


def _nrb(order: str) -> bytes:
    record = struct.pack(order + "HH", 1, 4 + 9) + bytes([10, 0, 0, 1]) + b"host.one\x00"
    record += b"\x00" * (-len(record) % 4)
    return _block(order, 4, record + struct.pack(order + "HH", 0, 0))


def _isb(order: str, iface: int) -> bytes:
    return _block(order, 5, struct.pack(order + "III", iface, 0, 0) + _option(order, 0, b""))


def _custom(order: str) -> bytes:
    return _block(order, 0x00000BAD, struct.pack(order + "I", 32473) + b"vendor data")


U = [bytes(Ether() / Dot1Q(vlan=i) / IP(src="10.0.0.1", dst="233.54.12.1")
           / UDP(sport=1000 + i, dport=26400) / Raw(bytes([i]) * (i + 1))) for i in range(8)]


def _two_section_pcapng() -> tuple[bytes, list[tuple[int, int, int, bytes]]]:
    """Returns the file and the expected (frame_index, ts_ns, linktype, data)."""
    le, be = "<", ">"
    data = _shb(le)
    data += _idb(le)                                            # if 0: default 10^-6
    data += _idb(le, tsresol=9, tsoffset=100)                   # if 1: ns, +100 s
    data += _idb(le, linktype=101)                              # if 2: raw IP
    data += _idb(le, tsresol=0x80 | 20, snaplen=60)             # if 3: 2^-20 s
    data += _epb(le, 0, 1_700_000_000_123_456, U[0])
    data += _nrb(le) + _custom(le)
    data += _epb(le, 1, 1_700_000_000_987_654_321, U[1])
    data += _isb(le, 0)
    data += _epb(le, 2, 5, bytes(U[2][18:]))
    data += _opb(le, 3, (1_700_000_001 << 20) | (1 << 19), U[3])
    data += _spb(le, U[4])
    data += _epb(le, 7, 1, U[5])                                # undeclared interface
    data += _shb(be)
    data += _idb(be, tsresol=3)                                 # ms
    data += _idb(be, tsresol=0x80 | 40)                         # 2^-40 s: sub-ns part dropped
    data += _epb(be, 0, 1_700_000_002_500, U[6])
    data += _epb(be, 1, (1_000_003 << 40) | (1 << 39) | 1, U[7])
    expected = [
        (0, 1_700_000_000_123_456_000, 1, U[0]),
        (1, 1_700_000_100_987_654_321, 1, U[1]),
        (2, 5_000, 101, bytes(U[2][18:])),
        (3, 1_700_000_001_500_000_000, 1, U[3]),
        (4, 1_700_000_001_500_000_000, 1, U[4]),               # SPB inherits the last time
        (6, 1_700_000_002_500_000_000, 1, U[6]),
        (7, 1_000_003_500_000_000, 1, U[7]),
    ]
    return data, expected


@pytest.mark.parametrize("chunk_bytes", [16, 40, 97, 256, 8 << 20])
def test_hand_built_pcapng(tmp_path, chunk_bytes):
    data, expected = _two_section_pcapng()
    path = tmp_path / "two.pcapng"
    path.write_bytes(data)
    reader = RecordReader(path, chunk_bytes=chunk_bytes)
    got = [(p.frame_index, p.ts_ns, p.linktype, p.data) for p in reader.packets()]
    assert got == expected
    assert reader.stats["packets"] == 7
    assert reader.counters["bad_interface"] == 1
    assert reader.stats["skipped_blocks"] == 3
    assert reader.stats["sections"] == 2 and reader.stats["interfaces"] == 6

    fast = CaptureReader(path, chunk_bytes=chunk_bytes)
    rows = _collect(fast)
    assert [(r[0], r[1]) for r in rows] == [(e[0], e[1]) for e in expected if e[2] == 1]
    assert [r[6] for r in rows] == [0, 1, 3, 4, 6, 7]
    assert [r[4] for r in rows] == [1000, 1001, 1003, 1004, 1006, 1007]
    assert [r[8] for r in rows] == [bytes([i]) * (i + 1) for i in (0, 1, 3, 4, 6, 7)]
    assert fast.counters["other_linktype"] == 1
    assert detect_format(path) == "pcapng"


def test_pcapng_snaplen_limits_simple_packet_block(tmp_path):
    le = "<"
    frame = U[7] + b"\x00" * 40
    path = tmp_path / "spb.pcapng"
    path.write_bytes(_shb(le) + _idb(le, snaplen=50) + _spb(le, frame))
    (pkt,) = list(iter_packets(path))
    assert pkt.data == frame[:50] and pkt.orig_len == len(frame)
    reader = CaptureReader(path)
    assert _collect(reader) == [] and reader.counters["truncated"] == 1


def test_pcapng_trailer_mismatch_and_bad_byte_order(tmp_path):
    le = "<"
    block = bytearray(_epb(le, 0, 1, U[0]))
    struct.pack_into("<I", block, len(block) - 4, len(block) + 4)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(_shb(le) + _idb(le) + bytes(block))
    with pytest.raises(CaptureFormatError, match="trailer"):
        list(iter_packets(path))
    shb = bytearray(_shb(le))
    shb[8:12] = b"\x01\x02\x03\x04"
    path.write_bytes(bytes(shb))
    with pytest.raises(CaptureFormatError, match="byte-order magic"):
        list(iter_packets(path))


def test_tsresol_modes():
    assert tsresol_to_mode(6) == (0, 1000)
    assert tsresol_to_mode(9) == (0, 1)
    assert tsresol_to_mode(12) == (1, 1000)
    assert tsresol_to_mode(0x80 | 10) == (2, 10)
    with pytest.raises(ValueError):
        tsresol_to_mode(20)
    with pytest.raises(ValueError):
        tsresol_to_mode(0x80 | 64)


def test_batches_keep_their_own_buffers(mixed_capture):
    batches = list(iter_udp_batches(mixed_capture, chunk_bytes=200))
    payloads = [b.payload(i) for b in batches for i in range(len(b))]
    assert payloads == [bytes(Ether(MIXED_RAW[i])[UDP].payload) for i in EXPECTED_UDP_INDEXES]
    assert all(b.buf.dtype == np.uint8 for b in batches)
    assert all(isinstance(parse_frame(MIXED_RAW[i]), Frame) for i in EXPECTED_UDP_INDEXES)
