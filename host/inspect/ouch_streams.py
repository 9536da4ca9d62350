"""Decoding SoupBinTCP / OUCH 5.0 order-entry streams out of a capture.

Each TCP direction is reassembled (:mod:`host.pcap.tcpflow`), deframed into
SoupBinTCP packets, and the OUCH message inside each data packet decoded:
unsequenced data carries the client's requests (inbound OUCH), sequenced
data the exchange's responses (outbound OUCH).  Lost TCP bytes reset the
deframer of that direction and are counted; so is everything undecodable.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, TextIO

from host.pcap.frames import IPPROTO_TCP, ip_to_str, parse_frame
from host.pcap.reader import iter_packets
from host.pcap.tcpflow import TcpReassembler
from host.protocols import ouch50, soupbintcp
from host.protocols.errors import DecodeError

LINKTYPE_ETHERNET = 1


def flow_text(flow) -> str:
    src_ip, src_port, dst_ip, dst_port = flow
    return f"{ip_to_str(src_ip)}:{src_port}>{ip_to_str(dst_ip)}:{dst_port}"


def decode_ouch_capture(path: str, out: TextIO, *, jsonl: bool, symbols: set[str],
                        limit: int | None, quiet: bool) -> dict[str, Any]:
    drops: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    reassembler = TcpReassembler()
    framers: dict[tuple, soupbintcp.SoupFramer] = {}
    flows: Counter[str] = Counter()
    printed = 0
    stopped = False
    pcap_counts: dict[str, int] = {}

    def emit(flow, ts_ns: int, packet) -> bool:
        """Prints one Soup packet (and its OUCH message); False once --limit is reached."""
        nonlocal printed, stopped
        soup_name = type(packet).__name__
        by_type[f"soup {packet.TYPE} {soup_name}"] += 1
        flows[flow_text(flow)] += 1
        ouch_msg = None
        direction = None
        if isinstance(packet, (soupbintcp.SequencedData, soupbintcp.UnsequencedData)):
            direction = "outbound" if isinstance(packet, soupbintcp.SequencedData) else "inbound"
            try:
                ouch_msg = ouch50.decode_from_soup(packet)
            except DecodeError as exc:
                drops[f"ouch_{direction}_{exc.reason}"] += 1
                return True
            by_type[f"ouch {direction} {ouch_msg.TYPE} {type(ouch_msg).__name__}"] += 1
        if quiet:
            return True
        if symbols:
            sym = getattr(ouch_msg, "symbol", None) if ouch_msg is not None else None
            if sym is None or sym.upper() not in symbols:
                return True
        if limit is not None and printed >= limit:
            stopped = True
            return False
        printed += 1
        record: dict[str, Any] = {"flow": flow_text(flow), "ts_ns": ts_ns, "soup_type": packet.TYPE,
                                  "soup_packet": soup_name}
        if ouch_msg is None:
            record.update({k: v for k, v in packet.to_dict().items() if k != "message_type"})
        else:
            record["ouch_direction"] = direction
            record["ouch_message"] = type(ouch_msg).__name__
            record.update(ouch_msg.to_dict())
        if jsonl:
            out.write(json.dumps(record, default=_jsonable) + "\n")
        else:
            skip = {"flow", "ts_ns", "soup_type", "soup_packet", "ouch_direction", "ouch_message", "message_type"}
            fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                              for k, v in record.items() if k not in skip)
            label = f"{direction} {record['ouch_message']}" if ouch_msg is not None else soup_name
            out.write(f"{record['flow']} t={ts_ns} {packet.TYPE} {label} {fields}\n")
        return True

    running = True
    for pkt in iter_packets(path, counters=pcap_counts):
        if pkt.linktype != LINKTYPE_ETHERNET:
            drops["not_ethernet"] += 1
            continue
        frame = parse_frame(pkt.data)
        if isinstance(frame, str):
            drops[f"frame_{frame}"] += 1
            continue
        if frame.ip_proto != IPPROTO_TCP:
            drops["not_tcp"] += 1
            continue
        chunks = reassembler.add(pkt.ts_ns, frame.src_ip, frame.src_port, frame.dst_ip, frame.dst_port,
                                 frame.tcp_seq, frame.tcp_flags, frame.payload)
        for chunk in chunks:
            flow, ts_ns, data = chunk
            framer = framers.get(flow)
            if framer is None:
                framer = framers[flow] = soupbintcp.SoupFramer()
            if chunk.gap_before:
                # Bytes are missing: whatever the framer held is part of a lost packet.
                drops["tcp_gap_resync"] += 1
                framer.reset()
            for packet in framer.feed(data):
                if not emit(flow, ts_ns, packet):
                    running = False
                    break
            if not running:
                break
        if not running:
            break

    for framer in framers.values():
        for reason, n in framer.counts.items():
            if n:
                drops[f"soup_{reason}"] += n
        if framer.pending:
            drops["soup_incomplete_at_end"] += 1
    for reason, n in pcap_counts.items():
        if n:
            drops[f"pcap_{reason}"] += n
    return {
        "capture": path,
        "format": "pcap",
        "protocol": "ouch",
        "messages": sum(n for k, n in by_type.items() if k.startswith("soup ")),
        "printed": printed,
        "stopped_early": stopped,
        "by_type": dict(sorted(by_type.items())),
        "flows": dict(flows),
        "tcp": {k: v for k, v in reassembler.counters.items() if v},
        "drops": dict(sorted(drops.items())),
    }


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return str(v)
