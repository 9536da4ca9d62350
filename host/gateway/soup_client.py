"""SoupBinTCP 3.0 client session (asyncio) with resumable sequencing.

:class:`SoupClient` logs in asking for ``next_sequence``, counts every
Sequenced Data packet from the sequence number Login Accepted announced, and
hands each to ``on_sequenced(sequence_number, message_bytes)``; the next
login asks for the number after the last one delivered, so a reconnect
neither loses nor repeats messages.  A message numbered below
``next_sequence`` (a server replaying more than asked) is dropped and counted
as a duplicate; a Login Accepted above the requested number is a gap, counted
and reported in ``gaps``.

Heartbeats: a Client Heartbeat goes out whenever nothing was sent for
``heartbeat_interval`` seconds; if nothing arrives for ``server_timeout``
seconds the connection is considered dead and closed.

Sending: the socket has TCP_NODELAY (a request leaves at once, never held
back by Nagle's algorithm waiting for an ACK), and :meth:`SoupClient.send`
hands a packet to the kernel right away unless the client is *corked*
(``with client.batch:``): then packets collect and leave in one send when
the outermost batch ends.  Whatever one read from the server brings is
handled as one batch, so the requests its messages cause go out together.
``after_read``, when set, is called once the packets of one read that
brought sequenced messages have all been handled (inside that batch).
``before_flush``, when set, is called as the outermost batch ends, before
its packets are handed to the kernel (also when there are none to send);
if it raises, the batch's packets are dropped unsent (``staged_dropped``)
and the error propagates.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from typing import Awaitable, Callable

from host.protocols import soupbintcp
from host.protocols.soupbintcp import FramingError, SoupFramer


class _Batch:
    """``with client.batch:`` -- packets sent inside leave in one send."""

    __slots__ = ("client",)

    def __init__(self, client: "SoupClient"):
        self.client = client

    def __enter__(self):
        self.client._corked += 1
        return self.client

    def __exit__(self, *exc) -> None:
        client = self.client
        client._corked -= 1
        if not client._corked:
            before_flush = client.before_flush
            if before_flush is not None:
                try:
                    before_flush()
                except BaseException:
                    # What had to precede the packets did not happen: they stay unsent.
                    if client._staged:
                        client.counts["staged_dropped"] += len(client._staged)
                        client._staged.clear()
                    raise
            if client._staged:
                client._flush()


class SoupClientError(Exception):
    pass


class LoginRejectedError(SoupClientError):
    def __init__(self, code: str):
        text = soupbintcp.LOGIN_REJECT_REASONS.get(code, "unknown reason")
        super().__init__(f"login rejected ({code}): {text}")
        self.code = code


class NotConnectedError(SoupClientError):
    pass


SequencedHandler = Callable[[int, bytes], None]


class SoupClient:
    def __init__(self, host: str, port: int, username: str, password: str, *,
                 session: str = "", next_sequence: int = 1,
                 on_sequenced: SequencedHandler | None = None,
                 heartbeat_interval: float = 1.0, server_timeout: float = 15.0,
                 login_timeout: float = 5.0):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.session = session
        self.next_sequence = next_sequence
        self.on_sequenced = on_sequenced
        self.heartbeat_interval = heartbeat_interval
        self.server_timeout = server_timeout
        self.login_timeout = login_timeout
        self.counts: Counter = Counter()
        self.gaps: list[tuple[int, int]] = []   # (first missing, first announced)
        self.end_of_session = False
        self._reader = self._writer = None
        self._reader_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self.disconnected = asyncio.Event()
        self.disconnected.set()
        self.last_error: BaseException | None = None
        self._up = False
        self._transport = None
        self._loop = None
        self._corked = 0
        self._staged: list[bytes] = []
        self.batch = _Batch(self)
        self.before_flush: Callable[[], object] | None = None
        self.after_read: Callable[[], object] | None = None
        self._handed_over = 0       # sequenced messages handed on since the last after_read

    @property
    def connected(self) -> bool:
        return self._up

    async def connect(self) -> soupbintcp.LoginAccepted:
        """Open the TCP connection and log in; raises LoginRejectedError,
        OSError or asyncio.TimeoutError."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        framer = SoupFramer(soupbintcp.SERVER)
        try:
            writer.write(soupbintcp.LoginRequest(
                username=self.username, password=self.password,
                requested_session=self.session,
                requested_sequence_number=self.next_sequence).packet())
            accepted, early = await asyncio.wait_for(self._await_login(reader, framer),
                                                     self.login_timeout)
        except BaseException:
            writer.close()
            raise
        if accepted.sequence_number > self.next_sequence:
            self.gaps.append((self.next_sequence, accepted.sequence_number))
            self.counts["gap_messages"] += accepted.sequence_number - self.next_sequence
        self.session = accepted.session
        self._receive_sequence = accepted.sequence_number
        self._reader, self._writer = reader, writer
        self._transport = writer.transport
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._framer = framer
        loop = self._loop = asyncio.get_running_loop()
        self._last_sent = self._last_received = loop.time()
        self._staged.clear()
        self.disconnected.clear()
        self._up = True
        self.counts["logins"] += 1
        if early:
            with self.batch:
                for packet in early:
                    self._dispatch(packet)
                self._read_done()
        self._reader_task = asyncio.create_task(self._read_loop())
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
        return accepted

    async def _await_login(self, reader, framer):
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection during login")
            packets = framer.feed(data)
            for i, packet in enumerate(packets):
                if isinstance(packet, soupbintcp.LoginRejected):
                    raise LoginRejectedError(packet.reject_reason_code)
                if isinstance(packet, soupbintcp.LoginAccepted):
                    return packet, packets[i + 1:]

    def _read_done(self) -> None:
        after_read = self.after_read
        if after_read is not None and self._handed_over:
            self._handed_over = 0
            after_read()

    def _dispatch(self, packet) -> None:
        if isinstance(packet, soupbintcp.SequencedData):
            seq = self._receive_sequence
            self._receive_sequence += 1
            if seq < self.next_sequence:
                self.counts["duplicates"] += 1
                return
            if self.on_sequenced is not None:
                self._handed_over += 1
                self.on_sequenced(seq, packet.message)
            self.next_sequence = seq + 1
            self.counts["sequenced"] += 1
        elif isinstance(packet, soupbintcp.ServerHeartbeat):
            self.counts["server_heartbeats"] += 1
        elif isinstance(packet, soupbintcp.EndOfSession):
            self.end_of_session = True
            self.counts["end_of_session"] += 1
        else:
            self.counts[f"ignored_{type(packet).__name__}"] += 1

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                remaining = self._last_received + self.server_timeout - loop.time()
                try:
                    data = await asyncio.wait_for(self._reader.read(65536), max(remaining, 0))
                except asyncio.TimeoutError:
                    self.counts["server_timeouts"] += 1
                    return
                if not data:
                    self.counts["server_closed"] += 1
                    return
                self._last_received = loop.time()
                with self.batch:
                    for packet in self._framer.feed(data):
                        self._dispatch(packet)
                    self._read_done()
                if self.end_of_session:
                    return
        except FramingError as exc:
            self.counts["framing_errors"] += 1
            self.last_error = exc
        except (ConnectionError, OSError) as exc:
            self.counts["connection_errors"] += 1
            self.last_error = exc
        except Exception as exc:   # a failing handler must not leave the session half alive
            self.last_error = exc
            self.counts["handler_errors"] += 1
        finally:
            self._teardown()

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last_sent + self.heartbeat_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._write(soupbintcp.ClientHeartbeat())
            self.counts["client_heartbeats"] += 1

    def _write(self, packet) -> None:
        self._send_bytes(packet.packet())

    def _send_bytes(self, raw: bytes) -> None:
        if not self._up:
            raise NotConnectedError("not connected")
        if self._corked:
            self._staged.append(raw)
        else:
            self._transport.write(raw)
        self._last_sent = self._loop.time()

    def _flush(self) -> None:
        staged = self._staged
        if len(staged) == 1:
            raw = staged[0]
        else:
            raw = b"".join(staged)
            self.counts["batched_packets"] += len(staged)
        staged.clear()
        if self._up:
            self._transport.write(raw)

    def send(self, message: bytes) -> None:
        """Send one upper-layer message as Unsequenced Data."""
        self._send_bytes(soupbintcp.unsequenced_packet(message))

    def _teardown(self) -> None:
        if self._heartbeat_task is not None and self._heartbeat_task is not asyncio.current_task():
            self._heartbeat_task.cancel()
        if self._writer is not None:
            self._writer.close()
        self._up = False
        # Requests staged in a batch that can no longer be sent: the journal
        # has them, the exchange never saw them (as with a dead socket).
        if self._staged:
            self.counts["staged_dropped"] += len(self._staged)
            self._staged.clear()
        self.disconnected.set()

    async def logout(self) -> None:
        """Send Logout Request and wait (briefly) for the server to close."""
        if self.connected:
            self._write(soupbintcp.LogoutRequest())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.disconnected.wait(), self.server_timeout)
        await self.close()

    async def close(self) -> None:
        self._teardown()
        for task in (self._reader_task, self._heartbeat_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._reader_task = self._heartbeat_task = None

    async def wait_closed(self) -> None:
        await self.disconnected.wait()
