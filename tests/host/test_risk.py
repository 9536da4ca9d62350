"""Pre-trade risk (host/risk): every check refuses its violating request
before it reaches the socket, breach actions, limits and events.

The loopback tests run the order gateway against the exchange simulator
through a TCP tap that records every byte the gateway writes; after each
refusal a harmless marker order is sent and acknowledged, so everything sent
before it has crossed the tap, and the requests decoded from the recorded
bytes must be exactly the ones the gateway accepted.
"""
import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from host.exchange import ExchangeConfig, ExchangeServer
from host.gateway import OrderGateway, OrderManager, OrderState, PreTradeRejected
from host.gateway.gateway import RISK
from host.positions import Fill, Instrument, Instruments, Marks, PositionBook
from host.pricing.params import OptionSpec
from host.protocols import ouch50, soupbintcp
from host.protocols.soupbintcp import SoupFramer
from host.risk import (
    REASONS, Action, Check, RiskEngine, RiskEvent, RiskEventError, RiskGuard, RiskLimits,
    SlidingWindow, working_exposure,
)
from host.risk.exposure import Exposure, WorkingOrders

USERS = {"ZMM01": "s3cret", "ZMM02": "pw2"}
TIMEOUT = 30


def _option(strike, put=False, underlying=1):
    return OptionSpec(underlying, put, strike, 0.3, 0.25, 0.04, 0.01)


INSTRUMENTS = Instruments([
    Instrument("ACMEC100", "ACME", _option(100.0)),
    Instrument("ACMEP100", "ACME", _option(100.0, put=True)),
    Instrument("ACMEC110", "ACME", _option(110.0)),
    Instrument.stock("ACME"),
    Instrument("BETAC100", "BETA", _option(100.0, underlying=2)),
    Instrument("ZETAC050", "ZETA", _option(50.0, underlying=3)),
    Instrument("MARKC010", "MARK", _option(10.0, underlying=4)),    # harmless marker orders
])


def px(dollars: float) -> int:
    return round(dollars * 10_000)


class FakeClock:
    def __init__(self):
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def market(marks: Marks) -> Marks:
    marks.set_bbo("ACME", px(100.00), px(100.02))
    marks.set_bbo("BETA", px(100.00), px(100.02))
    marks.set_bbo("MARK", px(10.00), px(10.02))
    marks.reprice("ACME")
    marks.reprice("MARK")
    return marks


def limits_with(**overrides) -> RiskLimits:
    return RiskLimits.model_validate(overrides)


# -- loopback harness --------------------------------------------------------------

class Tap:
    """A TCP relay that keeps every byte the client sends."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.client_bytes = bytearray()
        self._writers = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]

        async def pipe(src, dst, keep):
            try:
                while data := await src.read(65536):
                    if keep:
                        self.client_bytes += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def requests(self) -> list:
        """The OUCH requests in the recorded client byte stream."""
        packets = SoupFramer(soupbintcp.CLIENT).feed(bytes(self.client_bytes))
        return [ouch50.decode_inbound(p.message) for p in packets
                if isinstance(p, soupbintcp.UnsequencedData)]

    async def close(self):
        self._server.close()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()


class Env:
    def __init__(self, gateway, guard, tap, server, clock, tmp_path):
        self.gw, self.guard, self.tap, self.server, self.clock = gateway, guard, tap, server, clock
        self.tmp_path = tmp_path
        self.sent: list = []
        self._marker_price = 1

    @property
    def marks(self) -> Marks:
        return self.guard.marks

    def fair(self, symbol: str) -> float:
        return self.marks.theo(symbol).price

    def enter(self, side, qty, symbol, dollars, **kw):
        return self.gw.orders.enter(side, qty, symbol, px(dollars), **kw)

    def send(self, msg):
        out = self.gw.submit(msg)
        self.sent.append(out)
        return out

    def state(self, ref):
        return self.gw.orders.order(ref).state

    async def settle(self):
        """Send a passive marker order and wait for the exchange to take it
        (marks restored and priced everywhere, rate windows emptied first)."""
        market(self.marks)
        self.marks.reprice("BETA")
        self.clock.advance(2.0)
        self._marker_price += 1
        marker = self.send(self.gw.orders.enter("B", 1, "MARKC010", self._marker_price * 100))
        await self.gw.wait_until(lambda: self.state(marker.user_ref_num) is OrderState.LIVE, 5)

    def risk_records(self) -> list[RiskEvent]:
        return [RiskEvent.from_bytes(r.payload) for r in self.gw.journal if r.kind == RISK]


@contextlib.asynccontextmanager
async def session(tmp_path, limits: RiskLimits, *, journal="mm.journal", server=None):
    own_server = server is None
    if own_server:
        server = ExchangeServer(ExchangeConfig(users=USERS))
        await server.start()
    tap = Tap(server.port)
    port = await tap.start()
    clock = FakeClock()
    gateway = OrderGateway(tmp_path / journal, "127.0.0.1", port, "ZMM01", USERS["ZMM01"])
    guard = RiskGuard(gateway, limits, INSTRUMENTS, clock=clock)
    market(guard.marks)
    await gateway.start()
    env = Env(gateway, guard, tap, server, clock, tmp_path)
    try:
        yield env
    finally:
        await gateway.close()
        await tap.close()
        if own_server:
            await server.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


# -- one violating request per refusal reason ------------------------------------

def _order_size(env):
    return env.enter("B", 101, "ACMEC100", env.fair("ACMEC100") - 0.10)


def _order_notional(env):
    return env.enter("B", 10, "ACMEC100", env.fair("ACMEC100") - 0.10)


def _invalid(env):
    return env.enter("B", 0, "ACMEC100", env.fair("ACMEC100"))


def _unknown_symbol(env):
    return env.enter("B", 1, "NOPE", 1.00)


def _restricted(env):
    return env.enter("S", 1, "ACMEP100", env.fair("ACMEP100") + 0.10)


def _no_bbo(env):
    return env.enter("B", 1, "ZETAC050", 1.00)


def _no_theo(env):
    return env.enter("B", 1, "BETAC100", 1.00)


def _stale(env):
    env.marks.set_bbo("ACME", px(102.00), px(102.02))   # moved 2%, not repriced
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100"))


def _theo_band(env):
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") + 1.00)


def _option_bound(env):
    # A call is never worth more than the share: 100.50 is a fat finger whatever theo says.
    return env.enter("B", 1, "ACMEC100", 100.50)


def _stock_band(env):
    return env.enter("B", 10, "ACME", 102.00)


def _duplicate(env):
    env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.50))
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.50)


def _reused_ref(env):
    first = env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.50))
    again = env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.60)
    again.user_ref_num = first.user_ref_num
    return again


def _reused_cl_ord_id(env):
    env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.50, cl_ord_id="Q1"))
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.60, cl_ord_id="Q1")


def _self_trade(env):
    env.send(env.enter("S", 5, "ACMEC100", env.fair("ACMEC100") + 0.05))
    return env.enter("B", 5, "ACMEC100", env.fair("ACMEC100") + 0.10)


def _position_option(env):
    env.send(env.enter("B", 30, "ACMEC100", env.fair("ACMEC100") - 0.20))
    return env.enter("B", 30, "ACMEC100", env.fair("ACMEC100") - 0.30)


def _position_underlying(env):
    env.send(env.enter("B", 30, "ACMEC100", env.fair("ACMEC100") - 0.20))
    return env.enter("S", 30, "ACMEP100", env.fair("ACMEP100") + 0.20)


def _position_stock(env):
    return env.enter("B", 60, "ACME", 100.00)


def _buy_30_calls(env):
    return env.enter("B", 30, "ACMEC100", env.fair("ACMEC100") - 0.10)


def _no_mark(env):
    env.guard.positions.apply_fill(Fill(900, 1, "BETAC100", "B", 5, px(3.0)))
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.10)


def _capital_premium(env):
    return env.enter("B", 20, "ACMEC100", env.fair("ACMEC100") - 0.10)


def _capital_margin(env):
    return env.enter("S", 6, "ACMEP100", env.fair("ACMEP100") + 0.10)


async def _replace_through_band(env):
    bid = env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.20))
    await env.gw.wait_until(lambda: env.state(bid.user_ref_num) is OrderState.LIVE, 5)
    return env.gw.orders.replace(bid.user_ref_num, 1, px(env.fair("ACMEC100") + 1.00))


def _unknown_order(env):
    return ouch50.ReplaceOrderRequest(
        orig_user_ref_num=9999, user_ref_num=env.gw.orders.allocate(), quantity=1,
        price=px(1.0), time_in_force="0", display="Y", intermarket_sweep_eligibility="N",
        cl_ord_id="", appendage=ouch50.Appendage())


async def _not_working(env):
    order = env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.50))
    await env.gw.wait_until(lambda: env.state(order.user_ref_num) is OrderState.LIVE, 5)
    env.send(env.gw.orders.cancel(order.user_ref_num))
    await env.gw.wait_until(lambda: env.state(order.user_ref_num) is OrderState.CANCELED, 5)
    return ouch50.ReplaceOrderRequest(
        orig_user_ref_num=order.user_ref_num, user_ref_num=env.gw.orders.allocate(),
        quantity=1, price=order.price, time_in_force="0", display="Y",
        intermarket_sweep_eligibility="N", cl_ord_id="", appendage=ouch50.Appendage())


def _three_orders(env):
    return [env.send(env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.5 - i / 100))
            for i in range(3)]


def _throttle_orders(env):
    _three_orders(env)
    return env.enter("B", 1, "ACMEC100", env.fair("ACMEC100") - 0.60)


async def _throttle_cancels(env):
    orders = _three_orders(env)
    await env.gw.wait_until(lambda: env.state(orders[2].user_ref_num) is OrderState.LIVE, 5)
    env.send(env.gw.orders.cancel(orders[0].user_ref_num))
    env.send(env.gw.orders.cancel(orders[1].user_ref_num))
    return env.gw.orders.cancel(orders[2].user_ref_num)


def _throttle_messages(env):
    _three_orders(env)
    return env.gw.orders.mass_cancel()


CASES = [
    ("order_size", {}, _order_size),
    ("order_notional", {"max_order_notional": 5_000}, _order_notional),
    ("invalid_order", {}, _invalid),
    ("unknown_symbol", {}, _unknown_symbol),
    ("restricted_symbol", {"restricted_symbols": ["ACMEP100"]}, _restricted),
    ("no_underlying_bbo", {}, _no_bbo),
    ("no_theo", {}, _no_theo),
    ("stale_theo", {}, _stale),
    ("price_band_theo", {}, _theo_band),
    ("price_band_theo", {}, _replace_through_band),
    ("price_band_underlying", {}, _option_bound),
    ("price_band_underlying", {}, _stock_band),
    ("duplicate_order", {}, _duplicate),
    ("duplicate_user_ref_num", {}, _reused_ref),
    ("duplicate_cl_ord_id", {}, _reused_cl_ord_id),
    ("self_trade", {}, _self_trade),
    ("position_option", {"max_option_position": 50}, _position_option),
    ("position_underlying", {"max_underlying_contracts": 50}, _position_underlying),
    ("position_stock", {"max_stock_position": 50}, _position_stock),
    ("delta_underlying", {"max_delta": 1_000}, _buy_30_calls),
    ("gamma_underlying", {"max_gamma": 30}, _buy_30_calls),
    ("vega_underlying", {"max_vega": 10_000}, _buy_30_calls),
    ("delta_total", {"max_total_delta_dollars": 100_000}, _buy_30_calls),
    ("gamma_total", {"max_total_gamma_dollars": 5_000}, _buy_30_calls),
    ("vega_total", {"max_total_vega": 10_000}, _buy_30_calls),
    ("no_mark", {}, _no_mark),
    ("capital", {"capital": 10_000}, _capital_premium),
    ("capital", {"capital": 10_000}, _capital_margin),
    ("unknown_order", {}, _unknown_order),
    ("order_not_working", {}, _not_working),
    ("throttle_orders", {"throttle": {"orders_per_second": 3}}, _throttle_orders),
    ("throttle_cancels", {"throttle": {"cancels_per_second": 2}}, _throttle_cancels),
    ("throttle_messages", {"throttle": {"messages_per_second": 3}}, _throttle_messages),
]


def test_every_refusal_reason_has_a_wire_case():
    # "killed" has its own test below.
    assert {reason for reason, _, _ in CASES} | {"killed"} == set(REASONS)


@pytest.mark.parametrize("reason,overrides,violate", CASES,
                         ids=[f"{c[0]}-{c[2].__name__.strip('_')}" for c in CASES])
def test_violating_request_never_reaches_the_socket(tmp_path, reason, overrides, violate):
    async def main():
        async with session(tmp_path, limits_with(**overrides)) as env:
            bad = violate(env)
            if asyncio.iscoroutine(bad):
                bad = await bad
            with pytest.raises(PreTradeRejected) as refused:
                env.gw.submit(bad)
            decision = refused.value.decision
            assert decision.reason == reason and decision.action is Action.REJECT
            assert decision.check is REASONS[reason]
            assert env.guard.engine.counts[f"rejected_{reason}"] == 1
            await env.settle()
            on_wire = env.tap.requests()
            assert on_wire == env.sent
            assert bad.encode() not in [m.encode() for m in on_wire]
            # Nothing of it was journaled as sent; its refusal was journaled.
            sent_raw = [r.payload for r in env.gw.journal if r.kind == "tx"]
            assert bad.encode() not in sent_raw
            records = env.risk_records()
            assert [(e.reason, e.accepted) for e in records] == [(reason, False)]
            assert records[0].message_type == bad.TYPE
    run(main())


# -- breach actions ---------------------------------------------------------------

def _cancels(requests):
    return [m.user_ref_num for m in requests if isinstance(m, ouch50.CancelOrderRequest)]


def test_pull_side_cancels_that_side_of_that_option_only(tmp_path):
    async def main():
        limits = limits_with(actions={"price_band": "pull_side"})
        async with session(tmp_path, limits) as env:
            fair = env.fair("ACMEC100")
            bid1 = env.send(env.enter("B", 5, "ACMEC100", fair - 0.20)).user_ref_num
            bid2 = env.send(env.enter("B", 5, "ACMEC100", fair - 0.30)).user_ref_num
            ask = env.send(env.enter("S", 5, "ACMEC100", fair + 0.30)).user_ref_num
            put = env.send(env.enter("B", 5, "ACMEP100", env.fair("ACMEP100") - 0.2)).user_ref_num
            await env.gw.wait_until(lambda: env.state(put) is OrderState.LIVE, 5)
            # bid2 has a replace in flight: both its UserRefNums get a cancel.
            bid2_new = env.send(env.gw.orders.replace(bid2, 5, px(fair - 0.25))).user_ref_num
            before = len(env.sent)
            with pytest.raises(PreTradeRejected) as refused:
                env.gw.submit(env.enter("B", 1, "ACMEC100", fair + 1.00))
            assert refused.value.decision.action is Action.PULL_SIDE
            await env.settle()
            await env.gw.wait_until(lambda: env.state(bid1) is OrderState.CANCELED
                                    and env.state(bid2) is OrderState.CANCELED, 5)
            wire = env.tap.requests()
            pulled = wire[before:-1]
            assert wire[:before] == env.sent[:before] and wire[-1] == env.sent[-1]
            assert sorted(_cancels(pulled)) == sorted([bid1, bid2, bid2_new])
            assert all(m.quantity == 0 for m in pulled)
            assert env.state(ask) is OrderState.LIVE and env.state(put) is OrderState.LIVE
            assert env.guard.counts["pull_cancels"] == 3
    run(main())


def test_pull_all_sends_one_mass_cancel(tmp_path):
    async def main():
        async with session(tmp_path, limits_with(actions={"order_size": "pull_all"})) as env:
            fair = env.fair("ACMEC100")
            refs = [env.send(env.enter(side, 5, "ACMEC100", fair + off)).user_ref_num
                    for side, off in (("B", -0.2), ("S", 0.2))]
            with pytest.raises(PreTradeRejected):
                env.gw.submit(env.enter("B", 500, "ACMEC100", fair))
            await env.gw.wait_until(
                lambda: all(env.state(r) is OrderState.CANCELED for r in refs), 5)
            pulled = env.tap.requests()[2:]
            assert len(pulled) == 1 and isinstance(pulled[0], ouch50.MassCancelRequest)
            assert pulled[0].symbol == "" and pulled[0].firm == ""
            assert not env.guard.killed
            env.send(env.enter("B", 1, "ACMEC100", fair - 0.1))   # business as usual
    run(main())


def test_kill_pulls_everything_blocks_new_orders_and_survives_a_restart(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            limits = limits_with(capital=10_000, actions={"capital": "kill"})
            async with session(tmp_path, limits, server=server) as env:
                fair = env.fair("ACMEC100")
                rest = env.send(env.enter("B", 5, "ACMEC100", fair - 0.2)).user_ref_num
                with pytest.raises(PreTradeRejected):
                    env.gw.submit(env.enter("B", 20, "ACMEC100", fair - 0.1))
                assert env.guard.killed
                await env.gw.wait_until(lambda: env.state(rest) is OrderState.CANCELED, 5)
                with pytest.raises(PreTradeRejected) as refused:
                    env.gw.submit(env.enter("B", 1, "ACMEC100", fair - 0.3))
                assert refused.value.decision.reason == "killed"
                # Cancels still go out while killed.
                done = env.send(env.gw.orders.mass_cancel()).user_ref_num
                await env.gw.wait_until(lambda: env.gw.orders.mass_cancels[done] == "done", 5)
                wire = env.tap.requests()
                assert len(wire) == 3 and isinstance(wire[1], ouch50.MassCancelRequest)
                assert [wire[0], wire[2]] == env.sent
            # A restart on the same journal comes back killed.
            async with session(tmp_path, limits, server=server) as env:
                assert env.guard.killed
                with pytest.raises(PreTradeRejected, match="killed"):
                    env.gw.submit(env.enter("B", 1, "ACMEC100", fair - 0.3))
                env.guard.reset_kill("cleared by the desk")
                ok = env.send(env.enter("B", 1, "ACMEC100", fair - 0.3)).user_ref_num
                await env.gw.wait_until(lambda: env.state(ok) is OrderState.LIVE, 5)
                assert env.tap.requests() == env.sent
                reasons = [(e.reason, e.action) for e in env.risk_records()]
                assert reasons == [("capital", "kill"), ("killed", "reject"),
                                   ("killed", "reject"), ("kill_reset", None)]
            # And once reset, a restart stays reset.
            async with session(tmp_path, limits, server=server) as env:
                assert not env.guard.killed
    run(main())


def test_a_kill_is_durable_before_the_refused_submit_returns(tmp_path):
    # "os" durability syncs only when asked: the guard must ask.
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            gateway = OrderGateway(tmp_path / "mm.journal", "127.0.0.1", server.port, "ZMM01",
                                   USERS["ZMM01"], durability="os")
            guard = RiskGuard(gateway, limits_with(capital=10_000, actions={"capital": "kill"}),
                              INSTRUMENTS, clock=FakeClock())
            market(guard.marks)
            await gateway.start()
            fair = guard.marks.theo("ACMEC100").price
            gateway.submit(gateway.orders.enter("B", 5, "ACMEC100", px(fair - 0.2)))
            assert gateway.journal.unsynced > 0
            with pytest.raises(PreTradeRejected):
                gateway.submit(gateway.orders.enter("B", 20, "ACMEC100", px(fair - 0.1)))
            kill = next(r for r in reversed(gateway.journal.records) if r.kind == RISK)
            assert RiskEvent.from_bytes(kill.payload).kill
            assert gateway.journal.durable_offset > kill.offset
            assert gateway.journal.unsynced == 0
            # Accepted requests cost no risk event when accepts are not journaled.
            assert [RiskEvent.from_bytes(r.payload).reason for r in gateway.journal.records
                    if r.kind == RISK] == ["capital"]
            await gateway.close()
    run(main())


def test_fills_from_the_exchange_feed_the_position_limit(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            async with session(tmp_path, limits_with(max_option_position=50),
                               server=server) as env:
                other = OrderGateway(tmp_path / "other.journal", "127.0.0.1", server.port,
                                     "ZMM02", USERS["ZMM02"])
                await other.start()
                fair = env.fair("ACMEC100")
                bid = env.send(env.enter("B", 40, "ACMEC100", fair - 0.1)).user_ref_num
                await env.gw.wait_until(lambda: env.state(bid) is OrderState.LIVE, 5)
                other.submit(other.orders.enter("S", 40, "ACMEC100", px(fair - 0.5)))
                await env.gw.wait_until(lambda: env.guard.positions.quantity("ACMEC100") == 40, 5)
                with pytest.raises(PreTradeRejected, match="position_option"):
                    env.gw.submit(env.enter("B", 20, "ACMEC100", fair - 0.2))
                # Selling takes risk off and goes out.
                env.send(env.enter("S", 20, "ACMEC100", fair + 0.2))
                await env.settle()
                assert env.tap.requests() == env.sent
                await other.close()
    run(main())


# -- engine semantics without a network -------------------------------------------

def engine_for(limits: RiskLimits, clock=None):
    manager = OrderManager()
    book = PositionBook(INSTRUMENTS)
    marks = market(Marks(INSTRUMENTS))
    engine = RiskEngine(limits, INSTRUMENTS, marks, book, manager, clock=clock or FakeClock())
    return engine, manager, marks, book


def submit(engine, manager, msg):
    decision = engine.check(msg)
    if decision.accepted:
        manager.sent(msg)
    return decision


def test_replace_is_judged_as_the_order_it_leaves_working():
    engine, manager, marks, book = engine_for(limits_with(max_option_position=50))
    fair = marks.theo("ACMEC100").price
    bid = manager.enter("B", 40, "ACMEC100", px(fair - 0.2))
    assert submit(engine, manager, bid)
    manager.received(ouch50.OrderAccepted(
        timestamp=1, user_ref_num=bid.user_ref_num, side="B", quantity=40, symbol="ACMEC100",
        price=bid.price, time_in_force="0", display="Y", order_reference_number=1,
        capacity="P", intermarket_sweep_eligibility="N", cross_type="N", order_state="L",
        cl_ord_id="", appendage=ouch50.Appendage()))
    # Growing it to 60 breaks the limit; the original's 40 is not counted twice.
    assert submit(engine, manager, manager.replace(bid.user_ref_num, 60, bid.price)).reason \
        == "position_option"
    assert submit(engine, manager, manager.replace(bid.user_ref_num, 50, bid.price))
    assert working_exposure(manager.order(bid.user_ref_num))[1] == 50
    # Over the limit by fills (limits are checked on what we send, not on the market):
    book.apply_fill(Fill(77, 1, "ACMEC100", "B", 45, bid.price))
    sell = manager.enter("S", 10, "ACMEC100", px(fair + 0.2))
    assert submit(engine, manager, sell)


@settings(max_examples=60, deadline=None)
@given(held=st.integers(-400, 400).filter(bool), fraction=st.floats(0.01, 1.0),
       symbol=st.sampled_from(["ACMEC100", "ACMEP100", "ACME"]))
def test_an_order_that_reduces_the_position_is_never_refused_for_risk(held, fraction, symbol):
    # Limits far below the position: everything that adds is refused, but
    # trading the position down must always be possible.
    tight = limits_with(max_order_quantity=1_000, max_order_notional=1e9, max_option_position=1,
                        max_underlying_contracts=1, max_stock_position=1, max_delta=1,
                        max_gamma=0.001, max_vega=1, max_total_delta_dollars=1,
                        max_total_gamma_dollars=1, max_total_vega=1, capital=1)
    engine, manager, marks, book = engine_for(tight)
    price = marks.theo(symbol).price
    book.apply_fill(Fill(1, 1, symbol, "B" if held > 0 else "S", abs(held), px(price)))
    quantity = max(1, int(abs(held) * fraction))
    reduce = manager.enter("S" if held > 0 else "B", quantity, symbol, px(price))
    assert submit(engine, manager, reduce).accepted
    # Passive, so it cannot cross the reducing order above.
    adding = manager.enter("B" if held > 0 else "S", 1, symbol,
                           px(price - 0.10 if held > 0 else price + 0.10))
    assert submit(engine, manager, adding).reason in {
        "position_option", "position_stock", "position_underlying", "delta_underlying"}


def test_every_decision_is_counted_and_emitted():
    engine, manager, marks, _ = engine_for(RiskLimits())
    events = []
    engine.listeners.append(events.append)
    fair = marks.theo("ACMEC100").price
    good = manager.enter("B", 1, "ACMEC100", px(fair - 0.1))
    assert submit(engine, manager, good)
    assert not submit(engine, manager, manager.enter("B", 1, "NOPE", 100))
    cancel = ouch50.CancelOrderRequest(user_ref_num=good.user_ref_num, quantity=0,
                                       appendage=ouch50.Appendage())
    assert submit(engine, manager, cancel)
    assert engine.counts["accepted"] == 2 and engine.counts["rejected_unknown_symbol"] == 1
    assert engine.counts["action_reject"] == 1
    assert [(e.sequence, e.accepted, e.reason, e.message_type) for e in events] == [
        (1, True, "accepted", "O"), (2, False, "unknown_symbol", "O"), (3, True, "accepted", "X")]
    assert events[2].symbol == "ACMEC100" and events[2].side == "B"
    assert all(RiskEvent.from_bytes(e.to_bytes()) == e for e in events)


def test_working_exposure_of_a_pending_replace_is_the_larger_side():
    engine, manager, marks, _ = engine_for(RiskLimits())
    bid = manager.enter("B", 10, "ACMEC100", 1_0000)
    manager.sent(bid)
    order = manager.order(bid.user_ref_num)
    assert working_exposure(order) == (1, 10, 10 * 1_0000, 1_0000, 1_0000)
    order.state = OrderState.LIVE
    manager.sent(manager.replace(bid.user_ref_num, 4, 1_2000))
    assert working_exposure(order) == (1, 10, 10 * 1_0000, 1_0000, 1_2000)
    manager.sent(manager.enter("B", 2, "ACMEC100", 1_0000))
    order.pending_replace = (order.pending_replace[0], 30, 1_2000)
    assert working_exposure(order) == (1, 30, 30 * 1_2000, 1_0000, 1_2000)
    order.state = OrderState.CANCELED
    assert working_exposure(order) is None


# -- throttle windows ----------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 6), window=st.integers(1, 50),
       gaps=st.lists(st.integers(0, 20), min_size=1, max_size=80))
def test_sliding_window_admits_exactly_up_to_the_limit(limit, window, gaps):
    throttle = SlidingWindow(limit, window)
    now, admitted = 0, []
    for gap in gaps:
        now += gap
        in_window = sum(1 for t in admitted if now - window < t <= now)
        allowed = throttle.allows(now)
        # Admitted exactly when fewer than `limit` admitted events are in (now - window, now].
        assert allowed == (in_window < limit)
        if allowed:
            throttle.add(now)
            admitted.append(now)
        assert throttle.count(now) == sum(1 for t in admitted if now - window < t <= now)
    for t in admitted:
        assert sum(1 for u in admitted if t - window < u <= t) <= limit


def test_throttle_refusals_do_not_use_up_capacity_and_windows_slide():
    clock = FakeClock()
    limits = limits_with(throttle={"orders_per_second": 2, "orders_per_window": 3,
                                   "window_seconds": 10})
    engine, manager, marks, _ = engine_for(limits, clock)
    fair = marks.theo("ACMEC100").price

    def order(i):
        return submit(engine, manager, manager.enter("B", 1, "ACMEC100", px(fair - 1 - i / 100)))

    assert order(0) and order(1)
    assert order(2).reason == "throttle_orders"        # 2 per second
    clock.advance(0.999999999)
    assert order(3).reason == "throttle_orders"        # still inside the second
    clock.advance(0.000000001)
    assert order(4)                                    # one second on: both expired
    assert order(5).reason == "throttle_orders"        # 3 per 10 s window
    clock.advance(9.0)
    assert order(6)
    assert engine.counts["accepted"] == 4


# -- events and limits -------------------------------------------------------------

events_strategy = st.builds(
    RiskEvent, sequence=st.integers(1, 2**40), clock_ns=st.integers(0, 2**63),
    accepted=st.booleans(), reason=st.sampled_from(sorted(REASONS) + ["accepted"]),
    check=st.none() | st.sampled_from([c.value for c in Check]),
    action=st.none() | st.sampled_from([a.value for a in Action]),
    message_type=st.sampled_from(["O", "U", "X", "C", ""]),
    user_ref_num=st.none() | st.integers(0, 2**32 - 1), symbol=st.text(max_size=8),
    side=st.sampled_from(["B", "S", ""]), quantity=st.none() | st.integers(0, 2**32 - 1),
    price=st.none() | st.integers(0, 2**63), detail=st.text(max_size=40))


@settings(max_examples=200, deadline=None)
@given(event=events_strategy)
def test_risk_event_round_trips(event):
    assert RiskEvent.from_bytes(event.to_bytes()) == event


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_garbage_is_refused_as_not_a_risk_event(raw):
    with pytest.raises(RiskEventError):
        RiskEvent.from_bytes(raw)


@pytest.mark.parametrize("payload,match", [
    (b'{"sequence": 1}', "missing"),
    (b"[1, 2]", "object"),
    (b"\xff\xfe", "JSON"),
])
def test_malformed_risk_events_name_the_problem(payload, match):
    with pytest.raises(RiskEventError, match=match):
        RiskEvent.from_bytes(payload)
    good = RiskEvent(1, 2, False, "capital", "capital", "reject", "O", 3, "A", "B", 1, 1)
    tampered = good.to_bytes().replace(b'"capital","clock', b'"bogus","clock')
    with pytest.raises(RiskEventError, match="unknown check"):
        RiskEvent.from_bytes(tampered)
    with pytest.raises(RiskEventError, match="wrong type"):
        RiskEvent.from_bytes(good.to_bytes().replace(b'"quantity":1', b'"quantity":"1"'))


@pytest.mark.parametrize("config,field", [
    ({"max_order_quantity": 0}, "max_order_quantity"),
    ({"max_ordr_quantity": 5}, "max_ordr_quantity"),
    ({"throttle": {"orders_per_second": -1}}, "throttle.orders_per_second"),
    ({"throttle": {"cancels_per_second": 900, "cancels_per_window": 10}}, "cancels_per_second"),
    ({"actions": {"greeks": "explode"}}, "actions.greeks"),
    ({"actions": {"vibes": "kill"}}, "actions.vibes"),
    ({"restricted_symbols": ["WAYTOOLONG"]}, "restricted_symbols"),
    ({"underlyings": {"ACME": {"max_delta": 0}}}, "underlyings.ACME.max_delta"),
    ({"short_option_margin": 1.5}, "short_option_margin"),
])
def test_bad_limits_are_errors_naming_the_field(config, field):
    with pytest.raises(ValidationError) as err:
        RiskLimits.model_validate(config)
    assert field in str(err.value)


def test_limits_from_toml_with_overrides_and_documented_defaults():
    limits = RiskLimits.from_toml("""
        [risk]
        max_order_quantity = 25
        restricted_symbols = ["ACMEP100"]
        [risk.throttle]
        orders_per_second = 50
        [risk.underlyings.ACME]
        max_delta = 500.0
        [risk.actions]
        greeks = "pull_side"
        capital = "kill"
    """)
    assert limits.max_order_quantity == 25 and limits.throttle.orders_per_second == 50
    assert limits.for_underlying("ACME", "max_delta") == 500.0
    assert limits.for_underlying("BETA", "max_delta") == RiskLimits().max_delta
    assert limits.action_for(Check.GREEKS) is Action.PULL_SIDE
    assert limits.action_for(Check.THROTTLE) is Action.REJECT
    assert "ACMEP100" in limits.restricted_symbols
    for model in (RiskLimits, type(limits.throttle)):
        for name, info in model.model_fields.items():
            assert info.description, name


def test_capital_rule_worked_example():
    engine, manager, marks, book = engine_for(RiskLimits())
    book.apply_fill(Fill(1, 1, "ACMEC100", "B", 10, px(6.00)))
    book.apply_fill(Fill(2, 2, "ACMEP100", "S", 3, px(5.50)))
    for side, qty, symbol, price in (("S", 4, "ACMEC100", 7.00), ("B", 5, "ACMEC100", 5.00),
                                     ("B", 5, "ACMEP100", 5.00)):
        assert submit(engine, manager, manager.enter(side, qty, symbol, px(price)))
    # ACMEC100: buys fill -> 15 long: 10 at 6.00 + 5 at 5.00 = $8,500 (sells fill -> $3,600).
    # ACMEP100: sells fill -> 3 short: 3 * 100 * 100.01 * 0.2 = $6,000.60 (buys fill ->
    # 2 long bought at 5.00 = $1,000).
    assert engine.capital_usage() == pytest.approx(8_500 + 6_000.60)


def test_theo_band_follows_the_underlying_by_delta():
    engine, manager, marks, _ = engine_for(limits_with(theo_band_fraction=0.0, theo_band_min=0.05))
    theo = marks.theo("ACMEC100")
    marks.set_bbo("ACME", px(100.50), px(100.52))            # mid +0.50, theo not repriced
    fair = theo.price + theo.delta * (100.51 - theo.spot)
    assert submit(engine, manager, manager.enter("B", 1, "ACMEC100", px(fair + 0.04)))
    late = submit(engine, manager, manager.enter("B", 1, "ACMEC100", px(fair + 0.06)))
    assert late.reason == "price_band_theo"
    # Passive prices are never a fat finger, and sells mirror buys.
    assert submit(engine, manager, manager.enter("B", 1, "ACMEC100", px(0.05)))
    assert submit(engine, manager, manager.enter("S", 1, "ACMEC100", px(fair + 0.10)))
    assert submit(engine, manager, manager.enter("S", 1, "ACMEC100", px(fair - 0.06))).reason \
        == "price_band_theo"
    # Inside the band, but through our own bid at fair + 0.04.
    assert submit(engine, manager, manager.enter("S", 1, "ACMEC100", px(fair - 0.04))).reason \
        == "self_trade"


def test_restricting_an_underlying_restricts_its_options():
    engine, manager, marks, _ = engine_for(limits_with(restricted_symbols=["ACME"]))
    for symbol in ("ACMEC100", "ACMEP100", "ACME"):
        decision = submit(engine, manager, manager.enter("B", 1, symbol, px(0.5)))
        assert decision.reason == "restricted_symbol"
    assert submit(engine, manager, manager.enter("B", 1, "MARKC010", px(0.05)))


# -- the cached exposure equals a fresh computation -------------------------------

def _feed(engine, manager, book, msg):
    """What the gateway does with a message from the exchange."""
    manager.received(msg)
    book.on_message(msg, manager)
    engine.on_message(msg, manager)


def _fresh_view(engine, manager, marks, book):
    fresh = Exposure(INSTRUMENTS, marks, book, WorkingOrders(manager),
                     short_option_margin=engine.limits.short_option_margin,
                     short_stock_margin=engine.limits.short_stock_margin)
    fresh.refresh()
    book.listeners.remove(fresh.touch)
    marks.listeners.remove(fresh.touch_underlying)
    return fresh


def _same(a, b):
    assert a.gross == b.gross
    assert (a.usage is None) == (b.usage is None)
    if a.usage is not None:
        assert a.usage == pytest.approx(b.usage, rel=1e-9, abs=1e-6)
    assert (a.greeks is None) == (b.greeks is None)
    if a.greeks is not None:
        for name, value in a.greeks.as_dict().items():
            assert value == pytest.approx(b.greeks.as_dict()[name], rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_cached_exposure_always_equals_a_fresh_computation(data):
    engine, manager, marks, book = engine_for(limits_with(duplicate_window_seconds=0))
    symbols = ["ACMEC100", "ACMEP100", "ACMEC110", "ACME", "MARKC010"]
    match = iter(range(1, 10_000))
    reference = iter(range(1, 10_000))
    for _ in range(data.draw(st.integers(1, 30))):
        orders = [o for o in manager.unique_orders() if not o.state.terminal]
        op = data.draw(st.sampled_from(["enter", "accept", "fill", "cancel", "replace",
                                        "replaced", "tick", "fill_direct"]))
        if op == "enter":
            symbol = data.draw(st.sampled_from(symbols))
            side = data.draw(st.sampled_from("BS"))
            fair = marks.theo(symbol).price
            offset = data.draw(st.integers(1, 50)) / 100
            msg = manager.enter(side, data.draw(st.integers(1, 20)), symbol,
                                px(max(0.01, fair - offset if side == "B" else fair + offset)))
            if engine.check(msg):
                manager.sent(msg)
        elif op == "accept" and any(o.state is OrderState.PENDING_NEW for o in orders):
            order = data.draw(st.sampled_from(
                [o for o in orders if o.state is OrderState.PENDING_NEW]))
            _feed(engine, manager, book, _accepted_msg(order, next(reference)))
        elif op in ("fill", "cancel", "replace") and any(
                o.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED) for o in orders):
            order = data.draw(st.sampled_from(
                [o for o in orders if o.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED)]))
            if op == "fill":
                qty = data.draw(st.integers(1, order.open_quantity))
                _feed(engine, manager, book, ouch50.OrderExecuted(
                    timestamp=1, user_ref_num=order.user_ref_num, quantity=qty,
                    price=order.price, liquidity_flag="A", match_number=next(match),
                    appendage=None))
            elif op == "cancel":
                msg = manager.cancel(order.user_ref_num)
                if engine.check(msg):
                    manager.sent(msg)
                    _feed(engine, manager, book, ouch50.OrderCanceled(
                        timestamp=1, user_ref_num=order.user_ref_num,
                        quantity=order.open_quantity, reason="U", appendage=None))
            else:
                msg = manager.replace(order.user_ref_num, data.draw(st.integers(1, 20)),
                                      order.price + data.draw(st.integers(-100, 100)))
                if engine.check(msg):
                    manager.sent(msg)
        elif op == "replaced" and any(o.pending_replace for o in orders):
            order = data.draw(st.sampled_from([o for o in orders if o.pending_replace]))
            new_ref, qty, price = order.pending_replace
            _feed(engine, manager, book, ouch50.OrderReplaced(
                timestamp=1, orig_user_ref_num=order.user_ref_num, user_ref_num=new_ref,
                side=order.side, quantity=qty, symbol=order.symbol, price=price,
                time_in_force="0", display="Y", order_reference_number=next(reference),
                capacity="P", intermarket_sweep_eligibility="N", cross_type="N",
                order_state="L", cl_ord_id="", appendage=ouch50.Appendage()))
        elif op == "tick":
            move = data.draw(st.integers(-50, 50))
            marks.set_bbo("ACME", px(100.00) + move * 100, px(100.02) + move * 100)
            if data.draw(st.booleans()):
                marks.reprice("ACME")
        elif op == "fill_direct":
            book.apply_fill(Fill(50_000 + next(match), 0, data.draw(st.sampled_from(symbols)),
                                 data.draw(st.sampled_from("BS")), data.draw(st.integers(1, 9)),
                                 px(1.0)))
        engine.working_orders("ACME")        # picks up accepted enters
        engine.exposure.refresh()
        fresh = _fresh_view(engine, manager, marks, book)
        for underlying in ("ACME", "MARK"):
            _same(engine.exposure.underlying(underlying), fresh.underlying(underlying))
        _same(engine.exposure.total(), fresh.total())
        assert set(engine.exposure.entries) == set(fresh.entries)


def _accepted_msg(order, reference):
    return ouch50.OrderAccepted(
        timestamp=1, user_ref_num=order.user_ref_num, side=order.side, quantity=order.quantity,
        symbol=order.symbol, price=order.price, time_in_force="0", display="Y",
        order_reference_number=reference, capacity="P", intermarket_sweep_eligibility="N",
        cross_type="N", order_state="L", cl_ord_id="", appendage=ouch50.Appendage())
