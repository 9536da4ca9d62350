"""The appliance's management endpoint: health, Prometheus metrics, kill.

A small HTTP/1.1 server on the appliance's event loop (no thread, so a
request sees a consistent state):

* ``GET /health``  -- ``{"ok": true, ...}`` while the appliance runs;
* ``GET /metrics`` -- Prometheus text exposition (prometheus-client);
* ``POST /kill``   -- the kill switch: fabric kill bit plus Mass Cancel;
  answers with the measured figures.

Every request must carry ``Authorization: Bearer <token>``; anything else is
answered 401 without saying why, and the token never appears in a log line
or a response.  Requests are read with a size limit and a timeout, so a slow
or hostile client cannot hold the loop.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)
MAX_REQUEST = 8192
READ_TIMEOUT = 5.0


class _ApplianceCollector:
    """Reads the appliance's figures at scrape time."""

    def __init__(self, appliance):
        self.appliance = appliance

    def collect(self):
        summary = self.appliance.summary()
        for key in ("frames", "messages", "book_updates", "trades", "quotes", "cancels",
                    "orders", "fills"):
            metric = CounterMetricFamily(f"zynqmm_{key}", f"{key.replace('_', ' ')} so far")
            metric.add_metric([], summary.get(key, 0))
            yield metric
        risk = CounterMetricFamily("zynqmm_risk_events", "requests refused by pre-trade risk",
                                   labels=["reason"])
        for reason, count in summary["risk_events"].items():
            risk.add_metric([reason], count)
        yield risk
        blocks = CounterMetricFamily("zynqmm_fabric_counter", "fabric block counters",
                                     labels=["block", "counter"])
        for block, counters in self.appliance.fabric.counters().items():
            for name, value in counters.items():
                blocks.add_metric([block, name], value)
        yield blocks
        killed = GaugeMetricFamily("zynqmm_killed", "1 while the kill switch is set")
        killed.add_metric([], 1 if self.appliance.killed else 0)
        yield killed
        pnl = GaugeMetricFamily("zynqmm_pnl_dollars", "P&L against theo", labels=["kind"])
        for kind, value in summary["pnl"].items():
            pnl.add_metric([kind], float(value))
        yield pnl


class ManagementServer:
    def __init__(self, appliance, token: str, host: str = "127.0.0.1", port: int = 9108):
        if not token:
            raise ValueError("the management endpoint needs a token")
        self.appliance = appliance
        self._token = token.encode()
        self.host, self.requested_port = host, port
        self.registry = CollectorRegistry()
        self.registry.register(_ApplianceCollector(appliance))
        self.requests = Counter("zynqmm_management_requests", "management requests",
                                ["path", "status"], registry=self.registry)
        self._server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _authorized(self, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                  self._token)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body, ctype, path = 400, b"bad request\n", "text/plain", "?"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            if len(head) > MAX_REQUEST:
                raise ValueError("request too large")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if not self._authorized(headers):
                status, body = 401, b"unauthorized\n"
            else:
                status, body, ctype = await self._route(method, path)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, UnicodeDecodeError):
            pass
        self.requests.labels(path if path in ("/health", "/metrics", "/kill") else "other",
                             str(status)).inc()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed"}.get(status, "")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def _route(self, method: str, path: str) -> tuple[int, bytes, str]:
        if path == "/health":
            if method != "GET":
                return 405, b"GET only\n", "text/plain"
            return 200, json.dumps(self.appliance.health()).encode() + b"\n", "application/json"
        if path == "/metrics":
            if method != "GET":
                return 405, b"GET only\n", "text/plain"
            return 200, generate_latest(self.registry), "text/plain; version=0.0.4"
        if path == "/kill":
            if method != "POST":
                return 405, b"POST only\n", "text/plain"
            log.warning("kill requested through the management endpoint")
            figures = await self.appliance.kill("management endpoint")
            return 200, json.dumps(figures).encode() + b"\n", "application/json"
        return 404, b"not found\n", "text/plain"
