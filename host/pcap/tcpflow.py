"""TCP stream reassembly for decoding order-entry sessions (SoupBinTCP/OUCH)
from packet captures.

:class:`TcpReassembler` takes TCP segments in capture order and hands back
each direction's byte stream in sequence order, ready for
:class:`host.protocols.soupbintcp.SoupFramer`.  A flow is one direction of a
connection, keyed ``(src_ip, src_port, dst_ip, dst_port)``; addresses are
opaque (ints or strings, whatever the caller uses).

What it copes with, and counts (``counters``):

* SYN sets the initial sequence number; a flow seen without its SYN (the
  capture started mid-connection) starts at its first data segment
  (``midstream_starts``).  A SYN with a new ISN on a known flow starts a new
  connection (``restarts``).
* Retransmissions: data wholly at or before the delivered point is dropped
  (``retransmits``, ``retransmitted_bytes``); a segment that straddles it is
  trimmed and its new tail delivered (``overlaps``).
* Out-of-order segments are held until the hole before them fills
  (``out_of_order``).  The hold is bounded per flow (``max_buffered_bytes``,
  ``max_buffered_segments``): past the bound the hole is declared lost,
  counted in ``gaps`` / ``gap_bytes``, recorded in ``gap_events`` and the
  stream resumes at the earliest held segment.  The first chunk after a hole
  carries ``gap_before`` (the number of bytes lost); an upper-layer deframer
  should be reset before feeding it.
* Sequence numbers wrap at 2**32; positions are compared modulo 2**32.
* FIN ends a flow once every byte before it is delivered (``fins``); data
  after it is dropped (``data_after_fin``).  RST ends both directions of the
  connection (``resets``).  Held data that can never be delivered (after a
  FIN, or at a RST or restart) is counted in ``discarded_held_bytes``.

Pure Python: order-entry streams are small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Hashable

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

_MOD = 1 << 32
_HALF = 1 << 31

FlowKey = tuple[Hashable, int, Hashable, int]


def seq_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit sequence numbers, in [-2**31, 2**31)."""
    return ((a - b + _HALF) % _MOD) - _HALF


class Chunk(tuple):
    """``(flow, ts_ns, data)``: in-order bytes of one flow.

    ``ts_ns`` is the capture time of the segment that made the bytes
    deliverable in order.  ``gap_before`` is non-zero when bytes were lost
    right before this chunk.
    """

    gap_before: int = 0

    def __new__(cls, flow, ts_ns: int, data: bytes, gap_before: int = 0):
        self = tuple.__new__(cls, (flow, ts_ns, data))
        if gap_before:
            self.gap_before = gap_before
        return self

    flow = property(itemgetter(0))
    ts_ns = property(itemgetter(1))
    data = property(itemgetter(2))

    def __repr__(self):
        gap = f", gap_before={self.gap_before}" if self.gap_before else ""
        return f"Chunk({self[0]!r}, {self[1]!r}, {self[2]!r}{gap})"


@dataclass
class GapEvent:
    flow: FlowKey
    ts_ns: int
    expected_seq: int   # first missing sequence number
    resumed_seq: int    # where delivery continued
    missing_bytes: int


@dataclass
class _HoleMark:
    """Placeholder in an output list: the next chunk of ``flow`` follows a hole."""
    flow: FlowKey
    missing: int


@dataclass
class _Held:
    seq: int
    ts_ns: int
    payload: bytes
    fin: bool


@dataclass
class _Flow:
    next_seq: int | None = None     # next byte expected, None until known
    isn: int | None = None
    closed: bool = False
    held: dict[int, _Held] = field(default_factory=dict)
    held_bytes: int = 0


_COUNTER_NAMES = (
    "segments", "payload_bytes", "delivered_bytes", "flows", "midstream_starts",
    "restarts", "retransmits", "retransmitted_bytes", "overlaps", "out_of_order",
    "gaps", "gap_bytes", "fins", "data_after_fin", "resets", "discarded_held_bytes",
)


class TcpReassembler:
    """Per-direction in-order byte streams from TCP segments."""

    def __init__(self, *, max_buffered_bytes: int = 1 << 20,
                 max_buffered_segments: int = 1024):
        if max_buffered_bytes < 0 or max_buffered_segments < 0:
            raise ValueError("buffer bounds must be non-negative")
        self.max_buffered_bytes = max_buffered_bytes
        self.max_buffered_segments = max_buffered_segments
        self.flows: dict[FlowKey, _Flow] = {}
        self.counters: dict[str, int] = {name: 0 for name in _COUNTER_NAMES}
        self.gap_events: list[GapEvent] = []

    # -- public ---------------------------------------------------------------
    def add(self, ts_ns: int, src_ip, src_port: int, dst_ip, dst_port: int,
            seq: int, flags: int, payload: bytes = b"") -> list[Chunk]:
        """Process one segment (``flags``: the TCP flag bits, see :data:`SYN`
        and friends); return the bytes it made deliverable, as
        ``(flow_key, ts_ns, data)`` :class:`Chunk` s in stream order."""
        c = self.counters
        c["segments"] += 1
        c["payload_bytes"] += len(payload)
        key: FlowKey = (src_ip, src_port, dst_ip, dst_port)
        seq &= _MOD - 1
        payload = bytes(payload)

        if flags & RST:
            # A reset aborts the connection: both directions end here.
            c["resets"] += 1
            self._forget(key)
            self._forget((dst_ip, dst_port, src_ip, src_port))
            return []

        flow = self.flows.get(key)
        if flags & SYN:
            # A SYN repeating the known ISN is a retransmission; any other
            # SYN opens a new connection on this address/port pair.
            if flow is None or flow.isn != seq:
                if flow is not None:
                    c["restarts"] += 1
                    self._drop_held(flow)
                else:
                    c["flows"] += 1
                flow = _Flow(next_seq=(seq + 1) % _MOD, isn=seq)
                self.flows[key] = flow
            seq = (seq + 1) % _MOD   # the SYN occupies one sequence number

        if flow is None:
            if not payload and not flags & FIN:
                return []   # a bare ACK tells us nothing about the stream
            c["flows"] += 1
            c["midstream_starts"] += 1
            flow = _Flow(next_seq=seq)
            self.flows[key] = flow

        out: list = []
        self._segment(key, flow, ts_ns, seq, payload, bool(flags & FIN), out)
        return [chunk for chunk in out if isinstance(chunk, Chunk)]

    def pending_bytes(self, key: FlowKey | None = None) -> int:
        """Bytes held out of order (for one flow, or all)."""
        if key is not None:
            flow = self.flows.get(key)
            return 0 if flow is None else flow.held_bytes
        return sum(f.held_bytes for f in self.flows.values())

    def is_closed(self, key: FlowKey) -> bool:
        flow = self.flows.get(key)
        return flow is not None and flow.closed

    def flush(self, key: FlowKey | None = None) -> list[Chunk]:
        """Give up on holes: deliver everything held (end of capture).  Each
        skipped hole is counted as a gap."""
        out: list = []
        keys = [key] if key is not None else list(self.flows)
        for k in keys:
            flow = self.flows.get(k)
            if flow is None:
                continue
            while flow.held:
                self._skip_to_earliest(k, flow, None, out)
        return [chunk for chunk in out if isinstance(chunk, Chunk)]

    # -- internals ------------------------------------------------------------
    def _forget(self, key: FlowKey) -> None:
        flow = self.flows.pop(key, None)
        if flow is not None:
            self._drop_held(flow)

    def _drop_held(self, flow: _Flow) -> None:
        self.counters["discarded_held_bytes"] += flow.held_bytes
        flow.held.clear()
        flow.held_bytes = 0

    # ``out`` collects Chunks; a _HoleMark keeps the bytes on either side of a
    # hole apart and hands its size to the flow's next chunk.
    def _segment(self, key, flow: _Flow, ts_ns, seq, payload, fin, out) -> None:
        c = self.counters
        if flow.closed:
            if payload:
                if seq_diff((seq + len(payload)) % _MOD, flow.next_seq) > 0:
                    c["data_after_fin"] += 1
                else:
                    c["retransmits"] += 1
                    c["retransmitted_bytes"] += len(payload)
            return
        d = seq_diff(seq, flow.next_seq)
        if d > 0:
            self._hold(key, flow, ts_ns, seq, payload, fin, out)
            return
        if d < 0:
            end = d + len(payload)   # where the payload ends, relative to next_seq
            if end <= 0:
                if payload:
                    c["retransmits"] += 1
                    c["retransmitted_bytes"] += len(payload)
                if fin and end == 0:
                    # The FIN sits exactly at the delivered point: it is new.
                    self._deliver(key, flow, ts_ns, b"", True, out)
                return
            c["overlaps"] += 1
            c["retransmitted_bytes"] += -d
            payload = payload[-d:]
        self._deliver(key, flow, ts_ns, payload, fin, out)
        self._drain(key, flow, ts_ns, out)

    def _deliver(self, key, flow: _Flow, ts_ns, payload, fin, out) -> None:
        if payload:
            flow.next_seq = (flow.next_seq + len(payload)) % _MOD
            self.counters["delivered_bytes"] += len(payload)
            last = out[-1] if out else None
            if isinstance(last, Chunk) and last[0] == key and last[1] == ts_ns:
                out[-1] = Chunk(key, ts_ns, last[2] + payload, last.gap_before)
            elif isinstance(last, _HoleMark) and last.flow == key:
                out[-1] = Chunk(key, ts_ns, payload, last.missing)
            else:
                out.append(Chunk(key, ts_ns, payload))
        if fin:
            flow.next_seq = (flow.next_seq + 1) % _MOD
            flow.closed = True
            self.counters["fins"] += 1
            self._drop_held(flow)

    def _drain(self, key, flow: _Flow, ts_ns, out) -> None:
        """Deliver held segments that the stream has now reached.

        ``ts_ns`` is the arrival that made them deliverable (None at flush:
        each keeps its own capture time)."""
        while flow.held and not flow.closed:
            best = min(flow.held.values(), key=lambda h: seq_diff(h.seq, flow.next_seq))
            d = seq_diff(best.seq, flow.next_seq)
            if d > 0:
                return
            self._unhold(flow, best)
            ts = best.ts_ns if ts_ns is None else ts_ns
            payload = best.payload
            end = d + len(payload)
            if end <= 0:
                if payload:
                    self.counters["retransmits"] += 1
                    self.counters["retransmitted_bytes"] += len(payload)
                if best.fin and end == 0:
                    self._deliver(key, flow, ts, b"", True, out)
                continue
            if d < 0:
                self.counters["overlaps"] += 1
                self.counters["retransmitted_bytes"] += -d
                payload = payload[-d:]
            self._deliver(key, flow, ts, payload, best.fin, out)

    def _unhold(self, flow: _Flow, held: _Held) -> None:
        del flow.held[held.seq]
        flow.held_bytes -= len(held.payload)

    def _hold(self, key, flow: _Flow, ts_ns, seq, payload, fin, out) -> None:
        c = self.counters
        if not payload and not fin:
            return   # an ACK from beyond a hole carries nothing to keep
        old = flow.held.get(seq)
        if old is not None:
            if len(payload) < len(old.payload) or (
                    len(payload) == len(old.payload) and (old.fin or not fin)):
                c["retransmits"] += 1
                c["retransmitted_bytes"] += len(payload)
                return
            # The longer copy supersedes the held one, whose bytes it repeats.
            c["retransmits"] += 1
            c["retransmitted_bytes"] += len(old.payload)
            self._unhold(flow, old)
        else:
            c["out_of_order"] += 1
        flow.held[seq] = _Held(seq, ts_ns, payload, fin)
        flow.held_bytes += len(payload)
        while flow.held and (flow.held_bytes > self.max_buffered_bytes
                             or len(flow.held) > self.max_buffered_segments):
            self._skip_to_earliest(key, flow, ts_ns, out)

    def _skip_to_earliest(self, key, flow: _Flow, ts_ns, out) -> None:
        """Declare the hole before the earliest held segment lost and resume there."""
        earliest = min(flow.held.values(), key=lambda h: seq_diff(h.seq, flow.next_seq))
        missing = seq_diff(earliest.seq, flow.next_seq)
        if missing > 0:
            event = GapEvent(key, earliest.ts_ns if ts_ns is None else ts_ns,
                             flow.next_seq, earliest.seq, missing)
            self.counters["gaps"] += 1
            self.counters["gap_bytes"] += missing
            self.gap_events.append(event)
            flow.next_seq = earliest.seq
            if out and isinstance(out[-1], _HoleMark) and out[-1].flow == key:
                out[-1].missing += missing
            else:
                out.append(_HoleMark(key, missing))
        self._drain(key, flow, ts_ns, out)
