"""``zynqmm decode``: print every message of a capture, then what it held.

ITCH mode (default) reads pcap, pcapng or Nasdaq's length-prefixed daily ITCH
file.  Every MoldUDP64 packet goes through the golden sequencer
(:mod:`host.feed.sequencer`), so each message is printed once, from the first
feed that delivered it, with the session and sequence number it came in; the
summary then gives counts by message type, and per feed the packets,
duplicates, out-of-order packets, gaps and missing messages.

OUCH mode (``--protocol ouch``) reassembles the TCP streams of the capture,
deframes SoupBinTCP and decodes the OUCH 5.0 messages inside.

Nothing in a capture makes this command crash: undecodable packets and
messages are counted by reason and shown in the summary.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any, Iterator, TextIO

from host.protocols import itch50, moldudp64
from host.protocols.errors import DecodeError


def register(sub) -> None:
    p = sub.add_parser(
        "decode",
        help="print every ITCH (or OUCH) message of a capture, then counts",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("capture", help="pcap, pcapng or length-prefixed ITCH 5.0 file (.gz too)")
    p.add_argument("--protocol", choices=("itch", "ouch"), default="itch",
                   help="itch: MoldUDP64/ITCH 5.0 feeds (default); ouch: SoupBinTCP/OUCH 5.0 TCP streams")
    p.add_argument("--jsonl", action="store_true",
                   help="one JSON object per message on stdout; summary as JSON on stderr")
    p.add_argument("--symbol", action="append", default=[],
                   help="only messages of this stock (repeatable); ITCH locates are resolved from the stock directory")
    p.add_argument("--limit", type=int, default=None,
                   help="stop after printing N messages (the summary then covers what was read)")
    p.add_argument("--summary-only", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from host.pcap import detect_format

    try:
        fmt = detect_format(args.capture)
    except (OSError, ValueError) as exc:
        print(f"zynqmm decode: {exc}", file=sys.stderr)
        return 2
    symbols = {s.upper() for s in args.symbol}
    out = sys.stdout
    if args.protocol == "ouch":
        if fmt == "itch":
            print("zynqmm decode: an ITCH file holds no TCP streams; --protocol ouch needs a pcap or pcapng",
                  file=sys.stderr)
            return 2
        from host.inspect.ouch_streams import decode_ouch_capture

        summary = decode_ouch_capture(args.capture, out, jsonl=args.jsonl, symbols=symbols,
                                      limit=args.limit, quiet=args.summary_only)
    else:
        decoder = ItchDecoder(symbols=symbols)
        summary = decoder.run(args.capture, fmt, out, jsonl=args.jsonl, limit=args.limit,
                              quiet=args.summary_only)
    print_summary(summary, jsonl=args.jsonl)
    return 0


# ---------------------------------------------------------------- ITCH ------
class ItchDecoder:
    """Decodes ITCH messages out of a capture, one stream per Mold session."""

    def __init__(self, symbols: set[str] | None = None):
        from host.feed.sequencer import Sequencer

        self.symbols = symbols or set()
        self.sequencer = Sequencer()
        self.by_type: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.locate_symbol: dict[int, str] = {}
        self.feed_names: dict[tuple[int, int], str] = {}
        self.printed = 0
        self.read_messages = 0
        self.stopped_early = False

    # Feeds are named by their UDP destination: that is how a subscriber sees them.
    def feed_name(self, dst_ip: int, dst_port: int) -> str:
        key = (dst_ip, dst_port)
        name = self.feed_names.get(key)
        if name is None:
            name = f"{ip_text(dst_ip)}:{dst_port}"
            self.feed_names[key] = name
        return name

    def wanted(self, msg) -> bool:
        if not self.symbols:
            return True
        stock = getattr(msg, "stock", None)
        if stock is None:
            locate = getattr(msg, "stock_locate", None)
            stock = self.locate_symbol.get(locate) if locate else None
        return stock is not None and stock.upper() in self.symbols

    def messages(self, path: str, fmt: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        """Yields (context, message bytes) for every message that passes arbitration."""
        if fmt == "itch":
            from host.pcap.itchfile import iter_itch_batches

            number = 0
            for batch in iter_itch_batches(path, counters=self.drops):
                buf = batch.buf
                for off, length in zip(batch.msg_off.tolist(), batch.msg_len.tolist()):
                    number += 1
                    yield {"message_number": number}, bytes(buf[off:off + length])
            return

        from host.pcap.fast import CaptureReader

        reader = CaptureReader(path)
        try:
            for batch in reader.udp_batches():
                buf = batch.buf
                for i in range(len(batch)):
                    feed = self.feed_name(int(batch.dst_ip[i]), int(batch.dst_port[i]))
                    off = int(batch.payload_off[i])
                    payload = bytes(buf[off:off + int(batch.payload_len[i])])
                    ts_ns = int(batch.ts_ns[i])
                    try:
                        packet = moldudp64.decode_packet(payload)
                    except DecodeError as exc:
                        self.drops[f"mold_{exc.reason}"] += 1
                        continue
                    passed = self.sequencer.on_packet(feed, packet, ts_ns=ts_ns)
                    for seq, index, data in passed:
                        yield {"feed": feed, "session": packet.session, "sequence_number": seq,
                               "msg_index": index, "ts_ns": ts_ns}, data
        finally:
            for reason, n in reader.counters.items():
                if n:
                    self.drops[f"pcap_{reason}"] += n

    def run(self, path: str, fmt: str, out: TextIO, *, jsonl: bool, limit: int | None,
            quiet: bool) -> dict[str, Any]:
        for ctx, data in self.messages(path, fmt):
            self.read_messages += 1
            try:
                msg = itch50.decode_message(data)
            except DecodeError as exc:
                self.drops[f"itch_{exc.reason}"] += 1
                continue
            self.by_type[msg.TYPE] += 1
            if msg.TYPE == "R":
                self.locate_symbol[msg.stock_locate] = msg.stock
            if quiet or not self.wanted(msg):
                continue
            if limit is not None and self.printed >= limit:
                self.stopped_early = True
                break
            self.printed += 1
            if jsonl:
                out.write(json.dumps({**ctx, **msg.to_dict()}) + "\n")
            else:
                out.write(format_line(ctx, msg) + "\n")
        return self.summary(path, fmt)

    def summary(self, path: str, fmt: str) -> dict[str, Any]:
        feeds = {name: self.sequencer.feed_stats(name) for name in self.feed_names.values()}
        streams = {s: self.sequencer.stream_stats(s) for s in self.sequencer.sessions()}
        return {
            "capture": path,
            "format": fmt,
            "protocol": "itch",
            "messages": self.read_messages,
            "printed": self.printed,
            "stopped_early": self.stopped_early,
            "by_type": {t: self.by_type[t] for t in sorted(self.by_type)},
            "by_type_name": {itch50.ITCH.cls_for(t).NAME: n for t, n in sorted(self.by_type.items())},
            "feeds": feeds,
            "streams": streams,
            "drops": dict(sorted(self.drops.items())),
        }


def ip_text(ip: int) -> str:
    return ".".join(str((ip >> s) & 0xFF) for s in (24, 16, 8, 0))


def format_line(ctx: dict[str, Any], msg) -> str:
    if "sequence_number" in ctx:
        where = f"{ctx['feed']} {ctx['session']} seq={ctx['sequence_number']}[{ctx['msg_index']}]"
    elif "message_number" in ctx:
        where = f"#{ctx['message_number']}"
    else:
        where = " ".join(f"{k}={v}" for k, v in ctx.items())
    fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                      for k, v in msg.to_dict().items() if k != "message_type")
    return f"{where} {msg.TYPE} {msg.NAME} {fields}"


# -------------------------------------------------------------- summary -----
def print_summary(summary: dict[str, Any], *, jsonl: bool) -> None:
    if jsonl:
        sys.stderr.write(json.dumps({"summary": summary}, default=_jsonable) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=120)
    note = " (stopped at --limit)" if summary.get("stopped_early") else ""
    console.print(f"[bold]{summary['capture']}[/] {summary['format']} {summary['protocol']}: "
                  f"{summary['messages']} messages{note}")
    types = Table(title="messages by type")
    types.add_column("type")
    types.add_column("name")
    types.add_column("count", justify="right")
    names = summary.get("by_type_name", {})
    name_list = list(names)
    for i, (t, n) in enumerate(summary["by_type"].items()):
        types.add_row(t, name_list[i] if i < len(name_list) else "", str(n))
    console.print(types)
    feeds = summary.get("feeds") or {}
    if feeds:
        cols = ["packets", "messages", "heartbeats", "end_of_session", "duplicate_packets",
                "out_of_order_packets", "gaps", "missing_messages"]
        t = Table(title="feeds")
        t.add_column("feed", no_wrap=True, min_width=len(max(feeds, key=len)))
        for c in cols:
            t.add_column(c.replace("_", " "), justify="right")
        for name, st in feeds.items():
            t.add_row(name, *(str(st.get(c, "")) for c in cols))
        console.print(t)
    for session, st in (summary.get("streams") or {}).items():
        shown = {k: v for k, v in st.items() if k != "gap_events"}
        console.print(f"stream {session}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    if summary.get("drops"):
        console.print("drops: " + ", ".join(f"{k}={v}" for k, v in summary["drops"].items()))
    for key in ("flows", "tcp"):
        if summary.get(key):
            console.print(f"{key}: {json.dumps(summary[key], default=_jsonable)}")


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    return str(v)
