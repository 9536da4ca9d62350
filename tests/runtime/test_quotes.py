"""Quote records into OUCH requests: the fewest requests, nothing stacked on
an unanswered order, conflation, and the trigger journaled per request.
Driven against the exchange engine directly (no sockets)."""
import numpy as np
import pytest

from host.exchange import OuchExchange
from host.gateway import OrderManager, OrderState
from host.protocols import ouch50
from host.quoting.records import KIND_CANCEL, KIND_QUOTE, SIDE_ASK, SIDE_BID, quotes_array
from host.runtime.chains import build_universe
from host.runtime.config import Chain
from host.runtime.quotes import TRIGGER, QuoteTrader, Trigger

CHAIN = Chain(underlying="ZAAB", strikes=[10.0, 11.0], expiries_days=[30], kinds=["call"],
              sigma=0.3)


class Harness:
    def __init__(self, answer=True):
        self.universe = build_universe([CHAIN], {"ZAAB": 7})
        symbols = [o.symbol for o in self.universe.options]
        self.exchange = OuchExchange(symbols, clock=lambda: 0)
        self.manager = OrderManager()
        self.sent, self.journaled, self.held = [], [], []
        self.answer = answer
        self.trader = QuoteTrader(self.universe, self.manager, self.submit, self.journal,
                                  clock=iter(range(0, 10**9, 10)).__next__)

    def submit(self, msg):
        self.sent.append(msg)
        self.manager.sent(msg)
        out = self.exchange.handle("mm", msg)
        if self.answer:
            self.deliver(out)
        else:
            self.held += out

    def deliver(self, out):
        for user, msg in out:
            if user == "mm":
                self.manager.received(msg)
                self.trader.on_message(msg, self.manager)

    def release(self):
        held, self.held = self.held, []
        self.deliver(held)

    def journal(self, kind, payload):
        self.journaled.append((kind, payload))


def quote(option_id=0, bid=(10000, 5), ask=(10500, 5), sides=SIDE_BID | SIDE_ASK, seq=100):
    return quotes_array([dict(kind=KIND_QUOTE, option_id=option_id, sides=sides,
                              bid_price=bid[0], bid_size=bid[1], ask_price=ask[0],
                              ask_size=ask[1], seq=seq, msg_index=2, ingress_cycle=40,
                              egress_cycle=61)])[0]


def test_universe_symbols_and_ids():
    universe = build_universe([CHAIN], {"ZAAB": 7})
    assert [(o.option_id, o.symbol, o.locate, o.strike) for o in universe.options] == [
        (0, "ZAABC000", 7, 10.0), (1, "ZAABC001", 7, 11.0)]


def test_enter_replace_cancel_with_fewest_requests():
    h = Harness()
    h.trader.on_record(quote())
    assert [type(m).__name__ for m in h.sent] == ["EnterOrder", "EnterOrder"]
    assert {(m.side, m.price, m.quantity, m.symbol) for m in h.sent} == {
        ("B", 10000, 5, "ZAABC000"), ("S", 10500, 5, "ZAABC000")}
    h.trader.on_record(quote())                      # same state: nothing to send
    assert len(h.sent) == 2
    h.trader.on_record(quote(bid=(10100, 5)))        # bid moves: one replace
    assert [type(m).__name__ for m in h.sent[2:]] == ["ReplaceOrderRequest"]
    assert (h.sent[2].price, h.sent[2].quantity) == (10100, 5)
    h.trader.on_record(quote(sides=SIDE_ASK))        # bid withdrawn: one cancel
    assert [type(m).__name__ for m in h.sent[3:]] == ["CancelOrderRequest"]
    cancel = quotes_array([dict(kind=KIND_CANCEL, option_id=0, reason=2, seq=101)])[0]
    h.trader.on_record(cancel)
    assert [type(m).__name__ for m in h.sent[4:]] == ["CancelOrderRequest"]
    assert all(o.state is OrderState.CANCELED for o in h.manager.unique_orders())
    h.manager.check_invariants()
    triggers = [Trigger.from_bytes(p) for k, p in h.journaled if k == TRIGGER]
    assert [t.user_ref_num for t in triggers] == [m.user_ref_num for m in h.sent]
    assert triggers[-1].seq == 101 and triggers[0].seq == 100
    assert all(t.sent_ns > t.received_ns for t in triggers)


def test_unanswered_orders_are_not_stacked_and_requotes_conflate():
    h = Harness(answer=False)
    h.trader.on_record(quote(sides=SIDE_BID))
    h.trader.on_record(quote(sides=SIDE_BID, bid=(10100, 5)))
    h.trader.on_record(quote(sides=SIDE_BID, bid=(10200, 6)))
    assert len(h.sent) == 1                          # enter still unanswered
    assert h.trader.counts["conflated"] == 1          # 10100 was never sent
    h.release()                                      # accepted: newest state goes out
    assert [type(m).__name__ for m in h.sent] == ["EnterOrder", "ReplaceOrderRequest"]
    assert (h.sent[1].price, h.sent[1].quantity) == (10200, 6)
    h.release()
    order = h.manager.order(h.sent[1].user_ref_num)
    assert (order.state, order.price, order.open_quantity) == (OrderState.LIVE, 10200, 6)


def test_unknown_option_and_bad_kind_are_counted():
    h = Harness()
    h.trader.on_record(quote(option_id=9))
    bad = quote()
    bad["kind"] = 7
    h.trader.on_record(bad)
    assert h.sent == [] and h.trader.counts["unknown_option"] == 1
    assert h.trader.counts["bad_kind"] == 1


def test_trigger_rejects_a_wrong_length():
    with pytest.raises(ValueError):
        Trigger.from_bytes(b"\0" * 5)


def test_a_records_requests_leave_in_one_batch_and_are_timed_once():
    h = Harness()
    log = []

    class Batch:
        def __enter__(self):
            log.append("open")

        def __exit__(self, *exc):
            log.append("flush")

    h.trader.batch = Batch()
    real_submit, real_journal = h.trader.submit, h.trader.journal
    h.trader.submit = lambda msg: (log.append(type(msg).__name__), real_submit(msg))
    h.trader.journal = lambda kind, payload: (log.append(kind), real_journal(kind, payload))
    h.trader.on_record(quote())
    # Both enters inside one batch; their triggers after it went out.
    assert log == ["open", "EnterOrder", "EnterOrder", "flush", TRIGGER, TRIGGER]
    assert len(h.trader.latencies_ns) == 1
    h.trader.on_record(quote())                     # nothing to send: nothing timed
    assert len(h.trader.latencies_ns) == 1
    sent = [Trigger.from_bytes(p).sent_ns for k, p in h.journaled if k == TRIGGER]
    assert sent[0] == sent[1]


def test_an_order_the_exchange_reports_is_adopted_not_doubled():
    h = Harness()
    # An order of ours the trader never sent in this life (the journal lost it).
    entered = h.manager.enter("B", 5, "ZAABC000", 10000)
    h.manager.sent(entered)
    for user, msg in h.exchange.handle("mm", entered):
        if user == "mm":
            h.manager.received(msg)
            h.trader.on_message(msg, h.manager)
    assert h.trader.counts["adopted_from_exchange"] == 1
    h.trader.on_record(quote(bid=(10100, 5), sides=SIDE_BID))
    assert [type(m).__name__ for m in h.sent] == ["ReplaceOrderRequest"]
    assert h.sent[0].orig_user_ref_num == entered.user_ref_num


# -- reading records ------------------------------------------------------------------

from hypothesis import given, settings, strategies as st   # noqa: E402

from host.quoting.records import QUOTE_DTYPE   # noqa: E402
from host.runtime.quotes import _FIELDS, _unpacker   # noqa: E402


def _by_name(record):
    return tuple(int(record[f]) if f in record.dtype.names else 0 for f in _FIELDS)


_BOUNDS = {name: (np.iinfo(QUOTE_DTYPE.fields[name][0]).min,
                  np.iinfo(QUOTE_DTYPE.fields[name][0]).max) for name in QUOTE_DTYPE.names}


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({name: st.integers(low, high) | st.sampled_from([low, high])
                              for name, (low, high) in _BOUNDS.items()}))
def test_records_read_from_their_bytes_give_the_fields(values):
    """The fabric's layout is unpacked from the record's bytes; the same
    fields in other layouts (big-endian, reordered, a field missing or not
    an integer) are read field by field; all agree with reading by name."""
    trader = Harness().trader
    layouts = [QUOTE_DTYPE, QUOTE_DTYPE.newbyteorder(">"),
               np.dtype([(n, QUOTE_DTYPE.fields[n][0]) for n in reversed(QUOTE_DTYPE.names)]),
               np.dtype([(n, QUOTE_DTYPE.fields[n][0]) for n in QUOTE_DTYPE.names
                         if n != "egress_cycle"]),
               np.dtype([(n, "<f8" if n == "msg_index" else QUOTE_DTYPE.fields[n][0])
                         for n in QUOTE_DTYPE.names])]
    # Integer layouts in one byte order are unpacked; the others are not.
    assert [_unpacker(d) is not None for d in layouts] == [True, True, True, False, False]
    for dtype in layouts:
        array = np.zeros(3, dtype=dtype)
        for name, value in values.items():
            if name in dtype.names:
                array[1][name] = value
        record = array[1]
        assert trader._read(record) == _by_name(record)
        assert trader._read(record) == _by_name(record)      # from the cached reader
    assert trader._read(quotes_array([values])[0]) == tuple(values[f] for f in _FIELDS)
