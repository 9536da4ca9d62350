"""Throughput stimulus: back-to-back minimum-size MoldUDP64 packets on both
feeds at once.

A set-up stretch (not measured) gives one stock a book: a Stock Directory,
then resting buy orders at ``LEVELS`` price levels, packed many per packet.
After a barrier (the harness waits for the path to go quiet and opens a new
statistics window) every frame carries one ITCH Order Delete (19 bytes) in
its own MoldUDP64 packet: 41 bytes of UDP payload, an 83-byte frame,
11 beats, the shortest a book-changing message makes.  Feed A and feed B
carry the same packets (copies of one session, as on the wire), frames
start in capture order, and the harness keeps ``tvalid`` high on both
inputs: each feed presents a beat every cycle.

``deep`` deletes take orders below the top five levels: the book changes
but the record does not, so nothing is emitted and the path must take both
feeds at line rate, ``tready`` never falling.  ``top`` deletes take orders
in the top five levels: every one emits an 18-beat book update, so the
record stream (one beat per cycle) bounds the rate below what the inputs
bring and input ``tready`` must fall, yet no frame may be lost.
"""
from __future__ import annotations

from dataclasses import dataclass

from host.pcap.frames import build_udp_frame, ip_to_int
from host.protocols.itch50 import AddOrder, OrderDelete, StockDirectory
from host.protocols.moldudp64 import encode_packet
from rtl.feed_path.model import FEED_A, FEED_B, FeedPathConfig
from rtl.frame_filter.model import FilterEntry

SESSION = "ZYNQMM0001"
LOCATE = 7
STOCK = "ZYNQ"
FEED_DST = {FEED_A: ("233.54.12.1", 26400), FEED_B: ("233.54.12.2", 26400)}
FEED_SRC = {FEED_A: ("10.20.30.40", 26400), FEED_B: ("10.20.30.41", 26400)}
BEST_BID = 1_000_000          # price4: 100.0000
TICK = 100                    # one cent
LEVELS = 12                   # within the book's tracked ladder (16)
TOP_LEVELS = 5
ADDS_PER_PACKET = 30
MODES = ("deep", "top")


@dataclass
class ThroughputPlan:
    """What the stimulus holds, for the checks."""

    mode: str
    setup_packets: int
    deletes: int
    first_delete_seq: int


def config() -> FeedPathConfig:
    entries = {feed: FilterEntry(ip_to_int(ip), port) for feed, (ip, port) in FEED_DST.items()}
    return FeedPathConfig(filter_a=[entries[FEED_A]], filter_b=[entries[FEED_B]],
                          pass_all_locates=True)


def _frame(feed: int, payload: bytes) -> bytes:
    (src_ip, src_port), (dst_ip, dst_port) = FEED_SRC[feed], FEED_DST[feed]
    return build_udp_frame(payload, src_ip, dst_ip, src_port, dst_port)


def delete_frame_bytes() -> int:
    """Length of one Order Delete frame (the packet the run is made of)."""
    payload = encode_packet(SESSION, 1, [OrderDelete(LOCATE, 0, 1, 1).encode()])
    return len(_frame(FEED_A, payload))


def packets(deletes: int, mode: str) -> tuple[list[tuple[bytes, bool]], ThroughputPlan]:
    """MoldUDP64 payloads in order, each with its barrier flag."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {MODES}")
    clock = iter(range(34_200_000_000_000, 1 << 47, 1000))
    messages = [StockDirectory(LOCATE, 0, next(clock), STOCK, "Q", "N", 100, "N", "C", "  ", "P",
                               "N", " ", "1", "N", 0, " ").encode()]
    # One order per level on top, so the top levels stay whole in deep mode;
    # the orders to delete spread over the levels the mode names.
    resting = [(level, BEST_BID - level * TICK) for level in range(TOP_LEVELS)]
    targets = range(TOP_LEVELS, LEVELS) if mode == "deep" else range(TOP_LEVELS)
    levels = list(targets)
    doomed = [(levels[i % len(levels)], BEST_BID - levels[i % len(levels)] * TICK)
              for i in range(deletes)]
    orders = resting + doomed
    for ref, (_, price) in enumerate(orders, start=1):
        messages.append(AddOrder(LOCATE, 0, next(clock), ref, "B", 100, STOCK, price).encode())
    out, seq = [], 1
    for i in range(0, len(messages), ADDS_PER_PACKET):
        chunk = messages[i:i + ADDS_PER_PACKET]
        out.append((encode_packet(SESSION, seq, chunk), False))
        seq += len(chunk)
    setup = len(out)
    first_delete = seq
    for n, ref in enumerate(range(len(resting) + 1, len(orders) + 1)):
        delete = OrderDelete(LOCATE, 0, next(clock), ref).encode()
        out.append((encode_packet(SESSION, seq, [delete]), n == 0))
        seq += 1
    return out, ThroughputPlan(mode, setup, deletes, first_delete)


def frames(deletes: int, mode: str):
    """(feed, frame bytes, barrier) in start order: A's copy, then B's."""
    payloads, plan = packets(deletes, mode)
    out = []
    for payload, barrier in payloads:
        out.append((FEED_A, _frame(FEED_A, payload), barrier))
        out.append((FEED_B, _frame(FEED_B, payload), False))
    return out, plan
