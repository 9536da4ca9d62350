"""Order gateway against the exchange simulator on 127.0.0.1."""
import asyncio
import struct

import pytest

from host.exchange import ExchangeConfig, ExchangeServer
from host.gateway import LoginRejectedError, OrderGateway, OrderState
from host.journal import Journal

TIMEOUT = 15
USERS = {"ZMM01": "s3cret", "ZMM02": "pw2"}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def gateway(tmp_path, server, user="ZMM01", name=None, **kw):
    return OrderGateway(tmp_path / f"{name or user}.journal", "127.0.0.1", server.port, user,
                        USERS[user], **kw)


def rx_sequences(path):
    with Journal(path) as j:
        return [struct.unpack_from(">Q", r.payload)[0] for r in j if r.kind == "rx"]


def rx_payloads(path):
    with Journal(path) as j:
        return [r.payload[8:] for r in j if r.kind == "rx"]


def state(gw, ref):
    return gw.orders.order(ref).state


def test_login_rejected(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            gw = OrderGateway(tmp_path / "j", "127.0.0.1", server.port, "ZMM01", "nope")
            with pytest.raises(LoginRejectedError) as err:
                await gw.start()
            assert err.value.code == "A"
            await gw.close()
    run(main())


def test_enter_execute_cancel_replace_mass_cancel(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            mm, other = gateway(tmp_path, server), gateway(tmp_path, server, "ZMM02")
            await mm.start()
            await other.start()
            bid = mm.submit(mm.orders.enter("B", 500, "ZAAB", 100_0000)).user_ref_num
            ask = mm.submit(mm.orders.enter("S", 300, "ZAAB", 101_0000)).user_ref_num
            assert state(mm, bid) is OrderState.PENDING_NEW
            await mm.wait_until(lambda: state(mm, ask) is OrderState.LIVE, 5)
            assert mm.orders.order(bid).order_reference_number is not None
            # A crossing sell from the other firm partially fills the bid.
            hit = other.submit(other.orders.enter("S", 200, "ZAAB", 99_0000)).user_ref_num
            await mm.wait_until(lambda: state(mm, bid) is OrderState.PARTIALLY_FILLED, 5)
            await other.wait_until(lambda: state(other, hit) is OrderState.FILLED, 5)
            assert mm.orders.order(bid).fills[0][1:] == (200, 100_0000)
            # Partial cancel: keep 100 open.
            mm.submit(mm.orders.cancel(bid, remaining=100))
            assert state(mm, bid) is OrderState.PENDING_CANCEL
            await mm.wait_until(lambda: mm.orders.order(bid).open_quantity == 100, 5)
            assert state(mm, bid) is OrderState.PARTIALLY_FILLED
            # Replace the ask lower; the old UserRefNum maps to the same order.
            new = mm.submit(mm.orders.replace(ask, 250, 100_5000)).user_ref_num
            assert state(mm, ask) is OrderState.PENDING_REPLACE
            await mm.wait_until(lambda: state(mm, new) is OrderState.LIVE, 5)
            assert mm.orders.order(ask) is mm.orders.order(new)
            assert mm.orders.order(new).price == 100_5000
            # Full cancel of the replaced ask.
            mm.submit(mm.orders.cancel(new))
            await mm.wait_until(lambda: state(mm, new) is OrderState.CANCELED, 5)
            # A rejected order and a mass cancel of what is left.
            bad = mm.submit(mm.orders.enter("B", 0, "ZAAB", 100_0000)).user_ref_num
            more = mm.submit(mm.orders.enter("B", 10, "ZAAC", 50_0000)).user_ref_num
            mc = mm.submit(mm.orders.mass_cancel()).user_ref_num
            await mm.wait_until(lambda: mm.orders.mass_cancels[mc] == "done", 5)
            assert state(mm, bad) is OrderState.REJECTED
            assert state(mm, more) is OrderState.CANCELED
            assert state(mm, bid) is OrderState.CANCELED
            assert mm.orders.order(bid).filled == 200 and mm.orders.order(bid).canceled == 300
            mm.orders.check_invariants()
            assert mm.orders.anomalies == []
            await mm.close()
            await other.close()
            assert server.counts["logouts"] == 2
    run(main())


def test_server_heartbeat_timeout_detected_by_client(tmp_path):
    async def main():
        cfg = ExchangeConfig(users=USERS, heartbeat_interval=3600)
        async with ExchangeServer(cfg) as server:
            gw = gateway(tmp_path, server, server_timeout=0.3, reconnect=False)
            await gw.start()
            await asyncio.wait_for(gw.client.wait_closed(), 5)
            assert gw.client.counts["server_timeouts"] == 1
            await gw.close(logout=False)
    run(main())


def test_heartbeats_both_ways_keep_the_session_up(tmp_path):
    async def main():
        cfg = ExchangeConfig(users=USERS, heartbeat_interval=0.05, client_timeout=0.3)
        async with ExchangeServer(cfg) as server:
            gw = gateway(tmp_path, server, heartbeat_interval=0.05, server_timeout=0.3,
                         reconnect=False)
            await gw.start()
            await asyncio.sleep(1.0)   # several timeouts' worth of silence above OUCH
            assert gw.client.connected and server.connected("ZMM01")
            assert server.counts["client_timeouts"] == 0
            assert gw.client.counts["client_heartbeats"] >= 3
            assert gw.client.counts["server_heartbeats"] >= 3
            await gw.close()
    run(main())


def test_reconnect_resumes_without_loss_or_duplicates(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            mm = gateway(tmp_path, server, reconnect_delay=0.05)
            other = gateway(tmp_path, server, "ZMM02")
            await mm.start()
            await other.start()
            refs = [mm.submit(mm.orders.enter("B", 100, "ZAAB", 100_0000 - i)).user_ref_num
                    for i in range(5)]
            await mm.wait_until(lambda: all(state(mm, r) is OrderState.LIVE for r in refs), 5)
            for round_ in range(3):
                assert server.drop_connection("ZMM01")
                # Executions published while the gateway is away must arrive once.
                other.submit(other.orders.enter("S", 50, "ZAAB", 90_0000))
                await mm.wait_until(lambda: mm.orders.counts["received_OrderExecuted"]
                                    == round_ + 1, 5)
            await mm.wait_until(lambda: mm.client.connected, 5)
            assert mm.counts["reconnects"] >= 3
            assert state(mm, refs[0]) is OrderState.FILLED
            assert state(mm, refs[1]) is OrderState.PARTIALLY_FILLED
            mm.submit(mm.orders.mass_cancel())
            await mm.wait_until(lambda: state(mm, refs[1]) is OrderState.CANCELED, 5)
            await mm.close()
            await other.close()
            stored = server.sequenced("ZMM01")
            assert rx_sequences(tmp_path / "ZMM01.journal") == list(range(1, len(stored) + 1))
            assert rx_payloads(tmp_path / "ZMM01.journal") == stored
    run(main())


def test_restart_rebuilds_state_and_resumes_from_journal(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            mm = gateway(tmp_path, server)
            other = gateway(tmp_path, server, "ZMM02")
            await mm.start()
            await other.start()
            a = mm.submit(mm.orders.enter("B", 100, "ZAAB", 100_0000)).user_ref_num
            b = mm.submit(mm.orders.enter("S", 100, "ZAAB", 102_0000)).user_ref_num
            other.submit(other.orders.enter("S", 40, "ZAAB", 100_0000))
            await mm.wait_until(lambda: state(mm, a) is OrderState.PARTIALLY_FILLED, 5)
            mm.submit(mm.orders.replace(b, 80, 101_0000))
            await mm.wait_until(lambda: state(mm, b) is OrderState.LIVE, 5)
            before = mm.orders.snapshot()
            next_seq = mm.next_sequence
            await mm.close(logout=False)   # a crash: no goodbye
            # While the appliance is down, the exchange keeps trading its orders.
            other.submit(other.orders.enter("S", 60, "ZAAB", 100_0000))
            await other.wait_until(lambda: other.orders.counts["received_OrderExecuted"] == 2, 5)

            again = gateway(tmp_path, server)
            assert again.orders.snapshot() == before
            assert again.next_sequence == next_seq
            assert again.client.session == server.config.session
            await again.start()
            await again.wait_until(lambda: state(again, a) is OrderState.FILLED, 5)
            # UserRefNums keep increasing across the restart.
            c = again.submit(again.orders.enter("B", 1, "ZAAB", 1_0000)).user_ref_num
            assert c > max(before["orders"][-1]["user_ref_nums"])
            await again.wait_until(lambda: state(again, c) is OrderState.LIVE, 5)
            assert again.orders.anomalies == []
            await again.close()
            await other.close()
            stored = server.sequenced("ZMM01")
            assert rx_payloads(tmp_path / "ZMM01.journal") == stored
    run(main())


def test_end_of_session_stops_reconnecting(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            gw = gateway(tmp_path, server)
            await gw.start()
            server.end_session()
            await asyncio.wait_for(gw.client.wait_closed(), 5)
            await asyncio.sleep(0.1)
            assert gw.client.end_of_session and not gw.client.connected
            assert gw.counts["reconnects"] == 0
            await gw.close()
    run(main())
