"""A power loss takes the journal's unsynced tail; the next start gets it back
from the exchange: the SoupBinTCP session replays every answer after the last
``rx`` on record, the order manager adopts the orders it has no request for,
the Account Query keeps UserRefNums from being reused, and the risk engine
and the quote trader follow the adopted orders.  Also: one send per batch,
TCP_NODELAY, and the compiled OUCH encoders against the generic ones."""
import asyncio
import shutil
import socket

import pytest
from hypothesis import given, settings, strategies as st

from host.exchange import ExchangeConfig, ExchangeServer
from host.gateway import NotConnectedError, OrderGateway, OrderState, PreTradeRejected, rebuild
from host.journal import Journal
from host.protocols import ouch50, soupbintcp
from host.protocols.errors import EncodeError
from host.protocols.layout import Message

TIMEOUT = 30
USERS = {"ZMM01": "s3cret", "ZMM02": "pw2"}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def _view(manager):
    """What must agree after recovery: every order's identity and state."""
    return sorted((o.user_ref_nums[0], o.user_ref_num, o.symbol, o.side, o.price,
                   o.open_quantity, o.filled, o.state.value, tuple(o.fills))
                  for o in manager.unique_orders())


def test_power_loss_tail_is_refetched_from_the_exchange(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            journal = tmp_path / "mm.journal"
            mm = OrderGateway(journal, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                              durability="group")
            other = OrderGateway(tmp_path / "other.journal", "127.0.0.1", server.port, "ZMM02",
                                 USERS["ZMM02"])
            await mm.start()
            await other.start()
            assert mm.counts["reconciled"] == 1
            first = mm.submit(mm.orders.enter("B", 100, "ZAAB", 100_0000)).user_ref_num
            await mm.wait_until(lambda: mm.orders.order(first).state is OrderState.LIVE, 5)
            mm.journal.sync()
            durable = mm.journal.durable_offset
            assert durable == mm.journal.end_offset
            # After the last fsync: new orders, a replace, a fill, a cancel.
            second = mm.submit(mm.orders.enter("S", 50, "ZAAB", 103_0000)).user_ref_num
            third = mm.submit(mm.orders.enter("B", 20, "ZAAC", 10_0000)).user_ref_num
            await mm.wait_until(lambda: mm.orders.order(second).state is OrderState.LIVE, 5)
            replaced = mm.submit(mm.orders.replace(second, 40, 102_5000)).user_ref_num
            other.submit(other.orders.enter("S", 30, "ZAAB", 100_0000))
            await mm.wait_until(lambda: mm.orders.order(first).filled == 30
                                and mm.orders.order(replaced).state is OrderState.LIVE, 5)
            await mm.wait_until(lambda: mm.orders.order(third).state is OrderState.LIVE, 5)
            mm.submit(mm.orders.cancel(third))
            await mm.wait_until(lambda: mm.orders.order(third).state is OrderState.CANCELED, 5)
            live = _view(mm.orders)
            highest = mm.orders.next_user_ref_num - 1
            await mm.close(logout=False)
            # The power loss: nothing written after the last fsync survived.
            lost = tmp_path / "lost.journal"
            shutil.copyfile(journal, lost)
            with open(lost, "r+b") as f:
                f.truncate(durable)
            again = OrderGateway(lost, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                                 durability="group")
            assert [o.user_ref_num for o in again.orders.unique_orders()] == [first]
            await again.start()
            # start() returned after the Account Query Response: all caught up.
            assert again.counts["reconciled"] == 1
            assert _view(again.orders) == live
            assert again.orders.counts["adopted_from_exchange"] == 2
            assert again.orders.counts["replaced_unrequested"] == 1
            assert again.orders.anomalies == []
            again.orders.check_invariants()
            assert again.orders.next_user_ref_num > highest
            fresh = again.submit(again.orders.enter("B", 1, "ZAAB", 1_0000)).user_ref_num
            await again.wait_until(
                lambda: again.orders.order(fresh).state is OrderState.LIVE, 5)
            await again.close()
            await other.close()
            # The repaired journal rebuilds the same state on the next start.
            with Journal(lost) as repaired:
                manager, _, _, counts = rebuild(repaired)
            assert _view(manager) == _view(again.orders) and not counts
    run(main())


def test_risk_and_trader_follow_adopted_orders(tmp_path):
    from host.positions.marks import Marks
    from host.positions.theo import price_option
    from host.risk.guard import RiskGuard
    from host.risk.limits import RiskLimits
    from host.runtime.chains import build_universe
    from host.runtime.config import Chain
    from host.runtime.quotes import QuoteTrader

    universe = build_universe([Chain(underlying="ZREC", strikes=[100.0], expiries_days=[30.0],
                                     kinds=["call"], sigma=0.3)], {"ZREC": 1})
    option = universe.options[0]

    def parts(path):
        instruments = universe.instruments()
        marks = Marks(instruments)
        marks.set_bbo("ZREC", 99_9900, 100_0100)
        marks.set_theo(option.symbol, price_option(option.spec, 100.0))
        gw = OrderGateway(path, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                          durability="group")
        guard = RiskGuard(gw, RiskLimits(), instruments, marks=marks)
        trader = QuoteTrader(universe, gw.orders, gw.submit, gw.journal.append,
                             batch=gw.batch)
        gw.on_received.append(trader.on_message)
        return gw, guard, trader, marks

    async def main():
        nonlocal server
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            journal = tmp_path / "mm.journal"
            gw, _, _, marks = parts(journal)
            await gw.start()
            gw.journal.sync()
            durable = gw.journal.durable_offset
            price = round(marks.theo(option.symbol).price * 100) * 100 - 500
            bid = gw.submit(gw.orders.enter("B", 5, option.symbol, price)).user_ref_num
            await gw.wait_until(lambda: gw.orders.order(bid).state is OrderState.LIVE, 5)
            await gw.close(logout=False)
            with open(journal, "r+b") as f:
                f.truncate(durable)
            gw, guard, trader, marks = parts(journal)
            await gw.start()
            assert gw.orders.order(bid).state is OrderState.LIVE
            # Risk counts the adopted order's exposure ...
            assert [o.user_ref_num for o in guard.engine.working_orders(option.symbol)] == [bid]
            # ... and the trader moves it instead of entering a second one.
            assert trader.working[(option.option_id, "B")] == bid
            from host.quoting.records import KIND_QUOTE, SIDE_BID, quotes_array
            trader.on_record(quotes_array([dict(kind=KIND_QUOTE, option_id=0, sides=SIDE_BID,
                                                bid_price=price - 100, bid_size=5, seq=7)])[0])
            assert trader.counts["ReplaceOrderRequest"] == 1 and not trader.counts["EnterOrder"]
            await gw.close()
    server = None
    run(main())


def test_a_batch_leaves_in_one_send_and_refusals_stay_out(tmp_path):
    class Refuse:
        accepted = False
        reason = "test"

    class Accept:
        accepted = True

    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            gw = OrderGateway(tmp_path / "mm.journal", "127.0.0.1", server.port, "ZMM01",
                              USERS["ZMM01"], durability="group")
            await gw.start()
            sock = gw.client._writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            gw.pre_trade = lambda msg: Refuse() if msg.quantity == 13 else Accept()
            writes = []
            transport = gw.client._transport
            real_write = transport.write
            transport.write = lambda data: (writes.append(bytes(data)), real_write(data))[1]
            with gw.batch:
                a = gw.submit(gw.orders.enter("B", 1, "ZAAB", 1_0000))
                with pytest.raises(PreTradeRejected):
                    gw.submit(gw.orders.enter("B", 13, "ZAAB", 1_0000))
                b = gw.submit(gw.orders.enter("S", 2, "ZAAB", 9_0000))
                # Journaled and accounted at once, on the wire only at the end.
                assert [r.kind for r in gw.journal.records[-2:]] == ["tx", "tx"]
                assert writes == []
            packets = soupbintcp.SoupFramer(soupbintcp.CLIENT).feed(b"".join(writes))
            assert len(writes) == 1
            assert [ouch50.decode_inbound(p.message) for p in packets] == [a, b]
            await gw.wait_until(lambda: gw.orders.order(b.user_ref_num).state
                                is OrderState.LIVE, 5)
            # Staged requests of a session that drops are counted, not sent.
            with gw.batch:
                gw.submit(gw.orders.enter("B", 3, "ZAAB", 1_0000))
                gw.client._teardown()
            assert gw.client.counts["staged_dropped"] == 1
            with pytest.raises(NotConnectedError):
                gw.submit(gw.orders.enter("B", 4, "ZAAB", 1_0000))
            await gw.close(logout=False)
    run(main())


# -- compiled OUCH encoders ----------------------------------------------------------

_VALUES = {
    "u16": st.integers(0, 2**16 - 1), "u32": st.integers(0, 2**32 - 1),
    "u64": st.integers(0, 2**64 - 1), "i32": st.integers(-(2**31), 2**31 - 1),
}
_BAD = st.one_of(st.just(True), st.just(-1), st.just(2**64), st.just("é"), st.just(1.5),
                 st.just("x" * 15), st.just(None))


def _field_values(cls, draw):
    values = {}
    for field in cls.LAYOUT.fields:
        if field.is_alpha:
            values[field.name] = draw(st.text("ABCXYZ 019", max_size=field.size))
        else:
            values[field.name] = draw(_VALUES[field.kind])
    return values


@settings(max_examples=150, deadline=None)
@given(data=st.data(), cls=st.sampled_from(ouch50.INBOUND_MESSAGES + ouch50.OUTBOUND_MESSAGES))
def test_compiled_encoder_gives_the_generic_bytes_and_errors(data, cls):
    values = _field_values(cls, data.draw)
    if cls.TAIL is not None:
        values["appendage"] = data.draw(st.sampled_from([
            ouch50.Appendage(), ouch50.Appendage(firm="ZMMF"),
            ouch50.Appendage(min_qty=5, post_only="Y")] + (
                [None] if cls.APPENDAGE_OPTIONAL else [])))
    msg = cls(**values)
    assert msg.encode() == Message.encode(msg)
    registry = ouch50.OUCH_INBOUND if cls in ouch50.INBOUND_MESSAGES else ouch50.OUCH_OUTBOUND
    assert registry.decode(msg.encode()).encode() == msg.encode()
    if cls.LAYOUT.fields:
        field = data.draw(st.sampled_from(cls.LAYOUT.fields))
        setattr(msg, field.name, data.draw(_BAD))
        with pytest.raises(EncodeError) as generic:
            Message.encode(msg)
        with pytest.raises(EncodeError) as compiled:
            msg.encode()
        assert str(compiled.value) == str(generic.value)


def test_compiled_constructor_keeps_the_signature():
    msg = ouch50.CancelOrderRequest(7, 0)
    assert msg.appendage == ouch50.Appendage() and msg.appendage is not \
        ouch50.CancelOrderRequest(7, 0).appendage
    with pytest.raises(TypeError):
        ouch50.CancelOrderRequest(user_ref_num=7)
    with pytest.raises(TypeError):
        ouch50.CancelOrderRequest(7, 0, colour="red")
    assert ouch50.SystemEvent(1, "S").encode() == b"S" + (1).to_bytes(8, "big") + b"S"


@pytest.mark.parametrize("size", [0, 1, 60, 4000])
def test_unsequenced_packet_matches_the_packet_class(size):
    message = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert soupbintcp.unsequenced_packet(message) == \
        soupbintcp.UnsequencedData(message=message).packet()
    with pytest.raises(EncodeError):
        soupbintcp.unsequenced_packet(bytes(0xFFFF))
