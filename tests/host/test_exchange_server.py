"""The exchange simulator as a real TCP server on 127.0.0.1: every OUCH 5.0
request type over raw SoupBinTCP, throttles, cancel-on-disconnect across a
reconnect, orders crossing the external market, the journal of everything,
and the ``exchange-sim`` command with a clean SIGTERM shutdown."""
import asyncio
import json
import os
import signal
import subprocess
import sys

from host.exchange import ExchangeConfig, ExchangeServer, OuchExchange, UserConfig
from host.exchange.records import EX_EVENT, EX_IN, EX_OUT, decode_event, decode_in, decode_out
from host.journal import Journal
from host.journal.export import export_rows
from host.protocols import ouch50, soupbintcp
from host.protocols.ouch50 import Appendage
from tests.host.test_exchange import RawClient, enter, run

USERS = {"ZMM01": UserConfig(password="s3cret", firm="ZMMF"), "ZMM02": "pw2"}


async def response(client):
    packet = await client.next_data()
    assert isinstance(packet, soupbintcp.SequencedData), packet
    return ouch50.decode_outbound(packet.message)


async def responses(client, n):
    return [await response(client) for _ in range(n)]


def journal_records(path):
    with Journal(path) as j:
        return list(j)


def test_every_request_type_over_the_wire_and_the_journal(tmp_path):
    path = tmp_path / "exchange.journal"

    async def main():
        config = ExchangeConfig(users=USERS, session="0000000042")
        async with ExchangeServer(config, journal=path) as server:
            c = await RawClient.open(server.port)
            assert (await c.login()).sequence_number == 1
            requests = [
                enter(1, "B", 500, price=100_0000),
                enter(2, "S", 300, price=101_0000),
                ouch50.ReplaceOrderRequest(orig_user_ref_num=1, user_ref_num=3, quantity=400,
                                           price=99_5000, time_in_force="0", display="Y",
                                           intermarket_sweep_eligibility="N", cl_ord_id="R3",
                                           appendage=Appendage()),
                ouch50.ModifyOrderRequest(user_ref_num=2, side="T", quantity=250,
                                          appendage=Appendage()),
                ouch50.CancelOrderRequest(user_ref_num=3, quantity=100, appendage=None),
                ouch50.AccountQueryRequest(appendage=None),
                ouch50.DisableOrderEntryRequest(user_ref_num=4, firm="", appendage=Appendage()),
                enter(5),
                ouch50.EnableOrderEntryRequest(user_ref_num=6, firm="", appendage=Appendage()),
                ouch50.MassCancelRequest(user_ref_num=7, firm="", symbol="",
                                         appendage=Appendage()),
            ]
            # All in one TCP write: the server must frame and answer each.
            c.writer.write(b"".join(soupbintcp.UnsequencedData(message=r.encode()).packet()
                                    for r in requests))
            got = await responses(c, 12)
            assert [type(m).__name__ for m in got] == [
                "OrderAccepted", "OrderAccepted", "OrderReplaced", "OrderModified",
                "OrderCanceled", "AccountQueryResponse", "DisableOrderEntryResponse",
                "OrderRejected", "EnableOrderEntryResponse", "OrderCanceled", "OrderCanceled",
                "MassCancelResponse"]
            assert (got[2].orig_user_ref_num, got[2].user_ref_num, got[2].quantity) == (1, 3, 400)
            assert (got[3].side, got[3].quantity) == ("T", 250)
            assert got[4].quantity == 300 and got[4].reason == "U"
            assert got[5].next_user_ref_num == 4
            assert got[7].reason == 0x0C
            assert sorted((m.user_ref_num, m.quantity) for m in got[9:11]) == [(2, 250), (3, 100)]
            # Undecodable OUCH is counted and journaled, never answered.
            c.send(soupbintcp.UnsequencedData(message=b"Z\x01\x02"))
            c.ouch(ouch50.AccountQueryRequest(appendage=None))
            assert (await response(c)).next_user_ref_num == 8
            assert server.counts["bad_ouch_unknown_type"] == 1
            c.send(soupbintcp.LogoutRequest())
            assert await c.next_data() is None
            stored = server.sequenced("ZMM01")
        return requests, stored

    requests, stored = run(main())
    records = journal_records(path)
    inbound = [decode_in(r.payload) for r in records if r.kind == EX_IN]
    assert inbound[:len(requests)] == [("ZMM01", r.encode()) for r in requests]
    assert inbound[len(requests)] == ("ZMM01", b"Z\x01\x02")
    outbound = [decode_out(r.payload) for r in records if r.kind == EX_OUT]
    assert outbound == [("ZMM01", i + 1, raw) for i, raw in enumerate(stored)]
    events = [decode_event(r.payload)["event"] for r in records if r.kind == EX_EVENT]
    assert events == ["start", "login", "disconnect"]
    # Each request is journaled before the responses it caused.
    kinds = [r.kind for r in records]
    assert kinds[kinds.index(EX_IN) + 1] == EX_OUT


def test_throttle_over_the_wire():
    async def main():
        engine = OuchExchange(monotonic=lambda: 5.0)   # every order in the same instant
        config = ExchangeConfig(users={"ZMM01": UserConfig(password="s3cret", throttle=2),
                                       "ZMM02": "pw2"}, throttle=100)
        async with ExchangeServer(config, engine) as server:
            c = await RawClient.open(server.port)
            await c.login()
            for ref in (1, 2, 3):
                c.ouch(enter(ref))
            got = await responses(c, 3)
            assert [type(m).__name__ for m in got] == ["OrderAccepted"] * 2 + ["OrderRejected"]
            assert got[2].reason == 0x29 and got[2].user_ref_num == 3
            c.ouch(ouch50.CancelOrderRequest(user_ref_num=1, quantity=0, appendage=None))
            assert isinstance(await response(c), ouch50.OrderCanceled)
            # ZMM02 has the exchange-wide limit.
            d = await RawClient.open(server.port)
            await d.login(user="ZMM02", password="pw2")
            for ref in range(1, 6):
                d.ouch(enter(ref))
            assert all(isinstance(m, ouch50.OrderAccepted) for m in await responses(d, 5))
    run(main())


async def wait_for(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


def test_cancel_on_disconnect_queues_cancels_for_the_next_login():
    async def main():
        users = {"ZMM01": UserConfig(password="s3cret", cancel_on_disconnect=True),
                 "ZMM02": "pw2"}
        async with ExchangeServer(ExchangeConfig(users=users)) as server:
            mm = await RawClient.open(server.port)
            await mm.login()
            mm.ouch(enter(1, "B", 100, price=99_0000))
            mm.ouch(enter(2, "S", 200, price=101_0000))
            await responses(mm, 2)
            street = await RawClient.open(server.port)
            await street.login(user="ZMM02", password="pw2")
            street.ouch(enter(1, "B", 10, price=98_0000))
            await response(street)
            # A new login while connected replaces the connection: not a disconnect.
            again = await RawClient.open(server.port)
            assert (await again.login(seq=3)).sequence_number == 3
            assert sorted(server.engine.ports["ZMM01"].live) == [1, 2]
            # The connection is lost: the orders go while nobody listens.
            again.writer.transport.abort()
            await wait_for(lambda: server.counts["cancel_on_disconnect"] == 2)
            assert server.engine.ports["ZMM01"].live == {}
            street.close()
            await wait_for(lambda: not server.connected("ZMM02"))
            assert list(server.engine.ports["ZMM02"].live) == [1]   # no cancel-on-disconnect
            # Back again, asking for what followed the last message seen.
            back = await RawClient.open(server.port)
            assert (await back.login(seq=3)).sequence_number == 3
            canceled = await responses(back, 2)
            assert sorted((m.user_ref_num, m.quantity, m.reason) for m in canceled) == [
                (1, 100, "Z"), (2, 200, "Z")]
            back.ouch(enter(3))
            assert isinstance(await response(back), ouch50.OrderAccepted)
    run(main())


def test_orders_crossing_the_market_over_the_wire():
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            c = await RawClient.open(server.port)
            await c.login()
            server.set_market("ZAAB", 99_9000, 500, 100_1000, 300)
            c.ouch(enter(1, "B", 400, price=100_2000))
            accepted, fill = await responses(c, 2)
            assert isinstance(accepted, ouch50.OrderAccepted)
            assert (fill.quantity, fill.price, fill.liquidity_flag) == (300, 100_1000, "R")
            # The market drops through the rest of the bid: filled at the bid.
            server.set_market("ZAAB", 99_0000, 500, 99_5000, 1000)
            fill = await response(c)
            assert (fill.user_ref_num, fill.quantity, fill.price, fill.liquidity_flag) == (
                1, 100, 100_2000, "A")
            server.halt("ZAAB")
            c.ouch(enter(2, "S", 10, price=200_0000))
            assert (await response(c)).reason == 0x07
            server.resume("ZAAB")
            server.break_trade(fill.match_number, "X")
            broken = await response(c)
            assert isinstance(broken, ouch50.BrokenTrade) and broken.match_number == fill.match_number
    run(main())


# -- the command ----------------------------------------------------------------------

def start_sim(tmp_path, *args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "host.exchange.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=os.getcwd())
    return proc


def test_exchange_sim_command_serves_and_shuts_down_cleanly(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"MM": {"password": "pw", "cancel_on_disconnect": True},
                                 "ST": "pw2"}))
    journal = tmp_path / "sim.journal"
    proc = start_sim(tmp_path, "--listen", "127.0.0.1:0", "--users", str(users),
                     "--journal", str(journal), "--throttle", "50",
                     "--market", "captures/day-small.itch")
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on 127.0.0.1:"), (first, proc.stderr.read())
        port = int(first.split()[2].rsplit(":", 1)[1])

        async def main():
            c = await RawClient.open(port)
            assert (await c.login(user="MM", password="pw")).sequence_number == 1
            start = await response(c)
            assert isinstance(start, ouch50.SystemEvent) and start.event_code == "S"
            c.ouch(enter(1, "B", 100, symbol="ZAAB", price=1_0000))
            assert isinstance(await response(c), (ouch50.OrderAccepted, ouch50.OrderRejected))
            proc.send_signal(signal.SIGTERM)
            end = await response(c)
            assert isinstance(end, ouch50.SystemEvent) and end.event_code == "E"
            assert isinstance(await c.next_data(), soupbintcp.EndOfSession)
            assert await c.next_data() is None

        run(main())
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["users"]["MM"] == 3 and summary["users"]["ST"] == 2
    rows, report = export_rows(journal)
    assert not report.torn
    messages = [(r["user"], r["direction"], r["message"]) for r in rows if r["kind"] in (EX_IN, EX_OUT)]
    assert ("MM", "in", "Enter Order") in messages
    assert messages.count(("ST", "out", "System Event")) == 2
    assert [r["event"] for r in rows if r["kind"] == EX_EVENT][-1] == "end_of_session"


def test_exchange_sim_command_refuses_bad_input(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"MM": {"password": "far too long a password"}}))
    for args, needle in (
            (["--listen", "nowhere"], "HOST:PORT"),
            (["--listen", "127.0.0.1:0", "--users", str(users)], "password"),
            (["--listen", "127.0.0.1:0", "--users", str(tmp_path / "missing.json")], "missing"),
            (["--listen", "127.0.0.1:0", "--throttle", "0"], "throttle")):
        proc = subprocess.run([sys.executable, "-m", "host.exchange.cli", *args],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)


def test_paced_market_replay_feeds_the_book_while_serving(tmp_path):
    from host.exchange.cli import _replay
    from host.exchange.market import ItchMarket

    path = tmp_path / "replay.journal"

    async def main():
        market = ItchMarket()
        engine = OuchExchange(market=market)
        async with ExchangeServer(ExchangeConfig(users=USERS), engine, journal=path) as server:
            # A million times real time: the 16-hour capture in well under a second.
            await _replay(server, market, "captures/day-small.itch", 1e6)
        return market

    market = run(main())
    assert market.book.counters["messages"] == 3000 and market.decode_errors == 0
    events = [decode_event(r.payload)["event"] for r in journal_records(path) if r.kind == EX_EVENT]
    assert "market_replay_done" in events
