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

What survives what (the journal's ``durability``, :mod:`host.journal`):
every record is written to the kernel before its request's bytes are handed
to the socket, so ``kill -9`` of the process loses nothing that was sent.  With
``"fsync"`` every record is durable before it counts.  With ``"group"`` (or
``"os"``) a power loss may also take the journal's last records since its
last fsync, requests and exchange messages alike.  The first login after a
start then repairs that from the exchange: it asks for the
message after the last ``rx`` on record, so the session replays every answer
the journal lost (the order manager adopts orders it has no request for from
Order Accepted and Order Replaced, and the executions rebuild positions),
then sends an Account Query Request and waits for its response (or
``reconcile_timeout``) before :meth:`OrderGateway.start` returns.  The
exchange answers requests in order, so by then everything before it has
been delivered, and the Account Query Response's next UserRefNum keeps a
restart from reusing one the exchange has seen.  What the exchange has not
confirmed is only lost if it never reached the exchange either.

Batches: ``with gateway.batch:`` sends every request submitted inside in one
socket write when the batch ends.  Each request is still judged and
accounted for one by one, in order, before the next; their journal records
are held (:meth:`host.journal.Journal.hold`) and written in one write as the
batch ends, just before the send (the records and their order are those
one append per request would have written: any other journal write in
between writes the held records first).  The same holds for the requests
sent while the messages of one read from the exchange are handled.  If
that write fails, the batch's requests are not sent and the error
propagates (they stay accounted for as sent, like requests the exchange
never received because the connection dropped).

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
* ``after_received``: callables ``()`` called once after the messages of
  one read from the exchange have all been through ``on_received`` (and
  after a replay of the journal): work a listener only needs once for
  several messages (the answers to a batch arrive together).  Failures are
  counted under ``listener_errors`` as well.

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


def _call_each(hooks, counts: Counter) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:
            counts["listener_errors"] += 1
            log.exception("order gateway hook %r failed", hook)


def rebuild(journal: Journal, on_received: Iterable[Listener] = (),
            after_received: Iterable[Callable[[], object]] = ()
            ) -> tuple[OrderManager, int, str, Counter]:
    """Replay a journal: (order manager, next sequence number, session, counts).
    ``on_received`` listeners see every replayed message after the manager,
    ``after_received`` hooks are called once at the end."""
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
    _call_each(after_received, counts)
    return manager, next_sequence, session, counts


class OrderGateway:
    def __init__(self, journal_path: str | Path, host: str, port: int, username: str,
                 password: str, *, heartbeat_interval: float = 1.0,
                 server_timeout: float = 15.0, reconnect: bool = True,
                 reconnect_delay: float = 0.05, max_reconnect_delay: float = 2.0,
                 pre_trade: Callable[[Message], object] | None = None,
                 on_received: Iterable[Listener] = (), durability: str = "fsync",
                 reconcile_timeout: float | None = 5.0,
                 after_received: Iterable[Callable[[], object]] = ()):
        self.pre_trade = pre_trade
        self.on_received: list[Listener] = list(on_received)
        self.after_received: list[Callable[[], object]] = list(after_received)
        # "group" and "os": records reach the kernel before the request
        # leaves and become durable off the send path (see host.journal).
        self.journal = Journal(journal_path, durability=durability)
        self.orders, next_sequence, session, self.counts = rebuild(
            self.journal, self.on_received, self.after_received)
        self._session = session
        self.reconcile_timeout = reconcile_timeout
        self._account_answer: asyncio.Future | None = None
        self.client = SoupClient(host, port, username, password, session=session,
                                 next_sequence=next_sequence, on_sequenced=self._on_sequenced,
                                 heartbeat_interval=heartbeat_interval,
                                 server_timeout=server_timeout)
        # A batch's requests reach the journal's file before the socket.
        self.client.before_flush = self.journal.release
        self.client.after_read = self._after_read
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._supervisor: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._closing = False

    @property
    def next_sequence(self) -> int:
        return self.client.next_sequence

    @property
    def batch(self):
        """``with gateway.batch:`` -- the requests submitted inside leave in one send."""
        return self.client.batch

    async def start(self) -> None:
        """Log in (errors propagate), catch up with the exchange (see the
        module's notes), then keep the session up in the background."""
        await self._login()
        if self.reconcile_timeout is not None and self.journal.durability != "fsync":
            # With "fsync" every record was durable before it counted:
            # nothing can be missing.
            await self._reconcile()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _reconcile(self) -> None:
        answer = self._account_answer = asyncio.get_running_loop().create_future()
        try:
            self.submit(ouch50.AccountQueryRequest(appendage=ouch50.Appendage()))
            await asyncio.wait_for(asyncio.shield(answer), self.reconcile_timeout)
            self.counts["reconciled"] += 1
        except (PreTradeRejected, NotConnectedError):
            self.counts["reconcile_not_sent"] += 1
        except asyncio.TimeoutError:
            self.counts["reconcile_timeouts"] += 1
            log.warning("no Account Query Response within %s s: trading on what the journal "
                        "and the session replay gave so far", self.reconcile_timeout)
        finally:
            self._account_answer = None

    async def _login(self) -> None:
        accepted = await self.client.connect()
        if accepted.session != self._session:
            self.journal.append(SESSION, accepted.session.encode("ascii"))
            self._session = accepted.session

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
            answer = self._account_answer
            if answer is not None and type(msg) is ouch50.AccountQueryResponse \
                    and not answer.done():
                answer.set_result(msg)
        self._changed.set()

    def _after_read(self) -> None:
        if self.after_received:
            _call_each(self.after_received, self.counts)

    def submit(self, msg: Message) -> Message:
        """Judge, journal, send and account for one OUCH request."""
        client = self.client
        if not client._up:
            raise NotConnectedError("order gateway is not connected")
        raw = msg.encode()
        pre_trade = self.pre_trade
        if pre_trade is not None:
            decision = pre_trade(msg)
            if not decision.accepted:
                self.counts["pre_trade_rejected"] += 1
                raise PreTradeRejected(msg, decision)
        if client._corked:
            # Written with the batch's other requests, before they are sent.
            self.journal.hold(TX, raw)
        else:
            self.journal.append(TX, raw)
        self.orders.sent(msg)
        client.send(raw)
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
