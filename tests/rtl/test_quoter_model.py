"""The quoter's model: each rule on hand-made cases, the parameter checks,
and the reciprocal division the hardware uses instead of dividing."""
from __future__ import annotations

import random

import pytest

from host.quoting.records import SIDE_ASK, SIDE_BID
from rtl.quoter.model import (DEFAULT_TICKS, PRICE_MAX, RECIP_NUMERATOR, QuoterModel,
                              QuoterSettings, TickBand, check_tick_table, theo_to_qp, tick_recip)
from rtl.quoter.stream import QUOTE_BITS, pack_quote, unpack_quote
from rtl.pricer.formats import MONEY
from tests.rtl.quoting_cases import QUOTER_CASES
from tests.rtl.quoting_stimulus import QuoterScenario, random_theos, theo, theo_raw


@pytest.mark.parametrize("case", QUOTER_CASES, ids=lambda case: case.__name__)
def test_rule(case):
    case(QuoterScenario())


def test_theo_to_qp_rounds_half_up():
    assert theo_to_qp(MONEY.from_real(1)) == 10_000 << 16
    assert theo_to_qp(theo_raw(29_999)) == 29_999 << 16
    # A theo exactly half a QP unit above a whole one: raw * 10000 = 2**23 mod 2**24.
    raw = (2**19 * pow(625, -1, 2**20)) % 2**20
    assert (raw * 10_000) % 2**24 == 2**23
    assert theo_to_qp(raw) == ((raw * 10_000) >> 24) + 1
    assert theo_to_qp(-raw) == -((raw * 10_000) >> 24)


def floor_by_reciprocal(m: int, size: int, recip: int) -> int:
    """What the hardware computes for floor(m / size): a product with the
    reciprocal, then one correction."""
    estimate = (m * recip) >> 32
    return estimate + 1 if m - estimate * size >= size else estimate


def test_reciprocal_division_is_exact_for_every_tick_and_the_extreme_numerators():
    rng = random.Random(1)
    sizes = list(range(1, 1025)) + [rng.randrange(1, 1 << 16) for _ in range(2000)] + \
        [(1 << 16) - 1, 1 << 15, 500, 2500, 10_000]
    for size in sizes:
        recip = tick_recip(size)
        for m in (0, 1, size - 1, size, PRICE_MAX, PRICE_MAX - 1, PRICE_MAX - size,
                  rng.randrange(1 << 32), (PRICE_MAX // size) * size,
                  (PRICE_MAX // size) * size - 1):
            if 0 <= m <= PRICE_MAX:
                assert floor_by_reciprocal(m, size, recip) == m // size, (m, size)


def test_tick_table_checks():
    check_tick_table(DEFAULT_TICKS)
    check_tick_table((TickBand(0, 1), TickBand(10_000, 25)))
    for bad in ((TickBand(0, 100), TickBand(30_050, 500)),       # not on its own tick
                (TickBand(0, 300), TickBand(30_500, 500)),       # not on the tick below
                (TickBand(30_000, 500), TickBand(0, 100)),       # descending
                (TickBand(0, 100, 7),),                          # wrong reciprocal
                ()):
        with pytest.raises(ValueError):
            check_tick_table(bad)
    with pytest.raises(ValueError):
        tick_recip(0)
    with pytest.raises(ValueError):
        TickBand(0, 1 << 16)
    assert TickBand(0, 100).recip == RECIP_NUMERATOR // 100


@pytest.mark.parametrize("bad", [dict(half_spread=-1), dict(skew=1 << 31),
                                 dict(bid_size=1 << 32), dict(ticks=(DEFAULT_TICKS[0],) * 5)])
def test_settings_out_of_register_range_are_refused(bad):
    with pytest.raises(ValueError):
        QuoterSettings(**bad)


def test_positions_are_checked():
    model = QuoterModel()
    with pytest.raises(ValueError):
        model.set_position(64, 1)
    with pytest.raises(ValueError):
        model.set_position(0, 1 << 31)


def test_random_theos_stay_within_formats_and_grid():
    """Every word packs into the port, and every quoted price is on its
    band's grid, at or below (bid) / at or above (ask) theo -/+ spread."""
    rng = random.Random(7)
    settings = QuoterSettings(half_spread=300, skew=-5_000, bid_size=1, ask_size=1,
                              min_edge=0, requote_threshold=200)
    model = QuoterModel(settings)
    for option in range(64):
        model.set_position(option, rng.randrange(-2_000, 2_000))
    for word in model.run(random_theos(rng, 3000)):
        assert unpack_quote(pack_quote(**word)) == word
        spread = settings.half_spread << 16
        skew = settings.skew * word["position"]
        if word["sides"] & SIDE_BID:
            tick = 100 if word["bid_price"] < 30_000 else 500
            assert word["bid_price"] % tick == 0
            assert word["bid_price"] << 16 <= word["theo_qp"] - spread - skew
            assert (word["bid_price"] + tick) << 16 > word["theo_qp"] - spread - skew
        if word["sides"] & SIDE_ASK:
            assert word["ask_price"] << 16 >= word["theo_qp"] + spread - skew
            assert 1 <= word["ask_price"] <= PRICE_MAX
    assert QUOTE_BITS == 507


def test_record_of_one_theo():
    model = QuoterModel(QuoterSettings(half_spread=250, bid_size=3, ask_size=4))
    model.set_position(9, -2)
    word = model.quote(theo(9, theo_raw(12_345), underlying=42, flags=2, seq=99, msg_index=5,
                            ingress_cycle=1234, raw=True))
    assert word["sides"] == SIDE_BID | SIDE_ASK and word["requote"] == 1
    assert (word["bid_price"], word["ask_price"]) == (12_000, 12_600)
    assert (word["bid_size"], word["ask_size"], word["position"]) == (3, 4, -2)
    assert (word["underlying"], word["flags"], word["seq"], word["msg_index"],
            word["ingress_cycle"]) == (42, 2, 99, 5, 1234)
