"""Positions, average-cost P&L and Greeks (host/positions)."""
import asyncio
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.exchange import ExchangeConfig, ExchangeServer
from host.gateway import OrderGateway, OrderManager, OrderState
from host.journal import Journal
from host.pricing.accuracy import Sample, quantlib_outputs, random_sample
from host.pricing.params import OptionSpec, PricingInputError, precompute, spot_to_money
from host.positions import (
    Fill, Greeks, Instrument, InstrumentError, Instruments, Marks, MissingMark, PositionBook,
    Theo, greeks_of, no_arbitrage_bounds, price_option, theo_from_record,
)
from host.protocols import ouch50
from rtl.pricer.formats import MONEY
from rtl.pricer.model import price_chain

CALL = OptionSpec(underlying=1, is_put=False, strike=100.0, sigma=0.3, expiry=0.25, rate=0.04,
                  dividend=0.01)
PUT = OptionSpec(underlying=1, is_put=True, strike=100.0, sigma=0.3, expiry=0.25, rate=0.04,
                 dividend=0.01)
INSTRUMENTS = Instruments([
    Instrument("ACMEC100", "ACME", CALL),
    Instrument("ACMEP100", "ACME", PUT),
    Instrument.stock("ACME"),
    Instrument("BETAC050", "BETA", OptionSpec(2, False, 50.0, 0.4, 0.5, 0.03), multiplier=10),
])
USERS = {"ZMM01": "s3cret", "ZMM02": "pw2"}


def fill(key, match, symbol, side, qty, price):
    return Fill(key, match, symbol, side, qty, price)


# -- the float pricer -------------------------------------------------------------

def _spec(sample: Sample, i: int) -> OptionSpec:
    return OptionSpec(int(sample.underlying[i]), bool(sample.is_put[i]), float(sample.strike[i]),
                      float(sample.sigma[i]), float(sample.expiry[i]), float(sample.rate[i]),
                      float(sample.dividend[i]), sample.black76)


@pytest.mark.parametrize("model", ["bs", "black76"])
def test_float_pricer_matches_quantlib(model):
    sample = random_sample(400, seed=7, model=model)
    reference = quantlib_outputs(sample)
    for i in range(len(sample.spot)):
        theo = price_option(_spec(sample, i), float(sample.spot[i]))
        s = float(sample.spot[i])
        assert theo.price == pytest.approx(reference["price"][i], abs=1e-9 * s)
        assert theo.delta == pytest.approx(reference["delta"][i], abs=1e-9)
        assert theo.gamma == pytest.approx(reference["gamma"][i], rel=1e-7, abs=1e-12 / s)
        assert theo.vega == pytest.approx(reference["vega"][i], abs=1e-9 * s)
        assert theo.theta == pytest.approx(reference["theta"][i], abs=1e-8 * s)


def test_fabric_theo_record_decodes_to_the_float_values():
    specs = [OptionSpec(3, put, strike, 0.25, 0.5, 0.03, 0.01)
             for put in (False, True) for strike in (80.0, 100.0, 125.0)]
    result = price_chain(spot_to_money(101.5), precompute(specs))
    for i, spec in enumerate(specs):
        fields = {"spot": spot_to_money(101.5), "price": int(result.price[i]),
                  "delta": int(result.delta[i]), "gamma": int(result.gamma[i]),
                  "vega": int(result.vega[i]), "theta": int(result.theta[i])}
        theo, exact = theo_from_record(fields), price_option(spec, 101.5)
        assert theo.spot == 101.5
        assert theo.price == pytest.approx(exact.price, abs=1e-7 * 101.5)
        assert theo.delta == pytest.approx(exact.delta, abs=2e-7)
        assert theo.gamma == pytest.approx(exact.gamma, rel=1e-5)
        assert theo.vega == pytest.approx(exact.vega, abs=1e-7 * 101.5)
        assert theo.theta == pytest.approx(exact.theta, abs=1e-5 * abs(exact.theta) + 1e-6 * 101.5)
    assert theo.price == MONEY.to_float(fields["price"])
    with pytest.raises(ValueError, match="gamma"):
        theo_from_record({k: v for k, v in fields.items() if k != "gamma"})


@pytest.mark.parametrize("field,value", [("strike", 0.0), ("sigma", -0.1), ("expiry", 0.0),
                                         ("sigma", math.nan), ("rate", math.inf)])
def test_float_pricer_refuses_bad_inputs(field, value):
    spec = OptionSpec(**{**CALL.__dict__, field: value})
    with pytest.raises(PricingInputError, match=field if field != "rate" else "finite"):
        price_option(spec, 100.0)
    for spot in (0.0, -1.0, math.nan):
        with pytest.raises(PricingInputError, match="spot"):
            price_option(CALL, spot)


@settings(max_examples=200, deadline=None)
@given(put=st.booleans(), moneyness=st.floats(0.3, 3.0), sigma=st.floats(0.05, 2.0),
       expiry=st.floats(0.003, 3.0), rate=st.floats(0.0, 0.1), dividend=st.floats(0.0, 0.05),
       black76=st.booleans())
def test_fair_values_lie_within_the_no_arbitrage_bounds(put, moneyness, sigma, expiry, rate,
                                                        dividend, black76):
    spec = OptionSpec(0, put, 100.0, sigma, expiry, rate, dividend, black76)
    spot = 100.0 * moneyness
    low, high = no_arbitrage_bounds(spec, spot, spot)
    price = price_option(spec, spot).price
    assert low - 1e-9 * spot <= price <= high + 1e-9 * spot
    # A wider quote only widens the bounds.
    wide_low, wide_high = no_arbitrage_bounds(spec, spot * 0.99, spot * 1.01)
    assert wide_low <= low and wide_high >= high


# -- instruments and marks --------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"symbol": "TOOLONGSYM", "underlying": "X"}, "symbol"),
    ({"symbol": "ACME ", "underlying": "ACME"}, "symbol"),
    ({"symbol": "X1", "underlying": "X", "option": CALL, "multiplier": 0}, "multiplier"),
    ({"symbol": "XC1", "underlying": "X", "option": None, "multiplier": 1}, "shares"),
])
def test_bad_instrument_definitions_are_refused(kwargs, match):
    with pytest.raises(InstrumentError, match=match):
        Instrument(**kwargs)
    with pytest.raises(InstrumentError, match="twice"):
        Instruments([Instrument.stock("A"), Instrument.stock("A")])


def test_marks_complete_partial_theos_and_fall_back_to_theo_spot():
    marks = Marks(INSTRUMENTS)
    assert marks.bbo("ACME") is None and marks.spot("ACME") is None
    marks.set_theo("ACMEC100", Theo(price=6.0, delta=0.55, spot=100.0))
    theo = marks.theo("ACMEC100")
    exact = price_option(CALL, 100.0)
    # The caller's price and delta stay; the missing Greeks come from the float pricer.
    assert (theo.price, theo.delta) == (6.0, 0.55)
    assert (theo.gamma, theo.vega, theo.theta) == (exact.gamma, exact.vega, exact.theta)
    assert marks.spot("ACME") == 100.0
    marks.set_bbo("ACME", 100_0000, 99_9900)     # crossed: not a usable quote
    assert marks.bbo("ACME") is None and marks.spot("ACME") == 100.0
    marks.set_bbo("ACME", 100_0000, 100_0200)
    assert marks.mid("ACME") == pytest.approx(100.01)
    assert marks.theo("ACME").delta == 1.0 and marks.theo("ACME").price == pytest.approx(100.01)
    assert marks.reprice("ACME") == 2
    assert marks.theo("ACMEP100") == price_option(PUT, marks.mid("ACME"))
    with pytest.raises(ValueError):
        marks.set_bbo("ACME", -1, 5)
    with pytest.raises(ValueError, match="BBO"):
        marks.reprice("BETA")


# -- accounting -------------------------------------------------------------------

def test_average_cost_worked_example():
    book = PositionBook(INSTRUMENTS)
    book.apply_fill(fill(1, 1, "ACMEC100", "B", 10, 1_0000))
    book.apply_fill(fill(1, 2, "ACMEC100", "B", 10, 1_2000))
    position = book.position("ACMEC100")
    assert position.quantity == 20 and position.average_price == 1_1000
    book.apply_fill(fill(2, 3, "ACMEC100", "S", 15, 1_3000))
    assert position.quantity == 5 and position.average_price == 1_1000
    assert position.realised_dollars == 300          # 15 * 0.20 * 100
    # Selling through flat: 5 close at a loss, 5 open short at the fill price.
    book.apply_fill(fill(3, 4, "ACMEC100", "T", 10, 1_0000))
    assert position.quantity == -5 and position.average_price == 1_0000
    assert position.realised_dollars == 300 - 50
    assert position.unrealised_dollars(Fraction(9, 10)) == 50   # short 5 gains 0.10
    report = book.pnl(_marks_at({"ACMEC100": 0.9}))
    assert report["symbols"]["ACMEC100"]["realised"] == 250.0
    assert report["total"] == {"realised": 250.0, "unrealised": pytest.approx(50.0)}


def _marks_at(prices: dict[str, float]) -> Marks:
    marks = Marks(INSTRUMENTS)
    for symbol, price in prices.items():
        marks.set_theo(symbol, Theo(price, 0.5, 100.0, 0.01, 20.0, -5.0))
    return marks


fills_strategy = st.lists(st.tuples(st.sampled_from(["B", "S", "T", "E"]),
                                    st.integers(1, 50), st.integers(1, 5_0000)),
                          min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(trades=fills_strategy, mark=st.integers(1, 5_0000))
def test_position_is_the_sum_of_fills_and_pnl_is_conserved(trades, mark):
    book = PositionBook(INSTRUMENTS)
    cash = Fraction(0)
    for i, (side, qty, price) in enumerate(trades):
        assert book.apply_fill(fill(i + 1, i + 1, "ACMEC100", side, qty, price))
        cash -= (qty if side == "B" else -qty) * price
    position = book.position("ACMEC100")
    assert position.quantity == sum(q if s == "B" else -q for s, q, _ in trades)
    assert position.open_cost >= 0
    if position.quantity == 0:
        assert position.open_cost == 0
    mark_dollars = Fraction(mark, 10_000)
    total = position.realised_dollars + position.unrealised_dollars(mark_dollars)
    # Realised + unrealised = the fills' cash flow + the position valued at the mark, exactly.
    assert total == (cash + position.quantity * mark) * 100 / 10_000


@settings(max_examples=100, deadline=None)
@given(trades=fills_strategy, data=st.data())
def test_broken_trade_equals_never_having_traded(trades, data):
    fills = [fill(i + 1, i + 1, "ACMEC100", s, q, p) for i, (s, q, p) in enumerate(trades)]
    broken = data.draw(st.integers(0, len(fills) - 1))
    book = PositionBook.from_fills(INSTRUMENTS, fills)
    assert book.break_trade(fills[broken].order_key, fills[broken].match_number)
    without = PositionBook.from_fills(INSTRUMENTS, fills[:broken] + fills[broken + 1:])
    assert book.snapshot()["positions"] == without.snapshot()["positions"]
    # Breaking it again, or replaying the broken execution, changes nothing.
    assert not book.break_trade(fills[broken].order_key, fills[broken].match_number)
    assert not book.apply_fill(fills[broken])
    assert book.counts["unknown_broken_trades"] == 1 and book.counts["duplicate_fills"] == 1


def test_repeated_and_unusable_fills_are_counted_not_booked():
    book = PositionBook(INSTRUMENTS)
    assert book.apply_fill(fill(1, 1, "ACMEC100", "B", 5, 1_0000))
    assert not book.apply_fill(fill(1, 1, "ACMEC100", "B", 5, 1_0000))
    # The same match number on our other order is our other side of a self-trade: a fill.
    assert book.apply_fill(fill(2, 1, "ACMEC100", "S", 5, 1_0000))
    assert not book.apply_fill(fill(3, 2, "ACMEC100", "X", 5, 1_0000))
    assert not book.apply_fill(fill(3, 3, "ACMEC100", "B", 0, 1_0000))
    assert not book.apply_fill(fill(3, 4, "ACMEC100", "B", 5, 0))
    assert book.counts["duplicate_fills"] == 1 and book.counts["bad_fills"] == 3
    assert book.quantity("ACMEC100") == 0
    # A fill in an unknown symbol is real exposure: booked, and flagged.
    assert book.apply_fill(fill(4, 5, "WHAT", "B", 2, 1_0000))
    assert book.quantity("WHAT") == 2 and book.counts["unknown_instrument_positions"] == 1
    assert book.pnl(Marks(INSTRUMENTS))["unmarked"] == ["WHAT"]


# -- Greeks -----------------------------------------------------------------------

def test_greeks_per_underlying_and_total():
    book = PositionBook(INSTRUMENTS)
    book.apply_fill(fill(1, 1, "ACMEC100", "B", 10, 6_0000))
    book.apply_fill(fill(2, 2, "ACMEP100", "S", 4, 5_0000))
    book.apply_fill(fill(3, 3, "ACME", "S", 300, 100_0000))
    book.apply_fill(fill(4, 4, "BETAC050", "B", 7, 3_0000))
    marks = Marks(INSTRUMENTS)
    with pytest.raises(MissingMark, match="spot"):
        book.greeks("ACME", marks)
    marks.set_bbo("ACME", 100_0000, 100_0200)
    marks.set_bbo("BETA", 50_0000, 50_0400)
    with pytest.raises(MissingMark, match="ACMEC100"):
        book.greeks("ACME", marks)
    marks.reprice("ACME")
    marks.reprice("BETA")
    call, put = marks.theo("ACMEC100"), marks.theo("ACMEP100")
    acme = book.greeks("ACME", marks)
    assert acme.delta == pytest.approx(1000 * call.delta - 400 * put.delta - 300)
    assert acme.gamma == pytest.approx(1000 * call.gamma - 400 * put.gamma)
    assert acme.vega == pytest.approx(1000 * call.vega - 400 * put.vega)
    assert acme.theta == pytest.approx(1000 * call.theta - 400 * put.theta)
    assert acme.delta_dollars == pytest.approx(acme.delta * 100.01)
    assert acme.gamma_dollars == pytest.approx(acme.gamma * 100.01 ** 2 / 100)
    beta = book.greeks("BETA", marks)
    assert beta.delta == pytest.approx(70 * marks.theo("BETAC050").delta)   # multiplier 10
    total = book.total_greeks(marks)
    assert total.vega == pytest.approx(acme.vega + beta.vega)
    assert total.delta_dollars == pytest.approx(acme.delta_dollars + beta.delta_dollars)
    assert book.greeks_by_underlying(marks) == {"ACME": acme, "BETA": beta}
    assert greeks_of(INSTRUMENTS["ACME"], -300, marks.theo("ACME"), 100.01) == \
        Greeks(delta=-300.0, delta_dollars=-300 * 100.01)


# -- from the gateway's messages and the journal ----------------------------------

def _accepted(ref, side, qty, symbol, price, order_ref):
    return ouch50.OrderAccepted(
        timestamp=1, user_ref_num=ref, side=side, quantity=qty, symbol=symbol, price=price,
        time_in_force="0", display="Y", order_reference_number=order_ref, capacity="P",
        intermarket_sweep_eligibility="N", cross_type="N", order_state="L", cl_ord_id="",
        appendage=ouch50.Appendage())


def _executed(ref, qty, price, match):
    return ouch50.OrderExecuted(timestamp=2, user_ref_num=ref, quantity=qty, price=price,
                                liquidity_flag="A", match_number=match, appendage=None)


def test_executions_resolved_through_the_order_manager():
    manager, book = OrderManager(), PositionBook(INSTRUMENTS)

    def feed(msg):
        manager.received(msg)
        book.on_message(msg, manager)

    bid = manager.enter("B", 10, "ACMEC100", 6_0000)
    manager.sent(bid)
    feed(_accepted(bid.user_ref_num, "B", 10, "ACMEC100", 6_0000, 77))
    feed(_executed(bid.user_ref_num, 4, 6_0000, 500))
    feed(_executed(bid.user_ref_num, 4, 6_0000, 500))     # repeated by the exchange
    feed(_executed(bid.user_ref_num, 9, 6_0000, 501))     # more than is open: refused
    feed(_executed(999, 1, 6_0000, 502))                   # not our order
    assert book.quantity("ACMEC100") == 4
    assert book.counts["executions_refused_by_order_manager"] == 1
    assert book.counts["executions_for_unknown_orders"] == 1
    replace = manager.replace(bid.user_ref_num, 6, 6_1000)
    manager.sent(replace)
    feed(ouch50.OrderReplaced(
        timestamp=3, orig_user_ref_num=bid.user_ref_num, user_ref_num=replace.user_ref_num,
        side="B", quantity=6, symbol="ACMEC100", price=6_1000, time_in_force="0", display="Y",
        order_reference_number=78, capacity="P", intermarket_sweep_eligibility="N",
        cross_type="N", order_state="L", cl_ord_id="", appendage=ouch50.Appendage()))
    feed(_executed(replace.user_ref_num, 6, 6_1000, 503))
    assert manager.order(bid.user_ref_num).state is OrderState.FILLED
    assert book.quantity("ACMEC100") == 10
    assert {f.order_key for f in book.fills()} == {bid.user_ref_num}
    feed(ouch50.BrokenTrade(timestamp=4, user_ref_num=replace.user_ref_num, match_number=500,
                            reason="E", cl_ord_id="", appendage=None))
    assert book.quantity("ACMEC100") == 6
    assert book.position("ACMEC100").average_price == 6_1000


def test_live_book_equals_the_journal_replay(tmp_path):
    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            live = PositionBook(INSTRUMENTS)
            mm = OrderGateway(tmp_path / "mm.journal", "127.0.0.1", server.port, "ZMM01",
                              USERS["ZMM01"], on_received=[live.on_message])
            other = OrderGateway(tmp_path / "other.journal", "127.0.0.1", server.port, "ZMM02",
                                 USERS["ZMM02"])
            await mm.start()
            await other.start()
            bid = mm.submit(mm.orders.enter("B", 20, "ACMEC100", 6_0000)).user_ref_num
            ask = mm.submit(mm.orders.enter("S", 15, "ACMEC100", 6_4000)).user_ref_num
            await mm.wait_until(lambda: mm.orders.order(ask).state is OrderState.LIVE, 5)
            other.submit(other.orders.enter("S", 12, "ACMEC100", 5_9000))
            other.submit(other.orders.enter("B", 15, "ACMEC100", 6_5000))
            other.submit(other.orders.enter("B", 3, "ACME", 100_0000))
            stock = mm.submit(mm.orders.enter("S", 3, "ACME", 100_0000)).user_ref_num
            await mm.wait_until(lambda: live.counts["fills"] == 3, 5)
            assert mm.orders.order(bid).filled == 12 and mm.orders.order(ask).filled == 15
            assert live.quantity("ACMEC100") == 12 - 15 and live.quantity("ACME") == -3
            # 12 bought at 6.00, 15 sold at 6.40: 12 closed for 0.40 each, 3 short at 6.40.
            assert live.position("ACMEC100").realised_dollars == Fraction(12 * 40 * 100, 100)
            assert live.position("ACMEC100").average_price == 6_4000
            # The exchange breaks the stock trade: the position goes with it.
            server.break_trade(mm.orders.order(stock).fills[0][0])
            await mm.wait_until(lambda: live.counts["broken_trades"] == 1, 5)
            assert live.quantity("ACME") == 0 and live.position("ACME") is None
            await mm.close()
            await other.close()
        with Journal(tmp_path / "mm.journal") as journal:
            replayed = PositionBook.from_journal(journal, INSTRUMENTS)
        assert replayed.snapshot() == live.snapshot()
        # A gateway opened on the journal with the book as listener rebuilds the same.
        again = PositionBook(INSTRUMENTS)
        OrderGateway(tmp_path / "mm.journal", "127.0.0.1", 1, "ZMM01", "x",
                     on_received=[again.on_message]).journal.close()
        assert again.snapshot() == live.snapshot()
    asyncio.run(asyncio.wait_for(main(), 30))


def test_failing_listener_is_counted_and_does_not_break_the_session(tmp_path):
    def broken(msg, orders):
        raise RuntimeError("listener bug")

    async def main():
        async with ExchangeServer(ExchangeConfig(users=USERS)) as server:
            gw = OrderGateway(tmp_path / "j", "127.0.0.1", server.port, "ZMM01", USERS["ZMM01"],
                              on_received=[broken])
            await gw.start()
            ref = gw.submit(gw.orders.enter("B", 1, "ACMEC100", 1_0000)).user_ref_num
            await gw.wait_until(lambda: gw.orders.order(ref).state is OrderState.LIVE, 5)
            assert gw.counts["listener_errors"] == 1 and gw.client.connected
            await gw.close()
    asyncio.run(asyncio.wait_for(main(), 30))
