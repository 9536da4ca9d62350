"""SoupBinTCP 3.0 server for the exchange simulator (asyncio).

One SoupBinTCP session per user: the session's sequenced messages are kept
for the whole day so that a client logging in with a requested sequence
number gets everything from there on, across any number of reconnects.

Login: username and password must match ``ExchangeConfig.users`` (otherwise
Login Rejected ``A``); the requested session must be blank or the current
session, and the session must not have ended (otherwise ``S``).  A requested
sequence number of 0, or one past the end, starts at the next message; Login
Accepted carries the sequence number of the first message that follows.  A
new login for a user that is still connected replaces the old connection,
which is closed (the old TCP connection is usually already dead).

Heartbeats: the server sends Server Heartbeat whenever it has sent nothing
for ``heartbeat_interval`` seconds, and drops a client it has heard nothing
from for ``client_timeout`` seconds.  Logout Request closes the connection;
:meth:`ExchangeServer.end_session` sends End of Session to everyone.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from host.exchange.engine import OuchExchange
from host.protocols import ouch50, soupbintcp
from host.protocols.errors import DecodeError
from host.protocols.soupbintcp import FramingError, SoupFramer

log = logging.getLogger(__name__)


@dataclass
class ExchangeConfig:
    users: dict[str, str] = field(default_factory=lambda: {"ZMM01": "s3cret"})
    session: str = "0000000001"
    heartbeat_interval: float = 1.0
    client_timeout: float = 15.0
    symbols: frozenset[str] | None = None


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
    def __init__(self, config: ExchangeConfig | None = None, engine: OuchExchange | None = None):
        self.config = config or ExchangeConfig()
        self.engine = engine or OuchExchange(self.config.symbols)
        self.sessions: dict[str, _UserSession] = {}
        self.counts: Counter = Counter()
        self.ended = False
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in self.sessions.values():
            if session.connection is not None:
                session.connection.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

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
        self.session(user).connection = None
        return True

    def end_session(self) -> None:
        """Send End of Session to every logged-in client; later logins fail."""
        self.ended = True
        for session in self.sessions.values():
            conn = session.connection
            if conn is not None:
                conn.send(soupbintcp.EndOfSession())
                conn.close()
                session.connection = None

    def publish(self, outbound) -> None:
        """Sequence OUCH messages for their users and send them to whoever is
        connected."""
        for user, msg in outbound:
            session = self.session(user)
            raw = msg.encode()
            session.sequenced.append(raw)
            if session.connection is not None:
                session.connection.send(soupbintcp.SequencedData(message=raw))

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
        finally:
            heartbeat.cancel()
            if conn.user is not None and self.session(conn.user).connection is conn:
                self.session(conn.user).connection = None
            conn.close()
            self._tasks.discard(task)

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
                return
            if not data:
                return
            try:
                packets = conn.framer.feed(data)
            except FramingError:
                self.counts["framing_errors"] += 1
                return
            for packet in packets:
                yield packet

    async def _converse(self, conn: _Connection) -> None:
        async for packet in self._packets(conn):
            if conn.user is None:
                if not isinstance(packet, soupbintcp.LoginRequest):
                    self.counts["not_logged_in"] += 1
                    return
                if not self._login(conn, packet):
                    await conn.writer.drain()
                    return
            elif isinstance(packet, soupbintcp.UnsequencedData):
                try:
                    request = ouch50.decode_inbound(packet.message)
                except DecodeError as exc:
                    self.counts[f"bad_ouch_{exc.reason}"] += 1
                    continue
                self.publish(self.engine.handle(conn.user, request))
            elif isinstance(packet, soupbintcp.LogoutRequest):
                self.counts["logouts"] += 1
                return
            elif isinstance(packet, soupbintcp.LoginRequest):
                self.counts["second_login"] += 1
            # Client heartbeats and debug packets only prove the client is alive.
            await conn.writer.drain()

    def _login(self, conn: _Connection, req) -> bool:
        cfg = self.config
        if cfg.users.get(req.username) != req.password:
            conn.send(soupbintcp.LoginRejected(reject_reason_code="A"))
            self.counts["login_rejected_auth"] += 1
            return False
        if self.ended or req.requested_session not in ("", cfg.session):
            conn.send(soupbintcp.LoginRejected(reject_reason_code="S"))
            self.counts["login_rejected_session"] += 1
            return False
        session = self.session(req.username)
        if session.connection is not None:
            self.counts["login_replaced_connection"] += 1
            session.connection.abort()
        next_seq = len(session.sequenced) + 1
        start = req.requested_sequence_number
        if start == 0 or start > next_seq:
            start = next_seq
        conn.user = req.username
        conn.send(soupbintcp.LoginAccepted(session=cfg.session, sequence_number=start))
        # No await between the replay and attaching the connection: nothing
        # published meanwhile can slip between them.
        for raw in session.sequenced[start - 1:]:
            conn.send(soupbintcp.SequencedData(message=raw))
        session.connection = conn
        self.counts["logins"] += 1
        return True
