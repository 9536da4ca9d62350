"""Pre-trade check throughput: how many requests per second the risk engine
judges, with a book of working orders and positions of realistic size.

``python -m host.risk.bench [--requests N] [--chain K] [--working W]`` prints
JSON: requests judged per second for enters (every check runs and passes),
replaces and cancels, on one underlying with a chain of K options, W working
orders spread over them and a position in each.  Measured in-process, no
network: this is the cost the risk engine adds to each send.  The same
requests are judged a second time with the fast path off (``checks_only``:
the straightforward checks alone) on an identical book, and the ratios of
the two rates are given for enters and replaces (``*_fast_path_speedup``).
"""
from __future__ import annotations

import argparse
import json
import time

from host.gateway.orders import OrderManager, OrderState
from host.positions import Fill, Instrument, Instruments, Marks, PositionBook
from host.pricing.params import OptionSpec
from host.risk.engine import RiskEngine
from host.risk.limits import RiskLimits

PRICE_SCALE = 10_000


def _setup(chain: int, working: int):
    strikes = [80.0 + 40.0 * i / max(chain - 1, 1) for i in range(chain)]
    instruments = Instruments([Instrument(f"BNCH{i:04d}", "BNCH",
                                          OptionSpec(1, i % 2 == 1, k, 0.3, 0.25, 0.04, 0.01))
                               for i, k in enumerate(strikes)] + [Instrument.stock("BNCH")])
    marks = Marks(instruments)
    marks.set_bbo("BNCH", 100_0000, 100_0200)
    marks.reprice("BNCH")
    book = PositionBook(instruments)
    manager = OrderManager()
    # Loose limits: the point is to run every check, not to trip one.
    limits = RiskLimits.model_validate({
        "max_order_quantity": 1_000, "max_option_position": 1_000_000,
        "max_underlying_contracts": 10_000_000, "max_delta": 1e12, "max_gamma": 1e12,
        "max_vega": 1e15, "max_total_delta_dollars": 1e15, "max_total_gamma_dollars": 1e15,
        "max_total_vega": 1e15, "capital": 1e15, "duplicate_window_seconds": 0,
        "throttle": {"orders_per_second": None, "orders_per_window": None,
                     "cancels_per_second": None, "cancels_per_window": None,
                     "messages_per_second": None, "messages_per_window": None}})
    clock_ns = [0]

    def clock():
        clock_ns[0] += 1_000
        return clock_ns[0]

    engine = RiskEngine(limits, instruments, marks, book, manager, clock=clock)
    symbols = [i.symbol for i in instruments if i.option is not None]
    for n, symbol in enumerate(symbols):
        book.apply_fill(Fill(10_000_000 + n, n + 1, symbol, "B" if n % 2 else "S", 5,
                             round(marks.theo(symbol).price * PRICE_SCALE)))
    refs = []
    for n in range(working):
        symbol = symbols[n % len(symbols)]
        fair = marks.theo(symbol).price
        msg = manager.enter("B", 1, symbol, max(1, round((fair * 0.5) * PRICE_SCALE) - n))
        if engine.check(msg):
            manager.sent(msg)
            manager.order(msg.user_ref_num).state = OrderState.LIVE
            refs.append(msg.user_ref_num)
    return engine, manager, marks, symbols, refs


def run(requests: int = 20_000, chain: int = 100, working: int = 200) -> dict:
    fast = _run(requests, chain, working, fast_path=True)
    checks = _run(requests, chain, working, fast_path=False)
    out = dict(fast)
    out["checks_only"] = {k: v for k, v in checks.items() if k.endswith("_per_s")}
    # (Cancels do not take the fast path: only their throttles are checked.)
    for kind in ("enter", "replace"):
        out[f"{kind}_fast_path_speedup"] = round(
            fast[f"{kind}_checks_per_s"] / checks[f"{kind}_checks_per_s"], 2)
    return out


def _run(requests: int, chain: int, working: int, *, fast_path: bool) -> dict:
    engine, manager, marks, symbols, refs = _setup(chain, working)
    engine.fast_path = fast_path
    prices = {s: round(marks.theo(s).price * 0.5 * PRICE_SCALE) for s in symbols}
    enters = [manager.enter("B", 1, symbols[n % len(symbols)],
                            max(1, prices[symbols[n % len(symbols)]] - 1_000 - n % 500))
              for n in range(requests)]
    start = time.perf_counter()
    for msg in enters:
        engine.check(msg)
    enter_rate = requests / (time.perf_counter() - start)
    # The accepted enters were never sent: drop them from the working set.
    engine.working.discard_unresolved()
    replaces = [manager.replace(refs[n % len(refs)], 1, manager.order(refs[n % len(refs)]).price)
                for n in range(requests)]
    start = time.perf_counter()
    for msg in replaces:
        engine.check(msg)
    replace_rate = requests / (time.perf_counter() - start)
    cancels = [manager.cancel(refs[n % len(refs)]) for n in range(requests)]
    start = time.perf_counter()
    for msg in cancels:
        engine.check(msg)
    cancel_rate = requests / (time.perf_counter() - start)
    return {"requests": requests, "chain": chain, "working_orders": len(refs),
            "enter_checks_per_s": round(enter_rate), "replace_checks_per_s": round(replace_rate),
            "cancel_checks_per_s": round(cancel_rate),
            "accepted": engine.counts["accepted"],
            "refused": sum(v for k, v in engine.counts.items() if k.startswith("rejected_"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--working", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.requests, args.chain, args.working), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
