"""``zynqmm exchange-sim``: the exchange simulator as a TCP server.

Listens for SoupBinTCP 3.0 logins and speaks OUCH 5.0 (see
:mod:`host.exchange.engine` for the order rules and the matching against
the external market).  ``--market CAPTURE`` builds the external market from
a capture's ITCH messages through the golden book: loaded completely before
the first login by default, or replayed while serving, paced by the ITCH
timestamps, with ``--market-speed`` (1 = real time, 10 = ten times faster).
SIGINT or SIGTERM ends the day cleanly: End of Day system event, End of
Session to every client, journal closed.  The first line on stdout is
``listening on HOST:PORT`` (the real port when ``--listen`` asks for 0).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from host.protocols.errors import DecodeError


def register(sub) -> None:
    p = sub.add_parser("exchange-sim", help="run the OUCH 5.0 / SoupBinTCP exchange simulator",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="address to listen on (port 0: any free port)")
    p.add_argument("--users", metavar="FILE",
                   help="users JSON (host/exchange/config.py); default: ZMM01 / s3cret")
    p.add_argument("--journal", metavar="PATH", help="journal every message in and out here")
    p.add_argument("--throttle", type=int, metavar="N",
                   help="orders per second per user (users may override; default unlimited)")
    p.add_argument("--market", metavar="CAPTURE",
                   help="pcap, pcapng or ITCH file whose book is the external market")
    p.add_argument("--market-speed", type=float, default=0.0, metavar="X",
                   help="replay --market while serving at X times real time "
                        "(default 0: load it all before serving)")
    p.add_argument("--session", default="0000000001", help="SoupBinTCP session name")
    p.add_argument("--symbol", action="append", default=[],
                   help="accept orders only for these symbols (repeatable; default any)")
    p.add_argument("--heartbeat", type=float, default=1.0, metavar="S",
                   help="server heartbeat interval in seconds")
    p.add_argument("--client-timeout", type=float, default=15.0, metavar="S",
                   help="drop a client silent for this long")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _fail(message: str) -> int:
    print(f"zynqmm exchange-sim: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    from host.exchange.config import UsersFileError, load_users
    from host.exchange.server import ExchangeConfig

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        return _fail(str(exc))
    if args.throttle is not None and args.throttle < 1:
        return _fail("--throttle must be at least 1")
    if args.market_speed < 0:
        return _fail("--market-speed must not be negative")
    config = ExchangeConfig(session=args.session, heartbeat_interval=args.heartbeat,
                            client_timeout=args.client_timeout, throttle=args.throttle,
                            symbols=frozenset(args.symbol) or None, start_of_day=True)
    if args.users:
        try:
            config.users = load_users(args.users)
        except UsersFileError as exc:
            return _fail(str(exc))
    try:
        return asyncio.run(_serve(config, host, port, args))
    except OSError as exc:
        return _fail(str(exc))


async def _serve(config, host: str, port: int, args) -> int:
    from host.exchange.engine import OuchExchange
    from host.exchange.market import ItchMarket, iter_capture_batches
    from host.exchange.server import ExchangeServer
    from host.journal import JournalError

    market = None
    if args.market:
        market = ItchMarket()
        if args.market_speed == 0:
            try:
                for batch in iter_capture_batches(args.market):
                    market.process_batch(batch)
            except (OSError, ValueError) as exc:
                return _fail(f"{args.market}: {exc}")
    engine = OuchExchange(config.symbols, throttle=config.throttle, market=market)
    try:
        server = ExchangeServer(config, engine, journal=args.journal)
    except (OSError, JournalError) as exc:
        return _fail(str(exc))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start(host, port)
    print(f"listening on {host}:{server.port} session {config.session}", flush=True)
    replay = None
    if market is not None and args.market_speed > 0:
        replay = asyncio.create_task(_replay(server, market, args.market, args.market_speed))
    await stop.wait()
    if replay is not None:
        replay.cancel()
        await asyncio.gather(replay, return_exceptions=True)
    await server.shutdown()
    summary = {"server": dict(server.counts), "engine": dict(engine.counts),
               "users": {u: len(s.sequenced) for u, s in server.sessions.items()}}
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


async def _replay(server, market, path: str, speed: float) -> None:
    """Feed the capture's messages to the market at ``speed`` times the
    pace of their ITCH timestamps."""
    from host.exchange.market import iter_capture_messages
    from host.protocols.itch50 import decode_message

    loop = asyncio.get_running_loop()
    started = loop.time()
    first_ts = None
    for raw in iter_capture_messages(path):
        try:
            msg = decode_message(raw)
        except DecodeError:
            market.decode_errors += 1
            continue
        if first_ts is None:
            first_ts = msg.timestamp
        due = started + (msg.timestamp - first_ts) / 1e9 / speed
        if due - loop.time() > 0.001:
            await asyncio.sleep(due - loop.time())
        symbol = market.apply(msg)
        if symbol:
            server.market_changed((symbol,))
    server.record_event({"event": "market_replay_done", "capture": path})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zynqmm exchange-sim",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
