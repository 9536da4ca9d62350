"""The risk gate's model: each rule on hand-made cases, the register
checks, and the record layout it fills."""
from __future__ import annotations

import random

import pytest

from host.quoting.records import (KIND_CANCEL, KIND_QUOTE, QUOTE_DTYPE, describe,
                                  parse_records, quotes_array)
from rtl.risk_gate.model import GateSettings, RiskGateModel, UnderlyingEntry
from tests.rtl.quoting_cases import GATE_CASES, OPEN
from tests.rtl.quoting_stimulus import GateScenario, random_quote_words


@pytest.mark.parametrize("case", GATE_CASES, ids=lambda case: case.__name__)
def test_rule(case):
    case(GateScenario())


def test_record_layout_is_aligned_and_whole_beats():
    assert QUOTE_DTYPE.itemsize == 64
    for name in QUOTE_DTYPE.names:
        base, offset = QUOTE_DTYPE.fields[name][:2]
        assert offset % base.itemsize == 0, name
        assert offset // 8 == (offset + base.itemsize - 1) // 8, f"{name} splits a beat"
    records = quotes_array([{"kind": KIND_QUOTE, "sides": 3, "bid_price": 12_300,
                             "ask_price": 12_400, "bid_size": 1, "ask_size": 2,
                             "option_id": 5, "underlying": 7}])
    again = parse_records(records.tobytes())
    assert again.tobytes() == records.tobytes()
    assert describe(again[0]) == "quote option 5 (locate 7): bid 1 @ 1.2300 / ask 2 @ 1.2400"
    with pytest.raises(ValueError):
        parse_records(b"\x00" * 63)
    with pytest.raises(ValueError):
        quotes_array([{"nonsense": 1}])


def test_register_ranges_are_checked():
    for bad in (dict(pull_mask=0x100), dict(rate_count=256), dict(max_price=1 << 32),
                dict(underlyings=(UnderlyingEntry(),) * 17)):
        with pytest.raises(ValueError):
            GateSettings(**bad)
    with pytest.raises(ValueError):
        UnderlyingEntry(locate=1 << 16)


def test_random_words_keep_the_invariants():
    """On random words: cancels only for live options, quotes only of
    allowed sides inside the band, never more than rate_count quotes per
    option per window, and nothing at all while killed."""
    rng = random.Random(11)
    model = RiskGateModel(OPEN)
    windows: dict[int, list[int]] = {}
    live: set[int] = set()
    for word in random_quote_words(rng, 4000, underlyings=(7, 8, 9, 11, 12)):
        for record in model.process(word):
            option = record["option_id"]
            if record["kind"] == KIND_CANCEL:
                assert option in live
                live.discard(option)
                continue
            live.add(option)
            assert record["sides"]
            for side, price in ((1, record["bid_price"]), (2, record["ask_price"])):
                if record["sides"] & side:
                    assert OPEN.min_price <= price <= OPEN.max_price
                else:
                    assert price == 0
            # Fixed windows: any stretch of rate_window cycles holds at most
            # two windows' worth.
            t = record["ingress_cycle"]
            recent = [s for s in windows.get(option, []) if (t - s) % (1 << 32) < OPEN.rate_window]
            assert len(recent) < 2 * OPEN.rate_count
            windows[option] = recent + [t]
    assert live == {o for o, st in enumerate(model.state) if st.live}
    assert model.counters["quotes"] > 500 and model.counters["rate_limited"] > 0
    assert len(quotes_array([])) == 0
