"""Writers: files read back by scapy (bytes, timestamps, checksums) and by
our readers; the numba batch builder against the Python frame builder."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from host.pcap.fast import CaptureReader
from host.pcap.frames import build_udp_frame
from host.pcap.reader import RecordReader
from host.pcap.writer import PcapngWriter, PcapWriter

TS = 1_700_000_000_123_456_789


def _batch(n: int, seed: int = 0, max_payload: int = 300, vlan_mode: str = "mixed") -> dict:
    rng = np.random.default_rng(seed)
    payload_len = rng.integers(0, max_payload, n).astype(np.int32)
    payload_off = np.concatenate([[0], np.cumsum(payload_len[:-1])]).astype(np.int64) + 3
    payload_buf = rng.integers(0, 256, int(payload_len.sum()) + 5, dtype=np.uint8)
    vlan0 = rng.integers(-1, 4096, n).astype(np.int32)
    vlan1 = np.where(vlan0 >= 0, rng.integers(-1, 4096, n), -1).astype(np.int32)
    if vlan_mode == "none":
        vlan0[:] = -1
        vlan1[:] = -1
    dst_ip = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    dst_ip[::2] = 0xE9360C01 + np.arange(len(dst_ip[::2]), dtype=np.uint32)  # multicast half
    return dict(
        ts_ns=TS + rng.integers(0, 10**12, n).astype(np.int64),
        payload_buf=payload_buf, payload_off=payload_off, payload_len=payload_len,
        src_ip=rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32), dst_ip=dst_ip,
        src_port=rng.integers(0, 65536, n).astype(np.uint16),
        dst_port=rng.integers(0, 65536, n).astype(np.uint16),
        vlan0=vlan0, vlan1=vlan1,
    )


def _expected_frame(b: dict, i: int, ip_id: int) -> bytes:
    off, length = int(b["payload_off"][i]), int(b["payload_len"][i])
    vlans = [int(v) for v in (b["vlan0"][i], b["vlan1"][i]) if v >= 0]
    return build_udp_frame(b["payload_buf"][off:off + length].tobytes(), int(b["src_ip"][i]),
                           int(b["dst_ip"][i]), int(b["src_port"][i]), int(b["dst_port"][i]),
                           vlans=vlans, ip_id=ip_id)


def _scapy_recomputed(raw: bytes) -> bytes:
    pkt = Ether(raw)
    del pkt[IP].chksum
    del pkt[UDP].chksum
    return bytes(pkt)


@pytest.mark.parametrize("make", [lambda p: PcapWriter(p, nanosecond=True),
                                  lambda p: PcapWriter(p, nanosecond=False),
                                  lambda p: PcapngWriter(p)], ids=["pcap-ns", "pcap-us", "pcapng"])
def test_batch_frames_read_by_scapy(tmp_path, make):
    path = tmp_path / "out.cap"
    b = _batch(40, seed=1)
    with make(path) as writer:
        writer.write_udp_batch(**b)
    nanosecond = not isinstance(writer, PcapWriter) or writer.nanosecond
    packets = rdpcap(str(path))
    assert len(packets) == 40
    for i, pkt in enumerate(packets):
        raw = bytes(pkt)
        assert raw == _expected_frame(b, i, ip_id=i)
        assert raw == _scapy_recomputed(raw)  # IP and UDP checksums are what scapy computes
        ts = int(b["ts_ns"][i])
        assert int(pkt.time * 10**9) == (ts if nanosecond else ts // 1000 * 1000)
        multicast = (int(b["dst_ip"][i]) >> 28) == 0xE
        if multicast:
            assert pkt.dst.startswith("01:00:5e")
        assert [layer.vlan for layer in (pkt.getlayer(Dot1Q, k) for k in (1, 2)) if layer] == \
            [int(v) for v in (b["vlan0"][i], b["vlan1"][i]) if v >= 0]


@pytest.mark.parametrize("writer_cls", [PcapWriter, PcapngWriter])
def test_write_of_ready_frames(tmp_path, writer_cls):
    path = tmp_path / "frames.cap"
    frames = [build_udp_frame(bytes([i]) * i, "10.0.0.1", "233.54.12.1", 1, 2, ip_id=i) for i in range(9)]
    with writer_cls(path) as writer:
        for i, frame in enumerate(frames):
            writer.write(TS + i, frame)
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == frames
    assert [int(p.time * 10**9) for p in packets] == [TS + i for i in range(9)]
    ours = list(RecordReader(path).packets())
    assert [p.data for p in ours] == frames and [p.ts_ns for p in ours] == [TS + i for i in range(9)]


def test_microsecond_pcap_header_and_truncation(tmp_path):
    path = tmp_path / "us.pcap"
    with PcapWriter(path, nanosecond=False) as writer:
        writer.write(TS, b"\x00" * 60)
    data = path.read_bytes()
    assert data[:4] == struct.pack("<I", 0xA1B2C3D4)
    assert struct.unpack_from("<II", data, 24) == (TS // 10**9, (TS % 10**9) // 1000)
    path_ns = tmp_path / "ns.pcap"
    with PcapWriter(path_ns) as writer:
        writer.write(TS, b"\x00" * 60)
    assert path_ns.read_bytes()[:4] == struct.pack("<I", 0xA1B23C4D)
    assert next(RecordReader(path_ns).packets()).ts_ns == TS
    assert next(RecordReader(path).packets()).ts_ns == TS // 1000 * 1000


@pytest.mark.parametrize("writer_cls", [PcapWriter, PcapngWriter])
def test_snaplen_cuts_batch_frames_like_single_frames(tmp_path, writer_cls):
    b = _batch(12, seed=2, max_payload=200)
    batch_path, single_path = tmp_path / "batch.cap", tmp_path / "single.cap"
    with writer_cls(batch_path, snaplen=80) as writer:
        writer.write_udp_batch(**b)
    with writer_cls(single_path, snaplen=80) as writer:
        for i in range(12):
            writer.write(int(b["ts_ns"][i]), _expected_frame(b, i, ip_id=i))
    assert batch_path.read_bytes() == single_path.read_bytes()
    packets = list(RecordReader(batch_path).packets())
    for i, pkt in enumerate(packets):
        full = _expected_frame(b, i, ip_id=i)
        assert pkt.data == full[:80] and pkt.orig_len == len(full)


def test_ip_id_runs_on_across_batches_and_output_blocks(tmp_path):
    path = tmp_path / "ids.pcap"
    first, second = _batch(5, seed=3), _batch(7, seed=4)
    with PcapWriter(path) as writer:
        writer.write_udp_batch(**first)
        writer.write_udp_batch(**second)
    ids = [p[IP].id for p in rdpcap(str(path))]
    assert ids == list(range(12))


def test_large_batch_spans_several_output_blocks(tmp_path):
    path = tmp_path / "big.pcap"
    b = _batch(6000, seed=5, max_payload=1400)  # ~4 MiB blocks -> more than one
    with PcapWriter(path) as writer:
        writer.write_udp_batch(**b)
    reader = CaptureReader(path, chunk_bytes=1 << 20)
    total = 0
    for batch in reader.udp_batches():
        for i in range(0, len(batch), 97):
            k = int(batch.frame_index[i])
            off, length = int(b["payload_off"][k]), int(b["payload_len"][k])
            assert batch.payload(i) == b["payload_buf"][off:off + length].tobytes()
            assert int(batch.frame_index[i]) == k
        total += len(batch)
    assert total == 6000 and reader.counters["bad_ip_checksum"] == 0


def test_gzip_output(tmp_path):
    path = tmp_path / "out.pcap.gz"
    b = _batch(20, seed=6)
    with PcapWriter(path) as writer:
        writer.write_udp_batch(**b)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert sum(len(x) for x in CaptureReader(path).udp_batches()) == 20


@pytest.mark.parametrize("change, message", [
    (dict(vlan0=np.full(3, -1, np.int32), vlan1=np.full(3, 5, np.int32)), "outer"),
    (dict(vlan0=np.full(3, 4096, np.int32)), "VLAN"),
    (dict(payload_len=np.full(3, 10**6, np.int32)), "payload"),
    (dict(payload_off=np.full(3, 10**9, np.int64)), "outside"),
    (dict(ts_ns=np.full(3, -1, np.int64)), "timestamp"),
    (dict(src_port=np.zeros(2, np.uint16)), "same length"),
])
def test_batch_validation(tmp_path, change, message):
    b = _batch(3, seed=7)
    b.update(change)
    with PcapWriter(tmp_path / "bad.pcap") as writer:
        with pytest.raises(ValueError, match=message):
            writer.write_udp_batch(**b)
        assert writer.packets == 0


@settings(max_examples=25)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**32 - 1),
       fmt=st.sampled_from(["pcap-ns", "pcap-us", "pcapng"]),
       chunk_bytes=st.sampled_from([64, 333, 4096, 1 << 20]))
def test_round_trip_through_fast_reader(tmp_path_factory, n, seed, fmt, chunk_bytes):
    path = tmp_path_factory.mktemp("rt") / "rt.cap"
    b = _batch(n, seed=seed)
    writer = PcapngWriter(path) if fmt == "pcapng" else PcapWriter(path, nanosecond=fmt == "pcap-ns")
    with writer:
        writer.write_udp_batch(**b)
    reader = CaptureReader(path, chunk_bytes=chunk_bytes)
    batches = list(reader.udp_batches())
    got = {name: np.concatenate([getattr(x, name) for x in batches])
           for name in ("ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "vlan0", "vlan1",
                        "payload_len", "frame_index")}
    expected_ts = b["ts_ns"] if fmt != "pcap-us" else b["ts_ns"] // 1000 * 1000
    np.testing.assert_array_equal(got["ts_ns"], expected_ts)
    for name in ("src_ip", "dst_ip", "src_port", "dst_port", "vlan0", "vlan1", "payload_len"):
        np.testing.assert_array_equal(got[name], b[name])
    np.testing.assert_array_equal(got["frame_index"], np.arange(n))
    payloads = [x.payload(i) for x in batches for i in range(len(x))]
    assert payloads == [b["payload_buf"][o:o + ln].tobytes()
                        for o, ln in zip(b["payload_off"], b["payload_len"])]
    assert reader.stats["udp_packets"] == n
