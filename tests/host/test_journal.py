"""The crash-safe journal: round trip, torn tails, corruption, reopen."""
import os
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from host.journal import Journal, JournalCorrupt, Record
from host.journal.journal import MAGIC, _HEADER, encode_record


def _fill(path, items):
    with Journal(path) as j:
        for kind, payload, ts in items:
            j.append(kind, payload, ts)


ITEMS = [("order", b"\x01\x02abc", 10), ("rx", b"", 11), ("tx", bytes(range(256)), 12)]


def test_round_trip_and_offsets(tmp_path):
    path = tmp_path / "j.bin"
    _fill(path, ITEMS)
    with Journal(path) as j:
        assert [(r.kind, r.payload, r.timestamp_ns) for r in j] == ITEMS
        assert not j.recovery.torn
        assert j.records[0].offset == len(MAGIC)
        assert j.records[1].offset == len(MAGIC) + len(encode_record(*ITEMS[0][:1], 10, ITEMS[0][1]))


@settings(max_examples=40)
@given(st.lists(st.tuples(st.text("abcdefgh_", min_size=1, max_size=12),
                          st.binary(max_size=64), st.integers(0, 2**64 - 1)), max_size=12))
def test_round_trip_property(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("j") / "j.bin"
    _fill(path, items)
    with Journal(path) as j:
        assert [(r.kind, r.payload, r.timestamp_ns) for r in j] == items


def test_torn_tail_at_every_offset_of_last_record(tmp_path):
    path = tmp_path / "j.bin"
    _fill(path, ITEMS)
    whole = path.read_bytes()
    last_start = len(whole) - len(encode_record("tx", 12, bytes(range(256))))
    for cut in range(last_start + 1, len(whole)):
        path.write_bytes(whole[:cut])
        with Journal(path) as j:
            assert [r.payload for r in j] == [b"\x01\x02abc", b""]
            assert j.recovery.torn and j.recovery.torn_offset == last_start
            assert j.recovery.torn_bytes == cut - last_start
        assert path.stat().st_size == last_start
    # Exactly at the boundary nothing is torn.
    path.write_bytes(whole[:last_start])
    with Journal(path) as j:
        assert len(j) == 2 and not j.recovery.torn


def test_torn_file_header_and_zero_filled_tail(tmp_path):
    path = tmp_path / "j.bin"
    path.write_bytes(MAGIC[:3])
    with Journal(path) as j:
        assert j.recovery.torn and len(j) == 0
        j.append("a", b"x", 1)
    with Journal(path) as j:
        assert [r.payload for r in j] == [b"x"]
    with open(path, "ab") as f:
        f.write(b"\0" * 40)   # space allocated by the file system, never written
    with Journal(path) as j:
        assert j.recovery.reason == "zero-filled tail" and j.recovery.torn_bytes == 40
        assert len(j) == 1


def test_last_record_with_bad_body_checksum_is_torn(tmp_path):
    path = tmp_path / "j.bin"
    _fill(path, ITEMS)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with Journal(path) as j:
        assert j.recovery.torn and len(j) == 2


@pytest.mark.parametrize("where", ["length", "body"])
def test_corruption_in_the_middle_names_its_offset(tmp_path, where):
    path = tmp_path / "j.bin"
    _fill(path, ITEMS)
    data = bytearray(path.read_bytes())
    second = len(MAGIC) + len(encode_record("order", 10, b"\x01\x02abc"))
    data[second + (0 if where == "length" else _HEADER.size + 2)] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as err:
        Journal(path)
    assert err.value.offset == second
    assert str(second) in str(err.value)
    assert path.read_bytes() == bytes(data)   # never truncates good data after damage


def test_not_a_journal(tmp_path):
    path = tmp_path / "j.bin"
    path.write_bytes(b"hello world, not a journal")
    with pytest.raises(JournalCorrupt):
        Journal(path)


def test_reopen_and_append_after_torn_tail(tmp_path):
    path = tmp_path / "j.bin"
    _fill(path, ITEMS)
    with open(path, "ab") as f:
        f.write(encode_record("late", 99, b"never finished")[:9])
    with Journal(path) as j:
        assert j.recovery.torn
        rec = j.append("after", b"crash", 20)
        assert isinstance(rec, Record) and rec.offset == j.recovery.torn_offset
        j.append_batch([("b1", b"1", 21), ("b2", b"2", None)])
    with Journal(path) as j:
        assert [r.kind for r in j] == ["order", "rx", "tx", "after", "b1", "b2"]
        assert not j.recovery.torn


def test_append_is_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    with Journal(tmp_path / "j.bin") as j:
        before = len(synced)
        j.append("k", b"p", 1)
        assert len(synced) == before + 1
        j.append_batch([("k", b"p", 2), ("k", b"q", 3)])
        assert len(synced) == before + 2


def test_header_checksums_cover_length(tmp_path):
    raw = encode_record("k", 5, b"abc")
    length, length_crc, body_crc = _HEADER.unpack_from(raw)
    assert length == len(raw) - _HEADER.size
    assert length_crc == zlib.crc32(length.to_bytes(4, "big"))
    assert body_crc == zlib.crc32(raw[_HEADER.size:])


def test_bad_kind_rejected(tmp_path):
    with Journal(tmp_path / "j.bin") as j:
        with pytest.raises(ValueError):
            j.append("", b"")
        with pytest.raises(ValueError):
            j.append("é", b"")


def test_os_durability_writes_before_returning_and_syncs_on_demand(tmp_path):
    path = tmp_path / "j"
    journal = Journal(path, durability="os")
    journal.append("tx", b"one")
    journal.append("tx", b"two")
    assert journal.unsynced == 2
    # Written to the kernel already: a second reader (a restart after kill -9)
    # sees both records before any sync.
    with Journal(path) as reader:
        assert [r.payload for r in reader] == [b"one", b"two"]
    assert journal.sync() == 2 and journal.unsynced == 0 and journal.sync() == 0
    journal.close()
    with pytest.raises(ValueError):
        Journal(tmp_path / "k", durability="later")
