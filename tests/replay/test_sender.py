"""Pacing arithmetic, the fidelity figures, and a paced UDP replay received
on loopback (every datagram, in order, bytes intact)."""
import socket
import threading

import numpy as np
import pytest

from host.replay.sender import (Schedule, Timing, parse_destination, send_paced,
                                timing_fidelity)
from host.replay.source import OutPacket, ReplaySource, SourceError


def _packet(ts, warmup=False, feed="A"):
    return OutPacket(ts, feed, b"", b"x", ("233.54.12.1", 26400), warmup, 0)


def test_timing_parse():
    assert Timing.parse("captured") == Timing("captured")
    assert Timing.parse("x10") == Timing("scale", 10.0)
    assert Timing.parse("2.5x") == Timing("scale", 2.5)
    assert Timing.parse("5000pps") == Timing("pps", 5000.0)
    assert Timing.parse("top") == Timing("top")
    for bad in ("fast", "x0", "-3pps", ""):
        with pytest.raises(ValueError):
            Timing.parse(bad)


def test_schedule_offsets_per_mode():
    stamps = [1_000, 3_000, 11_000]
    def offsets(timing, packets):
        s = Schedule(timing, warmup_pps=1e6)
        return [s.offset(p) for p in packets]
    plain = [_packet(t) for t in stamps]
    assert offsets(Timing("captured"), plain) == [0, 2_000, 10_000]
    assert offsets(Timing("scale", 2), plain) == [0, 1_000, 5_000]
    assert offsets(Timing("pps", 1e6), plain) == [0, 1_000, 2_000]
    assert offsets(Timing("top"), plain) == [None, None, None]
    # warm-up packets go at the warm-up rate first; the window's clock starts after them
    warm = [_packet(0, True), _packet(500, True)] + plain
    assert offsets(Timing("captured"), warm) == [0, 1_000, 2_000, 4_000, 12_000]


def test_timing_fidelity_figures():
    intended = np.arange(0, 10_000_000, 1_000_000)
    actual = intended.copy()
    actual[5:] += 3_000                      # one gap 3 µs late, the rest exact
    fid = timing_fidelity(intended, actual)
    assert fid["pairs"] == 9 and fid["max_us"] == 3.0 and fid["p50_us"] == 0.0
    unpaced = timing_fidelity(intended, actual, paced=[0] * 5 + [1] * 5)
    assert unpaced["pairs"] == 4 and unpaced["max_us"] == 0.0
    assert timing_fidelity([1], [1]) == {"pairs": 0}


def test_destinations():
    assert parse_destination("iface:veth0") == ("iface", "veth0")
    assert parse_destination("udp") == ("udp", None)
    assert parse_destination("udp:239.1.1.1:5000,239.1.1.2:5001")[1] == {
        "A": ("239.1.1.1", 5000), "B": ("239.1.1.2", 5001)}
    assert parse_destination("backend:model") == ("backend", "model")
    for bad in ("iface:", "tcp:1.2.3.4:5", "backend:gpu", "udp:nohost:1", "udp:1.2.3.4:99999"):
        with pytest.raises(SourceError):
            parse_destination(bad)


def test_paced_udp_replay_arrives_whole_and_in_order():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # The default buffer holds about 256 small datagrams, and the sender's
    # spin-wait can keep the reading thread from the GIL for the whole burst:
    # room for all 300 means a loss here is the sender's, not the scheduler's.
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    packets = [p for _, p in zip(range(300), ReplaySource("captures/day-clean.pcap"))]
    got = []
    # Read while sending as well.
    reader = threading.Thread(target=lambda: got.extend(
        receiver.recvfrom(65535)[0] for _ in packets))
    reader.start()
    result = send_paced(packets, "udp", {"A": ("127.0.0.1", port), "B": ("127.0.0.1", port)},
                        Timing("pps", 5_000))
    reader.join(10)
    receiver.close()
    assert got == [p.payload for p in packets]
    assert result.packets == 300 and len(result.intended_ns) == 300
    assert list(result.intended_ns) == [round(i * 1e9 / 5_000) for i in range(300)]
    assert result.as_dict()["fidelity_sender_clock"]["pairs"] == 299
