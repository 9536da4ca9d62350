"""The risk engine's fast path decides exactly as its straightforward checks.

Two engines share one order manager, position book, marks and clock; one
judges on the fast path (falling back to the checks for what it cannot
accept), the other with the checks only.  Random limits, positions, working
orders, pending replaces, fills, marks, kills and requests (prices drawn
around the fast path's own integer thresholds) must give equal decisions,
reason and detail included, and every acceptance must be the fast path's
own.  The thresholds and the throttle rings are checked against brute force.
"""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.gateway import OrderManager, OrderState
from host.positions import Fill, Marks, PositionBook
from host.positions.marks import PRICE_SCALE
from host.positions.theo import Theo
from host.protocols import ouch50
from host.risk import RiskEngine, RiskLimits, SlidingWindow
from host.risk.slots import (
    NO_BUY, NO_SELL, highest_price_not_above, last_true, lowest_price_not_below,
    notional_cap,
)
from tests.host.test_risk import INSTRUMENTS, FakeClock, _accepted_msg, market, px

SYMBOLS = ["ACMEC100", "ACMEP100", "ACMEC110", "ACME", "BETAC100", "ZETAC050", "NOPE"]
COMMON = ["ACMEC100", "ACMEP100", "ACME", "BETAC100"]


def _limit(data, loose, tight):
    """Mostly a limit the book can reach, sometimes one it never does."""
    return loose if data.draw(st.booleans()) else data.draw(tight)


def _limits(data) -> RiskLimits:
    draw = data.draw
    maybe = lambda strategy: draw(st.none() | strategy)          # noqa: E731
    throttle = {"orders_per_second": maybe(st.integers(1, 8)),
                "orders_per_window": maybe(st.integers(8, 30)),
                "messages_per_second": maybe(st.integers(2, 10)),
                "messages_per_window": maybe(st.integers(10, 40)),
                "cancels_per_second": maybe(st.integers(1, 10)),
                "cancels_per_window": maybe(st.integers(10, 40)),
                "window_seconds": draw(st.sampled_from([0.5, 1.0, 10.0]))}
    return RiskLimits.model_validate({
        "max_order_quantity": _limit(data, 1_000, st.integers(3, 40)),
        "max_order_notional": _limit(data, 1e9, st.floats(500.0, 50_000.0)),
        "restricted_symbols": draw(st.sets(st.sampled_from(["ACMEC110", "ZETA"]))),
        "theo_band_fraction": draw(st.floats(0.0, 0.3)),
        "theo_band_min": draw(st.floats(0.0, 0.2)),
        "max_theo_spot_drift": draw(st.floats(0.0005, 0.05)),
        "bound_tolerance": draw(st.floats(0.0, 0.05)),
        "stock_band_fraction": draw(st.floats(0.0, 0.02)),
        "max_option_position": _limit(data, 100_000, st.integers(5, 80)),
        "max_underlying_contracts": _limit(data, 100_000, st.integers(10, 200)),
        "max_stock_position": _limit(data, 1_000_000, st.integers(10, 3_000)),
        "max_delta": _limit(data, 1e9, st.floats(100.0, 20_000.0)),
        "max_gamma": _limit(data, 1e9, st.floats(5.0, 500.0)),
        "max_vega": _limit(data, 1e9, st.floats(100.0, 50_000.0)),
        "max_total_delta_dollars": _limit(data, 1e12, st.floats(1e4, 2e6)),
        "max_total_gamma_dollars": _limit(data, 1e12, st.floats(1e3, 2e5)),
        "max_total_vega": _limit(data, 1e12, st.floats(100.0, 80_000.0)),
        "capital": _limit(data, 1e12, st.floats(5e3, 5e5)),
        "short_option_margin": draw(st.floats(0.05, 1.0)),
        "duplicate_window_seconds": draw(st.sampled_from([0.0, 0.5, 2.0])),
        "throttle": throttle,
        "underlyings": draw(st.sampled_from([{}, {"ACME": {"max_option_position": 5,
                                                            "max_delta": 300.0}}])),
        "actions": draw(st.sampled_from([{}, {"capital": "kill"}, {"position": "kill"},
                                         {"price_band": "kill", "greeks": "pull_side"}])),
    })


def _quantity(data, limits: RiskLimits) -> int:
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.integers(0, 45))
    return data.draw(st.integers(1, max(1, min(limits.max_order_quantity, 12))))


def _price(data, fast: RiskEngine, manager, marks: Marks, symbol: str, side: str) -> int:
    """A price near what matters: the fast path's band threshold on this
    side, a passive price off the theo, the price of one of our orders."""
    band = fast.price_band(symbol)
    theo = marks.theo(symbol)
    choices = [px(0.05)]
    if band is not None:
        buy_max, sell_min = band
        choices += [buy_max, buy_max + 1] if side == "B" else [sell_min, sell_min - 1]
    if theo is not None:
        offset = data.draw(st.integers(-10, 60)) / 100
        choices.append(px(max(0.0001, theo.price - offset if side == "B"
                              else theo.price + offset)))
    ours = [o.price for o in manager.unique_orders() if o.symbol == symbol]
    if ours:
        choices.append(data.draw(st.sampled_from(ours)) + data.draw(st.integers(-1, 1)))
    price = data.draw(st.sampled_from(choices))
    return min(max(price, 1), ouch50.MAX_LIMIT_PRICE)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fast_path_and_checks_decide_identically(data):
    limits = _limits(data)
    clock = FakeClock()
    manager = OrderManager()
    book = PositionBook(INSTRUMENTS)
    marks = market(Marks(INSTRUMENTS))
    marks.reprice("BETA")
    fast = RiskEngine(limits, INSTRUMENTS, marks, book, manager, clock=clock)
    checks = RiskEngine(limits, INSTRUMENTS, marks, book, manager, clock=clock)
    checks.fast_path = False
    references = iter(range(1, 100_000))
    entered = []
    matches = iter(range(1, 100_000))

    def feed(msg):
        manager.received(msg)
        book.on_message(msg, manager)
        fast.on_message(msg, manager)
        checks.on_message(msg, manager)

    def judge(msg):
        before = fast.fast_accepts
        decision = fast.check(msg)
        expected = checks.check(msg)
        assert decision == expected
        # Every accepted order is the fast path's own; it never takes a refusal.
        is_order = isinstance(msg, (ouch50.EnterOrder, ouch50.ReplaceOrderRequest))
        assert (fast.fast_accepts > before) == (expected.accepted and is_order)
        if expected.accepted:
            manager.sent(msg)
            if isinstance(msg, ouch50.EnterOrder):
                entered.append(msg)
        return expected

    for _ in range(data.draw(st.integers(5, 60))):
        working = [o for o in manager.unique_orders()
                   if o.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED)]
        op = data.draw(st.sampled_from(
            ["enter", "enter", "enter", "replace", "replace", "replace", "accept", "accept",
             "replace_other", "again", "fill", "cancel", "replaced", "replaced", "tick", "theo",
             "position", "clock", "relimit", "reset"]))
        if op == "enter":
            symbol = data.draw(st.sampled_from(COMMON) | st.sampled_from(SYMBOLS))
            side = data.draw(st.sampled_from("BBSS") | st.sampled_from("BSTEX"))
            msg = manager.enter(side, _quantity(data, limits), symbol,
                                _price(data, fast, manager, marks, symbol, side),
                                cl_ord_id=data.draw(st.sampled_from(["", "", "A1", "B2"])))
            if data.draw(st.integers(0, 9)) == 0:
                msg.user_ref_num = data.draw(st.integers(0, msg.user_ref_num))
            judge(msg)
        elif op == "again" and entered:
            # The same order again: a duplicate while the window lasts.
            old = data.draw(st.sampled_from(entered))
            judge(manager.enter(old.side, old.quantity, old.symbol, old.price))
        elif op == "replace" and working:
            order = data.draw(st.sampled_from(working))
            msg = manager.replace(order.user_ref_num, _quantity(data, limits),
                                  _price(data, fast, manager, marks, order.symbol, order.side),
                                  cl_ord_id=data.draw(st.sampled_from(["", "A1", "C3"])))
            judge(msg)
        elif op == "replace_other" and manager.orders:
            # Of an order not working, or by a UserRefNum it no longer has.
            original = data.draw(st.sampled_from(sorted(manager.orders)))
            judge(ouch50.ReplaceOrderRequest(
                orig_user_ref_num=original, user_ref_num=manager.allocate(), quantity=1,
                price=px(1.0), time_in_force="0", display="Y",
                intermarket_sweep_eligibility="N", cl_ord_id="", appendage=ouch50.Appendage()))
        elif op == "accept":
            pending = [o for o in manager.unique_orders() if o.state is OrderState.PENDING_NEW]
            if pending:
                feed(_accepted_msg(data.draw(st.sampled_from(pending)), next(references)))
        elif op == "fill" and working:
            order = data.draw(st.sampled_from(working))
            feed(ouch50.OrderExecuted(
                timestamp=1, user_ref_num=order.user_ref_num,
                quantity=data.draw(st.integers(1, order.open_quantity)), price=order.price,
                liquidity_flag="A", match_number=next(matches), appendage=None))
        elif op == "cancel" and working:
            order = data.draw(st.sampled_from(working))
            if judge(manager.cancel(order.user_ref_num)).accepted:
                feed(ouch50.OrderCanceled(timestamp=1, user_ref_num=order.user_ref_num,
                                          quantity=order.open_quantity, reason="U",
                                          appendage=None))
        elif op == "replaced":
            pending = [o for o in manager.unique_orders() if o.pending_replace]
            if pending:
                order = data.draw(st.sampled_from(pending))
                new_ref, quantity, price = order.pending_replace
                feed(ouch50.OrderReplaced(
                    timestamp=1, orig_user_ref_num=order.user_ref_num, user_ref_num=new_ref,
                    side=order.side, quantity=quantity, symbol=order.symbol, price=price,
                    time_in_force="0", display="Y", order_reference_number=next(references),
                    capacity="P", intermarket_sweep_eligibility="N", cross_type="N",
                    order_state="L", cl_ord_id="", appendage=ouch50.Appendage()))
        elif op == "tick":
            underlying = data.draw(st.sampled_from(["ACME", "BETA", "ZETA"]))
            bid = px(100.00) + data.draw(st.integers(-300, 300)) * 100
            ask = bid + data.draw(st.sampled_from([0, 100, 200, 500, -100]))
            if data.draw(st.integers(0, 7)) == 0:
                bid = 0                                        # one-sided
            marks.set_bbo(underlying, max(bid, 0), max(ask, 0))
            if data.draw(st.booleans()) and marks.mid(underlying) is not None:
                marks.reprice(underlying)
        elif op == "theo":
            symbol = data.draw(st.sampled_from(["ACMEC100", "ACMEP100", "BETAC100"]))
            marks.set_theo(symbol, Theo(price=data.draw(st.floats(0.01, 20.0)),
                                        delta=data.draw(st.floats(-1.0, 1.0)),
                                        spot=data.draw(st.floats(95.0, 105.0)),
                                        gamma=data.draw(st.none() | st.floats(0.0, 0.1)),
                                        vega=data.draw(st.none() | st.floats(0.0, 30.0)),
                                        theta=-1.0))
        elif op == "position":
            symbol = data.draw(st.sampled_from(COMMON) | st.sampled_from(SYMBOLS[:-1]))
            book.apply_fill(Fill(900_000 + next(matches), 0, symbol,
                                 data.draw(st.sampled_from("BS")),
                                 data.draw(st.integers(1, 40)), px(data.draw(
                                     st.floats(0.5, 110.0)))))
        elif op == "clock":
            clock.advance(data.draw(st.sampled_from([0.0, 0.001, 0.3, 0.999999999, 1.0, 5.0])))
        elif op == "relimit":
            # New limits (an operator's reload): thresholds are worked out again.
            fast.limits = checks.limits = _limits(data)
            limits = fast.limits
        elif op == "reset" and fast.killed:
            fast.reset_kill()
            checks.reset_kill()
    assert fast.counts == checks.counts


def _replaced_msg(order, reference):
    new_ref, quantity, price = order.pending_replace
    return ouch50.OrderReplaced(
        timestamp=1, orig_user_ref_num=order.user_ref_num, user_ref_num=new_ref,
        side=order.side, quantity=quantity, symbol=order.symbol, price=price,
        time_in_force="0", display="Y", order_reference_number=reference, capacity="P",
        intermarket_sweep_eligibility="N", cross_type="N", order_state="L", cl_ord_id="",
        appendage=ouch50.Appendage())


def test_the_fast_path_takes_the_usual_requote():
    """A passive two-sided requote inside every limit never needs the checks."""
    clock = FakeClock()
    manager = OrderManager()
    marks = market(Marks(INSTRUMENTS))
    book = PositionBook(INSTRUMENTS)
    book.apply_fill(Fill(1, 1, "ACMEC100", "B", 3, px(5.0)))
    engine = RiskEngine(RiskLimits(), INSTRUMENTS, marks, book, manager, clock=clock)
    fair = marks.theo("ACMEC100").price
    refs = _rest_both_sides(engine, manager, fair)
    for step in range(1, 21):
        clock.advance(0.1)
        for side, dollars in (("B", fair - 0.10 - step / 100), ("S", fair + 0.10 + step / 100)):
            msg = manager.replace(refs[side], 5, px(dollars))
            assert engine.check(msg)
            manager.sent(msg)
            answer = _replaced_msg(manager.order(refs[side]), 1000 + msg.user_ref_num)
            manager.received(answer)
            engine.on_message(answer, manager)
            refs[side] = msg.user_ref_num
    assert engine.fast_accepts == engine.counts["accepted"] == 42
    assert engine.price_band("NOPE") is None
    buy_max, sell_min = engine.price_band("ACMEC100")
    assert sell_min <= px(fair) <= buy_max


LOOSE = {"max_order_quantity": 1_000, "max_order_notional": 1e9,
         "max_option_position": 100_000, "max_underlying_contracts": 100_000,
         "max_stock_position": 1_000_000, "max_delta": 1e9, "max_gamma": 1e9,
         "max_vega": 1e9, "max_total_delta_dollars": 1e12, "max_total_gamma_dollars": 1e12,
         "max_total_vega": 1e12, "capital": 1e12, "duplicate_window_seconds": 0.0,
         "throttle": {f"{kind}_per_{span}": None for kind in ("orders", "cancels", "messages")
                      for span in ("second", "window")}}


def _assert_measures_are_fresh(exposure):
    """Every kept entry equals a fresh measure of its symbol, and the running
    sums are the sums of the entries (gross exactly; capital up to rounding,
    it is kept by difference)."""
    fields = ("held", "gross", "usage", "greeks", "missing", "long_cost", "buy_high",
              "sell_low")
    for symbol, entry in exposure._states.items():
        fresh = exposure.compute(symbol)
        assert [getattr(entry, f) for f in fields] == [getattr(fresh, f) for f in fields]
        assert entry.totals == fresh.totals
    for sums, members in [(exposure.underlying_sums(u), [exposure.entries[s] for s in m])
                          for u, m in exposure._members.items()] + \
            [(exposure.total_sums(), list(exposure.entries.values()))]:
        assert sums.gross == sum(e.gross for e in members)
        assert sums.usage == pytest.approx(math.fsum(e.usage for e in members if e.usage
                                                     is not None), rel=1e-12, abs=1e-9)


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_replaces_applied_in_place_match_a_fresh_measure(data):
    """An accepted replace goes into the measures in place; whatever the
    order manager then does with it (sent or not, answered, filled), the
    measures are those of measuring again from scratch."""
    clock = FakeClock()
    manager = OrderManager()
    book = PositionBook(INSTRUMENTS)
    marks = market(Marks(INSTRUMENTS))
    engine = RiskEngine(RiskLimits.model_validate(LOOSE), INSTRUMENTS, marks, book, manager,
                        clock=clock)
    exposure = engine.exposure
    symbols = ["ACMEC100", "ACMEP100", "ACME"]
    matches = iter(range(1, 100_000))
    for symbol in symbols:
        if data.draw(st.booleans()):
            book.apply_fill(Fill(next(matches), 0, symbol, data.draw(st.sampled_from("BS")),
                                 data.draw(st.integers(1, 30)), px(3.0)))

    def price(symbol, side):
        fair = marks.theo(symbol).price
        ticks = data.draw(st.integers(1, 30))
        return px(fair - ticks * 0.01) if side == "B" else px(fair + ticks * 0.01)

    def feed(msg):
        manager.received(msg)
        book.on_message(msg, manager)
        engine.on_message(msg, manager)

    for symbol in symbols:
        for side in "BS":
            for _ in range(data.draw(st.integers(0, 2))):
                msg = manager.enter(side, data.draw(st.integers(1, 20)), symbol,
                                    price(symbol, side))
                assert engine.check(msg).accepted
                manager.sent(msg)
                feed(_accepted_msg(manager.order(msg.user_ref_num), msg.user_ref_num))
    for _ in range(data.draw(st.integers(1, 25))):
        clock.advance(0.01)
        working = [o for o in manager.unique_orders()
                   if o.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED)]
        pending = [o for o in manager.unique_orders() if o.pending_replace]
        op = data.draw(st.sampled_from(["replace", "replace", "replace", "unsent",
                                        "replaced", "replaced", "fill", "tick"]))
        if op in ("replace", "unsent") and working:
            order = data.draw(st.sampled_from(working))
            msg = manager.replace(order.user_ref_num, data.draw(st.integers(1, 25)),
                                  price(order.symbol, order.side))
            # (A tick may have moved the other side's theo across it: a
            # refusal changes nothing.)
            if engine.check(msg).accepted and op == "replace":
                manager.sent(msg)
        elif op == "replaced" and pending:
            order = data.draw(st.sampled_from(pending))
            feed(_replaced_msg(order, 5000 + next(matches)))
        elif op == "fill" and working + pending:
            order = data.draw(st.sampled_from(working + pending))
            feed(ouch50.OrderExecuted(
                timestamp=1, user_ref_num=order.user_ref_num,
                quantity=data.draw(st.integers(1, order.open_quantity)), price=order.price,
                liquidity_flag="A", match_number=next(matches), appendage=None))
        elif op == "tick":
            bid = px(100.00) + data.draw(st.integers(-50, 50)) * 100
            marks.set_bbo("ACME", bid, bid + px(0.02))
            marks.reprice("ACME")
        exposure.refresh()
        _assert_measures_are_fresh(exposure)


def test_the_requote_measures_in_place_and_answers_off_the_check():
    """The usual requote: the answers bring the measures up to date when
    they are in (settle); the check that follows measures nothing again,
    and the replace it accepts is added in place."""
    manager = OrderManager()
    marks = market(Marks(INSTRUMENTS))
    book = PositionBook(INSTRUMENTS)
    engine = RiskEngine(RiskLimits.model_validate(LOOSE), INSTRUMENTS, marks, book, manager,
                        clock=FakeClock())
    exposure = engine.exposure
    fair = marks.theo("ACMEC100").price
    refs = _rest_both_sides(engine, manager, fair)
    engine.settle()
    for step in range(1, 6):
        for side, dollars in (("B", fair - 0.10 - step / 100), ("S", fair + 0.10 + step / 100)):
            msg = manager.replace(refs[side], 5 + step, px(dollars))
            measured, in_place = exposure.recomputed, exposure.applied_in_place
            assert engine.check(msg)
            assert exposure.recomputed == measured
            assert exposure.applied_in_place == in_place + 1
            manager.sent(msg)
        for side in "BS":
            answer = _replaced_msg(manager.order(refs[side]), 1000 + step * 2 + (side == "S"))
            manager.received(answer)
            engine.on_message(answer, manager)
            refs[side] = answer.user_ref_num
        # Both answers in: measured once, before the next check.
        measured = exposure.recomputed
        engine.settle()
        assert exposure.recomputed == measured + 1
        _assert_measures_are_fresh(exposure)
    # A replace accepted but never sent is taken back out at the next check.
    msg = manager.replace(refs["B"], 50, px(fair - 0.50))
    assert engine.check(msg)
    assert exposure.entry("ACMEC100").totals.buy_quantity == 50
    exposure.refresh()
    assert exposure.entry("ACMEC100").totals.buy_quantity == 5 + 5
    _assert_measures_are_fresh(exposure)


def test_exposure_greeks_are_the_position_books():
    """The exposure's own Greeks of a position are those of the position book
    (:func:`host.positions.book.greeks_of`), through fills and a new mark."""
    manager = OrderManager()
    book = PositionBook(INSTRUMENTS)
    marks = market(Marks(INSTRUMENTS))
    engine = RiskEngine(RiskLimits(), INSTRUMENTS, marks, book, manager)
    for n, (symbol, side, quantity) in enumerate((("ACMEC100", "B", 7), ("ACMEP100", "S", 4),
                                                  ("ACME", "B", 300), ("ACMEC110", "S", 2))):
        book.apply_fill(Fill(n + 1, n + 1, symbol, side, quantity, px(3.0)))
    for move in (0, 250):
        marks.set_bbo("ACME", px(100.00) + move, px(100.02) + move)
        marks.reprice("ACME")
        engine.exposure.refresh()
        got = engine.exposure.underlying("ACME").greeks.as_dict()
        want = book.greeks("ACME", marks).as_dict()
        assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


# -- the integer thresholds are the float comparisons' own ---------------------------

@settings(max_examples=300, deadline=None)
@given(boundary=st.integers(-5, 60), estimate=st.floats(allow_nan=True, allow_infinity=True),
       low=st.integers(-3, 10), span=st.integers(0, 50))
def test_last_true_finds_the_boundary_from_any_estimate(boundary, estimate, low, span):
    high = low + span
    found = last_true(lambda n: n <= boundary, estimate, low, high)
    assert found == max(low - 1, min(boundary, high))


dollars_strategy = (st.floats(-1.0, 200_000.0) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, 1e-4, 0.00015, 1.2345, 199_999.99, 200_000.0]))


@settings(max_examples=500, deadline=None)
@given(dollars=dollars_strategy, nudge=st.integers(-3, 3))
def test_price_thresholds_match_the_float_comparisons(dollars, nudge):
    buy_max = highest_price_not_above(dollars)
    sell_min = lowest_price_not_below(dollars)
    finite_guess = dollars * PRICE_SCALE if math.isfinite(dollars) else 0.0
    guess = int(min(max(finite_guess, 1), ouch50.MAX_LIMIT_PRICE))
    for price in {1, ouch50.MAX_LIMIT_PRICE, guess + nudge, buy_max, buy_max + 1,
                  sell_min, sell_min - 1}:
        if not 1 <= price <= ouch50.MAX_LIMIT_PRICE:
            continue
        assert (price > buy_max) == (price / PRICE_SCALE > dollars)
        assert (price < sell_min) == (price / PRICE_SCALE < dollars)
    assert buy_max == NO_BUY or 1 <= buy_max <= ouch50.MAX_LIMIT_PRICE
    assert 0 <= sell_min <= NO_SELL


@settings(max_examples=300, deadline=None)
@given(multiplier=st.sampled_from([1, 10, 100, 1000]), dollars=st.floats(0.01, 1e7),
       quantity=st.integers(1, 1000), nudge=st.integers(-2, 2))
def test_notional_cap_matches_the_float_comparison(multiplier, dollars, quantity, nudge):
    cap = notional_cap(multiplier, dollars, quantity)
    largest = ouch50.MAX_LIMIT_PRICE * quantity         # price * quantity of a valid order
    for n in (cap, cap + 1, max(0, int(dollars * PRICE_SCALE / multiplier) + nudge)):
        if n <= largest:
            assert (n > cap) == (n * multiplier / PRICE_SCALE > dollars)


# -- throttle rings ------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 5), window=st.integers(1, 30),
       steps=st.lists(st.tuples(st.integers(0, 12), st.booleans()), min_size=1, max_size=60))
def test_ring_counts_exactly_when_forced_events_overfill_it(limit, window, steps):
    """Events counted without asking (the guard's pulls) may exceed the
    limit; admission and the count stay those of the full history."""
    ring = SlidingWindow(limit, window)
    now, history = 0, []
    for gap, forced in steps:
        now += gap
        in_window = sum(1 for t in history if now - window < t <= now)
        assert ring.allows(now) == (in_window < limit)
        assert ring.count(now) == in_window
        if forced or in_window < limit:
            ring.add(now)
            history.append(now)


def _rest_both_sides(engine, manager, fair):
    """A bid and an offer ten cents either side of ``fair``, checked, sent and
    accepted; their UserRefNums by side."""
    refs = {}
    for side, dollars in (("B", fair - 0.10), ("S", fair + 0.10)):
        msg = manager.enter(side, 5, "ACMEC100", px(dollars))
        assert engine.check(msg)
        manager.sent(msg)
        accepted = _accepted_msg(manager.order(msg.user_ref_num), msg.user_ref_num)
        manager.received(accepted)
        engine.on_message(accepted, manager)
        refs[side] = msg.user_ref_num
    return refs
