"""Randomized order flows through the order manager, driven by the exchange
engine directly (no sockets): invariants after every step, terminal states
never left, agreement with the exchange, and exact rebuild by replay."""
import pytest
from hypothesis import given, settings, strategies as st

from host.exchange import OuchExchange
from host.gateway import OrderError, OrderManager, OrderState, TERMINAL_STATES
from host.protocols import ouch50

SYMBOLS = ("ZAAB", "ZAAC")

action = st.one_of(
    st.tuples(st.just("enter"), st.sampled_from("BS"), st.integers(0, 300),
              st.sampled_from(SYMBOLS), st.integers(98, 102), st.sampled_from("03")),
    st.tuples(st.just("counter"), st.sampled_from("BS"), st.integers(1, 300),
              st.sampled_from(SYMBOLS), st.integers(98, 102)),
    st.tuples(st.just("cancel"), st.integers(0, 50), st.integers(0, 200)),
    st.tuples(st.just("replace"), st.integers(0, 50), st.integers(0, 300), st.integers(98, 102)),
    st.tuples(st.just("modify"), st.integers(0, 50), st.integers(0, 300)),
    st.tuples(st.just("mass"), st.sampled_from(("",) + SYMBOLS)),
    st.tuples(st.just("replay"), st.integers(0, 50)),
)


def working(manager):
    return [o for o in manager.unique_orders()
            if o.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED)]


@settings(max_examples=150)
@given(st.lists(action, max_size=40))
def test_random_flows_keep_invariants_and_rebuild_exactly(actions):
    ex = OuchExchange(SYMBOLS, clock=lambda: 0)
    manager = OrderManager()
    log = []              # what the gateway would journal, in order
    fills = []
    counter_ref = [0]

    def deliver(out):
        for user, msg in out:
            if user == "mm":
                log.append(("rx", msg.encode()))
                if isinstance(msg, ouch50.OrderExecuted):
                    fills.append(msg)
                manager.received(msg)

    def send(msg):
        log.append(("tx", msg.encode()))
        manager.sent(msg)
        deliver(ex.handle("mm", msg))

    terminal_seen = {}
    for act in actions:
        kind = act[0]
        if kind == "enter":
            _, side, qty, sym, px, tif = act
            send(manager.enter(side, qty, sym, px * 10_000, time_in_force=tif))
        elif kind == "counter":
            _, side, qty, sym, px = act
            counter_ref[0] += 1
            deliver(ex.handle("street", ouch50.EnterOrder(
                user_ref_num=counter_ref[0], side=side, quantity=qty, symbol=sym,
                price=px * 10_000, time_in_force="0", display="Y", capacity="P",
                intermarket_sweep_eligibility="N", cross_type="N", cl_ord_id="",
                appendage=ouch50.Appendage())))
        elif kind in ("cancel", "replace", "modify"):
            live = working(manager)
            if not live:
                continue
            order = live[act[1] % len(live)]
            if kind == "cancel":
                send(manager.cancel(order.user_ref_num, min(act[2], order.open_quantity - 1)))
            elif kind == "replace":
                send(manager.replace(order.user_ref_num, act[2], act[3] * 10_000))
            else:
                msg = ouch50.ModifyOrderRequest(user_ref_num=order.user_ref_num,
                                                side=order.side, quantity=act[2],
                                                appendage=ouch50.Appendage())
                send(msg)
        elif kind == "mass":
            send(manager.mass_cancel(symbol=act[1]))
        elif kind == "replay" and fills:
            # SoupBinTCP sequencing removes duplicates; a repeated execution
            # (same match number) must still never count twice.
            msg = fills[act[1] % len(fills)]
            log.append(("rx", msg.encode()))
            manager.received(msg)

        manager.check_invariants()
        for order in manager.unique_orders():
            key = order.user_ref_nums[0]
            if key in terminal_seen:
                assert order.state is terminal_seen[key], "left a terminal state"
            elif order.state in TERMINAL_STATES:
                terminal_seen[key] = order.state

    # The exchange is synchronous here, so nothing is left pending and the
    # manager's open quantities agree with the exchange's book.
    live_at_exchange = {ref: o.open_quantity for ref, o in ex.port("mm").live.items()}
    for order in manager.unique_orders():
        assert order.state not in (OrderState.PENDING_NEW, OrderState.PENDING_CANCEL,
                                   OrderState.PENDING_REPLACE)
        if order.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED):
            assert live_at_exchange.pop(order.user_ref_num) == order.open_quantity
    assert live_at_exchange == {}

    # Replaying the journal through a fresh manager gives the same state.
    rebuilt = OrderManager()
    for direction, raw in log:
        if direction == "tx":
            rebuilt.sent(ouch50.decode_inbound(raw))
        else:
            rebuilt.received(ouch50.decode_outbound(raw))
    assert rebuilt.snapshot() == manager.snapshot()


def test_refuses_requests_for_orders_not_working():
    manager = OrderManager()
    msg = manager.enter("B", 10, "ZAAB", 1_0000)
    manager.sent(msg)
    with pytest.raises(OrderError):
        manager.cancel(msg.user_ref_num)
    ex = OuchExchange(SYMBOLS, clock=lambda: 0)
    for _, m in ex.handle("mm", msg):
        manager.received(m)
    with pytest.raises(OrderError):   # would cancel nothing
        manager.cancel(msg.user_ref_num, remaining=10)


def test_fill_overtaking_a_cancel_returns_the_order_to_working():
    manager = OrderManager()
    ex = OuchExchange(SYMBOLS, clock=lambda: 0)
    msg = manager.enter("B", 10, "ZAAB", 1_0000)
    manager.sent(msg)
    for _, m in ex.handle("mm", msg):
        manager.received(m)
    manager.sent(manager.cancel(msg.user_ref_num, remaining=6))
    # The street trades 5 before the cancel arrives; the exchange then has
    # nothing to cancel, so no Order Canceled will come.
    for user, m in ex.handle("street", ouch50.EnterOrder(
            user_ref_num=1, side="S", quantity=5, symbol="ZAAB", price=1_0000,
            time_in_force="0", display="Y", capacity="P", intermarket_sweep_eligibility="N",
            cross_type="N", cl_ord_id="", appendage=ouch50.Appendage())):
        if user == "mm":
            manager.received(m)
    assert ex.handle("mm", ouch50.CancelOrderRequest(user_ref_num=msg.user_ref_num, quantity=6,
                                                     appendage=ouch50.Appendage())) == []
    order = manager.order(msg.user_ref_num)
    assert order.state is OrderState.PARTIALLY_FILLED and order.open_quantity == 5
    manager.check_invariants()


def test_overfill_and_late_messages_are_refused_and_counted():
    manager = OrderManager()
    ex = OuchExchange(SYMBOLS, clock=lambda: 0)
    enter = manager.enter("B", 10, "ZAAB", 1_0000)
    manager.sent(enter)
    for _, m in ex.handle("mm", enter):
        manager.received(m)
    order = manager.order(enter.user_ref_num)
    fill = ouch50.OrderExecuted(timestamp=0, user_ref_num=order.user_ref_num, quantity=11,
                                price=1_0000, liquidity_flag="A", match_number=1,
                                appendage=ouch50.Appendage())
    manager.received(fill)
    assert order.filled == 0 and manager.counts["anomalies"] == 1
    fill.quantity = 10
    manager.received(fill)
    assert order.state is OrderState.FILLED
    manager.received(fill)   # a second fill after FILLED changes nothing
    assert order.filled == 10 and manager.counts["late_messages"] == 1
    manager.check_invariants()


def _live_order(manager, quantity=100, price=1_000_000):
    enter = manager.enter("B", quantity, "ZAAB", price)
    manager.sent(enter)
    manager.received(ouch50.OrderAccepted(
        timestamp=1, side="B", user_ref_num=enter.user_ref_num, quantity=quantity, symbol="ZAAB",
        price=price, time_in_force="0", display="Y", order_reference_number=77, capacity="P",
        intermarket_sweep_eligibility="N", cross_type="N", order_state="L", cl_ord_id="",
        appendage=ouch50.Appendage()))
    return manager.order(enter.user_ref_num)


def test_aiq_cancel_takes_shares_off_and_can_end_the_order():
    manager = OrderManager()
    order = _live_order(manager)
    aiq = dict(timestamp=2, user_ref_num=order.user_ref_num, reason="Q",
               quantity_prevented_from_trading=0, execution_price=0, liquidity_flag="A",
               aiq_strategy="O")
    manager.received(ouch50.AiqCanceled(decrement_shares=40, **aiq))
    assert (order.state, order.open_quantity) == (OrderState.LIVE, 60)
    manager.received(ouch50.AiqCanceled(decrement_shares=61, **aiq))   # more than open
    assert order.open_quantity == 60 and manager.counts["anomalies"] == 1
    manager.received(ouch50.AiqCanceled(decrement_shares=60, **aiq))
    assert order.state is OrderState.CANCELED
    manager.check_invariants()


def test_cancel_reject_returns_the_order_to_work():
    manager = OrderManager()
    order = _live_order(manager)
    manager.sent(manager.cancel(order.user_ref_num))
    assert order.state is OrderState.PENDING_CANCEL
    manager.received(ouch50.CancelReject(timestamp=3, user_ref_num=order.user_ref_num))
    assert order.state is OrderState.LIVE and order.pending_cancel_to is None
    manager.check_invariants()


def test_priority_update_reprices_and_broken_trade_voids_the_fill():
    manager = OrderManager()
    order = _live_order(manager)
    manager.received(ouch50.OrderPriorityUpdate(timestamp=4, user_ref_num=order.user_ref_num,
                                                price=990_000, display="Y",
                                                order_reference_number=78))
    assert order.price == 990_000 and manager.by_reference[78] is order
    manager.received(ouch50.OrderExecuted(timestamp=5, user_ref_num=order.user_ref_num,
                                          quantity=100, price=990_000, liquidity_flag="A",
                                          match_number=555, appendage=ouch50.Appendage()))
    assert order.state is OrderState.FILLED
    manager.received(ouch50.BrokenTrade(timestamp=6, user_ref_num=order.user_ref_num,
                                        match_number=555, reason="E", cl_ord_id=""))
    assert order.state is OrderState.CANCELED
    assert (order.filled, order.fills, order.broken) == (0, [], [(555, 100, 990_000)])
    manager.received(ouch50.BrokenTrade(timestamp=7, user_ref_num=order.user_ref_num,
                                        match_number=999, reason="E", cl_ord_id=""))
    assert manager.counts["anomalies"] == 1
    manager.check_invariants()
