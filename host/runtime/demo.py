"""``make demo``: the whole appliance on one machine, on a recorded day.

The exchange simulator (``host.exchange``) runs in the same process as a real
SoupBinTCP server on loopback; the appliance connects to it as it would to
the exchange, on the backend its configuration names (the model by default),
and replays the capture through the fabric at top speed or paced.

Options have no feed in the capture, so the simulator's option markets come
from a small seeded crowd: after each quote of ours, with probability
``hit_rate``, a counterparty's market trades through one of our sides (the
simulator fills a resting order the external market moves through, at the
order's price).  At the end the appliance is killed (fabric kill bit and
Mass Cancel) and the summary gives messages, book updates, quotes, orders,
fills, risk events by reason, P&L, Greeks and quote-to-wire latency.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

from host.exchange.server import ExchangeConfig, ExchangeServer
from host.quoting.records import KIND_QUOTE, SIDE_ASK, SIDE_BID
from host.runtime.app import Appliance
from host.runtime.config import AppConfig
from host.runtime.directory import stock_locates


class Crowd:
    """Counterparties that now and then trade through our quotes."""

    def __init__(self, server: ExchangeServer, universe, hit_rate: float, seed: int):
        self.server = server
        self.universe = universe
        self.hit_rate = hit_rate
        self.rng = random.Random(seed)
        self.hits = 0

    def on_quotes(self, records) -> None:
        for record in records:
            if record["kind"] != KIND_QUOTE or self.rng.random() >= self.hit_rate:
                continue
            symbol = self.universe.by_id(int(record["option_id"])).symbol
            sides = [s for s in (SIDE_BID, SIDE_ASK) if record["sides"] & s]
            if not sides:
                continue
            side = self.rng.choice(sides)
            size = self.rng.randint(1, max(1, int(record["bid_size" if side == SIDE_BID
                                                          else "ask_size"])))
            if side == SIDE_BID:     # a seller hits our bid
                price = int(record["bid_price"])
                self.server.set_market(symbol, max(price - 100, 0), 1, price, size)
            else:                    # a buyer lifts our offer
                price = int(record["ask_price"])
                self.server.set_market(symbol, price, size, price + 100, 1)
            self.hits += 1


async def run_demo(config: AppConfig, capture, state_dir, speed: float | None = None,
                   hit_rate: float = 0.05, seed: int = 7, progress=None) -> dict:
    exchange = config.exchange
    if exchange.password_env is None:
        raise ValueError("the demo configuration names its password by environment variable")
    password = os.environ.setdefault(exchange.password_env, "demo")
    locates = stock_locates(capture, [c.underlying for c in config.chains])
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    server = ExchangeServer(ExchangeConfig(users={exchange.username: password},
                                           heartbeat_interval=exchange.heartbeat_interval),
                            journal=Path(state_dir) / "exchange.journal")
    port = await server.start("127.0.0.1", 0)
    config = config.model_copy(update={"exchange": exchange.model_copy(
        update={"connect": f"127.0.0.1:{port}"})})
    appliance = Appliance(config, locates, state_dir=state_dir)
    crowd = Crowd(server, appliance.universe, hit_rate, seed)
    handle = appliance.handle

    def handle_and_trade(out):
        handle(out)
        if out.quotes:
            crowd.on_quotes(out.quotes)
    appliance.handle = handle_and_trade
    try:
        await appliance.connect()
        await appliance.replay(capture, speed, progress)
        await appliance.settle()
        await appliance.kill("end of demo")
        await appliance.settle()
        summary = appliance.summary()
        summary["crowd_hits"] = crowd.hits
        summary["capture"] = str(capture)
        summary["exchange"] = {"orders": server.engine.counts.get("enter", 0),
                               **{k: v for k, v in server.engine.counts.items()}}
        return summary
    finally:
        await appliance.close()
        await server.shutdown(timeout=0.5)


def write_report(summary: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str) + "\n")


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"zynqmm demo ({summary['backend']} backend)", show_header=False)
    for key in ("frames", "messages", "book_updates", "trades", "quotes", "cancels", "orders",
                "fills", "conflated", "crowd_hits"):
        table.add_row(key.replace("_", " "), f"{summary.get(key, 0):,}")
    table.add_row("requests", ", ".join(f"{k} {v:,}" for k, v in summary["requests"].items()))
    table.add_row("risk events", ", ".join(f"{k} {v:,}" for k, v in summary["risk_events"].items())
                  or "none")
    pnl = summary["pnl"]
    if pnl:
        table.add_row("P&L ($)", f"realised {pnl.get('realised', 0):,.2f}, "
                                 f"unrealised {pnl.get('unrealised', 0):,.2f}")
    for underlying, greeks in summary["greeks"].items():
        table.add_row(f"Greeks {underlying}", ", ".join(f"{k} {v:,.2f}" for k, v in greeks.items()
                                                      if k in ("delta", "gamma", "vega", "theta")))
    lat = summary["quote_to_wire_us"]
    if lat:
        table.add_row("quote to wire (µs)", ", ".join(f"{k} {v:.1f}" for k, v in lat.items()))
    for kill in summary["kill"]:
        table.add_row("kill", f"{kill['cancel_requests']} cancels, command to last cancel "
                              f"{kill['command_to_last_cancel_us']:.0f} µs")
    console.print(table)
