"""``zynqmm install``: set a board up as an appliance over SSH.

Everything the install script needs (``files/install.sh``, the systemd unit,
the logrotate rules, the board's default configuration, the board agent,
and optionally a configuration, a management token and a zynqmm wheel) goes
by SFTP to a private temporary folder on the board; ``install.sh`` runs there
as root (through ``sudo -n`` unless the session is root) with the target's
``root`` as its prefix, and the folder is removed afterwards whatever
happened.

Secrets stay out of sight: a configuration that holds one inline is refused
(naming the key, never the value), the token travels only as a file inside
the private folder and ends up in ``/etc/zynqmm/secrets.env`` (0600), and the
script's output is scrubbed of it before it is shown.
"""
from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from board.boards import load_board
from board.deploy.ssh import (AGENT_SOURCE_FILE, DeployError, RemoteError, Say, Target, connect,
                              run_sync)

FILES_DIR = Path(__file__).resolve().parent / "files"
GUIDE = Path(__file__).resolve().parent / "README.md"
INSTALL_SCRIPT = FILES_DIR / "install.sh"
UNIT = FILES_DIR / "zynqmm.service"
LOGROTATE = FILES_DIR / "zynqmm.logrotate"
CONFIG_TEMPLATE = FILES_DIR / "zynqmm.toml"
_SECRET_KEY = re.compile(r"(^|_)(token|password|passwd|secret|passphrase|api_key)$", re.IGNORECASE)
_TOKEN_TEXT = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
MASK = "[secret withheld]"


class InstallRefused(DeployError):
    """The install was not attempted; the message says why."""


@dataclass
class InstallResult:
    target: str
    exit_status: int
    output: list[str] = field(default_factory=list)


def inline_secrets(config_text: str, origin: str = "configuration") -> list[str]:
    """Dotted keys of a TOML configuration that hold a secret inline (the
    values are never returned)."""
    try:
        data = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallRefused(f"{origin} is not valid TOML: {exc}") from exc
    found: list[str] = []

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, str) and value and _SECRET_KEY.search(path.rsplit(".", 1)[-1]):
            found.append(path)

    walk(data, "")
    return found


def default_config(board_name: str) -> str:
    """The board's default ``zynqmm.toml``: how its feeds reach the fabric
    comes from ``board/<board>/board.toml``."""
    board = load_board(board_name)
    ingest = "pl" if board.ingest == "pl-mac" else "ps-bridge"
    return CONFIG_TEMPLATE.read_text().replace("@BOARD@", board.name).replace("@INGEST@", ingest)


def read_token(path: Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise InstallRefused(f"cannot read the token file {path}: {exc.strerror}") from exc
    if not token or not _TOKEN_TEXT.match(token) or len(token) < 16:
        raise InstallRefused(f"the token in {path} must be at least 16 URL-safe characters "
                             f"(letters, digits, . _ ~ + / = -)")
    return token


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


async def install_async(target: Target, board: str | None = None, *, config: Path | None = None,
                        token_file: Path | None = None, package: Path | None = None,
                        owner: str | None = None, start: bool = False,
                        say: Say = lambda line: None) -> InstallResult:
    board = board or target.board
    if board is None:
        raise InstallRefused(f"which board is {target.display}? give --kind or set board in "
                             f"its target entry")
    defaults = default_config(board)
    config_text = None
    if config is not None:
        try:
            config_text = Path(config).read_text()
        except OSError as exc:
            raise InstallRefused(f"cannot read {config}: {exc.strerror}") from exc
        secret_keys = inline_secrets(config_text, str(config))
        if secret_keys:
            raise InstallRefused(f"{config} holds secrets inline ({', '.join(secret_keys)}): "
                                 f"secrets go in /etc/zynqmm/secrets.env or a file the "
                                 f"configuration names, never in the configuration itself")
    token = read_token(token_file) if token_file is not None else None
    if package is not None and not (Path(package).is_file() and Path(package).suffix == ".whl"):
        raise InstallRefused(f"{package} is not a wheel file")
    secrets = [token] if token else []

    async with connect(target) as remote:
        made = await remote.run(["mktemp", "-d", "/tmp/zynqmm-install.XXXXXX"],
                                what="making a temporary folder")
        folder = (made.stdout or "").strip()
        if made.returncode != 0 or not folder.startswith("/tmp/zynqmm-install."):
            raise RemoteError(f"{target.display}: mktemp failed: {(made.stderr or '').strip()}")
        try:
            uploads = {"install.sh": INSTALL_SCRIPT, "zynqmm.service": UNIT,
                       "zynqmm.logrotate": LOGROTATE, "zynqmm_agent.py": AGENT_SOURCE_FILE,
                       "README.md": GUIDE}
            if package is not None:
                uploads[Path(package).name] = Path(package)
            for name, local in uploads.items():
                await remote.put(local, posixpath.join(folder, name), f"uploading {name}")
            contents = {"zynqmm.toml": defaults}
            if config_text is not None:
                contents["config.toml"] = config_text
            if token is not None:
                contents["token"] = token + "\n"
            for name, text in contents.items():
                await remote.write_private(posixpath.join(folder, name), text)
            say(f"uploaded the install files to {folder}")
            argv = ["bash", posixpath.join(folder, "install.sh"), "--source", folder,
                    "--board", board, "--prefix", target.root]
            if owner:
                argv += ["--owner", owner]
            if start:
                argv.append("--start")
            result = await remote.run(target.privileged(argv), what="running install.sh")
        finally:
            await remote.run(["rm", "-rf", "--", folder], what="removing the temporary folder")
    output = scrub((result.stdout or "") + (result.stderr or ""), secrets).splitlines()
    # returncode is the exit status, or minus the signal that ended the script.
    status = result.returncode if result.returncode is not None else 255
    return InstallResult(target.display, status, output)


def install(target: Target, board: str | None = None, **options) -> InstallResult:
    return run_sync(install_async(target, board, **options))
