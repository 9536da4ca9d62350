"""``zynqmm run``, ``zynqmm demo`` and ``zynqmm kill``.

``run`` starts the appliance from one configuration file: live (ingest ``pl``
or ``ps-bridge``) until SIGTERM/SIGINT, or over a recorded day with
``--replay``.  It serves the management endpoint (health, metrics, kill),
rewrites the status file every second and feeds the systemd watchdog.  On a
stop signal it pulls every quote (Mass Cancel), logs out and exits 0.

``demo`` runs the whole appliance against the in-process exchange simulator
on a shipped capture and prints the summary (``make demo``).

``kill`` asks a running appliance's management endpoint to kill: the fabric
stops quoting and every order is canceled; it prints the measured time from
command to last cancel on the wire.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

from host.runtime.config import ConfigError, load_config

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
DEMO_CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "day-clean.pcap"


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="start the appliance from a configuration file",
                                description=__doc__.split("\n\n")[1])
    run.add_argument("--config", required=True, help="TOML configuration (see configs/)")
    run.add_argument("--backend", choices=("model", "rtl", "board"),
                     help="override appliance.backend")
    run.add_argument("--replay", metavar="CAPTURE", help="replay this recorded day, then stop")
    run.add_argument("--speed", type=float, help="replay at SPEED times real time "
                     "(default: top speed)")
    run.add_argument("--directory", metavar="CAPTURE",
                     help="capture holding today's Stock Directory (default: the replay)")
    run.add_argument("--json", metavar="PATH", help="write the summary as JSON here")
    run.set_defaults(func=run_command)

    demo = subparsers.add_parser("demo", help="the whole appliance against the exchange "
                                 "simulator on a shipped capture")
    demo.add_argument("--config", default=str(DEMO_CONFIG))
    demo.add_argument("--capture", default=str(DEMO_CAPTURE))
    demo.add_argument("--backend", choices=("model", "rtl"), help="override appliance.backend")
    demo.add_argument("--speed", type=float, help="replay speed (default: top speed)")
    demo.add_argument("--state-dir", default="build/demo/state",
                      help="journals (emptied first)")
    demo.add_argument("--json", default="build/reports/demo.json")
    demo.set_defaults(func=demo_command)

    kill = subparsers.add_parser("kill", help="kill switch of a running appliance")
    kill.add_argument("--endpoint", default="127.0.0.1:9108", help="management HOST:PORT")
    kill.add_argument("--token-env", default="ZYNQMM_TOKEN",
                      help="environment variable holding the management token")
    kill.add_argument("--token-file", help="file holding the management token instead")
    kill.set_defaults(func=kill_command)


def _override_backend(config, backend):
    if backend is None:
        return config
    return config.model_copy(update={"appliance": config.appliance.model_copy(
        update={"backend": backend})})


def demo_command(args) -> int:
    import shutil

    from host.runtime.demo import print_summary, run_demo, write_report

    try:
        config = _override_backend(load_config(args.config), args.backend)
    except ConfigError as exc:
        print(f"zynqmm demo: {exc}", file=sys.stderr)
        return 2
    shutil.rmtree(args.state_dir, ignore_errors=True)
    summary = asyncio.run(run_demo(config, args.capture, args.state_dir, speed=args.speed))
    print_summary(summary)
    write_report(summary, Path(args.json))
    print(f"summary written to {args.json}")
    return 0


async def _serve(config, args) -> dict:
    from board.deploy.sdnotify import Notifier, WatchdogFeeder
    from board.deploy.status import now_utc, write_status
    from host.runtime.app import Appliance
    from host.runtime.directory import stock_locates
    from host.runtime.management import ManagementServer

    directory = args.directory or args.replay
    if directory is None:
        raise ConfigError("the appliance needs today's stock locates: give --directory CAPTURE "
                          "(a capture of the feed's Stock Directory messages)")
    locates = stock_locates(directory, config.underlyings())
    appliance = Appliance(config, locates)
    notifier = Notifier()
    watchdog = WatchdogFeeder.from_environment()
    management = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = now_utc()

    async def housekeeping():
        while not stop.is_set():
            write_status(config.appliance.status_file, appliance.status(started))
            watchdog.tick()
            await asyncio.sleep(1.0)

    await appliance.connect()
    if config.metrics.enabled:
        host, port = config.metrics.endpoint()
        management = ManagementServer(appliance, config.metrics.token().get_secret_value(),
                                      host, port)
        await management.start()
    keeper = asyncio.create_task(housekeeping())
    notifier.ready("quoting")
    try:
        if args.replay:
            await appliance.replay(args.replay, args.speed)
            await appliance.settle()
        else:
            await appliance.run_live(stop)
        await appliance.kill("stop")
        await appliance.settle()
        return appliance.summary()
    finally:
        notifier.stopping()
        stop.set()
        keeper.cancel()
        if management is not None:
            await management.close()
        await appliance.close()


def run_command(args) -> int:
    try:
        config = _override_backend(load_config(args.config), args.backend)
        summary = asyncio.run(_serve(config, args))
    except ConfigError as exc:
        print(f"zynqmm run: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(summary, indent=1, default=str)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def kill_command(args) -> int:
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    else:
        token = os.environ.get(args.token_env, "")
    if not token:
        print(f"zynqmm kill: no token (set {args.token_env} or give --token-file)",
              file=sys.stderr)
        return 2
    request = urllib.request.Request(f"http://{args.endpoint}/kill", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            figures = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"zynqmm kill: refused ({exc.code})", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"zynqmm kill: cannot reach {args.endpoint}: {exc}", file=sys.stderr)
        return 1
    print(f"killed: {figures['cancel_requests']} cancels, command to last cancel "
          f"{figures['command_to_last_cancel_us']:.0f} µs")
    return 0
