"""Generate a realistic Nasdaq TotalView-ITCH 5.0 market day.

``generate_day`` writes a day of ITCH 5.0 either as a capture of MoldUDP64
multicast feeds (pcap / pcapng, with A/B copies, optional 802.1Q tags and
injected faults) or as Nasdaq's length-prefixed daily file (one stream, no
Mold framing).  It returns, and the CLI prints, a summary with the exact
counts a correct decoder must report.

The day is produced in chunks of time bins (see ``schedule.flow_bins``):
the numba kernel fills reusable buffers with one chunk's messages, the feed
layer turns them into packets, and the writers stream them out, so memory
stays flat however many messages are asked for.  The same seed and
parameters give the same bytes on every run; the chunk size does not
change them.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from host.marketday import feedsim as FS
from host.marketday import kernel as K
from host.marketday import rng as R
from host.marketday.schedule import (
    BIN_NS, MPIDS, DayClock, build_schedule, flow_bins, parse_hhmm,
)
from host.marketday.universe import build_universe
from host.pcap.frames import ip_to_int, ip_to_str
from host.pcap.itchfile import ItchFileWriter
from host.pcap.writer import PcapngWriter, PcapWriter

DEFAULT_FEEDS = ("A", "B")
DEFAULT_SESSION = "ZYNQMM0001"
DEFAULT_DATE = "2024-03-15"
DEFAULT_CHUNK_MESSAGES = 1 << 19
FEED_PORT = 26400
FORMATS = ("pcap", "pcapng", "itch")


class GenerateError(ValueError):
    """Parameters that cannot make a day."""


@dataclass(frozen=True)
class FeedSpec:
    name: str
    src_ip: int
    dst_ip: int
    src_port: int
    dst_port: int

    @classmethod
    def for_label(cls, name: str, position: int) -> "FeedSpec":
        # A -> 233.54.12.1 / 10.20.30.40, B -> .2 / .41, ...; other names by position.
        index = ord(name) - ord("A") if len(name) == 1 and "A" <= name <= "Z" else position
        return cls(name, ip_to_int(f"10.20.30.{40 + index}"), ip_to_int(f"233.54.12.{1 + index}"),
                   FEED_PORT, FEED_PORT)

    def describe(self) -> dict:
        return {"src": f"{ip_to_str(self.src_ip)}:{self.src_port}",
                "dst": f"{ip_to_str(self.dst_ip)}:{self.dst_port}"}


def format_for(path: str, fmt: str | None = None) -> str:
    """The output format: explicit, else from the file name."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise GenerateError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, found in ((".pcapng", "pcapng"), (".pcap", "pcap"), (".itch", "itch")):
        if name.endswith(ext):
            return found
    raise GenerateError(f"cannot tell the format from {path!r}: use .pcap, .pcapng, .itch "
                        "(optionally .gz) or give the format")


def midnight_epoch_ns(date: str) -> int:
    """Midnight US/Eastern of date (YYYY-MM-DD), in ns since the Unix epoch."""
    try:
        day = _dt.date.fromisoformat(date)
    except ValueError:
        raise GenerateError(f"date must be YYYY-MM-DD, got {date!r}") from None
    midnight = _dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("America/New_York"))
    return int(midnight.timestamp()) * 1_000_000_000


def _session_bytes(session: str) -> np.ndarray:
    try:
        raw = session.encode("ascii")
    except UnicodeEncodeError:
        raise GenerateError(f"session name must be ASCII: {session!r}") from None
    if not 1 <= len(raw) <= 10 or not all(0x20 < c < 0x7F for c in raw):
        raise GenerateError(f"session name must be 1-10 printable characters: {session!r}")
    return np.frombuffer(raw.ljust(10, b" "), dtype=np.uint8).copy()


def _text_table(items: Sequence[str], width: int) -> np.ndarray:
    out = np.full((len(items), width), ord(" "), dtype=np.uint8)
    for i, s in enumerate(items):
        out[i, :len(s)] = np.frombuffer(s.encode("ascii"), dtype=np.uint8)
    return out


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 0.2:
        raise GenerateError(f"{name} must be between 0 and 0.2 per packet, got {value}")
    return value


def _parse_vlan(vlan) -> tuple[int, int]:
    if vlan is None or vlan == "":
        return -1, -1
    if isinstance(vlan, int):
        ids = [vlan]
    elif isinstance(vlan, str):
        try:
            ids = [int(v) for v in vlan.split(",")]
        except ValueError:
            raise GenerateError(f"VLAN must be ID or ID,ID: {vlan!r}") from None
    else:
        ids = [int(v) for v in vlan]
    if not 1 <= len(ids) <= 2 or not all(0 <= v <= 4095 for v in ids):
        raise GenerateError(f"one or two VLAN IDs in 0..4095 expected, got {vlan!r}")
    return ids[0], ids[1] if len(ids) == 2 else -1


# -- sinks ------------------------------------------------------------------------
class _ItchSink:
    def __init__(self, path: str):
        self.writer = ItchFileWriter(path)

    def feed(self, buf, moff, mlen, mts, n, final):
        self.writer.write_batch(buf, moff[:n], mlen[:n])

    def close(self):
        self.writer.close()

    def report(self) -> dict:
        return {}


class _MoldSink:
    """Packetises message chunks into the feeds and writes the capture."""

    def __init__(self, path: str, fmt: str, feeds: list[FeedSpec], session: str, seed: int,
                 rates: tuple[float, float, float], vlan: tuple[int, int], epoch_ns: int,
                 heartbeat_ns: int = FS.HEARTBEAT_NS):
        self.writer = PcapngWriter(path) if fmt == "pcapng" else PcapWriter(path)
        self.feeds = feeds
        self.session = session
        self.session_bytes = _session_bytes(session)
        self.key = R.feed_key(seed)
        self.rates = np.array(rates, dtype=np.float64)
        self.vlan = vlan
        self.epoch_ns = epoch_ns
        nf = len(feeds)
        self.fstate = np.zeros((nf, FS.N_FS), dtype=np.int64)
        self.fstate[:, FS.FS_LAST_TS] = -1
        self.fstate[:, FS.FS_NEXT_SEQ] = 1
        self.fstate[:, FS.FS_LAST_FAULT] = -(1 << 40)
        self.fstate[:, FS.FS_SKIP] = -1
        self.fstate[:, FS.FS_HEARTBEAT_NS] = heartbeat_ns
        self.heartbeat_ns = heartbeat_ns
        self.gstate = np.zeros(FS.N_GS, dtype=np.int64)
        self.gstate[FS.GS_SEQ] = 1
        self.gstate[FS.GS_PREV_LAST_TS] = -(1 << 60)
        self.src_ip = np.array([f.src_ip for f in feeds], dtype=np.uint32)
        self.dst_ip = np.array([f.dst_ip for f in feeds], dtype=np.uint32)
        self.src_port = np.array([f.src_port for f in feeds], dtype=np.uint16)
        self.dst_port = np.array([f.dst_port for f in feeds], dtype=np.uint16)
        # messages not yet packetised, and packets sent but not yet written
        self.carry_buf = np.zeros(0, dtype=np.uint8)
        self.carry_len = np.zeros(0, dtype=np.int32)
        self.carry_ts = np.zeros(0, dtype=np.int64)
        self.carry_pay = np.zeros(0, dtype=np.uint8)
        self.carry_s = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32),
                        np.zeros(0, np.int8))
        # what an A/B arbiter reading the capture must report
        self.astate = np.zeros(FS.N_AS, dtype=np.int64)
        self.gap_lo = np.zeros(64, dtype=np.int64)
        self.gap_hi = np.zeros(64, dtype=np.int64)

    def feed(self, buf, moff, mlen, mts, n, final):
        used = int(moff[n - 1] + mlen[n - 1]) if n else 0
        ws_buf = np.concatenate((self.carry_buf, buf[:used]))
        ws_len = np.concatenate((self.carry_len, mlen[:n]))
        ws_ts = np.concatenate((self.carry_ts, mts[:n]))
        ws_off = np.zeros(len(ws_len), dtype=np.int64)
        if len(ws_len) > 1:
            np.cumsum(ws_len[:-1], out=ws_off[1:])
        nws = len(ws_len)
        pk_first = np.empty(max(nws, 1), dtype=np.int64)
        pk_count = np.empty(max(nws, 1), dtype=np.int64)
        pk_bytes = np.empty(max(nws, 1), dtype=np.int64)
        npk = FS.packetize(ws_len, ws_ts, nws, pk_first, pk_count, pk_bytes)
        closed = npk if final else max(0, npk - 1)
        done = closed if final else max(0, closed - FS.LOOKAHEAD)
        nf = len(self.feeds)

        pk_last_ts = ws_ts[pk_first[:npk] + pk_count[:npk] - 1] if npk else np.zeros(0, np.int64)
        last_ts = self.fstate[:, FS.FS_LAST_TS]
        since = int(last_ts.min()) if (last_ts >= 0).all() else (int(ws_ts[0]) if nws else 0)
        until = int(pk_last_ts[closed - 1]) if closed else since
        # Sends can trail their packet's last message by latency, jitter,
        # duplicate gaps and queueing behind earlier frames on the wire; this
        # bounds all of it, so the heartbeat room below is never too small.
        trail = 1_000_000 + 2 * int(pk_bytes[:closed].sum()) + 100 * closed
        heartbeats = (until + trail - since) // self.heartbeat_ns + 3
        ncarry_pay = len(self.carry_pay)
        pay = np.empty(ncarry_pay + int(pk_bytes[:closed].sum())
                       + FS.MOLD_HEADER * nf * (heartbeats + 2), dtype=np.uint8)
        pay[:ncarry_pay] = self.carry_pay
        pk_off = np.empty(max(closed, 1), dtype=np.int64)
        pos = FS.write_payloads(ws_buf, ws_off, ws_len, pk_first, pk_count, closed,
                                self.session_bytes, self.gstate[FS.GS_SEQ], pay, ncarry_pay,
                                pk_off)

        c_ts, c_off, c_len, c_feed = self.carry_s
        nc = len(c_ts)
        cap = nc + nf * (2 * done + heartbeats + 2)
        s_ts = np.empty(cap, dtype=np.int64)
        s_off = np.empty(cap, dtype=np.int64)
        s_len = np.empty(cap, dtype=np.int32)
        s_feed = np.empty(cap, dtype=np.int8)
        s_ts[:nc], s_off[:nc], s_len[:nc], s_feed[:nc] = c_ts, c_off, c_len, c_feed
        ns, pos = FS.build_sends(done, closed, final, pk_count, pk_bytes, pk_off, pk_last_ts, nf,
                                 self.rates, self.key, self.fstate, self.gstate,
                                 self.session_bytes, pay, pos, s_ts, s_off, s_len, s_feed, nc)

        order = np.argsort(s_ts[:ns], kind="stable")
        if final:
            cut = ns
        else:
            horizon = int(self.fstate[:, FS.FS_LAST_TS].min())
            cut = int(np.searchsorted(s_ts[order], horizon, side="right"))
        out = order[:cut]
        keep = order[cut:]
        if len(out):
            need = int(self.astate[FS.AS_GAPS]) + len(out)
            if need > len(self.gap_lo):
                grow = max(need, 2 * len(self.gap_lo))
                self.gap_lo = np.concatenate((self.gap_lo, np.zeros(grow - len(self.gap_lo), np.int64)))
                self.gap_hi = np.concatenate((self.gap_hi, np.zeros(grow - len(self.gap_hi), np.int64)))
            FS.arbitrate(pay, s_off, out, self.astate, self.gap_lo, self.gap_hi)
            feed = s_feed[out].astype(np.int64)
            vlan0 = np.full(len(out), self.vlan[0], dtype=np.int32)
            vlan1 = np.full(len(out), self.vlan[1], dtype=np.int32)
            self.writer.write_udp_batch(
                s_ts[out] + self.epoch_ns, pay, s_off[out], s_len[out], self.src_ip[feed],
                self.dst_ip[feed], self.src_port[feed], self.dst_port[feed], vlan0, vlan1)
        # Sent packets beyond the merge horizon wait for the next chunk's packets.
        k_len = s_len[keep]
        k_off = np.zeros(len(keep), dtype=np.int64)
        if len(keep) > 1:
            np.cumsum(k_len[:-1].astype(np.int64), out=k_off[1:])
        self.carry_pay = (np.concatenate([pay[o:o + n_] for o, n_ in zip(s_off[keep], k_len)])
                          if len(keep) else np.zeros(0, np.uint8))
        self.carry_s = (s_ts[keep], k_off, k_len, s_feed[keep])

        first = int(pk_first[done]) if done < npk else nws
        self.carry_buf = ws_buf[int(ws_off[first]):].copy() if first < nws else np.zeros(0, np.uint8)
        self.carry_len = ws_len[first:].copy()
        self.carry_ts = ws_ts[first:].copy()

    def close(self):
        self.writer.close()

    def report(self) -> dict:
        fs = self.fstate
        a = self.astate
        per_feed_packets, faults, expected = {}, {}, {}
        for i, feed in enumerate(self.feeds):
            row = fs[i]
            data, hb, eos = int(row[FS.FS_DATA]), int(row[FS.FS_HEARTBEATS]), int(row[FS.FS_EOS])
            per_feed_packets[feed.name] = {"data": data, "heartbeats": hb, "end_of_session": eos,
                                           "total": data + hb + eos}
            faults[feed.name] = {"drops": int(row[FS.FS_DROPS]),
                                 "missing_messages": int(row[FS.FS_MISSING]),
                                 "duplicates": int(row[FS.FS_DUPLICATES]),
                                 "reorders": int(row[FS.FS_REORDERS])}
            expected[feed.name] = {
                "packets": data + hb + eos,
                "messages": int(row[FS.FS_MESSAGES]),
                "heartbeats": hb,
                "end_of_session": eos,
                "duplicate_packets": int(row[FS.FS_DUPLICATES]),
                "out_of_order_packets": int(row[FS.FS_REORDERS]),
                "gaps": int(row[FS.FS_DROPS]),
                "missing_messages": int(row[FS.FS_MISSING]),
            }
        return {
            "mold": {"session": self.session, "first_seq": 1,
                     "last_seq": int(self.gstate[FS.GS_SEQ]) - 1,
                     "data_packets": int(self.gstate[FS.GS_PACKETS])},
            "feeds": {f.name: f.describe() for f in self.feeds},
            "vlan": [v for v in self.vlan if v >= 0],
            "packets_per_feed": per_feed_packets,
            "faults": faults,
            "expected_feed_counts": expected,
            "lost_on_every_feed": {"packets": int(self.gstate[FS.GS_LOST_ALL]),
                                   "messages": int(self.gstate[FS.GS_LOST_ALL_MESSAGES])},
            "expected_arbitration": {
                "passed": int(a[FS.AS_PASSED]),
                "duplicates": int(a[FS.AS_DUPLICATES]),
                "late": int(a[FS.AS_LATE]),
                "gap_events": int(a[FS.AS_GAPS]),
                "missing": int(a[FS.AS_MISSING]),
                "stale": bool(a[FS.AS_GAPS] > 0),
            },
        }


# -- the day ------------------------------------------------------------------------
def _plan_chunks(bins: np.ndarray, sp_t: np.ndarray, t_start: int, chunk_messages: int):
    """(bin_lo, bin_hi, scheduled_hi) per chunk; the last takes every remaining event."""
    nb = len(bins)
    cs = np.cumsum(bins)
    total = int(cs[-1]) if nb else 0
    marks = np.arange(chunk_messages, total, chunk_messages, dtype=np.int64)
    cuts = np.unique(np.clip(np.searchsorted(cs, marks, side="left") + 1, 1, nb))
    edges = [0] + [int(c) for c in cuts if 0 < c < nb] + [nb]
    chunks = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == nb
        sp_hi = len(sp_t) if last else int(np.searchsorted(sp_t, t_start + hi * BIN_NS, "left"))
        chunks.append((lo, hi, sp_hi))
    return chunks


def generate_day(out, symbols: int = 100, messages: int = 1_000_000, seed: int = 1,
                 feeds: Sequence[str] = DEFAULT_FEEDS, gap_rate: float = 0.0,
                 dup_rate: float = 0.0, reorder_rate: float = 0.0, vlan=None,
                 heartbeat_interval: float = 1.0, fmt: str | None = None, session: str = DEFAULT_SESSION, start: str = "04:00",
                 end: str = "20:00", date: str = DEFAULT_DATE, all_types: bool = False,
                 chunk_messages: int = DEFAULT_CHUNK_MESSAGES,
                 progress: Callable[[int, int], None] | None = None,
                 write_summary: bool = True) -> dict:
    """Write one market day to ``out`` and return its summary.

    ``messages`` is the exact number of ITCH messages of the day.  Rates are
    per data packet and per feed.  ``all_types`` makes sure every ITCH 5.0
    message type appears at least once.  ``progress(done, total)`` is called
    after each chunk.  The summary is also written to ``out + ".summary.json"``
    unless ``write_summary`` is false.

    Summary keys: ``seed``, ``parameters``, ``messages``, ``messages_by_type``,
    ``first_timestamp_ns`` / ``last_timestamp_ns`` (ITCH, since midnight),
    ``order_reference_numbers`` and ``match_numbers`` (ranges used),
    ``roles`` (which symbols IPO, halt, pause), ``bytes_written``; for
    captures also ``mold`` (session, sequence range, data packets), ``feeds``
    (addresses), ``vlan``, ``packets_per_feed``, ``faults`` (per feed:
    drops, missing_messages, duplicates, reorders), ``expected_feed_counts``
    (per feed, in the sequencer's terms), ``expected_arbitration`` (what A/B
    arbitration of the capture must report) and ``lost_on_every_feed``.
    The returned dict adds ``elapsed_s`` and ``messages_per_s``.
    """
    t_begin = time.perf_counter()
    out = os.fspath(out)
    fmt = format_for(out, fmt)
    if not isinstance(messages, (int, np.integer)) or messages < 1:
        raise GenerateError(f"messages must be a positive integer, got {messages!r}")
    if not isinstance(symbols, (int, np.integer)) or symbols < 1:
        raise GenerateError(f"symbols must be a positive integer, got {symbols!r}")
    if chunk_messages < 1:
        raise GenerateError("chunk_messages must be positive")
    seed = int(seed)
    if not 0 <= seed < (1 << 63):
        raise GenerateError(f"seed must be in 0..2**63-1, got {seed}")
    feed_names = [f.strip() for f in (feeds.split(",") if isinstance(feeds, str) else feeds)]
    if fmt != "itch":
        if not feed_names or any(not f for f in feed_names) or len(set(feed_names)) != len(feed_names):
            raise GenerateError(f"feeds must be distinct non-empty names, got {feeds!r}")
        if len(feed_names) > 8:
            raise GenerateError("at most 8 feeds")
    rates = (_check_rate("gap rate", gap_rate), _check_rate("dup rate", dup_rate),
             _check_rate("reorder rate", reorder_rate))
    if sum(rates) > 0.2:
        raise GenerateError("the fault rates together must not exceed 0.2 per packet")
    vlan_ids = _parse_vlan(vlan)
    # Faults are placed only where neighbouring packets are less than half a
    # heartbeat interval apart, which keeps them clear of heartbeats.
    if not heartbeat_interval >= FS.HEARTBEAT_NS / 1e9:
        raise GenerateError(f"heartbeat interval must be at least {FS.HEARTBEAT_NS / 1e9:g} s, "
                            f"got {heartbeat_interval!r}")
    heartbeat_ns = int(round(heartbeat_interval * 1e9))
    if fmt == "itch" and (any(rates) or vlan_ids[0] >= 0):
        raise GenerateError("packet faults and VLAN tags need a pcap or pcapng output; "
                            "an ITCH file is one stream of messages")
    session_bytes = _session_bytes(session)  # validates
    del session_bytes
    try:
        clock = DayClock(parse_hhmm(start), parse_hhmm(end))
        universe = build_universe(int(symbols), seed)
    except ValueError as exc:
        raise GenerateError(str(exc)) from None
    epoch_ns = midnight_epoch_ns(date)

    schedule = build_schedule(universe, clock, int(messages), seed, all_types)
    flow = int(messages) - schedule.messages
    if flow < 0:
        raise GenerateError(
            f"{messages} messages are too few for {symbols} symbols: the directory, crosses "
            f"and other fixed events alone take {schedule.messages}")
    bins = flow_bins(clock, flow, seed)

    # -- kernel state ---------------------------------------------------------------
    n = len(universe)
    cap = int(np.clip(2_000_000 // n, 24, 128))
    sym_i = np.zeros((n, K.N_SI), dtype=np.int64)
    sym_i[:, K.SI_STATE] = 2  # not open until its trading action arrives
    sym_i[:, K.SI_CROSS_SIDE] = -1
    rel = universe.weight / universe.weight[0]
    sym_i[:, K.SI_TARGET] = np.maximum(6, (cap * 0.4 * rel ** 0.25).astype(np.int64))
    sym_f = np.zeros((n, K.N_SF), dtype=np.float64)
    sym_f[:, K.SF_REF] = np.round(universe.price * 100.0)
    sym_f[:, K.SF_VOL] = universe.volatility
    sym_f[:, K.SF_SPREAD] = universe.spread
    alias_p, alias_i = K.alias_table(universe.weight)
    pool_ref = np.zeros((n, cap), dtype=np.int64)
    pool_px = np.zeros((n, cap), dtype=np.int32)
    pool_qty = np.zeros((n, cap), dtype=np.int32)
    pool_side = np.zeros((n, cap), dtype=np.int8)
    g = np.zeros(K.N_G, dtype=np.int64)
    g[K.G_NEXT_REF] = 1
    g[K.G_NEXT_MATCH] = 1
    rs = R.stream_state(seed, R.STREAM_FLOW)
    mpids = _text_table(MPIDS, 4)
    reasons = _text_table(K.REASONS, 4)
    params = K.DEFAULT_PARAMS.copy()

    chunks = _plan_chunks(bins, schedule.t, clock.start, int(chunk_messages))
    sp_lo = 0
    most = 0
    for lo, hi, sp_hi in chunks:
        most = max(most, int(bins[lo:hi].sum()) + sp_hi - sp_lo)
        sp_lo = sp_hi
    capacity = most + schedule.skippable + 1
    buf = np.empty(capacity * K.MAX_MESSAGE_BYTES, dtype=np.uint8)
    moff = np.empty(capacity, dtype=np.int64)
    mlen = np.empty(capacity, dtype=np.int32)
    mts = np.empty(capacity, dtype=np.int64)
    slot_cap = int(bins.max() if len(bins) else 0) + schedule.skippable + 2
    slots = np.empty(slot_cap, dtype=np.int64)
    counts = np.empty(slot_cap + 1, dtype=np.int64)
    starts = np.empty(slot_cap + 2, dtype=np.float64)

    feed_specs = [FeedSpec.for_label(name, i) for i, name in enumerate(feed_names)]
    if fmt == "itch":
        sink = _ItchSink(out)
    else:
        sink = _MoldSink(out, fmt, feed_specs, session, seed, rates, vlan_ids, epoch_ns,
                         heartbeat_ns=heartbeat_ns)
    type_counts = np.zeros(256, dtype=np.int64)
    produced = 0
    first_ts = last_ts = None
    try:
        for index, (lo, hi, sp_hi) in enumerate(chunks):
            count = K.run_chunk(lo, hi, bins, clock.start, BIN_NS, sp_hi, schedule.t,
                                schedule.kind, schedule.loc, schedule.a, schedule.b, sym_i, sym_f,
                                alias_p, alias_i, universe.stock, universe.directory, mpids, reasons,
                                pool_ref, pool_px, pool_qty, pool_side, params, g, rs, slots,
                                counts, starts, buf, moff, mlen, mts)
            if count:
                type_counts += np.bincount(buf[moff[:count]], minlength=256)
                if first_ts is None:
                    first_ts = int(mts[0])
                last_ts = int(mts[count - 1])
            produced += count
            sink.feed(buf, moff, mlen, mts, count, index == len(chunks) - 1)
            if progress is not None:
                progress(produced, int(messages))
    finally:
        sink.close()
    if produced != messages or g[K.G_DEFICIT] != 0:
        raise RuntimeError(f"generated {produced} messages instead of {messages}")

    summary = {
        "output": out,
        "format": fmt,
        "seed": seed,
        "parameters": {
            "symbols": int(symbols), "messages": int(messages),
            "feeds": feed_names if fmt != "itch" else [],
            "gap_rate": rates[0], "dup_rate": rates[1], "reorder_rate": rates[2],
            "vlan": [v for v in vlan_ids if v >= 0], "session": session,
            "start": start, "end": end, "date": date, "all_types": bool(all_types),
            "heartbeat_interval": heartbeat_interval,
        },
        "messages": int(produced),
        "messages_by_type": {chr(c): int(type_counts[c]) for c in np.flatnonzero(type_counts)},
        "first_timestamp_ns": first_ts,
        "last_timestamp_ns": last_ts,
        "order_reference_numbers": [1, int(g[K.G_NEXT_REF]) - 1],
        "match_numbers": [1, int(g[K.G_NEXT_MATCH]) - 1],
        "roles": schedule.roles,
    }
    summary.update(sink.report())
    summary["bytes_written"] = os.path.getsize(out)
    elapsed = time.perf_counter() - t_begin
    if write_summary:
        with open(out + ".summary.json", "w") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    summary["elapsed_s"] = elapsed
    summary["messages_per_s"] = produced / elapsed if elapsed > 0 else float("inf")
    return summary


def bench_generate(n: int = 2_000_000, symbols: int = 2000, fmt: str = "pcap") -> float:
    """Messages per second of a whole day written to a temporary file
    (for captures: two feeds, faults on), after a small warm-up run that
    compiles."""
    ext = {"pcap": ".pcap", "pcapng": ".pcapng", "itch": ".itch"}[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        warm = os.path.join(tmp, "warm" + ext)
        generate_day(warm, symbols=50, messages=20_000, seed=1, write_summary=False)
        path = os.path.join(tmp, "day" + ext)
        t0 = time.perf_counter()
        faults = {} if fmt == "itch" else dict(gap_rate=1e-4, dup_rate=1e-4, reorder_rate=1e-4)
        generate_day(path, symbols=symbols, messages=n, seed=2, write_summary=False, **faults)
        return n / (time.perf_counter() - t0)
