"""The order gateway: SoupBinTCP session + OUCH order manager + journal.

Nothing counts before it is in the journal: a request is journaled (kind
``tx``) before it is handed to the socket and to the order manager, and every
sequenced message from the exchange is journaled (kind ``rx``, its sequence
number in front) before the order manager sees it.  Opening a gateway on an
existing journal replays those records through a fresh order manager, which
rebuilds exactly the same order states, UserRefNum counter and the next
sequence number to ask the exchange for.

When the connection drops (EOF, reset, heartbeat timeout) the gateway logs in
again, with backoff, asking for the message after the last one journaled.

Two hooks let other components ride on the session:

* ``pre_trade(msg)``: called for every request after it encodes and before
  anything is journaled or sent; a result whose ``accepted`` is false stops
  the request (:class:`PreTradeRejected`), so a refused request never
  reaches the socket.  The hook may itself submit requests (cancels) before
  it returns.
* ``on_received``: listeners ``(msg, order_manager)`` called after the order
  manager has seen each sequenced message, live and when the journal is
  replayed, so what they build is rebuilt exactly.  A failing listener is
  counted under ``listener_errors`` and does not disturb the session.

Records of kind ``risk`` belong to the pre-trade risk engine; replay skips them.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from host.gateway.orders import OrderManager
from host.gateway.soup_client import LoginRejectedError, NotConnectedError, SoupClient
from host.journal import Journal
from host.protocols import ouch50
from host.protocols.errors import DecodeError
from host.protocols.layout import Message

TX = "tx"
RX = "rx"
SESSION = "session"
RISK = "risk"
# Records other parts of the appliance keep in the gateway's journal, in order
# with the requests: risk events (host.risk) and each request's trigger
# (host.runtime.quotes).  Replay passes over them.
AUXILIARY_KINDS = frozenset({RISK, "trigger"})
_SEQ = struct.Struct(">Q")

log = logging.getLogger(__name__)
Listener = Callable[[Message, OrderManager], None]


class PreTradeRejected(Exception):
    """The pre-trade hook refused a request: it was neither journaled nor sent."""

    def __init__(self, request: Message, decision):
        reason = getattr(decision, "reason", decision)
        super().__init__(f"{type(request).__name__} refused before sending: {reason}")
        self.request = request
        self.decision = decision


def _notify(listeners, msg: Message, manager: OrderManager, counts: Counter) -> None:
    for listener in listeners:
        try:
            listener(msg, manager)
        except Exception:
            counts["listener_errors"] += 1
            log.exception("order gateway listener %r failed on %r", listener, msg)


def rebuild(journal: Journal, on_received: Iterable[Listener] = ()
            ) -> tuple[OrderManager, int, str, Counter]:
    """Replay a journal: (order manager, next sequence number, session, counts).
    ``on_received`` listeners see every replayed message after the manager."""
    listeners = tuple(on_received)
    manager = OrderManager()
    next_sequence, session = 1, ""
    counts: Counter = Counter()
    for record in journal:
        if record.kind == TX:
            manager.sent(ouch50.decode_inbound(record.payload))
        elif record.kind == RX:
            (seq,) = _SEQ.unpack_from(record.payload)
            next_sequence = seq + 1
            try:
                msg = ouch50.decode_outbound(record.payload, _SEQ.size)
            except DecodeError as exc:
                counts[f"bad_rx_{exc.reason}"] += 1
                continue
            manager.received(msg)
            _notify(listeners, msg, manager, counts)
        elif record.kind == SESSION:
            session = record.payload.decode("ascii")
        elif record.kind in AUXILIARY_KINDS:
            continue
        else:
            counts["unknown_record_kind"] += 1
    return manager, next_sequence, session, counts


class OrderGateway:
    def __init__(self, journal_path: str | Path, host: str, port: int, username: str,
                 password: str, *, heartbeat_interval: float = 1.0,
                 server_timeout: float = 15.0, reconnect: bool = True,
                 reconnect_delay: float = 0.05, max_reconnect_delay: float = 2.0,
                 pre_trade: Callable[[Message], object] | None = None,
                 on_received: Iterable[Listener] = (), durability: str = "fsync"):
        self.pre_trade = pre_trade
        self.on_received: list[Listener] = list(on_received)
        # durability "os": records reach the kernel before the request leaves;
        # the owner calls journal.sync() on its own beat (see host.journal).
        self.journal = Journal(journal_path, durability=durability)
        self.orders, next_sequence, session, self.counts = rebuild(self.journal,
                                                                   self.on_received)
        self.client = SoupClient(host, port, username, password, session=session,
                                 next_sequence=next_sequence, on_sequenced=self._on_sequenced,
                                 heartbeat_interval=heartbeat_interval,
                                 server_timeout=server_timeout)
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._supervisor: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._closing = False

    @property
    def next_sequence(self) -> int:
        return self.client.next_sequence

    async def start(self) -> None:
        """Log in (errors propagate), then keep the session up in the background."""
        await self._login()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _login(self) -> None:
        accepted = await self.client.connect()
        if accepted.session != self._journaled_session():
            self.journal.append(SESSION, accepted.session.encode("ascii"))

    def _journaled_session(self) -> str:
        for record in reversed(self.journal.records):
            if record.kind == SESSION:
                return record.payload.decode("ascii")
        return ""

    async def _supervise(self) -> None:
        delay = self.reconnect_delay
        while not self._closing:
            await self.client.wait_closed()
            self._changed.set()
            if self._closing or self.client.end_of_session or not self.reconnect:
                return
            try:
                await self._login()
                self.counts["reconnects"] += 1
                delay = self.reconnect_delay
            except LoginRejectedError:
                self.counts["reconnect_rejected"] += 1
                return
            except (OSError, asyncio.TimeoutError, ConnectionError):
                self.counts["reconnect_failures"] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    def _on_sequenced(self, seq: int, raw: bytes) -> None:
        self.journal.append(RX, _SEQ.pack(seq) + raw)
        try:
            msg = ouch50.decode_outbound(raw)
        except DecodeError as exc:
            self.counts[f"bad_rx_{exc.reason}"] += 1
        else:
            self.orders.received(msg)
            _notify(self.on_received, msg, self.orders, self.counts)
        self._changed.set()

    def submit(self, msg: Message) -> Message:
        """Journal, send and account for one OUCH request."""
        if not self.client.connected:
            raise NotConnectedError("order gateway is not connected")
        raw = msg.encode()
        if self.pre_trade is not None:
            decision = self.pre_trade(msg)
            if not decision.accepted:
                self.counts["pre_trade_rejected"] += 1
                raise PreTradeRejected(msg, decision)
        self.journal.append(TX, raw)
        self.orders.sent(msg)
        self.client.send(raw)
        return msg

    async def wait_until(self, predicate, timeout: float) -> None:
        """Wait until ``predicate()`` holds, re-checking after every message;
        raises asyncio.TimeoutError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError("condition not met in time")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def close(self, *, logout: bool = True) -> None:
        self._closing = True
        if logout and self.client.connected:
            with contextlib.suppress(NotConnectedError, ConnectionError):
                await self.client.logout()
        await self.client.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
        self.journal.close()
