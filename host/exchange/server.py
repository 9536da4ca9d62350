"""SoupBinTCP 3.0 server for the exchange simulator (asyncio).

One SoupBinTCP session per user: the session's sequenced messages are kept
for the whole day so that a client logging in with a requested sequence
number gets everything from there on, across any number of reconnects.
Messages published while a user is away (executions, cancel-on-disconnect
cancels) wait there for its next login.

Login: username and password must match ``ExchangeConfig.users`` (otherwise
Login Rejected ``A``); the requested session must be blank or the current
session, and the session must not have ended (otherwise ``S``).  A requested
sequence number of 0, or one past the end, starts at the next message; Login
Accepted carries the sequence number of the first message that follows.  A
new login for a user that is still connected replaces the old connection,
which is closed (the old TCP connection is usually already dead); that is
not a disconnect of the user, so it cancels nothing.

Heartbeats: the server sends Server Heartbeat whenever it has sent nothing
for ``heartbeat_interval`` seconds, and drops a client it has heard nothing
from for ``client_timeout`` seconds.  Logout Request closes the connection;
:meth:`ExchangeServer.end_session` sends the End of Day system event and End
of Session to everyone.

Cancel-on-disconnect (per user, :class:`~host.exchange.config.UserConfig`):
when a logged-in connection ends for any reason but a replacing login or the
end of the session, the user's open orders are canceled (reason ``Z``).

Journal: with a journal every inbound OUCH message, every sequenced outbound
message and the session events are written (see
:mod:`host.exchange.records`) before anything is sent.  What one TCP read
brings is handled as one group commit: a single fsync, then the answers.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from host.exchange.config import UserConfig, as_user_config
from host.exchange.engine import OuchExchange, Outbound, PortSettings
from host.exchange.records import EX_EVENT, EX_IN, EX_OUT, encode_event, encode_in, encode_out
from host.journal import Journal
from host.protocols import ouch50, soupbintcp
from host.protocols.errors import DecodeError
from host.protocols.soupbintcp import FramingError, SoupFramer

log = logging.getLogger(__name__)


@dataclass
class ExchangeConfig:
    #: user -> password, or user -> UserConfig (firm, cancel-on-disconnect, throttle)
    users: dict[str, str | UserConfig] = field(default_factory=lambda: {"ZMM01": "s3cret"})
    session: str = "0000000001"
    heartbeat_interval: float = 1.0
    client_timeout: float = 15.0
    symbols: frozenset[str] | None = None
    #: orders per second per user when the user sets none (None: unlimited)
    throttle: int | None = None
    #: publish the Start of Day system event to every user when the server starts
    start_of_day: bool = False


class _UserSession:
    def __init__(self, user: str):
        self.user = user
        self.sequenced: list[bytes] = []   # message i has sequence number i + 1
        self.connection: _Connection | None = None


class _Connection:
    def __init__(self, server: "ExchangeServer", reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.framer = SoupFramer(soupbintcp.CLIENT)
        self.user: str | None = None
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.loop.time()
        self.closed = False
        self.finished = False       # its end has been accounted for
        self.end_reason = "closed"

    def send(self, packet) -> None:
        if self.closed:
            return
        self.writer.write(packet.packet())
        self.last_sent = self.loop.time()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()


class ExchangeServer:
    def __init__(self, config: ExchangeConfig | None = None, engine: OuchExchange | None = None,
                 journal: Journal | str | Path | None = None):
        self.config = config or ExchangeConfig()
        self.users: dict[str, UserConfig] = {
            name: as_user_config(value) for name, value in self.config.users.items()}
        self.engine = engine or OuchExchange(self.config.symbols, throttle=self.config.throttle)
        for name, user in self.users.items():
            self.engine.configure_port(name, PortSettings(
                firm=user.firm, firms=user.firms, throttle=user.throttle))
        self._owns_journal = journal is not None and not isinstance(journal, Journal)
        self.journal = Journal(journal) if self._owns_journal else journal
        self.sessions: dict[str, _UserSession] = {}
        self.counts: Counter = Counter()
        self.ended = False
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        # Inside group_commit(): journal records and sends waiting for one fsync.
        self._group_records: list | None = None
        self._group_sends: list[tuple[_UserSession, bytes]] = []
        self._group_next: dict[str, int] = {}

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.record_event({"event": "start", "host": host, "port": self.port,
                           "session": self.config.session})
        if self.config.start_of_day:
            self.system_event("S")
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in self.sessions.values():
            if session.connection is not None:
                session.connection.finished = True   # the server goes, not the user
                session.connection.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()
        if self._owns_journal:
            self.journal.close()

    async def shutdown(self, timeout: float = 2.0) -> None:
        """End the session, give the clients ``timeout`` seconds to receive
        End of Session and hang up, then close."""
        if self._server is not None:
            self._server.close()   # no new connections meanwhile
        self.end_session()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        await self.close()

    async def __aenter__(self) -> "ExchangeServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def session(self, user: str) -> _UserSession:
        s = self.sessions.get(user)
        if s is None:
            s = self.sessions[user] = _UserSession(user)
        return s

    def sequenced(self, user: str) -> list[bytes]:
        """The user's sequenced OUCH messages so far (sequence number = index + 1)."""
        return list(self.session(user).sequenced)

    def connected(self, user: str) -> bool:
        conn = self.session(user).connection
        return conn is not None and not conn.closed

    def drop_connection(self, user: str) -> bool:
        """Cut the user's TCP connection without any goodbye, as a network
        failure would."""
        conn = self.session(user).connection
        if conn is None or conn.closed:
            return False
        conn.abort()
        conn.end_reason = "dropped"
        self._connection_ended(conn)
        return True

    # -- publishing and journaling ------------------------------------------------------
    def record_event(self, event: dict) -> None:
        record = (EX_EVENT, encode_event(event), None)
        if self._group_records is not None:
            self._group_records.append(record)
        elif self.journal is not None:
            self.journal.append_batch([record])

    @contextlib.contextmanager
    def group_commit(self):
        """Everything published inside goes to the journal with one fsync
        when the block ends, and only then to the wire."""
        if self._group_records is not None:
            yield
            return
        self._group_records, self._group_sends, self._group_next = [], [], {}
        try:
            yield
        finally:
            records, sends = self._group_records, self._group_sends
            self._group_records, self._group_sends, self._group_next = None, [], {}
            self._commit(records, sends)

    def publish(self, outbound: Outbound, *, inbound: tuple[str, bytes] | None = None,
                event: dict | None = None) -> None:
        """Journal the cause (an inbound message or an event) with the
        outbound messages it caused in one group commit, then sequence them
        for their users and send them to whoever is connected."""
        records: list[tuple[str, bytes, None]] = []
        if inbound is not None:
            records.append((EX_IN, encode_in(*inbound), None))
        if event is not None:
            records.append((EX_EVENT, encode_event(event), None))
        staged: list[tuple[_UserSession, bytes]] = []
        grouped = self._group_records is not None
        next_sequence = self._group_next if grouped else {}
        for user, msg in outbound:
            session = self.session(user)
            raw = msg.encode()
            sequence = next_sequence.get(user, len(session.sequenced) + 1)
            next_sequence[user] = sequence + 1
            records.append((EX_OUT, encode_out(user, sequence, raw), None))
            staged.append((session, raw))
        if grouped:
            self._group_records.extend(records)
            self._group_sends.extend(staged)
        else:
            self._commit(records, staged)

    def _commit(self, records, staged) -> None:
        if records and self.journal is not None:
            self.journal.append_batch(records)
        for session, raw in staged:
            session.sequenced.append(raw)
            if session.connection is not None:
                session.connection.send(soupbintcp.SequencedData(message=raw))
        self.counts["published"] += len(staged)

    # -- operator and market events ----------------------------------------------------
    def system_event(self, event_code: str) -> None:
        """A System Event message to every configured user."""
        msg = self.engine.system_event(event_code)
        self.publish([(user, msg) for user in self.users],
                     event={"event": "system_event", "code": event_code})

    def set_market(self, symbol: str, bid: int, bid_size: int, ask: int, ask_size: int) -> None:
        """Set the external best bid and offer of a symbol; orders it
        crosses are executed at once."""
        out = self.engine.set_market(symbol, bid, bid_size, ask, ask_size)
        self.publish(out, event={"event": "market", "symbol": symbol, "bid": bid,
                                 "bid_size": bid_size, "ask": ask, "ask_size": ask_size})

    def market_changed(self, symbols) -> None:
        """The external market (e.g. an ITCH feed) moved for these symbols."""
        for symbol in symbols:
            out = self.engine.market_changed(symbol)
            if out:
                self.publish(out, event={"event": "market_update", "symbol": symbol})

    def halt(self, symbol: str) -> None:
        self.publish(self.engine.halt(symbol), event={"event": "halt", "symbol": symbol})

    def resume(self, symbol: str) -> None:
        self.publish(self.engine.resume(symbol), event={"event": "resume", "symbol": symbol})

    def break_trade(self, match_number: int, reason: str = "S") -> None:
        self.publish(self.engine.break_trade(match_number, reason),
                     event={"event": "break_trade", "match_number": match_number,
                            "reason": reason})

    def end_session(self) -> None:
        """End of Day system event, then End of Session to every logged-in
        client; later logins fail."""
        if self.ended:
            return
        self.system_event("E")
        self.ended = True
        self.record_event({"event": "end_of_session"})
        for session in self.sessions.values():
            conn = session.connection
            if conn is not None:
                conn.finished = True
                conn.send(soupbintcp.EndOfSession())
                conn.close()
                session.connection = None

    # -- one connection ------------------------------------------------------------
    async def _serve(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        conn = _Connection(self, reader, writer)
        heartbeat = asyncio.create_task(self._heartbeats(conn))
        try:
            await self._converse(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.counts["connection_lost"] += 1
            conn.end_reason = "connection_lost"
        except asyncio.CancelledError:
            # Only close() cancels these; ending quietly keeps asyncio's
            # stream callback from reporting the cancellation as an error.
            conn.end_reason = "server_closed"
        finally:
            heartbeat.cancel()
            self._connection_ended(conn)
            conn.close()
            self._tasks.discard(task)

    def _connection_ended(self, conn: _Connection) -> None:
        """Account once for the end of a logged-in connection."""
        if conn.user is None or conn.finished:
            return
        conn.finished = True
        session = self.session(conn.user)
        if session.connection is conn:
            session.connection = None
        event = {"event": "disconnect", "user": conn.user, "reason": conn.end_reason}
        if self.users[conn.user].cancel_on_disconnect and not self.ended:
            out = self.engine.disconnected(conn.user)
            self.counts["cancel_on_disconnect"] += sum(
                isinstance(m, ouch50.OrderCanceled) for _, m in out)
            self.publish(out, event=event)
        else:
            self.record_event(event)

    async def _heartbeats(self, conn: _Connection) -> None:
        interval = self.config.heartbeat_interval
        while not conn.closed:
            wait = conn.last_sent + interval - conn.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if conn.user is not None:
                conn.send(soupbintcp.ServerHeartbeat())
                self.counts["heartbeats_sent"] += 1
            else:
                await asyncio.sleep(interval)

    async def _packets(self, conn: _Connection):
        while not conn.closed:
            try:
                data = await asyncio.wait_for(conn.reader.read(65536),
                                              self.config.client_timeout)
            except asyncio.TimeoutError:
                self.counts["client_timeouts"] += 1
                conn.end_reason = "client_timeout"
                return
            if not data:
                conn.end_reason = "eof"
                return
            try:
                packets = conn.framer.feed(data)
            except FramingError:
                self.counts["framing_errors"] += 1
                conn.end_reason = "framing_error"
                return
            yield packets

    async def _converse(self, conn: _Connection) -> None:
        async for packets in self._packets(conn):
            # One fsync for everything one read brought, then the answers.
            with self.group_commit():
                going_on = self._handle_packets(conn, packets)
            if not going_on:
                with contextlib.suppress(ConnectionError):
                    await conn.writer.drain()
                return
            await conn.writer.drain()

    def _handle_packets(self, conn: _Connection, packets) -> bool:
        """False when the connection must end after these packets."""
        for packet in packets:
            if conn.user is None:
                if not isinstance(packet, soupbintcp.LoginRequest):
                    self.counts["not_logged_in"] += 1
                    return False
                if not self._login(conn, packet):
                    return False
            elif isinstance(packet, soupbintcp.UnsequencedData):
                self._receive(conn.user, packet.message)
            elif isinstance(packet, soupbintcp.LogoutRequest):
                self.counts["logouts"] += 1
                conn.end_reason = "logout"
                return False
            elif isinstance(packet, soupbintcp.LoginRequest):
                self.counts["second_login"] += 1
            # Client heartbeats and debug packets only prove the client is alive.
            if conn.closed:
                return False
        return True

    def _receive(self, user: str, raw: bytes) -> None:
        try:
            request = ouch50.decode_inbound(raw)
        except DecodeError as exc:
            self.counts[f"bad_ouch_{exc.reason}"] += 1
            self.publish([], inbound=(user, raw))
            return
        self.publish(self.engine.handle(user, request), inbound=(user, raw))

    def _login(self, conn: _Connection, req) -> bool:
        cfg = self.config
        user = self.users.get(req.username)
        if user is None or user.password != req.password:
            conn.send(soupbintcp.LoginRejected(reject_reason_code="A"))
            self.counts["login_rejected_auth"] += 1
            self.record_event({"event": "login_rejected", "user": req.username, "code": "A"})
            return False
        if self.ended or req.requested_session not in ("", cfg.session):
            conn.send(soupbintcp.LoginRejected(reject_reason_code="S"))
            self.counts["login_rejected_session"] += 1
            self.record_event({"event": "login_rejected", "user": req.username, "code": "S"})
            return False
        session = self.session(req.username)
        if session.connection is not None:
            self.counts["login_replaced_connection"] += 1
            old = session.connection
            old.finished = True   # the user is back, not gone: cancels nothing
            old.abort()
            self.record_event({"event": "disconnect", "user": req.username,
                               "reason": "replaced_by_login"})
        next_seq = len(session.sequenced) + 1
        start = req.requested_sequence_number
        if start == 0 or start > next_seq:
            start = next_seq
        conn.user = req.username
        self.record_event({"event": "login", "user": req.username, "sequence": start})
        conn.send(soupbintcp.LoginAccepted(session=cfg.session, sequence_number=start))
        # No await between the replay and attaching the connection: nothing
        # published meanwhile can slip between them.
        for raw in session.sequenced[start - 1:]:
            conn.send(soupbintcp.SequencedData(message=raw))
        session.connection = conn
        self.counts["logins"] += 1
        return True
