"""A scripted SoupBinTCP / OUCH 5.0 order-entry session, written as a pcap.

The shipped ``captures/ouch-session.pcap`` is made here: a TCP handshake,
login, orders entered with appendages, accepts, a partial and a full
execution, a replace, a cancel, a reject, heartbeats both ways, a mass
cancel, logout and end of session.  It exercises what the decoder must
survive on a real wire: several SoupBinTCP packets coalesced into one TCP
segment, one packet split across two segments, and a retransmitted segment.

The conversation follows the OUCH 5.0 flow (every response answers a
request), so it doubles as a fixture for the order gateway's tests.
"""
from __future__ import annotations

from pathlib import Path

from host.pcap.frames import build_tcp_frame
from host.pcap.tcpflow import ACK, FIN, PSH, SYN
from host.pcap.writer import PcapWriter
from host.protocols import ouch50, soupbintcp
from host.protocols.ouch50 import Appendage

CLIENT = ("10.1.0.10", 40001)
SERVER = ("10.1.0.1", 15000)
SESSION = "0000042317"
FIRM = "ZMMF"
T0_NS = 1_790_000_000_000_000_000  # capture time of the first segment (ns since the epoch)


class _Wire:
    """Both directions of one TCP connection, tracking sequence numbers."""

    def __init__(self, writer: PcapWriter):
        self.writer = writer
        self.ts = T0_NS
        self.seq = {CLIENT: 100_000, SERVER: 4_000_000_000}  # server ISN close to 2**32: wraps
        self.segments = 0

    def _send(self, src, dst, flags: int, payload: bytes = b"", *, seq: int | None = None) -> None:
        s = self.seq[src] if seq is None else seq
        frame = build_tcp_frame(payload, src[0], dst[0], src[1], dst[1], seq=s,
                                ack=self.seq[dst], flags=flags)
        self.writer.write(self.ts, frame)
        self.segments += 1
        self.ts += 7_000  # 7 µs between segments
        if seq is None:
            advance = len(payload) + (1 if flags & (SYN | FIN) else 0)
            self.seq[src] = (self.seq[src] + advance) % 2**32

    def handshake(self) -> None:
        self._send(CLIENT, SERVER, SYN)
        self._send(SERVER, CLIENT, SYN | ACK)
        self._send(CLIENT, SERVER, ACK)

    def data(self, src, dst, payload: bytes) -> None:
        self._send(src, dst, PSH | ACK, payload)

    def retransmit_last(self, src, dst, payload: bytes) -> None:
        self._send(src, dst, PSH | ACK, payload, seq=(self.seq[src] - len(payload)) % 2**32)

    def close(self) -> None:
        self._send(CLIENT, SERVER, FIN | ACK)
        self._send(SERVER, CLIENT, FIN | ACK)
        self._send(CLIENT, SERVER, ACK)


def write_order_entry_capture(path: str | Path) -> dict:
    """Writes the session; returns its summary (counts per message kind)."""
    counts = {"inbound": 0, "outbound": 0}
    clock = [34_200_000_000_000]  # OUCH timestamps: ns since midnight

    def now() -> int:
        clock[0] += 1_250_000
        return clock[0]

    def client(msg) -> bytes:
        counts["inbound"] += 1
        return soupbintcp.UnsequencedData(message=msg.encode()).packet()

    def server(msg) -> bytes:
        counts["outbound"] += 1
        return soupbintcp.SequencedData(message=msg.encode()).packet()

    def enter(ref, side, qty, symbol, price, clid, **options):
        return ouch50.EnterOrder(user_ref_num=ref, side=side, quantity=qty, symbol=symbol, price=price,
                                 time_in_force="0", display="Y", capacity="P",
                                 intermarket_sweep_eligibility="N", cross_type="N", cl_ord_id=clid,
                                 appendage=Appendage(firm=FIRM, **options))

    def accepted(o, order_ref):
        return ouch50.OrderAccepted(timestamp=now(), user_ref_num=o.user_ref_num, side=o.side,
                                    quantity=o.quantity, symbol=o.symbol, price=o.price,
                                    time_in_force=o.time_in_force, display=o.display,
                                    order_reference_number=order_ref, capacity=o.capacity,
                                    intermarket_sweep_eligibility="N", cross_type="N", order_state="L",
                                    cl_ord_id=o.cl_ord_id, appendage=Appendage(firm=FIRM))

    buy = enter(1, "B", 500, "ZAAB", 1_023_400, "ZMM000001", min_qty=100)
    sell = enter(2, "S", 500, "ZAAB", 1_024_100, "ZMM000002", post_only="Y")
    wide = enter(3, "B", 200, "ZAAC", 457_700, "ZMM000003", max_floor=100)
    bad = enter(4, "B", 10, "ZZZZ", 100, "ZMM000004")

    with PcapWriter(path, nanosecond=True) as writer:
        wire = _Wire(writer)
        wire.handshake()
        login = soupbintcp.LoginRequest(username="ZMM01", password="s3cret", requested_session="",
                                        requested_sequence_number=1).packet()
        wire.data(CLIENT, SERVER, login)
        wire.data(SERVER, CLIENT, soupbintcp.LoginAccepted(session=SESSION, sequence_number=1).packet())
        wire.data(SERVER, CLIENT, server(ouch50.SystemEvent(timestamp=now(), event_code="S")))
        # Three orders coalesced into one segment, as a client batching writes sends them.
        wire.data(CLIENT, SERVER, client(buy) + client(sell) + client(wide))
        acks = server(accepted(buy, 710_001)) + server(accepted(sell, 710_002)) + server(accepted(wide, 710_003))
        # One packet split across two segments.
        wire.data(SERVER, CLIENT, acks[:50])
        wire.data(SERVER, CLIENT, acks[50:])
        wire.data(CLIENT, SERVER, client(bad))
        wire.data(SERVER, CLIENT, server(ouch50.OrderRejected(timestamp=now(), user_ref_num=4, reason=0x0001,
                                                             cl_ord_id="ZMM000004")))
        wire.data(CLIENT, SERVER, soupbintcp.ClientHeartbeat().packet())
        wire.data(SERVER, CLIENT, soupbintcp.ServerHeartbeat().packet())
        partial = server(ouch50.OrderExecuted(timestamp=now(), user_ref_num=1, quantity=200, price=1_023_400,
                                              liquidity_flag="A", match_number=88_000_101))
        wire.data(SERVER, CLIENT, partial)
        # The same segment again: a retransmission the decoder must not double count.
        wire.retransmit_last(SERVER, CLIENT, partial)
        replace = ouch50.ReplaceOrderRequest(orig_user_ref_num=2, user_ref_num=5, quantity=400, price=1_023_900,
                                             time_in_force="0", display="Y", intermarket_sweep_eligibility="N",
                                             cl_ord_id="ZMM000005", appendage=Appendage())
        wire.data(CLIENT, SERVER, client(replace))
        wire.data(SERVER, CLIENT, server(ouch50.OrderReplaced(
            timestamp=now(), orig_user_ref_num=2, user_ref_num=5, side="S", quantity=400, symbol="ZAAB",
            price=1_023_900, time_in_force="0", display="Y", order_reference_number=710_004, capacity="P",
            intermarket_sweep_eligibility="N", cross_type="N", order_state="L", cl_ord_id="ZMM000005",
            appendage=Appendage())))
        wire.data(SERVER, CLIENT, server(ouch50.OrderExecuted(
            timestamp=now(), user_ref_num=1, quantity=300, price=1_023_400, liquidity_flag="A",
            match_number=88_000_117)))
        wire.data(CLIENT, SERVER, client(ouch50.CancelOrderRequest(user_ref_num=3, quantity=0)))
        wire.data(SERVER, CLIENT, server(ouch50.OrderCanceled(timestamp=now(), user_ref_num=3, quantity=200,
                                                             reason="U")))
        wire.data(CLIENT, SERVER, client(ouch50.MassCancelRequest(user_ref_num=6, firm=FIRM, symbol="",
                                                                 appendage=Appendage())))
        wire.data(SERVER, CLIENT, server(ouch50.OrderCanceled(timestamp=now(), user_ref_num=5, quantity=400,
                                                             reason="U"))
                  + server(ouch50.MassCancelResponse(timestamp=now(), user_ref_num=6, firm=FIRM, symbol="",
                                                     appendage=Appendage())))
        wire.data(CLIENT, SERVER, soupbintcp.LogoutRequest().packet())
        wire.data(SERVER, CLIENT, soupbintcp.EndOfSession().packet())
        wire.close()
    return {
        "what": "SoupBinTCP/OUCH 5.0 session: login, orders, fills, replace, cancels, mass cancel, "
                "coalesced, split and retransmitted segments",
        "ouch_messages": counts["inbound"] + counts["outbound"],
        "ouch_inbound": counts["inbound"],
        "ouch_outbound": counts["outbound"],
        "soup_packets": counts["inbound"] + counts["outbound"] + 6,
        "tcp_segments": wire.segments,
        "session": SESSION,
    }
