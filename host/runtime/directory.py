"""Today's stock locates, from the Stock Directory messages of the feed.

Nasdaq assigns stock locate codes per day and announces them in Stock
Directory (``R``) messages before the open.  The fabric prices an
underlying by its locate, so the host must know the locates of its
underlyings before loading the pricer's tables: from the start of a
recorded day (replay) or from a directory capture taken before the open.
"""
from __future__ import annotations

from host.pcap.frames import parse_frame
from host.pcap.reader import iter_packets
from host.protocols import itch50, moldudp64
from host.protocols.errors import DecodeError


def stock_locates(capture, symbols=None, max_packets: int | None = None) -> dict[str, int]:
    """symbol -> stock locate from the capture's Stock Directory messages;
    stops early once every one of ``symbols`` (all symbols when None) is found.
    Frames that are not MoldUDP64 over UDP are skipped."""
    wanted = None if symbols is None else set(symbols)
    found: dict[str, int] = {}
    for n, packet in enumerate(iter_packets(capture)):
        if max_packets is not None and n >= max_packets:
            break
        frame = parse_frame(packet.data)
        if isinstance(frame, str) or frame.dst_port is None:
            continue
        try:
            mold = moldudp64.decode_packet(frame.payload)
        except DecodeError:
            continue
        for block in mold.messages:
            if block[:1] != b"R":
                continue
            try:
                msg = itch50.decode_message(block)
            except DecodeError:
                continue
            symbol = msg.stock.rstrip(" ")
            if wanted is None or symbol in wanted:
                found.setdefault(symbol, msg.stock_locate)
        if wanted is not None and wanted <= set(found):
            break
    return found
