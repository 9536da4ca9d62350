"""``--to backend:model|rtl``: the whole appliance in this process on a fabric
backend, against the exchange simulator on loopback.

Frames go from the capture straight into the fabric (:meth:`Appliance.replay`,
the same path as ``zynqmm run --replay``), paced as asked.  :class:`TimedFabric`
wraps the backend's fabric and notes when each frame was pushed, so the
tick-to-order latency of the software path is the time a request was
written to the socket (the trigger's ``sent_ns``) minus the push time of
the frame that carried its triggering message, both on the monotonic
clock.  On the RTL backend it also keeps the simulated fabric's stamp of
every book record (:attr:`BackendRun.record_cycles`): the expected run
takes them, so its risk gate sees the same timing.  The exchange simulator
has no option market, so nothing trades and positions stay zero.  At the
end the appliance is killed (kill pulls and a Mass Cancel) as ``zynqmm
run`` does when it stops.

There is no wire here: ``orders.pcap`` is written from the journal
(:func:`journal_to_pcap`), SoupBinTCP framing rebuilt around each request
and answer, stamped with the journal's times.
"""
from __future__ import annotations

import array
import asyncio
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from host.exchange.server import ExchangeConfig, ExchangeServer
from host.gateway.gateway import RX, TX
from host.journal.journal import Record
from host.pcap.frames import build_tcp_frame
from host.pcap.writer import PcapWriter
from host.protocols import soupbintcp
from host.runtime.app import JOURNAL_NAME, Appliance
from host.runtime.config import AppConfig
from host.runtime.fabric import Fabric, open_fabric
from host.runtime.plan import CORE_MHZ

APPLIANCE_IP, EXCHANGE_IP = "127.0.0.1", "127.0.0.2"
APPLIANCE_PORT = 40000


class BackendUnavailable(RuntimeError):
    """The backend's fabric cannot be opened here (no simulator, no board)."""


class TimedFabric(Fabric):
    """A backend's fabric, with the monotonic time each frame was pushed."""

    def __init__(self, inner: Fabric):
        self.inner = inner
        self.backend = inner.backend
        self.push_ns = array.array("q")

    def load(self, config) -> None:
        self.inner.load(config)

    def push(self, frames: Iterable, arrival_ns: Iterable[int] | None = None) -> None:
        frames = list(frames)
        now = time.monotonic_ns()
        self.push_ns.extend([now] * len(frames))
        self.inner.push(frames, arrival_ns)

    def poll(self):
        return self.inner.poll()

    def set_kill(self, kill: bool) -> None:
        self.inner.set_kill(kill)

    def set_position(self, option_id: int, contracts: int) -> None:
        self.inner.set_position(option_id, contracts)

    def counters(self) -> dict:
        return self.inner.counters()

    def close(self) -> None:
        self.inner.close()

    @property
    def record_cycles(self) -> list[int] | None:
        """The stamp the fabric gave each book record when it has a clock of
        its own (the RTL backend), else None (the model stamps from arrival
        times, as the expected run does)."""
        return getattr(self.inner, "record_cycles", None)


def open_backend(backend: str, config: AppConfig) -> TimedFabric:
    try:
        inner = open_fabric(backend, core_mhz=CORE_MHZ[config.appliance.board])
    except Exception as exc:   # any failure to open means: not here
        raise BackendUnavailable(f"backend {backend!r} is not available here: "
                                 f"{type(exc).__name__}: {exc}") from exc
    return TimedFabric(inner)


@dataclass
class BackendRun:
    backend: str
    journal: Path
    push_ns: array.array
    summary: dict = field(default_factory=dict)
    seconds: float = 0.0
    record_cycles: list[int] | None = None    # the fabric's book-record stamps (rtl)


async def _run(capture: Path, config: AppConfig, locates: dict[str, int], fabric: TimedFabric,
               state_dir: Path, speed: float | None, progress) -> BackendRun:
    exchange = config.exchange
    if exchange.password_env is not None:
        password = os.environ.setdefault(exchange.password_env, "replay")
    else:
        password = exchange.password().get_secret_value()
    server = ExchangeServer(ExchangeConfig(users={exchange.username: password},
                                           heartbeat_interval=exchange.heartbeat_interval),
                            journal=state_dir / "exchange.journal")
    port = await server.start("127.0.0.1", 0)
    config = config.model_copy(update={"exchange": exchange.model_copy(
        update={"connect": f"127.0.0.1:{port}"})})
    appliance = Appliance(config, locates, fabric=fabric, state_dir=state_dir)
    started = time.perf_counter()
    try:
        await appliance.connect()
        await appliance.replay(capture, speed, progress)
        await appliance.settle()
        await appliance.kill("end of replay")
        await appliance.settle()
        summary = appliance.summary()
    finally:
        await appliance.close()
        await server.shutdown(timeout=0.5)
    return BackendRun(fabric.backend, state_dir / JOURNAL_NAME, fabric.push_ns, summary,
                      time.perf_counter() - started, fabric.record_cycles)


def run_backend(capture: str | Path, config: AppConfig, locates: dict[str, int], backend: str,
                state_dir: str | Path, speed: float | None = None,
                progress: Callable[[int], None] | None = None) -> BackendRun:
    """The appliance on ``backend`` over ``capture``; journals in ``state_dir`` (emptied)."""
    state_dir = Path(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    fabric = open_backend(backend, config)
    return asyncio.run(_run(Path(capture), config, locates, fabric, state_dir, speed, progress))


def journal_to_pcap(records: list[Record], path: str | Path, port: int = 15000) -> int:
    """The journal's requests and answers as one SoupBinTCP session on the
    wire (requests as Unsequenced Data, answers as Sequenced Data)."""
    seq = {"c": 1, "s": 1}
    written = 0
    with PcapWriter(path) as writer:
        for record in records:
            if record.kind == TX:
                body = soupbintcp.encode_packet(soupbintcp.UnsequencedData(message=record.payload))
                frame = build_tcp_frame(body, APPLIANCE_IP, EXCHANGE_IP, APPLIANCE_PORT, port,
                                        seq=seq["c"], ack=seq["s"])
                seq["c"] += len(body)
            elif record.kind == RX:
                body = soupbintcp.encode_packet(
                    soupbintcp.SequencedData(message=record.payload[8:]))
                frame = build_tcp_frame(body, EXCHANGE_IP, APPLIANCE_IP, port, APPLIANCE_PORT,
                                        seq=seq["s"], ack=seq["c"])
                seq["s"] += len(body)
            else:
                continue
            writer.write(record.timestamp_ns, frame)
            written += 1
    return written
