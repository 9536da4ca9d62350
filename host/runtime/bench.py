"""Host quote-to-wire latency: quote record in, OUCH bytes written to the socket.

The real path, nothing stubbed: :class:`~host.runtime.quotes.QuoteTrader`
decides the request, :class:`~host.risk.guard.RiskGuard` checks it, the order
gateway journals it (``"os"`` durability, as the appliance runs) and writes it
to a SoupBinTCP session with the exchange simulator on loopback.  Each record
moves one option's quote, so every record costs one Replace Order; between
records the loop waits for the exchange's answer, so no request waits behind
another and the figure is the host's own path.  The clock stops when the
request's bytes have been handed to the kernel (asyncio writes at once when
the socket buffer has room).

``python -m host.runtime.bench [--records N]`` prints p50/p99/p99.9 in µs and,
with ``--profile``, the functions that dominate.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np

from host.exchange.server import ExchangeConfig, ExchangeServer
from host.gateway import OrderGateway
from host.positions.marks import Marks
from host.quoting.records import KIND_QUOTE, SIDE_ASK, SIDE_BID, quotes_array
from host.risk.guard import RiskGuard
from host.risk.limits import RiskLimits
from host.runtime.chains import build_universe
from host.runtime.config import Chain
from host.runtime.quotes import QuoteTrader
from host.positions.theo import price_option

CHAIN = Chain(underlying="ZBENCH", strikes=[90.0, 95.0, 100.0, 105.0, 110.0],
              expiries_days=[30.0], kinds=["call", "put"], sigma=0.3)


async def measure(records: int, profile: bool = False) -> dict:
    universe = build_universe([CHAIN], {"ZBENCH": 1})
    instruments = universe.instruments()
    marks = Marks(instruments)
    marks.set_bbo("ZBENCH", 999_900, 1_000_100)
    for option in universe.options:
        marks.set_theo(option.symbol, price_option(option.spec, 100.0))
    with tempfile.TemporaryDirectory() as scratch:
        server = ExchangeServer(ExchangeConfig(users={"ZMM01": "s3cret"}),
                                journal=Path(scratch) / "exchange.journal")
        port = await server.start()
        gateway = OrderGateway(Path(scratch) / "orders.journal", "127.0.0.1", port, "ZMM01",
                               "s3cret", durability="os")
        # Throttles out of the way: the bench sends faster than an exchange allows.
        limits = RiskLimits.model_validate({"throttle": {
            f"{kind}_per_{span}": None for kind in ("orders", "cancels", "messages")
            for span in ("second", "window")}})
        guard = RiskGuard(gateway, limits, instruments, marks=marks)
        trader = QuoteTrader(universe, gateway.orders, gateway.submit, gateway.journal.append)
        gateway.on_received.append(trader.on_message)
        await gateway.start()
        options = len(universe.options)
        profiler = cProfile.Profile() if profile else None
        try:
            for i in range(records + 2 * options):
                option = universe.options[i % options]
                theo = marks.theo(option.symbol).price
                tick = 100 * (1 + (i // options) % 3)        # the quote walks 1-3 cents
                bid = int(round(theo * 100)) * 100 - tick
                record = quotes_array([dict(kind=KIND_QUOTE, option_id=option.option_id,
                                            sides=SIDE_BID | SIDE_ASK, bid_price=bid,
                                            ask_price=bid + 2 * tick + 100, bid_size=5,
                                            ask_size=5, seq=i + 1)])[0]
                measured = i >= 2 * options        # the first rounds enter the orders
                if measured and profiler:
                    profiler.enable()
                trader.on_record(record, time.monotonic_ns())
                if measured and profiler:
                    profiler.disable()
                await gateway.wait_until(lambda: not any(
                    o.state.value.startswith("pending") for o in gateway.orders.unique_orders()),
                    5.0)
                gateway.journal.sync()
        finally:
            await gateway.close()
            await server.close()
    lat = np.asarray(trader.latencies_ns[2 * options * 2:], dtype=np.float64) / 1000.0
    out = {"records": int(lat.size),
           "host_quote_to_wire_p50_us": float(np.percentile(lat, 50)),
           "host_quote_to_wire_p99_us": float(np.percentile(lat, 99)),
           "host_quote_to_wire_p999_us": float(np.percentile(lat, 99.9)),
           "host_quote_to_wire_max_us": float(lat.max()),
           "risk_refusals": {k: v for k, v in guard.engine.counts.items()
                             if k.startswith("rejected_")}}
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        out["profile"] = text.getvalue()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.records, args.profile))
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=1))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
