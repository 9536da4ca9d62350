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


def test_group_durability_commits_off_the_callers_thread(tmp_path, monkeypatch):
    import threading
    path = tmp_path / "j"
    callers = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (callers.append(threading.get_ident()),
                                                 real(fd)))
    journal = Journal(path, durability="group")
    before = len(callers)
    records = [journal.append("tx", bytes([i])) for i in range(50)]
    # Written to the kernel at once: a restart after kill -9 sees every record.
    with Journal(path, durability="os") as reader:
        assert [r.payload for r in reader] == [bytes([i]) for i in range(50)]
    assert journal.sync(timeout=10) in range(0, 51)
    assert journal.unsynced == 0 and journal.durable_offset == journal.end_offset
    assert journal.end_offset == records[-1].offset + len(encode_record("tx", 0, b"\0"))
    # Group commit: fewer fsyncs than records, none of them on this thread.
    commits = callers[before:]
    assert 1 <= len(commits) <= 50 and threading.get_ident() not in commits
    journal.close()
    assert not any(t.name.startswith("journal-commit") for t in threading.enumerate())


def test_a_failed_fsync_stops_the_journal(tmp_path, monkeypatch):
    from host.journal import JournalError
    journal = Journal(tmp_path / "j", durability="group")
    journal.append("tx", b"one")
    journal.sync(timeout=10)

    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", broken)
    journal.append("tx", b"two")
    with pytest.raises(JournalError):
        journal.sync(timeout=10)
    with pytest.raises(JournalError):
        journal.append("tx", b"three")
    with pytest.raises(JournalError):
        journal.hold("tx", b"three")
    assert journal.durable_offset < journal.end_offset and journal.held == 0
    monkeypatch.undo()
    journal.close()
    with Journal(tmp_path / "j") as reader:
        assert [r.payload for r in reader] == [b"one", b"two"]


def test_a_failed_write_leaves_no_half_record(tmp_path, monkeypatch):
    from host.journal import JournalError
    path = tmp_path / "j"
    journal = Journal(path, durability="os")
    journal.append("tx", b"first")
    real = os.write

    def half_then_fail(fd, data):
        if len(data) > 20:
            real(fd, bytes(data)[:10])
            raise OSError(28, "No space left on device")
        return real(fd, data)
    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(JournalError):
        journal.append("tx", b"x" * 40)
    monkeypatch.undo()
    journal.append("tx", b"after")
    journal.close()
    with Journal(path) as reader:
        assert [r.payload for r in reader] == [b"first", b"after"]
        assert not reader.recovery.torn


def test_append_batch_is_one_write(tmp_path, monkeypatch):
    writes = []
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (writes.append(len(data)),
                                                       real(fd, data))[1])
    with Journal(tmp_path / "j", durability="os") as journal:
        journal.append_batch([("a", b"1", 1), ("b", b"22", 2), ("c", b"", 3)])
        assert len(writes) == 1 and [r.kind for r in journal] == ["a", "b", "c"]
        assert journal.append_batch([]) == []


# -- held records ---------------------------------------------------------------------

def _writes(monkeypatch):
    writes = []
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (writes.append(bytes(data)),
                                                       real(fd, data))[1])
    return writes


def test_held_records_are_written_in_one_write_with_the_same_bytes(tmp_path, monkeypatch):
    # One append per record and hold + release must leave identical files.
    items = [("tx", b"first", 1), ("tx", b"second", 2), ("rx", b"\x00" * 30, 3),
             ("tx", b"third", 4)]
    one_by_one = tmp_path / "one"
    with Journal(one_by_one, durability="os") as journal:
        for kind, payload, ts in items:
            journal.append(kind, payload, ts)
    writes = _writes(monkeypatch)
    held = tmp_path / "held"
    with Journal(held, durability="os") as journal:
        start = len(writes)
        journal.hold(*items[0])
        journal.hold(*items[1])
        assert journal.held == 2 and len(writes) == start and len(journal) == 0
        # Nothing on the file yet: a reader (a restart) sees no record.
        with Journal(held) as reader:
            assert len(reader) == 0
        # Another append writes the held records first, in the same write.
        record = journal.append(*items[2])
        assert len(writes) == start + 1 and journal.held == 0
        assert [r.kind for r in journal] == ["tx", "tx", "rx"] and record == journal.records[-1]
        journal.hold(*items[3])
        released = journal.release()
        assert len(writes) == start + 2 and [r.payload for r in released] == [b"third"]
        assert journal.release() == [] and len(writes) == start + 2
        offsets = [r.offset for r in journal]
    with Journal(one_by_one) as reader:
        assert offsets == [r.offset for r in reader]
    assert held.read_bytes() == one_by_one.read_bytes()


def test_held_records_are_written_by_batches_sync_and_close(tmp_path):
    from host.journal import JournalError
    path = tmp_path / "j"
    journal = Journal(path, durability="os")
    journal.hold("tx", b"a", 1)
    journal.append_batch([("trigger", b"b", 2)])
    journal.hold("tx", bytearray(b"c"), 3)
    assert journal.sync() == 3 and journal.held == 0
    journal.hold("tx", b"d", 4)
    journal.close()
    with Journal(path) as reader:
        assert [(r.kind, r.payload, r.timestamp_ns) for r in reader] == [
            ("tx", b"a", 1), ("trigger", b"b", 2), ("tx", b"c", 3), ("tx", b"d", 4)]
    with pytest.raises(JournalError):
        journal.hold("tx", b"late")


def test_hold_refuses_a_bad_record_at_once(tmp_path):
    with Journal(tmp_path / "j", durability="os") as journal:
        journal.hold("tx", b"good", 1)
        with pytest.raises(ValueError):
            journal.hold("", b"no kind")
        with pytest.raises(ValueError):
            journal.hold("tx", b"", 2**64)
        # A bad record in a batch leaves the held ones held, not lost.
        with pytest.raises(ValueError):
            journal.append_batch([("é", b"", 2)])
        assert journal.held == 1
    with Journal(tmp_path / "j") as reader:
        assert [r.payload for r in reader] == [b"good"]


def test_a_failed_release_drops_the_held_records_and_leaves_no_half(tmp_path, monkeypatch):
    from host.journal import JournalError
    path = tmp_path / "j"
    journal = Journal(path, durability="os")
    journal.append("tx", b"before")
    real = os.write

    def half_then_fail(fd, data):
        real(fd, bytes(data)[:10])
        raise OSError(5, "Input/output error")
    journal.hold("tx", b"x" * 40)
    journal.hold("tx", b"y" * 40)
    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(JournalError):
        journal.release()
    monkeypatch.undo()
    assert journal.held == 0 and [r.payload for r in journal] == [b"before"]
    journal.append("tx", b"after")
    journal.close()
    with Journal(path) as reader:
        assert [r.payload for r in reader] == [b"before", b"after"]
        assert not reader.recovery.torn


def test_a_torn_released_batch_keeps_its_whole_records(tmp_path):
    # Held records leave in one write; a crash in the middle of it tears the
    # tail like any other write: the whole records before the cut survive.
    path = tmp_path / "j"
    with Journal(path, durability="os") as journal:
        journal.append("tx", b"kept", 1)
        start = journal.end_offset
        for n in range(3):
            journal.hold("tx", bytes([n]) * 20, 2 + n)
        bounds = [r.offset for r in journal.release()] + [journal.end_offset]
    whole = path.read_bytes()
    for cut in range(start + 1, len(whole)):
        path.write_bytes(whole[:cut])
        complete = sum(1 for end in bounds[1:] if end <= cut)
        with Journal(path) as reader:
            assert len(reader) == 1 + complete
            torn_at = bounds[complete]
            assert reader.recovery.torn == (cut != torn_at)
            if cut != torn_at:
                assert reader.recovery.torn_offset == torn_at
