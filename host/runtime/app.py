"""The appliance: fabric, order gateway, pre-trade risk, positions, in one loop.

::

    frames -> fabric (model | rtl | board) -> book updates -> marks (underlying BBO)
                                            -> quote records -> QuoteTrader
                                               -> RiskGuard (pre-trade) -> journal -> OUCH socket
    exchange messages -> order manager -> positions -> fabric position tables

:class:`Appliance` is driven by one asyncio loop.  Frames come from a replayed
capture (:meth:`Appliance.replay`) or, live, from the ps-bridge sockets or
the fabric's own MAC (:meth:`Appliance.run_live`).  After each batch of
frames the fabric's records are handled at once and the loop yields, so the
exchange's answers are taken between batches.

A kill (:meth:`Appliance.kill`, also reached by a risk breach with the kill
action) sets the fabric's kill bit, which pulls every live quote (cancel
records the trader turns into Cancel Order requests), and sends one Mass
Cancel for the port; its figure is the time from the command to the last
cancel written to the socket.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import numpy as np

from host.book.records import BOOK_UPDATE_DTYPE
from host.gateway import NotConnectedError, OrderGateway, PreTradeRejected
from host.positions.marks import Marks
from host.positions.theo import Theo
from host.protocols import ouch50
from host.quoting.records import KIND_CANCEL
from host.risk.guard import RiskGuard
from host.runtime.chains import Universe, build_universe
from host.runtime.config import AppConfig, ConfigError
from host.runtime.fabric import Fabric, open_fabric
from host.runtime.ingest import Pacer, replay_batches
from host.runtime.plan import CORE_MHZ, fabric_config
from host.runtime.quotes import QuoteTrader
from rtl.order_book.model import TDEST_TRADE, TDEST_UPDATE
from rtl.pricer.formats import DELTA, MONEY

JOURNAL_NAME = "orders.journal"


def percentiles(values_ns, points=(50, 90, 99, 99.9)) -> dict[str, float]:
    """Percentiles in microseconds (empty dict without values)."""
    if not len(values_ns):
        return {}
    arr = np.asarray(values_ns, dtype=np.float64) / 1000.0
    out = {f"p{str(p).replace('.', '')}": float(np.percentile(arr, p)) for p in points}
    out["max"] = float(arr.max())
    return out


class Appliance:
    def __init__(self, config: AppConfig, locates: dict[str, int], *,
                 fabric: Fabric | None = None, state_dir: str | Path | None = None):
        if config.exchange is None:
            raise ConfigError("[exchange] is missing: the appliance needs an order-entry session")
        if not config.chains:
            raise ConfigError("[[chains]] is empty: there is nothing to quote")
        self.config = config
        self.state_dir = Path(state_dir or config.appliance.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.universe: Universe = build_universe(config.chains, locates)
        self.symbol_of_locate = {loc: sym for sym, loc in self.universe.locates.items()}
        core_mhz = CORE_MHZ[config.appliance.board]
        self.fabric = fabric or open_fabric(config.appliance.backend, core_mhz=core_mhz)
        self.fabric.load(fabric_config(config, self.universe))
        self.instruments = self.universe.instruments()
        self.marks = Marks(self.instruments)
        self.counts: Counter = Counter()
        self.gateway: OrderGateway | None = None
        self.guard: RiskGuard | None = None
        self.trader: QuoteTrader | None = None
        self.kill_figures: list[dict] = []
        self._killed = False

    # -- start and stop -------------------------------------------------------------
    async def connect(self) -> None:
        exchange = self.config.exchange
        host, port = exchange.endpoint()
        self.gateway = OrderGateway(
            self.state_dir / JOURNAL_NAME, host, port, exchange.username,
            exchange.password().get_secret_value(), heartbeat_interval=exchange.heartbeat_interval,
            server_timeout=exchange.timeout, durability="group")
        self.guard = RiskGuard(self.gateway, self.config.risk, self.instruments, marks=self.marks)
        self.trader = QuoteTrader(self.universe, self.gateway.orders, self.gateway.submit,
                                  self.gateway.journal.append, firm=exchange.firm,
                                  batch=self.gateway.batch)
        self.gateway.on_received.append(self.trader.on_message)
        self.gateway.on_received.append(self._position_changed)
        self.counts["adopted_orders"] = self.trader.adopt()
        # Positions rebuilt from the journal go back into the fabric's tables.
        for option in self.universe.options:
            held = self.guard.positions.quantity(option.symbol)
            if held:
                self.fabric.set_position(option.option_id, held)
        await self.gateway.start()
        if self.guard.killed:
            # A kill survives restarts until an operator resets it.
            self.fabric.set_kill(True)
            self._killed = True

    async def close(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
        self.fabric.close()

    # -- fabric records -------------------------------------------------------------
    def _position_changed(self, msg, orders) -> None:
        if not isinstance(msg, (ouch50.OrderExecuted, ouch50.BrokenTrade)):
            return
        order = orders.orders.get(msg.user_ref_num)
        instrument = self.instruments.get(order.symbol) if order is not None else None
        if instrument is None or not instrument.is_option:
            return
        option = next(o for o in self.universe.options if o.symbol == order.symbol)
        self.fabric.set_position(option.option_id, self.guard.positions.quantity(order.symbol))
        self.counts["fills" if isinstance(msg, ouch50.OrderExecuted) else "broken_trades"] += 1

    def handle(self, out) -> None:
        received_ns = time.monotonic_ns()
        for record in out.book:
            if record.dest == TDEST_UPDATE:
                self.counts["book_updates"] += 1
                row = np.array([record.row], dtype=BOOK_UPDATE_DTYPE)[0]
                symbol = self.symbol_of_locate.get(int(row["stock_locate"]))
                if symbol is not None:
                    self.marks.set_bbo(symbol, int(row["bid_price"][0]), int(row["ask_price"][0]))
            elif record.dest == TDEST_TRADE:
                self.counts["trades"] += 1
        if not out.quotes:
            return
        for record in out.quote_array():
            received_ns = time.monotonic_ns()
            kind = "quote_records" if record["kind"] != KIND_CANCEL else "cancel_records"
            self.counts[kind] += 1
            option_id = int(record["option_id"])
            if record["kind"] != KIND_CANCEL and option_id < len(self.universe.options):
                option = self.universe.by_id(option_id)
                spot = self.marks.spot(option.underlying)
                self.marks.set_theo(option.symbol, Theo(
                    price=MONEY.to_float(int(record["theo"])),
                    delta=DELTA.to_float(int(record["delta"])),
                    spot=spot if spot is not None else option.strike))
            self.trader.on_record(record, received_ns)
        if self.guard.killed and not self._killed:
            # A risk breach with the kill action: the fabric stops quoting too.
            self._killed = True
            self.fabric.set_kill(True)
            self.handle(self.fabric.poll())

    # -- ingest ------------------------------------------------------------------------
    async def replay(self, capture, speed: float | None = None, progress=None) -> None:
        pacer = Pacer(speed)
        batch = 256 if speed is None else 16
        for frames, stamps in replay_batches(capture, self.config.feed.addresses(), batch):
            await pacer.wait(stamps[-1])
            self.counts["frames"] += len(frames)
            self.fabric.push(frames, stamps)
            self.handle(self.fabric.poll())
            # The journal's committer makes the batch durable off this loop.
            self.gateway.journal.commit()
            if progress is not None:
                progress(len(frames))
        await asyncio.sleep(0)

    async def run_live(self, stop: asyncio.Event, poll_interval: float = 0.0005) -> None:
        """Until ``stop`` is set: ps-bridge frames into the fabric (or, with the
        fabric's own MAC, nothing to push), records out."""
        bridge = None
        if self.config.appliance.ingest == "ps-bridge":
            from host.runtime.ingest import PsBridge
            bridge = PsBridge(self.config.feed.addresses(), self.config.feed.interface)
        try:
            while not stop.is_set():
                if bridge is not None:
                    frames = bridge.frames()
                    if frames:
                        self.counts["frames"] += len(frames)
                        now = time.monotonic_ns()
                        self.fabric.push(frames, [now] * len(frames))
                self.handle(self.fabric.poll())
                await asyncio.sleep(poll_interval)
        finally:
            if bridge is not None:
                bridge.close()

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait until no request of ours is waiting for the exchange's answer."""
        from host.gateway import OrderState
        pending = {OrderState.PENDING_NEW, OrderState.PENDING_REPLACE, OrderState.PENDING_CANCEL}
        try:
            await self.gateway.wait_until(
                lambda: not any(o.state in pending for o in self.gateway.orders.unique_orders()),
                timeout)
        except asyncio.TimeoutError:
            self.counts["settle_timeouts"] += 1

    # -- kill -----------------------------------------------------------------------
    async def kill(self, reason: str = "operator") -> dict:
        """Fabric kill bit plus one Mass Cancel; returns the measured figures."""
        started = time.monotonic_ns()
        sent_before = len(self.trader.latencies_ns)
        self._killed = True
        self.fabric.set_kill(True)
        self.handle(self.fabric.poll())
        last = time.monotonic_ns()
        try:
            self.gateway.submit(self.gateway.orders.mass_cancel(firm=self.config.exchange.firm))
            last = time.monotonic_ns()
        except (PreTradeRejected, NotConnectedError) as exc:
            self.counts[f"kill_mass_cancel_failed_{type(exc).__name__}"] += 1
        figures = {"reason": reason, "cancel_requests": len(self.trader.latencies_ns) - sent_before,
                   "command_to_last_cancel_us": (last - started) / 1000.0}
        self.kill_figures.append(figures)
        return figures

    # -- results --------------------------------------------------------------------
    @property
    def killed(self) -> bool:
        return self._killed

    def health(self) -> dict:
        connected = bool(self.gateway and self.gateway.client.connected)
        return {"ok": connected and not self._killed, "connected": connected,
                "killed": self._killed, "backend": self.fabric.backend}

    def status(self, started_at):
        """The runtime status snapshot of the ``zynqmm-status/1`` contract."""
        import os

        from board.deploy.status import FeedStatus, OrderCounts, RiskStatus, RuntimeStatus, now_utc
        from host.gateway import OrderState

        orders = self.gateway.orders.unique_orders() if self.gateway else []
        states = Counter(o.state for o in orders)
        sequencer = self.fabric.counters().get("mold_seq", {})
        stale = bool(sequencer.get("gaps", 0)) and sequencer.get("stale", 0)
        feeds = {name: FeedStatus(state="stale" if stale else "live",
                                  last_sequence=int(sequencer.get("next_seq", 1)) - 1,
                                  messages=int(sequencer.get("passed", 0)),
                                  gaps=int(sequencer.get("gaps", 0)))
                 for name in ("A", "B")[:len(self.config.feed.addresses())]}
        working = sum(states[s] for s in (OrderState.LIVE, OrderState.PARTIALLY_FILLED,
                                          OrderState.PENDING_NEW, OrderState.PENDING_REPLACE,
                                          OrderState.PENDING_CANCEL))
        return RuntimeStatus(
            written_at=now_utc(), started_at=started_at, pid=os.getpid(), feeds=feeds,
            orders=OrderCounts(open=working, sent=len(orders), filled=states[OrderState.FILLED],
                               cancelled=states[OrderState.CANCELED],
                               rejected=states[OrderState.REJECTED]),
            risk=RiskStatus(state="killed" if self._killed else "ok",
                            reason=self.kill_figures[-1]["reason"] if self.kill_figures else None))

    def summary(self) -> dict:
        orders = self.gateway.orders if self.gateway else None
        positions = self.guard.positions if self.guard else None
        pnl = positions.pnl(self.marks) if positions else {}
        greeks = {u: g.as_dict() for u, g in positions.greeks_by_underlying(self.marks).items()} \
            if positions else {}
        sent = Counter(self.trader.counts) if self.trader else Counter()
        risk = self.guard.engine.counts if self.guard else Counter()
        return {
            "backend": self.fabric.backend,
            "frames": self.counts["frames"],
            "messages": self.fabric.counters().get("itch_decoder", {}).get("messages", 0),
            "book_updates": self.counts["book_updates"],
            "trades": self.counts["trades"],
            "quotes": self.counts["quote_records"],
            "cancels": self.counts["cancel_records"],
            "orders": sum(sent[k] for k in ("EnterOrder",)),
            "requests": {k: sent[k] for k in ("EnterOrder", "ReplaceOrderRequest",
                                              "CancelOrderRequest") if sent[k]},
            "conflated": sent["conflated"],
            "fills": self.counts["fills"],
            "risk_events": {k.removeprefix("rejected_"): v for k, v in risk.items()
                            if k.startswith("rejected_")},
            "pnl": pnl.get("total", {}),
            "greeks": greeks,
            "quote_to_wire_us": percentiles(self.trader.latencies_ns if self.trader else []),
            "deferred": sent["deferred"],
            "kill": self.kill_figures,
            "order_states": Counter(o.state.value for o in orders.unique_orders()) if orders else {},
        }
