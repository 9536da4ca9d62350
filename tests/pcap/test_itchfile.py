"""Nasdaq length-prefixed ITCH files and format detection."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.pcap import CaptureFormatError, detect_format
from host.pcap.frames import build_udp_frame
from host.pcap.itchfile import ItchFileReader, ItchFileWriter, iter_itch_batches
from host.pcap.writer import PcapngWriter, PcapWriter

# ITCH 5.0 lengths: System Event 'S' 12, Add Order 'A' 36, Order Delete 'D' 19,
# Order Executed 'E' 31 (type byte included).
SYSTEM_EVENT = b"S" + struct.pack(">HH", 0, 2) + (34_200_000_000_000).to_bytes(6, "big") + b"O"
ADD_ORDER = (b"A" + struct.pack(">HH", 1, 2) + (34_200_000_000_123).to_bytes(6, "big")
             + struct.pack(">QcI", 42, b"B", 100) + b"AAPL    " + struct.pack(">I", 1_895_000))
ORDER_DELETE = b"D" + struct.pack(">HH", 1, 3) + (34_200_000_999_999).to_bytes(6, "big") + struct.pack(">Q", 42)
MESSAGES = [SYSTEM_EVENT, ADD_ORDER, ORDER_DELETE] * 7


def _read_all(path, chunk_bytes=8 << 20) -> tuple[list[bytes], dict]:
    reader = ItchFileReader(path, chunk_bytes)
    return list(reader.messages()), {**reader.counters, **reader.stats}


def test_message_lengths_are_itch_5_0():
    assert (len(SYSTEM_EVENT), len(ADD_ORDER), len(ORDER_DELETE)) == (12, 36, 19)


@pytest.mark.parametrize("name", ["day.itch", "day.itch.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    path = tmp_path / name
    with ItchFileWriter(path) as writer:
        for msg in MESSAGES:
            writer.write(msg)
    raw = path.read_bytes()
    if name.endswith(".gz"):
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    assert raw[:14] == b"\x00\x0c" + SYSTEM_EVENT
    assert len(raw) == sum(2 + len(m) for m in MESSAGES)
    for chunk in (16, 17, 50, 4096):
        got, counters = _read_all(path, chunk)
        assert got == MESSAGES
        assert counters["messages"] == len(MESSAGES)
        assert counters["truncated"] == counters["bad_length"] == 0
    assert detect_format(path) == "itch"


def test_batches_point_into_their_buffers(tmp_path):
    path = tmp_path / "day.itch"
    with ItchFileWriter(path) as writer:
        for msg in MESSAGES:
            writer.write(msg)
    batches = list(iter_itch_batches(path, chunk_bytes=64))
    assert len(batches) > 1
    flat = [b.buf[o:o + n].tobytes() for b in batches for o, n in zip(b.msg_off, b.msg_len)]
    assert flat == MESSAGES
    assert all(b.msg_off.dtype == np.int64 and b.msg_len.dtype == np.int32 for b in batches)
    assert all(b.buf[int(b.msg_off[0])] in b"SAD" for b in batches)


def test_write_batch_equals_single_writes(tmp_path):
    buf = np.frombuffer(b"xx" + b"".join(MESSAGES), dtype=np.uint8)
    lengths = np.array([len(m) for m in MESSAGES], dtype=np.int32)
    offsets = 2 + np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)
    batch_path, single_path = tmp_path / "batch.itch", tmp_path / "single.itch"
    with ItchFileWriter(batch_path) as writer:
        writer.write_batch(buf, offsets[::-1], lengths[::-1])  # any order, any offsets
    with ItchFileWriter(single_path) as writer:
        for msg in reversed(MESSAGES):
            writer.write(msg)
    assert batch_path.read_bytes() == single_path.read_bytes()


def test_writer_rejects_bad_lengths(tmp_path):
    with ItchFileWriter(tmp_path / "x.itch") as writer:
        with pytest.raises(ValueError):
            writer.write(b"")
        with pytest.raises(ValueError):
            writer.write(b"x" * 65536)
        with pytest.raises(ValueError):
            writer.write_batch(np.zeros(10, np.uint8), np.array([0]), np.array([0]))
        with pytest.raises(ValueError):
            writer.write_batch(np.zeros(10, np.uint8), np.array([5]), np.array([6]))
        assert writer.messages == 0


def test_torn_tail_counts_truncated(tmp_path):
    full = b"".join(len(m).to_bytes(2, "big") + m for m in MESSAGES)
    path = tmp_path / "torn.itch"
    last = 2 + len(MESSAGES[-1])
    for cut in range(len(full) - last + 1, len(full)):
        path.write_bytes(full[:cut])
        for chunk in (16, 8 << 20):
            got, counters = _read_all(path, chunk)
            assert got == MESSAGES[:-1]
            assert counters["truncated"] == 1
    path.write_bytes(full[:len(full) - last])
    got, counters = _read_all(path)
    assert got == MESSAGES[:-1] and counters["truncated"] == 0


def test_zero_length_counts_bad_length_and_goes_on(tmp_path):
    body = (b"\x00\x0c" + SYSTEM_EVENT + b"\x00\x00" + b"\x00\x13" + ORDER_DELETE
            + b"\x00\x00\x00\x00")
    path = tmp_path / "zero.itch"
    path.write_bytes(body)
    got, counters = _read_all(path, 16)
    assert got == [SYSTEM_EVENT, ORDER_DELETE]
    assert counters["bad_length"] == 3 and counters["truncated"] == 0


def test_drops_are_added_into_a_callers_counters(tmp_path):
    path = tmp_path / "zero.itch"
    path.write_bytes(b"\x00\x00\x00\x0c" + SYSTEM_EVENT + b"\x00\x05AB")
    drops: dict[str, int] = {"itch_unknown_type": 1}
    batches = list(iter_itch_batches(path, chunk_bytes=16, counters=drops))
    assert sum(len(b) for b in batches) == 1
    assert drops == {"itch_unknown_type": 1, "bad_length": 1, "truncated": 1}


def test_cut_gzip_itch_file(tmp_path):
    path = tmp_path / "day.itch.gz"
    with ItchFileWriter(path) as writer:
        for msg in MESSAGES * 20:
            writer.write(msg)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    got, counters = _read_all(path, 64)
    assert got == (MESSAGES * 20)[: len(got)]
    assert len(got) < len(MESSAGES) * 20


@settings(max_examples=40)
@given(messages=st.lists(st.binary(min_size=1, max_size=300), max_size=40),
       chunk_bytes=st.integers(16, 700), gz=st.booleans())
def test_round_trip_property(tmp_path_factory, messages, chunk_bytes, gz):
    path = tmp_path_factory.mktemp("itch") / ("p.itch.gz" if gz else "p.itch")
    with ItchFileWriter(path) as writer:
        for msg in messages:
            writer.write(msg)
    got, counters = _read_all(path, chunk_bytes)
    assert got == messages
    assert counters["messages"] == len(messages)


# -- detect_format -------------------------------------------------------------


def test_detect_capture_formats(tmp_path):
    frame = build_udp_frame(b"x", "10.0.0.1", "233.54.12.1", 1, 2)
    for cls, kwargs, fmt in ((PcapWriter, {}, "pcap"), (PcapWriter, {"nanosecond": False}, "pcap"),
                             (PcapngWriter, {}, "pcapng")):
        for name in ("c.cap", "c.cap.gz"):
            path = tmp_path / name
            with cls(path, **kwargs) as writer:
                writer.write(1, frame)
            assert detect_format(path) == fmt
    be = tmp_path / "be.pcap"
    be.write_bytes(struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
    assert detect_format(be) == "pcap"


def test_detect_rejects_garbage(tmp_path):
    cases = {
        "text.txt": b"Hello world, this is a text file\n" * 5,
        "empty": b"",
        "zeros": b"\x00" * 100,
        "lower_type_changes_length": b"\x00\x0c" + SYSTEM_EVENT + b"\x00\x0d" + SYSTEM_EVENT + b"!",
        "digit_type": b"\x00\x03123",
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(CaptureFormatError, match=name):
            detect_format(path)


def test_detect_short_itch_file(tmp_path):
    path = tmp_path / "one.itch"
    path.write_bytes(b"\x00\x0c" + SYSTEM_EVENT)
    assert detect_format(path) == "itch"
