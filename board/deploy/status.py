"""``zynqmm status``, and the status file contract between the runtime and it.

The contract: while it runs, the runtime rewrites ``/run/zynqmm/status.json``
(``appliance.status_file``) at least every ``interval_s`` seconds, atomically
(:func:`write_status`: a temporary file in the same folder, fsync, rename),
with one JSON object of schema ``zynqmm-status/1``::

    {"schema": "zynqmm-status/1", "written_at": "2026-03-02T14:30:00.123+00:00",
     "started_at": "...", "pid": 812, "interval_s": 1.0,
     "overlay": {"name": "<sha256 of the .bit>", "build_id": "0x1a2b3c4d",
                 "map_version": "0x5e6f7a8b"},
     "feeds": {"A": {"state": "live", "last_sequence": 123456, "messages": 99000,
                     "gaps": 0}, "B": {...}},
     "orders": {"open": 12, "sent": 340, "filled": 80, "cancelled": 248, "rejected": 0},
     "risk": {"state": "ok", "reason": null}}

Fields may be added within the schema (readers ignore unknown ones);
changing or removing one needs a new schema name.  The file is in
``/run`` (tmpfs, the unit's RuntimeDirectory), so it disappears when the
service stops and a leftover never masquerades as a running appliance.
It holds no secrets: it is world-readable.

``zynqmm status`` shows it together with the overlay links and the service
state, locally or from a board over SSH (the agent collects; this module
judges, against the board's own clock).
"""
from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from board.deploy import agent
from board.deploy.ssh import Target, connect, run_sync

SCHEMA = "zynqmm-status/1"
# A status older than this many intervals (plus a grace for a busy board)
# means the runtime has stopped writing it.
STALE_INTERVALS = 3
STALE_GRACE_S = 2.0

RuntimeState = Literal["running", "stale", "absent", "invalid"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _hex32(value: str) -> str:
    try:
        number = int(value, 16) if value.lower().startswith("0x") else None
    except ValueError:
        number = None
    if number is None or not 0 <= number <= 0xFFFFFFFF:
        raise ValueError(f"expected a 32-bit 0x-hex value, got {value!r}")
    return value


class OverlayStatus(_Part):
    name: str = Field(pattern=r"^[0-9a-f]{64}$")
    build_id: str
    map_version: str

    @field_validator("build_id", "map_version")
    @classmethod
    def _word(cls, value: str) -> str:
        return _hex32(value)


class FeedStatus(_Part):
    state: Literal["live", "recovering", "stale", "down"]
    last_sequence: int = Field(ge=0)
    messages: int = Field(ge=0)
    gaps: int = Field(ge=0)


class OrderCounts(_Part):
    open: int = Field(ge=0)
    sent: int = Field(ge=0)
    filled: int = Field(ge=0)
    cancelled: int = Field(ge=0)
    rejected: int = Field(ge=0)


class RiskStatus(_Part):
    state: Literal["ok", "halted", "killed"]
    reason: str | None = None


class RuntimeStatus(_Part):
    """One snapshot of the running appliance (the schema above)."""
    schema_: Literal["zynqmm-status/1"] = Field(SCHEMA, alias="schema")
    written_at: datetime
    started_at: datetime
    pid: int = Field(gt=0)
    interval_s: float = Field(1.0, gt=0, le=60)
    overlay: OverlayStatus | None = None
    feeds: dict[str, FeedStatus] = {}
    orders: OrderCounts
    risk: RiskStatus

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @field_validator("written_at", "started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a UTC offset")
        return value

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def write_status(path: Path, status: RuntimeStatus) -> None:
    """Replace the status file in one rename, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(status.to_json() + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class StatusReport:
    where: str
    now: float
    overlays: dict
    service: str | None
    runtime_state: RuntimeState
    runtime: RuntimeStatus | None = None
    status_file: str = ""
    problems: list[str] = field(default_factory=list)
    age_s: float | None = None

    def as_dict(self) -> dict:
        links = self.overlays
        return {
            "where": self.where, "service": self.service, "status_file": self.status_file,
            "overlay": {"current": links.get("current"), "previous": links.get("previous"),
                        "manifests": {k: _manifest_summary(v)
                                      for k, v in links.get("manifests", {}).items()}},
            "runtime": {"state": self.runtime_state, "age_s": self.age_s,
                        "status": json.loads(self.runtime.to_json()) if self.runtime else None},
            "problems": self.problems,
        }


def _manifest_summary(manifest: dict) -> dict:
    if "error" in manifest:
        return {"error": manifest["error"]}
    return {key: manifest.get(key) for key in ("board", "build_id", "map_version", "git_revision",
                                              "built_at")}


def judge(collected: dict, where: str) -> StatusReport:
    """A report from what the agent collected (``agent.cmd_status``)."""
    now = float(collected["now"])
    overlays = collected.get("overlays", {})
    runtime = collected.get("runtime", {})
    report = StatusReport(where=where, now=now, overlays=overlays,
                          service=collected.get("service"), runtime_state="absent",
                          status_file=runtime.get("path", ""))
    if not runtime.get("present"):
        report.problems.append(f"no status file at {report.status_file}: the runtime is not running")
    elif "error" in runtime:
        report.runtime_state = "invalid"
        report.problems.append(f"{report.status_file}: {runtime['error']}")
    else:
        try:
            status = RuntimeStatus.model_validate(runtime.get("content"))
        except ValidationError as exc:
            report.runtime_state = "invalid"
            report.problems.append(f"{report.status_file}: not a {SCHEMA} status: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()))
        else:
            report.runtime = status
            report.age_s = round(now - status.written_at.timestamp(), 3)
            limit = STALE_INTERVALS * status.interval_s + STALE_GRACE_S
            if report.age_s > limit:
                report.runtime_state = "stale"
                report.problems.append(f"the status is {report.age_s:.1f} s old (limit {limit:.1f} s): "
                                       f"the runtime stopped writing it")
            else:
                report.runtime_state = "running"
            current = overlays.get("current")
            if status.overlay and current and status.overlay.name != current:
                report.problems.append(f"the runtime runs overlay {status.overlay.name[:12]}, but "
                                       f"current is {current[:12]}: restart it to load the new one")
            if status.risk.state != "ok":
                report.problems.append(f"risk is {status.risk.state}"
                                       + (f": {status.risk.reason}" if status.risk.reason else ""))
    for name in ("current", "previous"):
        manifest = overlays.get("manifests", {}).get(overlays.get(name) or "", {})
        if "error" in manifest:
            report.problems.append(f"{name} overlay: {manifest['error']}")
    return report


def status_file_from_config(config: Path, root: str = "/") -> str | None:
    """``appliance.status_file`` of a configuration, below ``root``; None when
    the file does not set it."""
    try:
        data = tomllib.loads(Path(config).read_text())
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{config}: {exc}") from exc
    value = data.get("appliance", {}).get("status_file")
    if value is None:
        return None
    return os.path.join(root, str(value).lstrip("/"))


def local_status(root: str = "/", status_file: str | None = None) -> StatusReport:
    if status_file is None:
        status_file = status_file_from_config(Path(root) / agent.CONFIG_PATH, root)
    return judge(agent.cmd_status(root, status_file), "local" if root == "/" else f"local {root}")


async def remote_status_async(target: Target, status_file: str | None = None) -> StatusReport:
    args = ["status"] + (["--status-file", status_file] if status_file else [])
    async with connect(target) as remote:
        collected = await remote.agent_readonly(*args, what="collecting the status")
    return judge(collected, target.display)


def remote_status(target: Target, status_file: str | None = None) -> StatusReport:
    return run_sync(remote_status_async(target, status_file))


def render(report: StatusReport) -> str:
    links = report.overlays
    lines = [f"where     {report.where}",
             f"service   {report.service or 'not managed by systemd here'}"]
    manifests = links.get("manifests", {})
    for role in ("current", "previous"):
        name = links.get(role)
        if not name:
            lines.append(f"{role:<9} none")
            continue
        summary = _manifest_summary(manifests.get(name, {}))
        detail = summary.get("error") or (f"build {summary['build_id']}, map {summary['map_version']}, "
                                          f"{summary['board']}, built {summary['built_at']}")
        lines.append(f"{role:<9} {name[:12]}  {detail}")
    runtime = report.runtime
    if runtime is None:
        lines.append(f"runtime   {report.runtime_state}")
    else:
        lines.append(f"runtime   {report.runtime_state}, pid {runtime.pid}, written "
                     f"{report.age_s:.1f} s ago, up since {runtime.started_at.isoformat(timespec='seconds')}")
        if runtime.overlay:
            lines.append(f"fabric    {runtime.overlay.name[:12]}  build {runtime.overlay.build_id}, "
                         f"map {runtime.overlay.map_version}")
        for name, feed in sorted(runtime.feeds.items()):
            lines.append(f"feed {name:<4} {feed.state}, sequence {feed.last_sequence}, "
                         f"{feed.messages} messages, {feed.gaps} gaps")
        o = runtime.orders
        lines.append(f"orders    {o.open} open; {o.sent} sent, {o.filled} filled, "
                     f"{o.cancelled} cancelled, {o.rejected} rejected")
        lines.append(f"risk      {runtime.risk.state}"
                     + (f" ({runtime.risk.reason})" if runtime.risk.reason else ""))
    for problem in report.problems:
        lines.append(f"problem   {problem}")
    return "\n".join(lines)


def example_status(**overrides) -> RuntimeStatus:
    """A well-formed status, for documentation and tests of readers."""
    now = now_utc()
    values = dict(written_at=now, started_at=now, pid=os.getpid(), interval_s=1.0,
                  feeds={"A": FeedStatus(state="live", last_sequence=0, messages=0, gaps=0)},
                  orders=OrderCounts(open=0, sent=0, filled=0, cancelled=0, rejected=0),
                  risk=RiskStatus(state="ok"))
    values.update(overrides)
    return RuntimeStatus(**values)
