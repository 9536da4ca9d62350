"""Exchange simulator: OUCH order handling, matching, and the SoupBinTCP server."""
import asyncio

import pytest

from host.exchange import ExchangeConfig, ExchangeServer, OuchExchange
from host.protocols import ouch50, soupbintcp
from host.protocols.ouch50 import Appendage
from host.protocols.soupbintcp import SoupFramer

TIMEOUT = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def enter(ref, side="B", qty=100, symbol="ZAAB", price=100_0000, tif="0", firm=None):
    return ouch50.EnterOrder(user_ref_num=ref, side=side, quantity=qty, symbol=symbol, price=price,
                             time_in_force=tif, display="Y", capacity="P",
                             intermarket_sweep_eligibility="N", cross_type="N",
                             cl_ord_id=f"C{ref}", appendage=Appendage(firm=firm) if firm else Appendage())


def types(out):
    return [(user, type(m).__name__) for user, m in out]


@pytest.fixture
def ex():
    return OuchExchange({"ZAAB", "ZAAC"}, clock=lambda: 1)


def test_accept_assigns_order_reference_numbers(ex):
    a = ex.handle("u", enter(1))
    b = ex.handle("u", enter(2))
    assert types(a) == [("u", "OrderAccepted")]
    assert a[0][1].order_reference_number + 1 == b[0][1].order_reference_number
    assert a[0][1].order_state == "L" and a[0][1].quantity == 100


@pytest.mark.parametrize("kwargs,reason", [
    (dict(side="X"), 0x09), (dict(qty=0), 0x13), (dict(qty=1_000_001), 0x13),
    (dict(price=0), 0x1D), (dict(price=ouch50.MAX_LIMIT_PRICE + 1), 0x1D),
    (dict(symbol="NOPE"), 0x17), (dict(tif="Q"), 0x0F),
])
def test_invalid_orders_rejected_with_spec_codes(ex, kwargs, reason):
    out = ex.handle("u", enter(7, **kwargs))
    assert types(out) == [("u", "OrderRejected")]
    assert out[0][1].reason == reason and out[0][1].user_ref_num == 7
    assert out[0][1].cl_ord_id == "C7"
    # Decodes back to the same message: the reject is byte-exact.
    assert ouch50.decode_outbound(out[0][1].encode()) == out[0][1]


def test_stale_user_ref_num_is_ignored_as_retransmission(ex):
    ex.handle("u", enter(5))
    assert ex.handle("u", enter(5)) == [] and ex.handle("u", enter(3)) == []
    assert ex.counts["stale_user_ref_num"] == 2
    # Per port: another user may use the same numbers.
    assert types(ex.handle("v", enter(5))) == [("v", "OrderAccepted")]


def test_crossing_orders_execute_both_sides_at_resting_price(ex):
    ex.handle("maker", enter(1, "S", 300, price=101_0000))
    out = ex.handle("taker", enter(1, "B", 500, price=102_0000))
    assert types(out) == [("taker", "OrderAccepted"), ("taker", "OrderExecuted"),
                          ("maker", "OrderExecuted")]
    taker_fill, maker_fill = out[1][1], out[2][1]
    assert taker_fill.quantity == maker_fill.quantity == 300
    assert taker_fill.price == maker_fill.price == 101_0000
    assert taker_fill.match_number == maker_fill.match_number
    assert (taker_fill.liquidity_flag, maker_fill.liquidity_flag) == ("R", "A")
    # The rest of the buy rests; a new sell trades against it.
    out = ex.handle("maker", enter(2, "S", 200, price=100_0000))
    assert [m.quantity for _, m in out if isinstance(m, ouch50.OrderExecuted)] == [200, 200]
    assert out[1][1].price == 102_0000 and out[1][1].match_number == taker_fill.match_number + 1
    assert ex.ports["taker"].live == {}


def test_price_time_priority(ex):
    ex.handle("a", enter(1, "S", 100, price=101_0000))
    ex.handle("b", enter(1, "S", 100, price=100_5000))
    ex.handle("c", enter(1, "S", 100, price=100_5000))
    out = ex.handle("t", enter(1, "B", 250, price=101_0000))
    makers = [(u, m.quantity, m.price) for u, m in out
              if isinstance(m, ouch50.OrderExecuted) and m.liquidity_flag == "A"]
    assert makers == [("b", 100, 100_5000), ("c", 100, 100_5000), ("a", 50, 101_0000)]


def test_no_trade_when_not_crossing(ex):
    ex.handle("a", enter(1, "S", 100, price=101_0000))
    out = ex.handle("b", enter(1, "B", 100, price=100_9999))
    assert types(out) == [("b", "OrderAccepted")]


def test_immediate_or_cancel_remainder_is_canceled(ex):
    ex.handle("a", enter(1, "S", 40, price=100_0000))
    out = ex.handle("b", enter(1, "B", 100, price=100_0000, tif="3"))
    assert types(out)[-1] == ("b", "OrderCanceled")
    assert out[-1][1].quantity == 60 and out[-1][1].reason == "I"


def test_partial_and_full_cancel(ex):
    ex.handle("u", enter(1, qty=500))
    out = ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=200))
    assert types(out) == [("u", "OrderCanceled")] and out[0][1].quantity == 300
    out = ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=0))
    assert out[0][1].quantity == 200 and out[0][1].reason == "U"
    assert ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=0)) == []
    assert ex.counts["not_live"] == 1


def test_replace_and_replace_of_dead_order(ex):
    ex.handle("u", enter(1, qty=500))
    out = ex.handle("u", ouch50.ReplaceOrderRequest(
        orig_user_ref_num=1, user_ref_num=2, quantity=300, price=99_0000, time_in_force="0",
        display="Y", intermarket_sweep_eligibility="N", cl_ord_id="R2", appendage=Appendage()))
    rep = out[0][1]
    assert type(rep) is ouch50.OrderReplaced
    assert (rep.orig_user_ref_num, rep.user_ref_num, rep.quantity, rep.price) == (1, 2, 300, 99_0000)
    out = ex.handle("u", ouch50.ReplaceOrderRequest(
        orig_user_ref_num=1, user_ref_num=3, quantity=300, price=99_0000, time_in_force="0",
        display="Y", intermarket_sweep_eligibility="N", cl_ord_id="R3", appendage=Appendage()))
    assert out[0][1].reason == 0x15 and out[0][1].user_ref_num == 3
    # A replace that crosses trades at once.
    ex.handle("s", enter(1, "S", 100, price=100_0000))
    out = ex.handle("u", ouch50.ReplaceOrderRequest(
        orig_user_ref_num=2, user_ref_num=4, quantity=300, price=100_0000, time_in_force="0",
        display="Y", intermarket_sweep_eligibility="N", cl_ord_id="R4", appendage=Appendage()))
    assert [type(m).__name__ for _, m in out] == ["OrderReplaced", "OrderExecuted", "OrderExecuted"]


def test_modify(ex):
    ex.handle("u", enter(1, "S", 500))
    out = ex.handle("u", ouch50.ModifyOrderRequest(user_ref_num=1, side="T", quantity=400))
    assert (out[0][1].side, out[0][1].quantity) == ("T", 400)
    assert ex.handle("u", ouch50.ModifyOrderRequest(user_ref_num=1, side="B", quantity=100)) == []
    assert ex.handle("u", ouch50.ModifyOrderRequest(user_ref_num=1, side="T", quantity=401)) == []
    assert ex.counts["bad_modify"] == 2


def test_mass_cancel_by_symbol_and_all(ex):
    for ref, sym in ((1, "ZAAB"), (2, "ZAAC"), (3, "ZAAB")):
        ex.handle("u", enter(ref, symbol=sym))
    ex.handle("v", enter(1))
    out = ex.handle("u", ouch50.MassCancelRequest(user_ref_num=4, firm="", symbol="ZAAB",
                                                  appendage=Appendage()))
    assert types(out) == [("u", "OrderCanceled")] * 2 + [("u", "MassCancelResponse")]
    assert sorted(m.user_ref_num for _, m in out[:2]) == [1, 3]
    out = ex.handle("u", ouch50.MassCancelRequest(user_ref_num=5, firm="", symbol="",
                                                  appendage=Appendage()))
    assert [m.user_ref_num for _, m in out] == [2, 5]
    assert list(ex.ports["v"].live) == [1]   # other users untouched


# -- the SoupBinTCP server -----------------------------------------------------------

class RawClient:
    """A bare SoupBinTCP client to poke the server with exactly chosen packets."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.framer = SoupFramer(soupbintcp.SERVER)
        self.pending = []

    @classmethod
    async def open(cls, port):
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, packet):
        self.writer.write(packet.packet())

    def ouch(self, msg):
        self.send(soupbintcp.UnsequencedData(message=msg.encode()))

    async def next(self, timeout=3):
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.pending.extend(self.framer.feed(data))
        return self.pending.pop(0)

    async def next_data(self, timeout=3):
        while True:
            p = await self.next(timeout)
            if p is None or not isinstance(p, soupbintcp.ServerHeartbeat):
                return p

    async def login(self, user="ZMM01", password="s3cret", session="", seq=1):
        self.send(soupbintcp.LoginRequest(username=user, password=password,
                                          requested_session=session,
                                          requested_sequence_number=seq))
        return await self.next()

    def close(self):
        self.writer.close()


CONFIG = dict(users={"ZMM01": "s3cret", "ZMM02": "pw2"}, session="0000000042")


def test_login_accepted_and_rejected():
    async def main():
        async with ExchangeServer(ExchangeConfig(**CONFIG)) as server:
            c = await RawClient.open(server.port)
            assert await c.login(password="wrong") == soupbintcp.LoginRejected(reject_reason_code="A")
            assert await c.next() is None   # server hangs up after a reject
            c = await RawClient.open(server.port)
            assert (await c.login(session="0000000007")).reject_reason_code == "S"
            c = await RawClient.open(server.port)
            acc = await c.login(session="0000000042")
            assert acc == soupbintcp.LoginAccepted(session="0000000042", sequence_number=1)
            c.close()
            c = await RawClient.open(server.port)
            c.send(soupbintcp.ClientHeartbeat())   # anything but a login first
            assert await c.next() is None
            assert server.counts["not_logged_in"] == 1
    run(main())


def test_orders_over_the_wire_and_replay_from_requested_sequence():
    async def main():
        async with ExchangeServer(ExchangeConfig(**CONFIG)) as server:
            a = await RawClient.open(server.port)
            await a.login()
            a.ouch(enter(1, "S", 100, price=100_0000))
            assert type(ouch50.decode_outbound((await a.next_data()).message)) is ouch50.OrderAccepted
            b = await RawClient.open(server.port)
            await b.login(user="ZMM02", password="pw2")
            b.ouch(enter(1, "B", 100, price=100_0000))
            got = [type(ouch50.decode_outbound((await b.next_data()).message)) for _ in range(2)]
            assert got == [ouch50.OrderAccepted, ouch50.OrderExecuted]
            fill = ouch50.decode_outbound((await a.next_data()).message)
            assert type(fill) is ouch50.OrderExecuted and fill.liquidity_flag == "A"
            a.close()
            # A new login asking for message 2 gets exactly message 2 on.
            a = await RawClient.open(server.port)
            assert (await a.login(seq=2)).sequence_number == 2
            again = ouch50.decode_outbound((await a.next_data()).message)
            assert again == fill
            a.close()
            # 0 means "from the next message": nothing replayed.
            a = await RawClient.open(server.port)
            assert (await a.login(seq=0)).sequence_number == 3
            a.ouch(ouch50.AccountQueryRequest(appendage=None))
            q = ouch50.decode_outbound((await a.next_data()).message)
            assert q.next_user_ref_num == 2
            assert len(server.sequenced("ZMM01")) == 3
    run(main())


def test_server_heartbeats_and_client_timeout():
    async def main():
        cfg = ExchangeConfig(**CONFIG, heartbeat_interval=0.05, client_timeout=0.4)
        async with ExchangeServer(cfg) as server:
            c = await RawClient.open(server.port)
            await c.login()
            assert isinstance(await c.next(), soupbintcp.ServerHeartbeat)
            assert isinstance(await c.next(), soupbintcp.ServerHeartbeat)
            # Keep talking: the connection stays up past the timeout.
            for _ in range(6):
                c.send(soupbintcp.ClientHeartbeat())
                await asyncio.sleep(0.1)
            assert server.connected("ZMM01")
            # Then go silent: the server drops the connection.
            while (p := await c.next()) is not None:
                assert isinstance(p, soupbintcp.ServerHeartbeat)
            assert server.counts["client_timeouts"] == 1
    run(main())


def test_logout_end_of_session_and_garbage():
    async def main():
        async with ExchangeServer(ExchangeConfig(**CONFIG)) as server:
            c = await RawClient.open(server.port)
            await c.login()
            c.send(soupbintcp.UnsequencedData(message=b"O\x00"))   # truncated OUCH: counted, ignored
            c.send(soupbintcp.LogoutRequest())
            assert await c.next_data() is None
            assert server.counts["bad_ouch_truncated"] == 1 and server.counts["logouts"] == 1
            c = await RawClient.open(server.port)
            await c.login()
            c.writer.write(b"\x00\x00")   # zero length breaks framing
            assert await c.next_data() is None
            assert server.counts["framing_errors"] == 1
            c = await RawClient.open(server.port)
            await c.login()
            server.end_session()
            event = ouch50.decode_outbound((await c.next_data()).message)
            assert event == ouch50.SystemEvent(timestamp=event.timestamp, event_code="E")
            assert isinstance(await c.next_data(), soupbintcp.EndOfSession)
            assert await c.next_data() is None
            c = await RawClient.open(server.port)
            assert (await c.login()).reject_reason_code == "S"
    run(main())
