"""Throughput of the exchange simulator, as numbers and ratios measured in
one run: the matching engine alone (plain book, then with an external
market the orders trade against), and the loopback TCP server with and
without the fsync'd journal.

    python -m host.exchange.bench [--orders N]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from host.exchange.engine import OuchExchange
from host.exchange.server import ExchangeConfig, ExchangeServer
from host.protocols import ouch50, soupbintcp


def _orders(n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    out = []
    for ref in range(1, n + 1):
        out.append(ouch50.EnterOrder(
            user_ref_num=ref, side=rng.choice("BS"), quantity=rng.randint(1, 500),
            symbol="ZAAB", price=100_0000 + rng.randint(-50, 50) * 100, time_in_force="0",
            display="Y", capacity="P", intermarket_sweep_eligibility="N", cross_type="N",
            cl_ord_id="", appendage=ouch50.Appendage()))
    return out


def bench_engine(n: int, with_market: bool) -> float:
    """Enter Order messages per second through ``OuchExchange.handle``."""
    ex = OuchExchange(clock=lambda: 0)
    if with_market:
        ex.set_market("ZAAB", 99_9000, 10**6, 100_1000, 10**6)
    orders = _orders(n)
    started = time.perf_counter()
    for msg in orders:
        ex.handle("u", msg)
    return n / (time.perf_counter() - started)


async def _server_run(n: int, journal: Path | None) -> float:
    config = ExchangeConfig(users={"ZMM01": "s3cret"})
    async with ExchangeServer(config, journal=journal) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        framer = soupbintcp.SoupFramer(soupbintcp.SERVER)
        writer.write(soupbintcp.LoginRequest(username="ZMM01", password="s3cret",
                                             requested_session="",
                                             requested_sequence_number=1).packet())
        payload = b"".join(soupbintcp.UnsequencedData(message=m.encode()).packet()
                           for m in _orders(n))
        started = time.perf_counter()
        writer.write(payload)
        accepted = 0
        while accepted < n:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed early")
            for packet in framer.feed(data):
                if (isinstance(packet, soupbintcp.SequencedData)
                        and packet.message[:1] == b"A"):
                    accepted += 1
        elapsed = time.perf_counter() - started
        writer.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args(argv)
    plain = bench_engine(args.orders, False)
    market = bench_engine(args.orders, True)
    tcp = asyncio.run(_server_run(args.orders // 4, None))
    with tempfile.TemporaryDirectory() as tmp:
        journaled = asyncio.run(_server_run(args.orders // 4, Path(tmp) / "bench.journal"))
    result = {
        "engine_orders_per_s": round(plain),
        "engine_with_market_orders_per_s": round(market),
        "market_vs_plain": round(market / plain, 3),
        "tcp_orders_per_s": round(tcp),
        "tcp_journaled_orders_per_s": round(journaled),
        "journaled_vs_tcp": round(journaled / tcp, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
