"""Exchange engine rules beyond plain matching: order entry switches,
throttles, halts (Cancel Pending / Cancel Reject), self-match prevention,
broken trades, cancel-on-disconnect, and trading against the external market
(a BBO per symbol, or the golden ITCH book)."""
import pytest

from host.book.reference import ReferenceBook
from host.exchange import ItchMarket, OuchExchange, PortSettings
from host.protocols import itch50, ouch50
from host.protocols.ouch50 import Appendage
from tests.host.test_exchange import enter, types


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ex(clock):
    return OuchExchange({"ZAAB", "ZAAC"}, clock=lambda: 7, monotonic=clock)


def opt_enter(ref, side="B", qty=100, price=100_0000, **options):
    msg = enter(ref, side, qty, price=price)
    msg.appendage = Appendage(options)
    return msg


def executions(out, user=None):
    return [(u, m.quantity, m.price, m.liquidity_flag) for u, m in out
            if isinstance(m, ouch50.OrderExecuted) and (user is None or u == user)]


def roundtrip(out):
    """Every outbound message encodes and decodes back to itself."""
    for _, msg in out:
        assert ouch50.decode_outbound(msg.encode()) == msg


# -- order entry switches ---------------------------------------------------------

def test_disable_and_enable_order_entry(ex):
    ex.configure_port("u", PortSettings(firm="ZMMF"))
    ex.handle("u", enter(1))
    out = ex.handle("u", ouch50.DisableOrderEntryRequest(user_ref_num=2, firm="",
                                                         appendage=Appendage()))
    assert types(out) == [("u", "DisableOrderEntryResponse")]
    assert (out[0][1].user_ref_num, out[0][1].firm) == (2, "")
    roundtrip(out)
    rejected = ex.handle("u", enter(3))
    assert rejected[0][1].reason == 0x0C
    # Resting orders stay, and can still be canceled.
    assert list(ex.ports["u"].live) == [1]
    assert types(ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=0))) == [
        ("u", "OrderCanceled")]
    out = ex.handle("u", ouch50.EnableOrderEntryRequest(user_ref_num=4, firm="ZMMF",
                                                        appendage=Appendage()))
    assert types(out) == [("u", "EnableOrderEntryResponse")] and out[0][1].firm == "ZMMF"
    assert types(ex.handle("u", enter(5))) == [("u", "OrderAccepted")]
    # A retransmitted switch (same UserRefNum) is ignored.
    assert ex.handle("u", ouch50.DisableOrderEntryRequest(user_ref_num=4, firm="",
                                                          appendage=Appendage())) == []


def test_firms_a_port_may_use(ex):
    ex.configure_port("u", PortSettings(firm="ZMMF", firms=frozenset({"ZMMG"})))
    assert types(ex.handle("u", opt_enter(1, firm="ZMMG"))) == [("u", "OrderAccepted")]
    assert ex.handle("u", opt_enter(2, firm="ELSE"))[0][1].reason == 0x0C
    out = ex.handle("u", ouch50.DisableOrderEntryRequest(user_ref_num=3, firm="ELSE",
                                                         appendage=Appendage()))
    assert out[0][1].reason == 0x0C
    # Disabling one firm leaves the other one trading.
    ex.handle("u", ouch50.DisableOrderEntryRequest(user_ref_num=4, firm="ZMMG",
                                                   appendage=Appendage()))
    assert ex.handle("u", opt_enter(5, firm="ZMMG"))[0][1].reason == 0x0C
    assert types(ex.handle("u", enter(6))) == [("u", "OrderAccepted")]


# -- throttle ---------------------------------------------------------------------

def test_throttle_rejects_above_the_rate_and_never_throttles_cancels(clock):
    ex = OuchExchange(clock=lambda: 0, monotonic=clock, throttle=3)
    got = [ex.handle("u", enter(ref))[0][1] for ref in (1, 2, 3, 4)]
    assert [type(m).__name__ for m in got] == ["OrderAccepted"] * 3 + ["OrderRejected"]
    assert got[3].reason == 0x29 and got[3].user_ref_num == 4
    # A replace is an order too.
    out = ex.handle("u", ouch50.ReplaceOrderRequest(
        orig_user_ref_num=1, user_ref_num=5, quantity=10, price=99_0000, time_in_force="0",
        display="Y", intermarket_sweep_eligibility="N", cl_ord_id="", appendage=Appendage()))
    assert out[0][1].reason == 0x29 and 1 in ex.ports["u"].live
    assert types(ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=2, quantity=0))) == [
        ("u", "OrderCanceled")]
    # Other ports have their own budget.
    assert types(ex.handle("v", enter(1))) == [("v", "OrderAccepted")]
    clock.now += 0.999
    assert ex.handle("u", enter(6))[0][1].reason == 0x29
    clock.now += 0.002   # the first three are more than a second old now
    assert types(ex.handle("u", enter(7))) == [("u", "OrderAccepted")]
    assert ex.counts["throttled"] == 3


def test_per_port_throttle_overrides_the_default(clock):
    ex = OuchExchange(clock=lambda: 0, monotonic=clock, throttle=100)
    ex.configure_port("slow", PortSettings(throttle=1))
    assert types(ex.handle("slow", enter(1))) == [("slow", "OrderAccepted")]
    assert ex.handle("slow", enter(2))[0][1].reason == 0x29
    with pytest.raises(ValueError):
        OuchExchange(throttle=0)


# -- halts --------------------------------------------------------------------------

def test_halt_holds_cancels_until_resume(ex):
    ex.handle("u", enter(1, qty=300))
    ex.handle("u", enter(2, qty=300, symbol="ZAAC"))
    ex.halt("ZAAB")
    out = ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=0))
    assert types(out) == [("u", "CancelPending")] and out[0][1].user_ref_num == 1
    roundtrip(out)
    assert ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=0)) == []
    assert types(ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=1, quantity=100))) == [
        ("u", "CancelReject")]
    assert types(ex.handle("u", ouch50.ModifyOrderRequest(user_ref_num=1, side="B",
                                                           quantity=50))) == [("u", "CancelReject")]
    assert ex.handle("u", enter(3))[0][1].reason == 0x07
    out = ex.handle("u", ouch50.ReplaceOrderRequest(
        orig_user_ref_num=1, user_ref_num=4, quantity=10, price=99_0000, time_in_force="0",
        display="Y", intermarket_sweep_eligibility="N", cl_ord_id="", appendage=Appendage()))
    assert out[0][1].reason == 0x15   # its cancel is pending
    # Other symbols trade on.
    assert types(ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=2, quantity=0))) == [
        ("u", "OrderCanceled")]
    out = ex.resume("ZAAB")
    assert types(out) == [("u", "OrderCanceled")]
    assert (out[0][1].user_ref_num, out[0][1].quantity, out[0][1].reason) == (1, 300, "U")
    assert ex.ports["u"].live == {}


def test_cancel_on_disconnect_cancels_everything_and_holds_halted(ex):
    for ref, sym in ((1, "ZAAB"), (2, "ZAAC"), (3, "ZAAB")):
        ex.handle("u", enter(ref, symbol=sym))
    ex.handle("v", enter(1))
    ex.halt("ZAAC")
    out = ex.disconnected("u")
    assert sorted((type(m).__name__, m.user_ref_num) for _, m in out) == [
        ("CancelPending", 2), ("OrderCanceled", 1), ("OrderCanceled", 3)]
    assert all(m.reason == "Z" for _, m in out if isinstance(m, ouch50.OrderCanceled))
    assert list(ex.ports["v"].live) == [1]
    assert [m.user_ref_num for _, m in ex.resume("ZAAC")] == [2]


# -- self-match prevention ------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["O", "W", "Y", "D"])
def test_self_match_prevention(ex, strategy):
    ex.handle("u", enter(1, "S", 100, price=100_0000))
    out = ex.handle("u", opt_enter(2, "B", 150, price=100_0000, aiq_strategy=strategy))
    roundtrip(out)
    assert executions(out) == []
    after = out[1:]
    if strategy == "O":   # the resting order goes, the new one rests
        assert [(type(m).__name__, m.user_ref_num, m.reason) for _, m in after] == [
            ("OrderCanceled", 1, "Q")]
        assert list(ex.ports["u"].live) == [2] and ex.ports["u"].live[2].open_quantity == 150
    elif strategy == "W":   # the new one goes
        assert [(type(m).__name__, m.user_ref_num, m.quantity) for _, m in after] == [
            ("OrderCanceled", 2, 150)]
        assert list(ex.ports["u"].live) == [1]
    else:   # both decrement by the overlap
        kind = "OrderCanceled" if strategy == "Y" else "AiqCanceled"
        assert [(type(m).__name__, m.user_ref_num) for _, m in after] == [(kind, 1), (kind, 2)]
        if strategy == "D":
            maker, taker = after[0][1], after[1][1]
            assert maker.decrement_shares == taker.quantity_prevented_from_trading == 100
            assert (maker.liquidity_flag, taker.liquidity_flag) == ("A", "R")
            assert maker.execution_price == 100_0000 and taker.aiq_strategy == "D"
        assert list(ex.ports["u"].live) == [2] and ex.ports["u"].live[2].open_quantity == 50


def test_self_match_only_within_a_firm_and_when_asked(ex):
    ex.handle("u", enter(1, "S", 100, price=100_0000))
    out = ex.handle("u", enter(2, "B", 100, price=100_0000))   # no AIQ strategy
    assert executions(out) == [("u", 100, 100_0000, "R"), ("u", 100, 100_0000, "A")]
    ex.handle("v", enter(1, "S", 100, price=100_0000))
    out = ex.handle("u", opt_enter(3, "B", 100, price=100_0000, aiq_strategy="W"))
    assert executions(out, "v") == [("v", 100, 100_0000, "A")]
    assert ex.handle("u", opt_enter(4, aiq_strategy="X"))[0][1].reason == 0x40


# -- broken trades --------------------------------------------------------------------

def test_break_trade_tells_both_parties_once(ex):
    ex.handle("a", enter(1, "S", 100, price=100_0000))
    out = ex.handle("b", enter(1, "B", 100, price=100_0000))
    match = out[1][1].match_number
    out = ex.break_trade(match, "E")
    assert sorted((u, m.user_ref_num, m.reason, m.cl_ord_id) for u, m in out) == [
        ("a", 1, "E", "C1"), ("b", 1, "E", "C1")]
    assert all(m.match_number == match for _, m in out)
    roundtrip(out)
    assert ex.break_trade(match) == [] and ex.counts["break_unknown_match"] == 1
    with pytest.raises(ValueError):
        ex.break_trade(match, "?")


# -- the external market: a BBO per symbol --------------------------------------------

def test_order_crossing_the_market_fills_at_market_price_against_displayed_size(ex):
    assert ex.set_market("ZAAB", 99_0000, 300, 100_5000, 200) == []
    out = ex.handle("u", enter(1, "B", 500, price=101_0000))
    assert types(out) == [("u", "OrderAccepted"), ("u", "OrderExecuted")]
    assert executions(out) == [("u", 200, 100_5000, "R")]
    assert ex.ports["u"].live[1].open_quantity == 300   # the rest rests at 101
    # The displayed 200 are taken: nothing more there until the quote changes.
    assert executions(ex.handle("w", enter(1, "B", 10, price=100_5000))) == []
    # A sell down to the market bid: our bids first, best price and oldest
    # first, then the market's displayed bid for the rest.
    out = ex.handle("s", enter(1, "S", 400, price=99_0000))
    assert executions(out) == [("s", 300, 101_0000, "R"), ("u", 300, 101_0000, "A"),
                               ("s", 10, 100_5000, "R"), ("w", 10, 100_5000, "A"),
                               ("s", 90, 99_0000, "R")]
    assert ex.ports["s"].live == {} and ex.ports["w"].live == {}


def test_book_first_at_equal_price_then_market_levels(ex):
    ex.set_market("ZAAB", 0, 0, 100_0000, 100)
    ex.handle("maker", enter(1, "S", 50, price=100_0000))
    out = ex.handle("u", enter(1, "B", 120, price=100_0000, tif="3"))
    assert executions(out) == [("u", 50, 100_0000, "R"), ("maker", 50, 100_0000, "A"),
                               ("u", 70, 100_0000, "R")]
    assert types(out)[-1] == ("u", "OrderExecuted")   # fully filled, nothing to cancel
    # A better external price beats a worse resting one.
    ex.set_market("ZAAB", 0, 0, 99_0000, 10)
    ex.handle("maker", enter(2, "S", 50, price=99_5000))
    out = ex.handle("u", enter(2, "B", 30, price=100_0000, tif="3"))
    assert executions(out) == [("u", 10, 99_0000, "R"), ("u", 20, 99_5000, "R"),
                               ("maker", 20, 99_5000, "A")]


def test_market_moving_through_a_resting_quote_fills_it_at_its_price(ex):
    ex.handle("u", enter(1, "B", 100, price=100_0000))
    ex.handle("u", enter(2, "B", 100, price=99_0000))
    ex.handle("u", enter(3, "S", 100, price=102_0000))
    out = ex.set_market("ZAAB", 98_0000, 100, 98_5000, 150)
    roundtrip(out)
    # Best bid first and completely, then the next one with what is left.
    assert executions(out) == [("u", 100, 100_0000, "A"), ("u", 50, 99_0000, "A")]
    assert ex.ports["u"].live[2].open_quantity == 50
    assert executions(ex.set_market("ZAAB", 102_5000, 1000, 103_0000, 10)) == [
        ("u", 100, 102_0000, "A")]
    assert sorted(ex.ports["u"].live) == [2]
    with pytest.raises(ValueError):
        ex.set_market("ZAAB", 100_0000, 0, 0, 0)


def test_midpoint_peg_follows_the_market_with_priority_updates(ex):
    assert ex.handle("u", opt_enter(1, price=101_0000, price_type="M"))[0][1].reason == 0x01
    assert ex.handle("u", opt_enter(2, price_type="P"))[0][1].reason == 0x05
    ex.set_market("ZAAB", 100_0000, 100, 100_0005, 100)
    out = ex.handle("u", opt_enter(3, "B", 100, price=101_0000, price_type="M"))
    accepted = out[0][1]
    assert (accepted.price, accepted.display) == (100_0002, "N")   # mid rounded down for a buy
    out = ex.handle("s", opt_enter(1, "S", 100, price=90_0000, price_type="M"))
    assert out[0][1].price == 100_0003 and executions(out) == []   # rounded up for a sell
    out = ex.set_market("ZAAB", 100_2000, 100, 100_4000, 100)
    update = [m for u, m in out if u == "u"][0]
    assert isinstance(update, ouch50.OrderPriorityUpdate)
    assert update.price == 100_3000 and update.order_reference_number > accepted.order_reference_number
    roundtrip(out)
    # Both pegs moved to 100.30 together and then trade there.
    assert executions(out) == [("u", 100, 100_3000, "R"), ("s", 100, 100_3000, "A")]
    # A quote change that leaves the midpoint alone keeps the peg's priority.
    ex.handle("u", opt_enter(4, "B", 100, price=101_0000, price_type="M"))
    assert ex.set_market("ZAAB", 100_2000, 900, 100_4000, 50) == []
    # A peg never goes beyond its limit.
    out = ex.handle("u", opt_enter(5, "B", 10, price=99_0000, price_type="M"))
    assert out[0][1].price == 99_0000


# -- the external market: the golden ITCH book ----------------------------------------

def itch(cls, **fields):
    base = dict(stock_locate=fields.pop("stock_locate", 1), tracking_number=0, timestamp=1)
    return cls(**base, **fields)


def directory(locate, stock):
    return itch(itch50.StockDirectory, stock_locate=locate, stock=stock, market_category="Q",
                financial_status_indicator="N", round_lot_size=100, round_lots_only="N",
                issue_classification="C", issue_sub_type="Z", authenticity="P",
                short_sale_threshold_indicator="N", ipo_flag="N",
                luld_reference_price_tier="1", etp_flag="N", etp_leverage_factor=0,
                inverse_indicator="N")


def add(ref, side, shares, price, locate=1):
    return itch(itch50.AddOrder, stock_locate=locate, order_reference_number=ref,
                buy_sell_indicator=side, shares=shares, stock="ZAAB", price=price)


def test_order_crossing_the_itch_book_walks_its_levels():
    market = ItchMarket(ReferenceBook())
    ex = OuchExchange(clock=lambda: 0, market=market)
    for msg in (directory(1, "ZAAB"), add(1, "S", 100, 100_0000), add(2, "S", 200, 100_1000),
                add(3, "S", 500, 100_3000), add(4, "B", 300, 99_9000)):
        market.apply(msg)
    out = ex.handle("u", enter(1, "B", 250, price=100_2000))
    assert executions(out) == [("u", 100, 100_0000, "R"), ("u", 150, 100_1000, "R")]
    assert ex.handle("u", enter(2, "B", 100, symbol="NOPE", price=100_2000))[1:] == []
    # The feed cancels part of the 100.10 level: its size is new, all of it available.
    market.apply(itch(itch50.OrderCancel, order_reference_number=2, canceled_shares=20))
    out = ex.handle("u", enter(3, "B", 1000, price=100_1000, tif="3"))
    assert executions(out) == [("u", 180, 100_1000, "R")]
    # Halted by the feed: no orders, cancels held.
    ex.handle("u", enter(4, "S", 10, price=101_0000))
    market.apply(itch(itch50.StockTradingAction, stock="ZAAB", trading_state="H",
                      reserved=" ", reason="T1"))
    assert ex.handle("u", enter(5, price=90_0000))[0][1].reason == 0x07
    assert types(ex.handle("u", ouch50.CancelOrderRequest(user_ref_num=4, quantity=0))) == [
        ("u", "CancelPending")]
    market.apply(itch(itch50.StockTradingAction, stock="ZAAB", trading_state="T",
                      reserved=" ", reason=""))
    assert [(type(m).__name__, m.user_ref_num) for _, m in ex.market_changed("ZAAB")] == [
        ("OrderCanceled", 4)]
    # Bytes that are not ITCH are counted, not applied.
    assert market.apply_raw(b"A\x00") is None and market.decode_errors == 1


def test_itch_capture_loads_as_a_market():
    from host.exchange.market import iter_capture_batches

    market = ItchMarket()
    touched = set()
    for batch in iter_capture_batches("captures/day-small.itch"):
        touched |= market.process_batch(batch)
    assert touched and touched <= set(market.symbols())
    quotes = {sym: market.quote(sym) for sym in touched}
    assert any(q is not None and q.two_sided for q in quotes.values())
    for sym, q in quotes.items():
        bids, asks = market.book.top(market._locate(sym))
        assert (q.bid if bids else 0) == (bids[0][0] if bids else 0)
        assert (q.ask if asks else 0) == (asks[0][0] if asks else 0)
