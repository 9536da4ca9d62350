"""Hand-made cases for the quoter and the risk gate, one rule each.

Each case drives a scenario (:mod:`tests.rtl.quoting_stimulus`) from reset
and asserts what the rule says on the model's output, with numbers worked
out by hand.  The model tests run each case on its own; the RTL tests run
them all in one simulation (a reset between cases) and require the Verilog
to give the same output and counters.
"""
from __future__ import annotations

from host.book.records import FLAG_DEGRADED, FLAG_NOT_TRADING, FLAG_STALE
from host.quoting.records import (KIND_CANCEL, KIND_QUOTE, REASON_BOOK, REASON_KILL,
                                  REASON_WITHDRAWN, SIDE_ASK, SIDE_BID)
from rtl.quoter.model import DEFAULT_TICKS, QuoterSettings, TickBand
from rtl.risk_gate.model import GateSettings, UnderlyingEntry
from tests.rtl.quoting_stimulus import (GateScenario, QuoterScenario, default_underlyings,
                                        quote_word, theo, theo_raw)

BOTH = SIDE_BID | SIDE_ASK


def _theo(option: int, price4: int, **kw) -> dict:
    return theo(option, theo_raw(price4), raw=True, **kw)


def _prices(words):
    return [(w["sides"], w["bid_price"], w["ask_price"]) for w in words]


# ---- quoter ----------------------------------------------------------------------
def quoter_rounding_at_tick_boundaries(sc: QuoterScenario) -> None:
    """Bids round down, asks up, to the tick of their own band: 0.01 below
    3.00, 0.05 from 3.00 up."""
    sc.configure(QuoterSettings(bid_size=1, ask_size=2))
    out = sc.theos([_theo(0, 12_345), _theo(1, 12_300), _theo(2, 29_950), _theo(3, 30_200),
                    _theo(4, 30_000), _theo(5, 29_999), _theo(6, 30_001), _theo(7, 100)])
    assert _prices(out) == [(BOTH, 12_300, 12_400), (BOTH, 12_300, 12_300),
                            (BOTH, 29_900, 30_000), (BOTH, 30_000, 30_500),
                            (BOTH, 30_000, 30_000), (BOTH, 29_900, 30_000),
                            (BOTH, 30_000, 30_500), (BOTH, 100, 100)]
    assert [(w["bid_size"], w["ask_size"]) for w in out] == [(1, 2)] * 8
    # A grid of 0.0001 below 1.00 and 0.0025 above: other boundaries, same rule.
    sc.configure(QuoterSettings(bid_size=1, ask_size=1, half_spread=1,
                                ticks=(TickBand(0, 1), TickBand(10_000, 25))))
    sc.requote_all()
    out = sc.theos([_theo(0, 9_999), _theo(1, 10_000), _theo(2, 10_024), _theo(3, 10_026)])
    assert _prices(out) == [(BOTH, 9_998, 10_000), (BOTH, 9_999, 10_025),
                            (BOTH, 10_000, 10_025), (BOTH, 10_025, 10_050)]


def quoter_spread_skew_and_edge(sc: QuoterScenario) -> None:
    """bid/ask = theo -/+ half-spread - skew * position, rounded; a side
    nearer theo than the minimum edge is not quoted (equal is quoted)."""
    skew = 2 << 16                     # 0.0002 per contract
    sc.configure(QuoterSettings(half_spread=250, skew=skew, bid_size=5, ask_size=5,
                                min_edge=500))
    sc.position(0, 100)                # -0.0200 on both sides
    sc.position(1, 300)                # -0.0600
    sc.position(2, -300)               # +0.0600
    out = sc.theos([_theo(0, 50_000), _theo(1, 50_000), _theo(2, 50_000)])
    assert _prices(out) == [(BOTH, 49_500, 50_500), (SIDE_BID, 49_000, 0),
                            (SIDE_ASK, 0, 51_000)]
    assert [w["position"] for w in out] == [100, 300, -300]
    assert sc.model.counters["ask_below_edge"] == 1 and sc.model.counters["bid_below_edge"] == 1
    sc.configure(QuoterSettings(half_spread=700, skew=skew, bid_size=0, ask_size=5,
                                min_edge=501))
    sc.requote_all()
    out = sc.theos([_theo(0, 50_000), _theo(3, 50_000)])
    # Option 0: bid 49_100 -> 49_000 but no bid size; ask 50_500 is 500
    # from theo.  Option 3 (flat): ask 50_700 -> 51_000.
    assert _prices(out) == [(0, 0, 0), (SIDE_ASK, 0, 51_000)]
    c = sc.model.counters
    assert (c["bid_zero_size"], c["bid_below_edge"], c["ask_below_edge"]) == (2, 1, 2)


def quoter_no_price_and_bad_tick(sc: QuoterScenario) -> None:
    """Prices outside 1..2**32-1, no band, or a band with a wrong
    reciprocal: the side is not quoted, counted by reason."""
    sc.configure(QuoterSettings(half_spread=250, bid_size=1, ask_size=1))
    out = sc.theos([
        _theo(0, 100),                                  # bid -0.0150
        theo(1, -5.0),                                  # both negative
        theo(2, 2**63 - 1, raw=True),                   # far above 2**32 price4
        _theo(3, 4_294_967_045),                        # ask 4294967295 + tick above max
    ])
    assert _prices(out) == [(SIDE_ASK, 0, 400), (0, 0, 0), (0, 0, 0),
                            (SIDE_BID, 4_294_966_500, 0)]
    c = sc.model.counters
    assert (c["bid_no_price"], c["ask_no_price"]) == (3, 3)
    # Band 1's reciprocal is wrong: nothing from 3.00 up; no band below 1.00.
    sc.configure(QuoterSettings(half_spread=0, bid_size=1, ask_size=1,
                                ticks=(TickBand(10_000, 100), TickBand(30_000, 500, 12_345))))
    sc.requote_all()
    out = sc.theos([_theo(0, 50_000), _theo(1, 20_000), _theo(2, 5_000)])
    assert _prices(out) == [(0, 0, 0), (BOTH, 20_000, 20_000), (0, 0, 0)]
    assert (c["bid_bad_tick"], c["ask_bad_tick"]) == (1, 1)
    assert (c["bid_no_price"], c["ask_no_price"]) == (4, 4)


def quoter_requote_threshold(sc: QuoterScenario) -> None:
    """A word requotes when a side moves by the threshold against the last
    requote (drift adds up, both directions), appears or disappears, and
    after requote_all; not otherwise."""
    sc.configure(QuoterSettings(half_spread=100, bid_size=1, ask_size=1,
                                requote_threshold=300))
    prices = [10_000, 10_200, 10_300, 10_100, 10_000, 9_800, 150, 10_000, 10_000]
    out = sc.theos([_theo(0, p) for p in prices])
    assert [w["requote"] for w in out] == [1, 0, 1, 0, 1, 0, 1, 1, 0]
    # 9_900/10_100, +200 no, +300 yes (drift from the first), -200 no, -300
    # yes, -200 no, the bid disappears (yes), it comes back (yes), same (no).
    assert _prices(out)[6] == (SIDE_ASK, 0, 300)
    # One side alone moving requotes: around 3.00 one side changes band
    # while the other stays on its tick.
    out = sc.theos([_theo(1, p) for p in (30_600, 30_500, 29_900, 29_950, 29_960)])
    assert _prices(out) == [(BOTH, 30_500, 31_000), (BOTH, 30_000, 31_000),
                            (BOTH, 29_800, 30_000), (BOTH, 29_800, 30_500),
                            (BOTH, 29_800, 30_500)]
    assert [w["requote"] for w in out] == [1, 1, 1, 1, 0]
    sc.configure(QuoterSettings(half_spread=100, bid_size=1, ask_size=1, requote_threshold=0))
    out = sc.theos([_theo(0, 10_000), _theo(0, 10_100), _theo(0, 10_100)])
    assert [w["requote"] for w in out] == [0, 1, 0]       # 0: any move, never none
    sc.requote_all()
    out = sc.theos([_theo(0, 10_100), _theo(0, 10_100)])
    assert [w["requote"] for w in out] == [1, 0]
    assert sc.model.counters["requotes"] == 11


def quoter_bad_option(sc: QuoterScenario) -> None:
    """Options outside the position table give no word and are counted;
    the next good one is quoted."""
    sc.configure(QuoterSettings(bid_size=1, ask_size=1))
    out = sc.theos([_theo(64, 10_000), _theo(0xFFFF, 10_000), _theo(63, 10_000)])
    assert [w["option_id"] for w in out] == [63]
    assert sc.model.counters["bad_option"] == 2 and sc.model.counters["theos"] == 3


QUOTER_CASES = (quoter_rounding_at_tick_boundaries, quoter_spread_skew_and_edge,
                quoter_no_price_and_bad_tick, quoter_requote_threshold, quoter_bad_option)


# ---- risk gate -------------------------------------------------------------------
OPEN = GateSettings(kill=False, through_limit=1_000, min_price=100, max_price=1_000_000,
                    rate_count=2, rate_window=1_000, underlyings=default_underlyings())


def _kinds(records):
    return [(r["kind"], r["reason"], r["option_id"]) for r in records]


def gate_kill(sc: GateScenario) -> None:
    """Killed at reset; a kill pulls every live quote (lowest option first)
    and refuses updates; after it each option comes back with its next
    word, requote or not."""
    assert sc.words([quote_word(0, 9_900, 10_100, 1.0)]) == []
    assert sc.model.counters["killed"] == 1
    sc.configure(OPEN)
    out = sc.words([quote_word(0, 9_900, 10_100, 1.0, requote=0, seq=77, msg_index=3,
                               ingress_cycle=5, position=-4)])
    assert len(out) == 1 and out[0] == {
        "kind": KIND_QUOTE, "reason": 0, "sides": BOTH, "flags": 0, "option_id": 0,
        "underlying": 7, "bid_price": 9_900, "ask_price": 10_100, "bid_size": 10,
        "ask_size": 10, "theo": out[0]["theo"], "delta": out[0]["delta"], "seq": 77,
        "msg_index": 3, "position": -4, "ingress_cycle": 5}
    sc.words([quote_word(o, 9_900, 10_100, 1.0, underlying=8) for o in (5, 3, 1)])
    out = sc.change(kill=True)
    assert _kinds(out) == [(KIND_CANCEL, REASON_KILL, o) for o in (0, 1, 3, 5)]
    assert [(r["underlying"], r["seq"], r["flags"]) for r in out] == \
        [(7, 0, 0)] + [(8, 0, 0)] * 3
    assert sc.words([quote_word(3, 9_900, 10_100, 1.0, underlying=8)]) == []
    sc.change(kill=False)
    out = sc.words([quote_word(o, 9_800, 10_000, 1.0, requote=0, underlying=8)
                    for o in (3, 1)])
    assert _kinds(out) == [(KIND_QUOTE, 0, 3), (KIND_QUOTE, 0, 1)]
    assert sc.model.counters["cancel_kill"] == 4 and sc.model.counters["killed"] == 2


def gate_side_enables(sc: GateScenario) -> None:
    """A disabled side is removed (counted per side); enabling it again
    brings it back with the next word; no side left pulls the quote."""
    sc.configure(OPEN)                                  # locate 9: bids only
    out = sc.words([quote_word(2, 9_900, 10_100, 1.0, underlying=9),
                    quote_word(2, 9_900, 10_100, 1.0, underlying=9, requote=0)])
    assert [(r["sides"], r["bid_price"], r["ask_price"], r["ask_size"]) for r in out] == \
        [(SIDE_BID, 9_900, 0, 0)]
    assert sc.model.counters["side_disabled"] == 1
    table = list(OPEN.underlyings)
    table[2] = UnderlyingEntry(9, True, True, True)
    sc.change(underlyings=tuple(table))
    out = sc.words([quote_word(2, 9_900, 10_100, 1.0, underlying=9, requote=0)])
    assert [r["sides"] for r in out] == [BOTH]
    table[2] = UnderlyingEntry(9, False, False, True)
    sc.change(underlyings=tuple(table))
    out = sc.words([quote_word(2, 9_900, 10_100, 1.0, underlying=9, requote=0)])
    assert _kinds(out) == [(KIND_CANCEL, REASON_WITHDRAWN, 2)]
    assert sc.model.counters["side_disabled"] == 3


def gate_unknown_underlying(sc: GateScenario) -> None:
    """A locate the table lacks quotes nothing; dropping a live quote's
    entry pulls it with its next word."""
    sc.configure(OPEN)
    assert sc.words([quote_word(4, 9_900, 10_100, 1.0, underlying=12)]) == []
    assert sc.model.counters["unknown_underlying"] == 2
    assert len(sc.words([quote_word(6, 9_900, 10_100, 1.0)])) == 1
    table = list(OPEN.underlyings)
    table[0] = UnderlyingEntry(7, True, True, False)
    sc.change(underlyings=tuple(table))
    out = sc.words([quote_word(6, 9_900, 10_100, 1.0, requote=0)])
    assert _kinds(out) == [(KIND_CANCEL, REASON_WITHDRAWN, 6)]
    assert sc.model.counters["unknown_underlying"] == 4


def gate_price_band(sc: GateScenario) -> None:
    """Through theo by more than the limit, or outside [min, max]: the side
    is removed; exactly at a limit it stays."""
    sc.configure(OPEN)                                  # theo 5.0000, limit 0.1000
    out = sc.words([
        quote_word(0, 51_000, 49_000, 5.0),             # at both limits: kept
        quote_word(1, 51_001, 48_999, 5.0),             # both through
        quote_word(2, 100, 1_000_000, 5.0),             # at min and max: kept
        quote_word(3, 99, 1_000_001, 5.0),              # outside
        quote_word(4, 99, 60_000, 5.0),                 # bid outside only
    ])
    assert [(r["kind"], r["option_id"], r["sides"]) for r in out] == \
        [(KIND_QUOTE, 0, BOTH), (KIND_QUOTE, 2, BOTH), (KIND_QUOTE, 4, SIDE_ASK)]
    c = sc.model.counters
    assert (c["through_theo"], c["outside_range"]) == (2, 3)


def gate_rate_limit(sc: GateScenario) -> None:
    """At most rate_count updates per option per window of ingress cycles;
    a refused update goes out once a new window starts; cancels are never
    limited."""
    sc.configure(OPEN)                                  # 2 per 1000 cycles
    q = [quote_word(0, 9_900 - 100 * k, 10_100, 1.0, ingress_cycle=t)
         for k, t in enumerate((0, 10, 20, 500))]
    out = sc.words(q)
    assert [r["ingress_cycle"] for r in out] == [0, 10]
    assert sc.model.counters["rate_limited"] == 2
    out = sc.words([quote_word(0, 9_500, 10_100, 1.0, requote=0, ingress_cycle=1_000),
                    quote_word(0, 9_400, 10_100, 1.0, ingress_cycle=1_010),
                    quote_word(0, 9_300, 10_100, 1.0, ingress_cycle=1_999)])
    assert [(r["bid_price"], r["ingress_cycle"]) for r in out] == [(9_500, 1_000), (9_400, 1_010)]
    # Windows reach across the 32-bit wrap of the stamps.
    out = sc.words([quote_word(1, 9_900, 10_100, 1.0, ingress_cycle=(1 << 32) - 100),
                    quote_word(1, 9_800, 10_100, 1.0, ingress_cycle=(1 << 32) - 50),
                    quote_word(1, 9_700, 10_100, 1.0, ingress_cycle=800),
                    quote_word(1, 9_600, 10_100, 1.0, ingress_cycle=900)])
    assert [r["ingress_cycle"] for r in out] == [(1 << 32) - 100, (1 << 32) - 50, 900]
    out = sc.change(kill=True)
    assert _kinds(out) == [(KIND_CANCEL, REASON_KILL, 0), (KIND_CANCEL, REASON_KILL, 1)]
    assert sc.model.counters["rate_limited"] == 4


def gate_stale_pull_and_recovery(sc: GateScenario) -> None:
    """A stale or degraded book pulls every live quote of its underlying
    once and refuses updates until a clean book; other underlyings go on."""
    sc.configure(OPEN)
    sc.words([quote_word(o, 9_900, 10_100, 1.0) for o in (4, 0, 2)] +
             [quote_word(1, 9_900, 10_100, 1.0, underlying=8)])
    out = sc.words([quote_word(6, 9_900, 10_100, 1.0, flags=FLAG_STALE, seq=555,
                               msg_index=9, ingress_cycle=4_000)])
    assert _kinds(out) == [(KIND_CANCEL, REASON_BOOK, o) for o in (0, 2, 4)]
    assert [(r["flags"], r["seq"], r["msg_index"], r["ingress_cycle"], r["underlying"])
            for r in out] == [(FLAG_STALE, 555, 9, 4_000, 7)] * 3
    assert sc.model.pulled_mask() == 0b1
    out = sc.words([quote_word(0, 9_900, 10_100, 1.0, flags=FLAG_STALE),
                    quote_word(2, 9_900, 10_100, 1.0, flags=FLAG_DEGRADED, requote=0),
                    quote_word(1, 9_800, 10_100, 1.0, underlying=8, ingress_cycle=5_000)])
    assert _kinds(out) == [(KIND_QUOTE, 0, 1)]
    c = sc.model.counters
    assert (c["stale"], c["degraded"], c["book_pulls"], c["cancel_book"]) == (2, 1, 1, 3)
    # Recovery: the first clean word clears the pull; each option returns
    # with its next word even without a requote.
    out = sc.words([quote_word(2, 9_900, 10_100, 1.0, requote=0, ingress_cycle=9_000),
                    quote_word(4, 9_900, 10_100, 1.0, requote=0, ingress_cycle=9_000)])
    assert _kinds(out) == [(KIND_QUOTE, 0, 2), (KIND_QUOTE, 0, 4)]
    assert sc.model.pulled_mask() == 0 and c["book_recoveries"] == 1
    # Not trading is not in the default mask; added to it, it pulls too.
    assert len(sc.words([quote_word(3, 9_900, 10_100, 1.0, flags=FLAG_NOT_TRADING)])) == 1
    sc.change(pull_mask=FLAG_STALE | FLAG_DEGRADED | FLAG_NOT_TRADING)
    out = sc.words([quote_word(3, 9_800, 10_100, 1.0, flags=FLAG_NOT_TRADING,
                               ingress_cycle=9_100)])
    assert _kinds(out) == [(KIND_CANCEL, REASON_BOOK, o) for o in (2, 3, 4)]
    assert c["book_flag"] == 1 and sc.model.live_options() == 1


def gate_withdrawn_and_idle_words(sc: GateScenario) -> None:
    """A word with no side pulls a live quote once; a word that changes
    nothing sends nothing; options outside the table are counted."""
    sc.configure(OPEN)
    sc.words([quote_word(0, 9_900, 10_100, 1.0)])
    out = sc.words([quote_word(0, 9_900, 10_100, 1.0, requote=0),
                    quote_word(0, None, None, 1.0),
                    quote_word(0, None, None, 1.0),
                    quote_word(64, 9_900, 10_100, 1.0),
                    quote_word(0xFFFF, 9_900, 10_100, 1.0)])
    assert _kinds(out) == [(KIND_CANCEL, REASON_WITHDRAWN, 0)]
    assert sc.model.counters["bad_option"] == 2 and sc.model.counters["cancel_withdrawn"] == 1
    assert sc.model.counters["words"] == 6


GATE_CASES = (gate_kill, gate_side_enables, gate_unknown_underlying, gate_price_band,
              gate_rate_limit, gate_stale_pull_and_recovery, gate_withdrawn_and_idle_words)

__all__ = ["QUOTER_CASES", "GATE_CASES", "DEFAULT_TICKS"]
