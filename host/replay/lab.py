"""The replay lab: appliance and replayer on a real (virtual) wire.

:func:`run_lab` builds a :class:`~host.replay.netns.VethPair`, then

* in the replayer namespace starts the exchange simulator
  (``zynqmm exchange-sim``) on the veth address;
* in the appliance namespace starts the appliance (``zynqmm run`` with
  ``ingest = "ps-bridge"`` and the model backend), connected to that
  simulator, and waits until its feed sockets have joined the multicast
  groups on the veth (``ip maddr``);
* runs ``zynqmm replay`` in the replayer namespace: the day goes out of the
  veth (whole frames, or a UDP socket; Python pacing or tcpreplay), feed
  and order entry are captured there with tcpdump, and the orders are
  matched against the model's expected run using the appliance's journal;
* stops the appliance (its kill and Mass Cancel) and the simulator, adds
  the appliance's own summary (``conflated`` among it) to the report, and
  removes the namespaces, also when something failed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from host.replay.netns import REPLAYER_IP, NetnsError, VethPair, netns_unavailable
from host.replay.sender import Timing
from host.replay.source import Selection

LAB_PASSWORD = "labpass"


class LabError(RuntimeError):
    """The lab could not be built or one of its processes failed."""


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise LabError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict) -> str:
    """TOML text for a configuration dictionary (tables, arrays of tables,
    scalars and inline values: what the appliance's configuration uses)."""
    lines: list[str] = []

    def table(prefix: str, body: dict, array: bool = False) -> None:
        scalars = {k: v for k, v in body.items()
                   if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                       and all(isinstance(i, dict) for i in v))}
        lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
        for key, value in body.items():
            if isinstance(value, dict):
                table(f"{prefix}.{json.dumps(key)}", value)
            elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
                for item in value:
                    table(f"{prefix}.{json.dumps(key)}", item, array=True)

    for key, value in data.items():
        if isinstance(value, dict):
            table(json.dumps(key), value)
        elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            for item in value:
                table(json.dumps(key), item, array=True)
        else:
            lines.insert(0, f"{json.dumps(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def appliance_config_text(base: Path, work: Path, exchange_port: int, username: str) -> str:
    """The base configuration with ps-bridge ingest on the model backend,
    its state in ``work`` and the lab's exchange."""
    data = tomllib.loads(Path(base).read_text())
    appliance = data.setdefault("appliance", {})
    appliance.update({"backend": "model", "ingest": "ps-bridge", "state_dir": str(work / "state"),
                      "status_file": str(work / "status.json")})
    appliance.pop("board", None)
    exchange = data.setdefault("exchange", {"username": username})
    exchange["connect"] = f"{REPLAYER_IP}:{exchange_port}"
    exchange.pop("password_file", None)
    exchange["password_env"] = "ZYNQMM_LAB_EXCHANGE_PASSWORD"
    data["metrics"] = {"enabled": False}
    return dump_toml(data)


def _zynqmm(*args: str) -> list[str]:
    return [sys.executable, "-m", "host.cli", *args]


def _replayer(*args: str) -> list[str]:
    return [sys.executable, "-m", "host.replay.cli", *args]


def _timing_args(timing: Timing) -> list[str]:
    return {"captured": ["--speed", "captured"], "scale": ["--speed", f"x{timing.value:g}"],
            "pps": ["--pps", f"{timing.value:g}"], "top": ["--top-speed"]}[timing.mode]


def _selection_args(selection: Selection, capture: Path) -> list[str]:
    args = ["--feeds", ",".join(selection.feeds), "--warmup", selection.warmup]
    for symbol in sorted(selection.symbols):
        args += ["--symbol", symbol]
    # Absolute capture times as offsets from the first packet, which the
    # replay command turns back into the same instants.
    if selection.start_ns is not None or selection.end_ns is not None:
        from host.replay.source import first_timestamp
        first = first_timestamp(capture)
        if selection.start_ns is not None:
            args += ["--start", f"+{(selection.start_ns - first) / 1e9:.9f}"]
        if selection.end_ns is not None:
            args += ["--end", f"+{(selection.end_ns - first) / 1e9:.9f}"]
    return args


def _stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_lab(capture: Path, config: Path, report: Path, *, timing: Timing = Timing("pps", 2000),
            selection: Selection = Selection(), mode: str = "iface", line_rate: bool = False,
            appliance_config: Path | None = None, settle: float = 1.0, quiet: bool = True,
            realtime: bool = True, ready_timeout: float = 45.0) -> tuple[dict, int]:
    reason = netns_unavailable()
    if reason is not None:
        raise LabError(f"network namespaces are not available: {reason}")
    capture, config, report = Path(capture).resolve(), Path(config).resolve(), Path(report).resolve()
    work = report / "lab"
    work.mkdir(parents=True, exist_ok=True)
    base = tomllib.loads(config.read_text())
    username = base.get("exchange", {}).get("username", "ZMM01")
    users = work / "users.json"
    users.write_text(json.dumps({username: LAB_PASSWORD}))
    env = dict(os.environ, ZYNQMM_LAB_EXCHANGE_PASSWORD=LAB_PASSWORD)
    pair = VethPair.named()
    exchange = appliance = None
    logs = []
    try:
        pair.create()
        exchange_log = open(work / "exchange.err", "w")
        logs.append(exchange_log)
        exchange = subprocess.Popen(
            pair.exec_args(pair.replayer_ns, _zynqmm(
                "exchange-sim", "--listen", f"{REPLAYER_IP}:0", "--users", str(users),
                "--journal", str(work / "exchange.journal"))),
            stdout=subprocess.PIPE, stderr=exchange_log, text=True, env=env)
        line = exchange.stdout.readline()
        if not line.startswith("listening on"):
            raise LabError(f"the exchange simulator did not start: {line.strip()} "
                           f"{(work / 'exchange.err').read_text()[-400:]}")
        port = int(line.split()[2].rpartition(":")[2])
        app_toml = work / "appliance.toml"
        app_toml.write_text(appliance_config_text(appliance_config or config, work, port,
                                                  username))
        app_out, app_err = open(work / "appliance.json", "w"), open(work / "appliance.err", "w")
        logs += [app_out, app_err]
        appliance = subprocess.Popen(
            pair.exec_args(pair.appliance_ns, _zynqmm(
                "run", "--config", str(app_toml), "--directory", str(capture))),
            stdout=app_out, stderr=app_err, env=env)
        groups = [a.split(":")[0] for a in (base.get("feed", {}).get("a", "233.54.12.1:26400"),
                                            base.get("feed", {}).get("b")) if a]
        deadline = time.monotonic() + ready_timeout
        while True:
            if appliance.poll() is not None:
                raise LabError(f"the appliance exited {appliance.returncode}: "
                               f"{(work / 'appliance.err').read_text()[-800:]}")
            joined = pair.memberships()
            if all(g in joined for g in groups) and (work / "status.json").exists():
                break
            if time.monotonic() > deadline:
                raise LabError(f"the appliance did not join {groups} within {ready_timeout} s")
            time.sleep(0.1)
        target = f"iface:{pair.replayer_if}" if mode == "iface" else "udp"
        args = ["replay", str(capture), "--to", target, "--config", str(config),
                "--journal", str(work / "state" / "orders.journal"),
                "--capture-iface", pair.replayer_if, "--orders-port", str(port),
                "--report", str(report), "--settle", str(settle), "--json", "--quiet",
                *_timing_args(timing), *_selection_args(selection, capture)]
        if line_rate:
            args.append("--line-rate")
        if realtime:
            args.append("--realtime")
        if mode == "udp":
            args += ["--interface-ip", REPLAYER_IP]
        replayer = subprocess.run(pair.exec_args(pair.replayer_ns, _replayer(*args)),
                                  capture_output=True, text=True, env=env)
        (work / "replay.err").write_text(replayer.stderr)
        status = replayer.returncode
        try:
            summary = json.loads(replayer.stdout[:replayer.stdout.rindex("}") + 1])
        except ValueError:
            raise LabError(f"zynqmm replay exited {status} without a summary: "
                           f"{replayer.stderr.strip()[-800:]}") from None
        _stop(appliance)
        app_out.flush()
        appliance_summary = _read_json(work / "appliance.json")
        if appliance_summary:
            summary["conflated"] = appliance_summary.get("conflated")
            # Frames the appliance took against frames on the wire: a
            # shortfall is socket-buffer loss in the ps-bridge.
            summary["appliance_lost_frames"] = (summary.get("send", {}).get("packets", 0)
                                                - int(appliance_summary.get("frames") or 0))
            summary["appliance"] = {k: appliance_summary.get(k) for k in (
                "frames", "messages", "quotes", "cancels", "requests", "risk_events", "deferred",
                "quote_to_wire_us", "kill")}
        summary["lab"] = {"replayer_ns": pair.replayer_ns, "appliance_ns": pair.appliance_ns,
                          "veth": [pair.replayer_if, pair.appliance_if], "exchange_port": port}
        _rewrite_report(report, summary)
        return summary, status
    except NetnsError as exc:
        raise LabError(str(exc)) from None
    finally:
        _stop(appliance)
        _stop(exchange, signal.SIGINT)
        for log in logs:
            log.close()
        pair.destroy()


def _read_json(path: Path) -> dict:
    text = path.read_text() if path.exists() else ""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        return json.loads(text[start:])
    except ValueError:
        return {}


def _rewrite_report(report: Path, summary: dict) -> None:
    from host.replay.report import PLOTS, write_html, write_summary

    if not (report / "summary.json").exists():
        return
    write_summary(report, summary)
    write_html(report, summary, [p for p in PLOTS if (report / p).exists()])
