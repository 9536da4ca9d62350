"""``zynqmm flash``: put a built overlay on a board and make it current.

The steps, each of which can refuse with a reason and leaves ``current``
untouched when it does:

1. the local overlay folder is checked against its manifest (SHA-256 of
   ``.bit`` and ``.hwh``, register-map version equal to this host's driver)
   and, when the target names its board, against that board;
2. the files go by SFTP to a fresh staging folder in
   ``/opt/zynqmm/overlays/`` (leftovers of an interrupted flash are removed
   first) and their SHA-256 is recomputed on the board;
3. the staging folder becomes ``overlays/<sha256 of the .bit>/``;
4. the loader programs the fabric and reads back the build-ID and
   map-version registers (offsets from :mod:`rtl.regmap.driver`), which must
   match the manifest and this host's map version; on a mismatch the
   previously current overlay is loaded again;
5. ``current`` is switched by one symlink rename; the overlay it pointed at
   becomes ``previous`` (what ``zynqmm rollback`` restores) and older ones
   are removed.

If the runtime is running on the board, flashing would change the fabric
under it: without ``restart`` the flash refuses; with it the service is
stopped for the flash and started again afterwards.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, TypeVar

from board.deploy import agent
from board.deploy.ssh import DeployError, Remote, RemoteError, Say, Target, connect, run_sync
from overlays.manifest import SCHEMA, ManifestError, verify_manifest
from rtl.regmap.driver import MAP_VERSION, register_offsets

# The block design's name for the fabric cell (overlays/zynqmm/block_design.tcl:
# `create_bd_cell -type module -reference ... fabric`): pynq's ip_dict key.
FABRIC_IP = "fabric"
IDENTITY_REGISTERS = {"build_id": "system.BUILD_ID", "map_version": "system.MAP_VERSION"}
RUNNING_STATES = ("active", "activating", "reloading", "deactivating")

AfterUpload = Callable[[Remote, str], Awaitable[None]]
T = TypeVar("T")


class FlashRefused(DeployError):
    """The overlay was not made current; ``reasons`` says why, one per problem."""

    def __init__(self, summary: str, reasons: list[str]):
        self.summary = summary
        self.reasons = list(reasons)
        super().__init__(summary + (":\n  - " + "\n  - ".join(reasons) if reasons else ""))


@dataclass(frozen=True)
class LocalOverlay:
    directory: Path
    manifest_path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["bitstream"]["sha256"]

    @property
    def files(self) -> list[Path]:
        return [self.directory / self.manifest["bitstream"]["file"],
                self.directory / self.manifest["hwh"]["file"], self.manifest_path]


@dataclass(frozen=True)
class RegisterReport:
    """What the loader printed: the registers it read after programming."""
    bitstream: str
    ip: str
    base: int
    registers: dict[str, int]


@dataclass
class FlashResult:
    target: str
    name: str
    build_id: str
    map_version: str
    previous: str | None
    cleared: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


def identity_offsets() -> dict[str, int]:
    offsets = register_offsets()
    return {name: offsets[key] for name, key in IDENTITY_REGISTERS.items()}


def find_manifest(directory: Path) -> Path:
    """The overlay manifest in ``directory``: ``zynqmm.json`` or the one JSON
    file carrying the manifest schema."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FlashRefused(f"{directory} is not an overlay folder", ["it does not exist"])
    preferred = directory / agent.MANIFEST_NAME
    if preferred.is_file():
        return preferred
    found = []
    for candidate in sorted(directory.glob("*.json")):
        try:
            if json.loads(candidate.read_text()).get("schema") == SCHEMA:
                found.append(candidate)
        except (OSError, ValueError, AttributeError):
            continue
    if len(found) != 1:
        raise FlashRefused(f"{directory}: no single overlay manifest",
                           [f"found {len(found)} files with schema {SCHEMA}"])
    return found[0]


def local_overlay(directory: Path, board: str | None = None) -> LocalOverlay:
    """The overlay in ``directory``, checked before anything goes to a board."""
    path = find_manifest(directory)
    try:
        manifest = verify_manifest(path, MAP_VERSION)
    except ManifestError as exc:
        raise FlashRefused(f"{path} does not check out", [str(exc)]) from exc
    reasons = []
    if board is not None and manifest.get("board") != board:
        reasons.append(f"the overlay was built for board {manifest.get('board')}, "
                       f"the target is a {board}")
    for key in ("bitstream", "hwh"):
        name = manifest[key]["file"]
        if "/" in name or name.startswith(".") or name == agent.MANIFEST_NAME:
            reasons.append(f"{key} file name {name!r} cannot be used on the board")
    if path.name != agent.MANIFEST_NAME:
        reasons.append(f"the manifest must be named {agent.MANIFEST_NAME} (the board looks for "
                       f"it there), found {path.name}")
    if reasons:
        raise FlashRefused(f"{directory}: not flashed", reasons)
    return LocalOverlay(Path(directory), path, manifest)


def parse_register_report(stdout: str) -> RegisterReport:
    """The loader's ``zynqmm-registers {...}`` line."""
    tag = agent.REGISTER_TAG + " "
    lines = [line for line in stdout.splitlines() if line.startswith(tag)]
    if not lines:
        raise RemoteError(f"the loader printed no '{agent.REGISTER_TAG}' line")
    try:
        body = json.loads(lines[-1][len(tag):])
        registers = {str(k): int(str(v), 0) for k, v in body["registers"].items()}
        return RegisterReport(str(body["bitstream"]), str(body["ip"]), int(str(body["base"]), 0),
                              registers)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RemoteError(f"the loader's report is garbled: {lines[-1][:200]!r}") from exc


def _hex(value) -> str:
    return f"0x{value:08x}" if isinstance(value, int) else str(value)


def register_problems(manifest: dict, report: RegisterReport,
                      host_map_version: int = MAP_VERSION) -> list[str]:
    """Why the loaded fabric, its manifest and this host do not belong
    together; empty when they do."""
    problems = []
    for name in IDENTITY_REGISTERS:
        if name not in report.registers:
            problems.append(f"the loader did not report the {name} register")
    if problems:
        return problems
    fabric_map = report.registers["map_version"]
    fabric_build = report.registers["build_id"]
    if fabric_map != host_map_version:
        problems.append(f"the fabric's map version is {_hex(fabric_map)}, this host's register "
                        f"driver is {_hex(host_map_version)} (rtl/regmap): they would disagree "
                        f"on every register")
    if _hex(fabric_map) != manifest.get("map_version"):
        problems.append(f"the fabric's map version is {_hex(fabric_map)}, the manifest says "
                        f"{manifest.get('map_version')}")
    if _hex(fabric_build) != manifest.get("build_id"):
        problems.append(f"the fabric's build ID is {_hex(fabric_build)}, the manifest says "
                        f"{manifest.get('build_id')}: the .bit is not the build the manifest "
                        f"describes")
    return problems


def manifest_problems(manifest: dict, hashes: dict[str, dict], folder: str) -> list[str]:
    """Files on the board (``hashes`` from the agent) against a manifest."""
    problems = []
    for key in ("bitstream", "hwh"):
        entry = manifest.get(key) or {}
        path = posixpath.join(folder, str(entry.get("file")))
        found = hashes.get(path, {"error": "not hashed"})
        if "error" in found:
            problems.append(f"{entry.get('file')} on the board: {found['error']}")
        elif found["bytes"] != entry.get("bytes"):
            problems.append(f"{entry.get('file')} on the board is {found['bytes']} bytes, the "
                            f"manifest says {entry.get('bytes')}")
        elif found["sha256"] != entry.get("sha256"):
            problems.append(f"{entry.get('file')} on the board has sha256 {found['sha256']}, the "
                            f"manifest says {entry.get('sha256')}")
    return problems


async def hash_on_board(remote: Remote, folder: str, names: list[str]) -> dict[str, dict]:
    result = await remote.agent("hash", *[posixpath.join(folder, n) for n in names],
                                what="hashing on the board")
    return result["files"]


async def load(remote: Remote, bitstream: str) -> RegisterReport:
    """Run the target's loader on ``bitstream`` (a path on the board)."""
    argv = list(remote.target.loader_argv())
    argv += [bitstream, "--ip", FABRIC_IP]
    for name, offset in identity_offsets().items():
        argv += ["--register", f"{name}=0x{offset:x}"]
    result = await remote.run(remote.target.privileged(argv), what="loading the overlay")
    if result.returncode != 0:
        detail = ((result.stderr or "") + (result.stdout or "")).strip()[-800:]
        raise RemoteError(f"the loader failed (exit status {result.returncode}): "
                          f"{detail or 'no output'}")
    return parse_register_report(result.stdout or "")


async def load_checked(remote: Remote, folder: str, manifest: dict) -> list[str]:
    """Load the overlay in ``folder`` and return the register problems (empty: good)."""
    report = await load(remote, posixpath.join(folder, manifest["bitstream"]["file"]))
    return register_problems(manifest, report)


async def restore_current(remote: Remote, links: dict, say: Say) -> str:
    """Load the overlay ``current`` points at again, after another one was
    loaded and refused; returns a sentence for the refusal."""
    current = links.get("current")
    if not current:
        return "no overlay was current before: the fabric keeps the refused bitstream until the next flash"
    manifest = links.get("manifests", {}).get(current) or {}
    if "bitstream" not in manifest:
        return f"the current overlay {current[:12]} has no readable manifest: it was not reloaded"
    try:
        problems = await load_checked(remote, posixpath.join(links["dir"], current), manifest)
    except RemoteError as exc:
        return f"reloading the current overlay {current[:12]} failed: {exc}"
    if problems:
        return f"the current overlay {current[:12]} was reloaded but does not check out: " + "; ".join(problems)
    say(f"reloaded the current overlay {current[:12]}")
    return f"the current overlay {current[:12]} was loaded again"


async def service_guard(remote: Remote, state: str | None, restart: bool, say: Say) -> bool:
    """Refuse while the runtime runs (``state`` from systemd), or stop it with
    ``restart``; returns whether it was stopped and must be started again."""
    if state not in RUNNING_STATES:
        return False
    if not restart:
        raise FlashRefused("the runtime is running on the board",
                           [f"{agent.SERVICE} is {state}: changing the fabric under it would "
                            f"corrupt its view; pass --restart to stop it, flash and start it again"])
    await systemctl(remote, "stop")
    say(f"stopped {agent.SERVICE}")
    return True


async def systemctl(remote: Remote, verb: str) -> None:
    result = await remote.run(remote.target.privileged(["systemctl", verb, agent.SERVICE]),
                              what=f"systemctl {verb}")
    if result.returncode != 0:
        raise RemoteError(f"systemctl {verb} {agent.SERVICE} failed: "
                          f"{(result.stderr or '').strip()[-300:]}")


async def with_service_restarted(remote: Remote, stopped: bool, say: Say,
                                 work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; start the service again afterwards if it was stopped for
    it.  When ``work`` fails, a failure to start is reported, not raised, so
    the reason the work failed is the one that reaches the user."""
    try:
        result = await work()
    except BaseException:
        if stopped:
            try:
                await systemctl(remote, "start")
                say(f"started {agent.SERVICE} again")
            except DeployError as exc:
                say(f"could not start {agent.SERVICE} again: {exc}")
        raise
    if stopped:
        await systemctl(remote, "start")
        say(f"started {agent.SERVICE}")
    return result


async def flash_async(target: Target, directory: Path, *, restart: bool = False,
                      say: Say = lambda line: None,
                      after_upload: AfterUpload | None = None) -> FlashResult:
    """Flash the overlay in ``directory`` to ``target``.  ``after_upload`` runs
    once the files are in the staging folder and before they are hashed
    there (the tests damage a file at that point)."""
    overlay = local_overlay(directory, target.board)
    async with connect(target) as remote:
        await remote.install_agent()
        begun = await remote.agent("begin", what="preparing the staging folder")
        try:
            stopped = await service_guard(remote, begun["links"]["service"], restart, say)
        except FlashRefused:
            await remote.agent("discard", begun["staging"])
            raise
        return await with_service_restarted(
            remote, stopped, say, lambda: _flash_on(remote, overlay, begun, say, after_upload))


async def _flash_on(remote: Remote, overlay: LocalOverlay, begun: dict, say: Say,
                    after_upload: AfterUpload | None) -> FlashResult:
    target, name, manifest = remote.target, overlay.name, overlay.manifest
    links, staging = begun["links"], begun["staging"]
    if begun["removed"]:
        say(f"removed leftovers of an interrupted flash: {', '.join(begun['removed'])}")
    for path in overlay.files:
        say(f"uploading {path.name} ({path.stat().st_size} bytes)")
        await remote.put(path, posixpath.join(staging, path.name), f"uploading {path.name}")
    if after_upload is not None:
        await after_upload(remote, staging)

    names = [p.name for p in overlay.files]
    hashes = await hash_on_board(remote, staging, names)
    problems = manifest_problems(manifest, hashes, staging)
    manifest_hash = hashes.get(posixpath.join(staging, agent.MANIFEST_NAME), {})
    local_manifest_sha = _sha256(overlay.manifest_path)
    if manifest_hash.get("sha256") != local_manifest_sha:
        problems.append(f"{agent.MANIFEST_NAME} on the board differs from the local one")
    if problems:
        await remote.agent("discard", staging)
        raise FlashRefused("the upload does not match the manifest; nothing was switched", problems)
    say("sha256 of every file verified on the board")

    committed = await remote.agent("commit", staging, name)
    folder = committed["dir"]
    try:
        problems = await load_checked(remote, folder, manifest)
    except RemoteError as exc:
        problems = [str(exc)]
    if problems:
        restored = await restore_current(remote, links, say)
        await remote.agent("discard", folder)
        raise FlashRefused(f"overlay {name[:12]} refused; nothing was switched, {restored}", problems)
    say(f"fabric reports build {manifest['build_id']}, map version {manifest['map_version']}")

    switched = await remote.agent("switch", name, "--expect-current", links.get("current") or "none")
    say(f"current -> {name[:12]}" + (f", previous -> {switched['previous'][:12]}"
                                     if switched.get("previous") else ""))
    return FlashResult(target.display, name, manifest["build_id"], manifest["map_version"],
                       switched.get("previous"), begun["removed"], switched.get("pruned", []))


def _sha256(path: Path) -> str:
    return agent.sha256_of(str(path))[1]


def flash(target: Target, directory: Path, **options) -> FlashResult:
    return run_sync(flash_async(target, directory, **options))
