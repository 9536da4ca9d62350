"""The frame filter's model against the golden parser (host.pcap.frames)."""
from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from host.pcap.frames import IPPROTO_UDP, REJECT_REASONS, build_udp_frame, parse_frame
from rtl.common.axis import Packet, from_beats, to_beats
from rtl.frame_filter.model import (COUNTER_MASK, COUNTERS, DROP_REASONS, MAX_PAYLOAD_BYTES,
                                    PASSED, FilterEntry, FrameFilterModel, classify,
                                    header_checksum_ok)
from tests.rtl.frame_stimulus import FrameFactory, default_table, mixed_frames, reseal_ip

# Golden rejection -> the model's verdict.  TCP with a bad header is "not UDP"
# to the filter, which never looks past the IP protocol of a non-UDP frame.
GOLDEN_TO_MODEL = {name: name for name in REJECT_REASONS}
GOLDEN_TO_MODEL["bad_tcp_header"] = "not_udp"


def golden_verdict(data: bytes, table) -> tuple[str, bytes, int]:
    """What the filter must do, derived from parse_frame alone."""
    frame = parse_frame(data)
    if isinstance(frame, str):
        return GOLDEN_TO_MODEL[frame], b"", -1
    if frame.ip_proto != IPPROTO_UDP:
        return "not_udp", b"", -1
    if not frame.payload:
        return "empty_payload", b"", -1
    for index, entry in enumerate(table):
        if entry is not None and entry.enabled and \
                (entry.dst_ip, entry.dst_port) == (frame.dst_ip, frame.dst_port):
            if len(frame.payload) > MAX_PAYLOAD_BYTES:
                return "oversize", b"", -1
            return PASSED, frame.payload, index
    return "no_match", b"", -1


def test_golden_reasons_all_have_a_model_verdict():
    assert set(GOLDEN_TO_MODEL.values()) <= set(DROP_REASONS)


def test_model_agrees_with_golden_on_mixed_frames():
    table = default_table()
    frames = mixed_frames(600, seed=404)
    seen = set()
    for frame in frames:
        verdict = classify(frame.data, False, table)
        assert tuple(verdict) == golden_verdict(frame.data, table), frame.kind
        seen.add(verdict.reason)
        if frame.error:
            assert classify(frame.data, True, table).reason == "frame_error"
    assert seen == set(COUNTERS) - {"frames", "frame_error"}


def test_counters_account_for_every_frame():
    model = FrameFilterModel(default_table())
    frames = mixed_frames(300, seed=5)
    out = model.run(f.packet() for f in frames)
    assert model.counters["frames"] == len(frames)
    assert model.counters["passed"] == len(out)
    assert sum(model.counters[name] for name in DROP_REASONS) == len(frames) - len(out)
    assert model.counters["frame_error"] == sum(f.error for f in frames)


def test_lowest_matching_entry_wins_and_disabled_entries_never_match():
    table = default_table()
    factory = FrameFactory(table, seed=1)
    dup = table[2]
    assert (table[5].dst_ip, table[5].dst_port) == (dup.dst_ip, dup.dst_port)
    frame = factory.udp(b"x" * 40, dst=(dup.dst_ip, dup.dst_port))
    assert classify(frame, False, table).index == 2
    off = table[4]
    assert not off.enabled
    frame = factory.udp(b"x" * 40, dst=(off.dst_ip, off.dst_port))
    assert classify(frame, False, table).reason == "no_match"
    table[4] = FilterEntry(off.dst_ip, off.dst_port, True)
    assert classify(frame, False, table) == (PASSED, b"x" * 40, 4)


def test_payload_buffer_bound():
    entry = default_table()[0]
    for size, reason in ((MAX_PAYLOAD_BYTES, PASSED), (MAX_PAYLOAD_BYTES + 1, "oversize")):
        frame = build_udp_frame(bytes(size), "10.0.0.1", entry.dst_ip, 1, entry.dst_port)
        assert classify(frame, False, [entry]).reason == reason


def test_padding_and_trailing_bytes_are_not_payload():
    entry = default_table()[1]
    frame = build_udp_frame(b"abc", "10.0.0.1", entry.dst_ip, 1, entry.dst_port)
    padded = frame + bytes(60 - len(frame)) + b"\xde\xad\xbe\xef"
    assert classify(padded, False, [entry]) == (PASSED, b"abc", 0)


def test_checksum_of_words_matches_internet_checksum_rule():
    # 0x0000 words sum to 0, which is not 0xFFFF: an all-zero header fails.
    assert not header_checksum_ok([0] * 10)
    assert header_checksum_ok([0xFFFF] + [0] * 9)
    assert header_checksum_ok([0x4500, 0x0073, 0x0000, 0x4000, 0x4011, 0xB861, 0xC0A8, 0x0001,
                               0xC0A8, 0x00C7])


def test_counters_wrap_at_32_bits():
    model = FrameFilterModel()
    model.counters["frames"] = COUNTER_MASK
    model.process(b"\x00" * 5)
    assert model.counters["frames"] == 0
    assert model.counters["truncated"] == 1


def test_beats_round_trip():
    data = bytes(range(19))
    beats = to_beats(data, error=True, error_beat=1)
    assert [b.tkeep for b in beats] == [0xFF, 0xFF, 0x07]
    assert [b.tuser for b in beats] == [False, True, False]
    assert from_beats(beats) == [Packet(data, True)]


@settings(max_examples=150)
@given(st.binary(min_size=1, max_size=120), st.booleans())
def test_model_judges_any_bytes_like_golden(data, error):
    table = default_table()
    verdict = classify(data, error, table)
    if error:
        assert verdict.reason == "frame_error"
    else:
        assert tuple(verdict) == golden_verdict(data, table)


@settings(max_examples=100)
@given(st.integers(0, 2), st.integers(0, 10), st.binary(min_size=1, max_size=300),
       st.integers(0, 0xFFFF), st.integers(-1, 60))
def test_model_judges_bent_udp_frames_like_golden(tags, options, payload, flags, cut):
    """Valid frames with the flags/fragment word set to anything (checksum
    kept right), then maybe cut at any length."""
    factory = FrameFactory(default_table(), seed=len(payload))
    frame = factory.udp(payload, tags=tags, options=options)
    ip = 14 + 4 * tags
    bent = bytearray(frame)
    struct.pack_into("!H", bent, ip + 6, flags)
    bent = reseal_ip(bent, ip)
    if cut >= 0:
        bent = bent[:ip + cut]
    table = default_table()
    assert tuple(classify(bytes(bent), False, table)) == golden_verdict(bytes(bent), table)
