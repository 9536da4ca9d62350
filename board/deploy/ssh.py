"""Boards as SSH targets, and one SSH session to a board.

``--board`` names a target from the targets file (``$ZYNQMM_TARGETS``, else
``~/.config/zynqmm/targets.toml``; ``files/targets.example.toml`` shows every
setting) or is ``[user@]host[:port]`` with defaults for everything else.  A
target says how to reach the board (host, port, user, key, known_hosts),
which board it is, where the zynqmm tree lives on it (``root``: ``/`` on a
real board, a scratch folder for tests) and which command programs the
fabric (``loader``).

Host keys are always checked, against ``known_hosts`` (default
``~/.ssh/known_hosts``); passwords are never used: keys or an ssh-agent only.
"""
from __future__ import annotations

import asyncio
import json
import os
import posixpath
import re
import shlex
import tomllib
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable, Sequence

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from board.deploy import agent as agent_module

AGENT_SOURCE_FILE = Path(agent_module.__file__)
PYNQ_PYTHON = "/usr/local/share/pynq-venv/bin/python3"
# Placeholders in a loader command: the board's agent file, the pynq venv's
# interpreter, the target's Python and root.
DEFAULT_LOADER = "{pynq_python} {agent} load"
# The agent needs the standard library only: no site-packages to scan at
# start-up, no environment variables or user site to be influenced by.
AGENT_PYTHON_FLAGS = ("-I", "-S")
TARGETS_ENV = "ZYNQMM_TARGETS"
DEFAULT_TARGETS_FILE = Path("~/.config/zynqmm/targets.toml")
_HOST_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<ip6>[0-9a-fA-F:.]+)\]|(?P<host>[^:@\s\[\]]+))"
                        r"(?::(?P<port>\d+))?$")

Say = Callable[[str], None]


class DeployError(Exception):
    """A deployment step failed; the message says what and what state the board is in."""


class TargetError(DeployError):
    """The target is unknown or its settings are wrong."""


class ConnectionProblem(DeployError):
    """The SSH connection could not be made or was lost."""


class RemoteError(DeployError):
    """A command on the board failed."""


class Target(BaseModel):
    """How to reach one board and run things on it."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    identity: Path | None = None
    known_hosts: Path | None = None
    board: str | None = None
    root: str = "/"
    python: str = "python3"
    pynq_python: str = PYNQ_PYTHON
    loader: str = DEFAULT_LOADER
    sudo: bool | None = None
    connect_timeout_s: float = Field(15.0, gt=0)

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("root must be an absolute path on the board")
        return value

    @field_validator("board")
    @classmethod
    def _known_board(cls, value: str | None) -> str | None:
        from board.boards import board_names
        if value is not None and value not in board_names():
            raise ValueError(f"unknown board {value!r} (boards: {', '.join(board_names())})")
        return value

    @field_validator("identity", "known_hosts")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def display(self) -> str:
        who = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        address = f"{who}{host}:{self.port}"
        spelled = {self.host, host, f"{who}{host}", address}
        return address if self.name in spelled else f"{self.name} ({address})"

    @property
    def use_sudo(self) -> bool:
        if self.sudo is not None:
            return self.sudo
        return (self.user or os.environ.get("USER", "")) != "root"

    def path(self, relative: str) -> str:
        """An absolute path on the board for a path relative to the root."""
        return posixpath.join(self.root, relative)

    @property
    def agent_path(self) -> str:
        return self.path(agent_module.AGENT_PATH)

    @property
    def overlays_dir(self) -> str:
        return self.path(agent_module.OVERLAYS_DIR)

    def loader_argv(self) -> list[str]:
        command = (self.loader.replace("{pynq_python}", shlex.quote(self.pynq_python))
                   .replace("{agent}", shlex.quote(self.agent_path))
                   .replace("{python}", shlex.quote(self.python))
                   .replace("{root}", shlex.quote(self.root)))
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise TargetError(f"{self.name}: loader {self.loader!r}: {exc}") from exc
        if not argv:
            raise TargetError(f"{self.name}: the loader command is empty")
        return argv

    def privileged(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run as root: through ``sudo -n`` (never prompting) unless
        the session already is root."""
        return ["sudo", "-n", *argv] if self.use_sudo else list(argv)


def targets_file(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ.get(TARGETS_ENV) or DEFAULT_TARGETS_FILE).expanduser()


def load_targets(path: Path) -> dict[str, Target]:
    """The ``[targets.NAME]`` tables of a targets file."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: {exc}") from exc
    tables = data.get("targets", {})
    if not isinstance(tables, dict):
        raise TargetError(f"{path}: [targets] must be a table of tables")
    targets = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise TargetError(f"{path}: targets.{name} must be a table")
        try:
            targets[name] = Target(name=name, **table)
        except ValidationError as exc:
            raise TargetError(f"{path}: targets.{name}: " + _validation_text(exc)) from exc
        except TypeError as exc:
            raise TargetError(f"{path}: targets.{name}: {exc}") from exc
    return targets


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                     for err in exc.errors())


def resolve_target(spec: str, targets: Path | None = None) -> Target:
    """A target by name from the targets file, else ``[user@]host[:port]``."""
    path = targets_file(targets)
    known = load_targets(path)
    if spec in known:
        return known[spec]
    match = _HOST_SPEC.match(spec)
    if not match:
        raise TargetError(f"{spec!r} is neither a target in {path} nor [user@]host[:port]")
    host = match["ip6"] or match["host"]
    try:
        return Target(name=spec, host=host, port=int(match["port"] or 22), user=match["user"])
    except ValidationError as exc:
        raise TargetError(f"{spec!r}: " + _validation_text(exc)) from exc


def parse_json_output(text: str, what: str) -> dict:
    """The JSON object an agent command printed (its last non-empty line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RemoteError(f"{what}: no output")
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise RemoteError(f"{what}: unreadable output {lines[-1][:200]!r}") from exc
    if not isinstance(value, dict):
        raise RemoteError(f"{what}: expected a JSON object, got {lines[-1][:200]!r}")
    return value


class Remote:
    """One SSH connection to a target: commands, file uploads and the agent."""

    def __init__(self, target: Target, connection: asyncssh.SSHClientConnection):
        self.target = target
        self.connection = connection
        self._sftp: asyncssh.SFTPClient | None = None

    async def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            self._sftp = await self._guard(self.connection.start_sftp_client(), "starting SFTP")
        return self._sftp

    async def _guard(self, awaitable, what: str):
        """Await ``awaitable``; a lost or failing connection becomes a
        :class:`ConnectionProblem` naming the step."""
        try:
            return await awaitable
        except asyncssh.SFTPError as exc:
            if isinstance(exc, asyncssh.SFTPConnectionLost):
                raise ConnectionProblem(f"{self.target.display}: connection lost while {what}") from exc
            raise RemoteError(f"{self.target.display}: {what}: {exc.reason}") from exc
        except (asyncssh.Error, OSError, asyncio.IncompleteReadError, EOFError) as exc:
            raise ConnectionProblem(f"{self.target.display}: connection lost while {what}: "
                                    f"{exc}") from exc

    async def run(self, argv: Sequence[str], input: str | None = None,
                  what: str | None = None) -> asyncssh.SSHCompletedProcess:
        command = " ".join(shlex.quote(str(a)) for a in argv)
        return await self._guard(self.connection.run(command, input=input, check=False),
                                 what or f"running {argv[0]}")

    async def agent(self, *args: str, what: str | None = None) -> dict:
        """Run an agent command from the board's copy of the agent."""
        return await self._agent_call([self.target.python, *AGENT_PYTHON_FLAGS, self.target.agent_path,
                                       "--root", self.target.root, *args], None, what or args[0])

    async def agent_readonly(self, *args: str, what: str | None = None) -> dict:
        """Run a read-only agent command with the agent fed on stdin, so
        nothing is written to the board (``zynqmm status``)."""
        return await self._agent_call([self.target.python, *AGENT_PYTHON_FLAGS, "-",
                                       "--root", self.target.root, *args],
                                      AGENT_SOURCE_FILE.read_text(), what or args[0])

    async def _agent_call(self, argv: list[str], input: str | None, what: str) -> dict:
        result = await self.run(argv, input=input, what=what)
        stdout = result.stdout or ""
        if result.returncode != 0:
            try:
                message = parse_json_output(stdout, what).get("error")
            except RemoteError:
                message = None
            detail = message or (result.stderr or stdout or "").strip()[-500:] or \
                f"exit status {result.returncode}"
            raise RemoteError(f"{self.target.display}: {what}: {detail}")
        return parse_json_output(stdout, f"{self.target.display}: {what}")

    async def put(self, local: Path, remote_path: str, what: str | None = None) -> None:
        if not Path(local).is_file():
            raise DeployError(f"{local} does not exist on this host")
        sftp = await self.sftp()
        await self._guard(sftp.put(str(local), remote_path, sparse=False),
                          what or f"uploading {Path(local).name}")

    async def write_private(self, remote_path: str, text: str) -> None:
        """Write ``text`` to a file that is mode 0600 from its creation."""
        sftp = await self.sftp()

        async def write() -> None:
            async with sftp.open(remote_path, "w", asyncssh.SFTPAttrs(permissions=0o600)) as stream:
                await stream.write(text)
        await self._guard(write(), f"writing {posixpath.basename(remote_path)}")

    async def install_agent(self) -> None:
        """Copy this host's agent to the board, replacing the old one in one
        rename so a concurrent reader never runs half a file."""
        sftp = await self.sftp()
        final = self.target.agent_path
        directory = posixpath.dirname(final)
        try:
            await sftp.makedirs(directory, exist_ok=True)
        except asyncssh.SFTPError as exc:
            raise RemoteError(f"{self.target.display}: cannot create {directory}: {exc.reason} "
                              f"(run `zynqmm install` first, or connect as root)") from exc
        temporary = f"{final}.new-{os.getpid()}"
        await self.put(AGENT_SOURCE_FILE, temporary, "copying the agent")
        await self._guard(sftp.posix_rename(temporary, final), "installing the agent")

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        self.connection.close()
        try:
            await self.connection.wait_closed()
        except (asyncssh.Error, OSError):
            pass


@asynccontextmanager
async def connect(target: Target) -> AsyncIterator[Remote]:
    options: dict = {"port": target.port, "connect_timeout": target.connect_timeout_s,
                     # Notice a board that vanished mid-transfer instead of waiting forever.
                     "keepalive_interval": 15, "keepalive_count_max": 3,
                     "password_auth": False, "kbdint_auth": False}
    if target.user:
        options["username"] = target.user
    if target.identity:
        options["client_keys"] = [str(target.identity)]
    if target.known_hosts:
        options["known_hosts"] = str(target.known_hosts)
    try:
        connection = await asyncssh.connect(target.host, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise ConnectionProblem(f"{target.display}: host key not trusted ({exc.reason}); "
                                f"add the board's key to {target.known_hosts or '~/.ssh/known_hosts'}") from exc
    except asyncssh.PermissionDenied as exc:
        raise ConnectionProblem(f"{target.display}: login refused ({exc.reason})") from exc
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
        raise ConnectionProblem(f"{target.display}: cannot connect: {exc or type(exc).__name__}") from exc
    remote = Remote(target, connection)
    try:
        yield remote
    finally:
        await remote.close()


def _quiet_connection_losses(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # When a connection drops mid-transfer, asyncssh's parallel transfer tasks
    # that were still in flight end with the same loss the command already
    # reported; asyncio would print each one again as "never retrieved".
    if isinstance(context.get("exception"), (asyncssh.Error, OSError)):
        return
    loop.default_exception_handler(context)


def run_sync(coroutine):
    """Run a deployment coroutine to completion from synchronous code."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_exception_handler(_quiet_connection_losses)
        return runner.run(coroutine)

