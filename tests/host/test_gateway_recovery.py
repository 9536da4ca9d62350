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
from host.journal import Journal, JournalError
from host.journal.journal import scan
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


def state_of(gw, msg):
    return gw.orders.order(msg.user_ref_num).state


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
                # Accounted for at once; journaled and on the wire at the end.
                assert state_of(gw, a) is state_of(gw, b) is OrderState.PENDING_NEW
                assert gw.journal.held == 2 and writes == []
            packets = soupbintcp.SoupFramer(soupbintcp.CLIENT).feed(b"".join(writes))
            assert len(writes) == 1 and gw.journal.held == 0
            assert [ouch50.decode_inbound(p.message) for p in packets] == [a, b]
            assert [ouch50.decode_inbound(r.payload) for r in gw.journal.records[-2:]] == [a, b]
            await gw.wait_until(lambda: gw.orders.order(b.user_ref_num).state
                                is OrderState.LIVE, 5)
            # Staged requests of a session that drops are counted, not sent,
            # and journaled all the same (the order manager has them).
            with gw.batch:
                c = gw.submit(gw.orders.enter("B", 3, "ZAAB", 1_0000))
                gw.client._teardown()
            assert gw.client.counts["staged_dropped"] == 1
            assert ouch50.decode_inbound(gw.journal.records[-1].payload) == c
            with pytest.raises(NotConnectedError):
                gw.submit(gw.orders.enter("B", 4, "ZAAB", 1_0000))
            await gw.close(logout=False)
    run(main())


class JournalFirstTransport:
    """Socket stand-in: at every write, reads the journal's file as a
    restart after ``kill -9`` would and notes each request in the bytes
    that has no ``tx`` record there yet."""

    def __init__(self, real, path):
        self.real, self.path = real, path
        self.requests: list[bytes] = []
        self.unjournaled: list[bytes] = []
        self.writes = 0

    def write(self, data):
        self.writes += 1
        records, _ = scan(self.path.read_bytes(), self.path)
        journaled = [r.payload for r in records if r.kind == "tx"]
        for packet in soupbintcp.SoupFramer(soupbintcp.CLIENT).feed(bytes(data)):
            if isinstance(packet, soupbintcp.UnsequencedData):
                self.requests.append(packet.message)
                if packet.message not in journaled:
                    self.unjournaled.append(packet.message)
        self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_every_request_is_in_the_journal_file_before_its_bytes_reach_the_socket(tmp_path):
    """Single requests, a batch, and requests that answers cause (sent from
    the read loop's batch): the journal's file holds each request's record
    when the socket gets its bytes, and the journal's records are in the
    order of the calls, as one append per request would have left them."""
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            path = tmp_path / "mm.journal"
            gw = OrderGateway(path, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                              durability="group")
            follow_ups = []

            def requote(msg, orders):
                # Each accepted bid is replaced one tick lower at once.
                if type(msg) is ouch50.OrderAccepted and msg.side == "B" \
                        and msg.user_ref_num not in follow_ups:
                    follow_ups.append(msg.user_ref_num)
                    gw.submit(orders.replace(msg.user_ref_num, msg.quantity, msg.price - 100))
            gw.on_received.append(requote)
            await gw.start()
            transport = gw.client._transport = JournalFirstTransport(gw.client._transport, path)
            single = gw.submit(gw.orders.enter("S", 1, "ZAAB", 9_0000))
            with gw.batch:
                batch = [gw.submit(gw.orders.enter("B", n, "ZAAB", 1_0000 + n * 100))
                         for n in (1, 2, 3)]
            assert transport.writes == 2
            await gw.wait_until(lambda: len(follow_ups) == 3 and all(
                state_of(gw, m) is OrderState.LIVE for m in batch), 5)
            await gw.wait_until(lambda: not any(
                o.state is OrderState.PENDING_REPLACE for o in gw.orders.unique_orders()), 5)
            assert transport.unjournaled == []
            sent = [ouch50.decode_inbound(raw) for raw in transport.requests]
            assert sent[:4] == [single, *batch]
            assert [type(m) for m in sent[4:]] == [ouch50.ReplaceOrderRequest] * 3
            # The journal's order is the order of the calls: each replace
            # right after the rx record of the Order Accepted that caused it.
            kinds = [(r.kind, r.payload) for r in gw.journal if r.kind in ("tx", "rx")]
            for message in sent[4:]:
                at = kinds.index(("tx", message.encode()))
                kind, payload = kinds[at - 1]
                answer = ouch50.decode_outbound(payload, 8)
                assert kind == "rx" and type(answer) is ouch50.OrderAccepted
                assert answer.user_ref_num == message.orig_user_ref_num
            await gw.close()
            # A restart rebuilds the same orders from the file.
            manager, _, _, _ = rebuild(Journal(path))
            assert _view(manager) == _view(gw.orders)
    run(main())


def test_a_journal_that_cannot_write_keeps_the_batch_off_the_wire(tmp_path, monkeypatch):
    import os

    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            path = tmp_path / "mm.journal"
            gw = OrderGateway(path, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                              durability="os")
            await gw.start()
            transport = gw.client._transport = JournalFirstTransport(gw.client._transport, path)

            def disk_full(fd, data):
                raise OSError(28, "No space left on device")
            with pytest.raises(JournalError):
                with gw.batch:
                    gw.submit(gw.orders.enter("B", 1, "ZAAB", 1_0000))
                    monkeypatch.setattr(os, "write", disk_full)
            monkeypatch.undo()
            assert transport.writes == 0 and gw.client.counts["staged_dropped"] == 1
            assert gw.journal.held == 0
            with gw.batch:
                kept = gw.submit(gw.orders.enter("B", 2, "ZAAB", 1_0000))
            assert transport.writes == 1 and transport.unjournaled == []
            await gw.close()
            with Journal(path) as journal:
                assert [ouch50.decode_inbound(r.payload) for r in journal
                        if r.kind == "tx"][-1:] == [kept]
                assert sum(r.kind == "tx" for r in journal) == 2   # Account Query + kept
    run(main())


def test_after_received_runs_once_per_read_after_its_messages(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            path = tmp_path / "mm.journal"
            events = []
            gw = OrderGateway(path, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                              durability="os",
                              on_received=[lambda msg, orders: events.append("message")],
                              after_received=[lambda: events.append("after")])
            assert events == ["after"]                 # an empty replay
            await gw.start()
            with gw.batch:
                refs = [gw.submit(gw.orders.enter("B", n, "ZAAB", 1_0000)).user_ref_num
                        for n in (1, 2, 3, 4)]
            await gw.wait_until(lambda: all(gw.orders.order(r).state is OrderState.LIVE
                                            for r in refs), 5)
            live = events[1:]
            # Every read's messages, then the hook once; never a hook with
            # nothing before it.
            assert live[-1] == "after" and live.count("message") == 5   # + Account Query
            assert "after" not in (live[0], *[b for a, b in zip(live, live[1:]) if a == "after"])
            await gw.close()
            events.clear()
            replayed = OrderGateway(path, "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                                    on_received=[lambda msg, orders: events.append("message")],
                                    after_received=[lambda: events.append("after")])
            assert events == ["message"] * 5 + ["after"]
            replayed.journal.close()
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
