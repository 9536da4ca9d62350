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
"""
from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Awaitable, Callable

from host.protocols import soupbintcp
from host.protocols.soupbintcp import FramingError, SoupFramer


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

    @property
    def connected(self) -> bool:
        return not self.disconnected.is_set()

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
        self._framer = framer
        loop = asyncio.get_running_loop()
        self._last_sent = self._last_received = loop.time()
        self.disconnected.clear()
        self.counts["logins"] += 1
        for packet in early:
            self._dispatch(packet)
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

    def _dispatch(self, packet) -> None:
        if isinstance(packet, soupbintcp.SequencedData):
            seq = self._receive_sequence
            self._receive_sequence += 1
            if seq < self.next_sequence:
                self.counts["duplicates"] += 1
                return
            if self.on_sequenced is not None:
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
                for packet in self._framer.feed(data):
                    self._dispatch(packet)
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
        if not self.connected:
            raise NotConnectedError("not connected")
        self._writer.write(packet.packet())
        self._last_sent = asyncio.get_running_loop().time()

    def send(self, message: bytes) -> None:
        """Send one upper-layer message as Unsequenced Data."""
        self._write(soupbintcp.UnsequencedData(message=message))

    def _teardown(self) -> None:
        if self._heartbeat_task is not None and self._heartbeat_task is not asyncio.current_task():
            self._heartbeat_task.cancel()
        if self._writer is not None:
            self._writer.close()
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
