"""The board side of flashing and status: a small program the host copies to
``/opt/zynqmm/lib/zynqmm_agent.py`` on the board and runs over SSH.

It uses the standard library only and runs on the board image's own Python
(3.8 or later): flashing must work before ``zynqmm install`` has put the
zynqmm package on the board.  Only the ``load`` command imports pynq, and
only when it runs.

Every command prints one JSON object on stdout and exits 0, or prints
``{"error": "..."}`` and exits 1.  ``load`` is the exception: it prints one
line tagged ``zynqmm-registers`` (the loader contract, below), because pynq
may print its own lines around it.

On-board layout (all under ``--root``, ``/`` on a real board)::

    opt/zynqmm/overlays/<sha256 of the .bit>/   zynqmm.bit, zynqmm.hwh, zynqmm.json
    opt/zynqmm/overlays/current -> <sha>       what the runtime loads
    opt/zynqmm/overlays/previous -> <sha>      what ``zynqmm rollback`` restores
    opt/zynqmm/overlays/history.log            one JSON line per switch
    run/zynqmm/status.json                      written by the runtime

Loader contract: ``LOADER BITFILE --ip NAME --register NAME=OFFSET ...``
programs the fabric with BITFILE, reads each 32-bit register at OFFSET from
the IP's base address and prints ``zynqmm-registers {"bitstream": ...,
"ip": ..., "base": "0x...", "registers": {"build_id": "0x...", ...}}``.
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Optional, Tuple

OVERLAYS_DIR = "opt/zynqmm/overlays"
AGENT_PATH = "opt/zynqmm/lib/zynqmm_agent.py"
STATUS_PATH = "run/zynqmm/status.json"
CONFIG_PATH = "etc/zynqmm/zynqmm.toml"
CURRENT = "current"
PREVIOUS = "previous"
HISTORY = "history.log"
STAGING_PREFIX = ".incoming-"
DISCARD_PREFIX = ".discard-"
REGISTER_TAG = "zynqmm-registers"
SERVICE = "zynqmm.service"
MANIFEST_NAME = "zynqmm.json"
_OVERLAY_NAME = re.compile(r"^[0-9a-f]{64}$")

RegisterReader = Callable[[str, str, Dict[str, int]], Tuple[int, Dict[str, int]]]


class AgentError(Exception):
    """A command cannot be carried out; the message says why."""


def under(root: str, relative: str) -> str:
    return os.path.join(root, relative)


def overlays_dir(root: str) -> str:
    return under(root, OVERLAYS_DIR)


def _fsync_dir(path: str) -> None:
    # A rename is only durable once the directory holding it is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str) -> str:
    if not _OVERLAY_NAME.match(name):
        raise AgentError(f"{name!r} is not an overlay name (the .bit file's sha256)")
    return name


def _inside_overlays(root: str, path: str) -> str:
    base = os.path.realpath(overlays_dir(root))
    real = os.path.realpath(path)
    if os.path.dirname(real) != base:
        raise AgentError(f"{path} is not a folder of {base}")
    return real


def read_link(root: str, link: str) -> Optional[str]:
    try:
        target = os.readlink(os.path.join(overlays_dir(root), link))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AgentError(f"{link}: {exc.strerror}") from exc
    return os.path.basename(target.rstrip("/"))


def set_link(root: str, link: str, name: str) -> None:
    """Point ``link`` at overlay ``name`` with one rename, so a reader sees
    either the old or the new target and never a missing link."""
    base = overlays_dir(root)
    temporary = os.path.join(base, f".{link}.new-{os.getpid()}")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(name, temporary)
    os.replace(temporary, os.path.join(base, link))
    _fsync_dir(base)


def sha256_of(path: str) -> Tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _append_history(root: str, event: dict) -> None:
    event = dict(event, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(os.path.join(overlays_dir(root), HISTORY), "a", encoding="utf-8") as log:
        log.write(json.dumps(event, sort_keys=True) + "\n")
        log.flush()
        os.fsync(log.fileno())


def overlay_names(root: str) -> list:
    base = overlays_dir(root)
    if not os.path.isdir(base):
        return []
    return sorted(n for n in os.listdir(base)
                  if _OVERLAY_NAME.match(n) and os.path.isdir(os.path.join(base, n)))


# --- commands -----------------------------------------------------------------

def cmd_prepare(root: str) -> dict:
    """Make the overlay folder and a fresh staging folder in it; leftovers of
    an interrupted flash (staging or discarded folders) are removed first."""
    base = overlays_dir(root)
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise AgentError(f"cannot create {base}: {exc.strerror} "
                         f"(run `zynqmm install` first, or connect as root)") from exc
    removed = []
    for name in os.listdir(base):
        if name.startswith((STAGING_PREFIX, DISCARD_PREFIX)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(name)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base)
    return {"staging": staging, "removed": sorted(removed)}


def cmd_hash(paths: list) -> dict:
    files = {}
    for path in paths:
        try:
            size, digest = sha256_of(path)
            files[path] = {"bytes": size, "sha256": digest}
        except OSError as exc:
            files[path] = {"error": exc.strerror or str(exc)}
    return {"files": files}


def cmd_commit(root: str, staging: str, name: str) -> dict:
    """Move a verified staging folder to ``overlays/<name>``."""
    _check_name(name)
    staging = _inside_overlays(root, staging)
    if not os.path.basename(staging).startswith(STAGING_PREFIX):
        raise AgentError(f"{staging} is not a staging folder")
    final = os.path.join(overlays_dir(root), name)
    if os.path.isdir(final):
        same = sorted(os.listdir(final)) == sorted(os.listdir(staging)) and all(
            filecmp.cmp(os.path.join(final, f), os.path.join(staging, f), shallow=False)
            for f in os.listdir(staging))
        if same:
            # Flashing the overlay that is already there: keep the folder
            # `current` may be pointing at rather than swapping it.
            shutil.rmtree(staging)
            return {"dir": final, "replaced": False}
        discard = tempfile.mkdtemp(prefix=DISCARD_PREFIX, dir=overlays_dir(root))
        os.rename(final, os.path.join(discard, name))
        os.rename(staging, final)
        shutil.rmtree(discard, ignore_errors=True)
    else:
        os.rename(staging, final)
    _fsync_dir(overlays_dir(root))
    return {"dir": final, "replaced": True}


def cmd_discard(root: str, path: str) -> dict:
    """Remove a staging folder or an overlay that was refused; never the
    overlay ``current`` or ``previous`` points at."""
    if not os.path.lexists(path):
        return {"removed": None}
    real = _inside_overlays(root, path)
    name = os.path.basename(real)
    if name in (read_link(root, CURRENT), read_link(root, PREVIOUS)):
        return {"removed": None, "kept": name}
    if not (name.startswith(STAGING_PREFIX) or _OVERLAY_NAME.match(name)):
        raise AgentError(f"{path} is neither a staging folder nor an overlay")
    shutil.rmtree(real)
    return {"removed": real}


def cmd_links(root: str) -> dict:
    """The overlay links, their manifests and the runtime's service state:
    what a flash or rollback decides from."""
    base = overlays_dir(root)
    current, previous = read_link(root, CURRENT), read_link(root, PREVIOUS)
    return {"dir": base, "current": current, "previous": previous,
            "overlays": overlay_names(root), "service": service_state(root),
            "manifests": {name: _read_manifest(os.path.join(base, name))
                          for name in (current, previous) if name}}


def cmd_begin(root: str) -> dict:
    """The start of a flash in one round trip: the links, then a staging folder."""
    links = cmd_links(root)
    return dict(cmd_prepare(root), links=links)


def _expect(root: str, link: str, expected: Optional[str]) -> Optional[str]:
    actual = read_link(root, link)
    if expected is not None and (actual or "none") != expected:
        raise AgentError(f"{link} is {actual or 'none'} on the board, expected {expected}: "
                         f"another flash or rollback ran meanwhile")
    return actual


def cmd_switch(root: str, name: str, expect_current: Optional[str]) -> dict:
    """Make ``name`` current; the overlay it replaces becomes previous and
    every other overlay folder is removed."""
    _check_name(name)
    base = overlays_dir(root)
    if not os.path.isdir(os.path.join(base, name)):
        raise AgentError(f"no overlay {name} in {base}")
    old = _expect(root, CURRENT, expect_current)
    # previous first: if the board dies between the two renames, current is
    # still the overlay that was running.
    if old and old != name and os.path.isdir(os.path.join(base, old)):
        set_link(root, PREVIOUS, old)
    set_link(root, CURRENT, name)
    previous = read_link(root, PREVIOUS)
    pruned = []
    for other in overlay_names(root):
        if other not in (name, previous):
            shutil.rmtree(os.path.join(base, other), ignore_errors=True)
            pruned.append(other)
    _append_history(root, {"event": "flash", "current": name, "previous": previous})
    return {"current": name, "previous": previous, "pruned": pruned}


def cmd_rollback(root: str, expect_current: Optional[str], expect_previous: Optional[str]) -> dict:
    current = _expect(root, CURRENT, expect_current)
    previous = _expect(root, PREVIOUS, expect_previous)
    base = overlays_dir(root)
    if not previous or previous == current:
        raise AgentError("there is no previous overlay to roll back to")
    if not os.path.isdir(os.path.join(base, previous)):
        raise AgentError(f"the previous overlay {previous} is missing from {base}")
    set_link(root, CURRENT, previous)
    if current:
        set_link(root, PREVIOUS, current)
    _append_history(root, {"event": "rollback", "current": previous, "previous": current})
    return {"current": previous, "previous": current}


def _read_manifest(folder: str) -> dict:
    path = os.path.join(folder, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError) as exc:
        return {"error": f"{path}: {getattr(exc, 'strerror', None) or exc}"}


def service_state(root: str) -> Optional[str]:
    """``systemctl is-active`` of the runtime, or None where systemd does not
    manage this root (a prefix, a container)."""
    if os.path.realpath(root) != "/" or not os.path.isdir("/run/systemd/system"):
        return None
    systemctl = shutil.which("systemctl")
    if not systemctl:
        return None
    result = subprocess.run([systemctl, "is-active", SERVICE], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def cmd_status(root: str, status_file: Optional[str]) -> dict:
    """Everything ``zynqmm status`` shows, as found on the board; judging it
    (stale, invalid) is the host's job, with the board's clock given here."""
    path = status_file or under(root, STATUS_PATH)
    runtime: dict = {"path": path, "present": False}
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
        runtime["present"] = True
        runtime["mtime"] = os.stat(path).st_mtime
        runtime["content"] = json.loads(text)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        runtime["error"] = str(getattr(exc, "strerror", None) or exc)
    links = cmd_links(root)
    return {"now": time.time(), "root": root, "overlays": links, "runtime": runtime,
            "service": links["service"]}


# --- the loader ---------------------------------------------------------------

def pynq_registers(bitstream: str, ip: str, offsets: Dict[str, int]) -> Tuple[int, Dict[str, int]]:
    """Program the fabric with pynq and read registers of ``ip``."""
    from pynq import MMIO, Overlay  # only on the board, only when loading
    overlay = Overlay(bitstream)
    if ip not in overlay.ip_dict:
        raise AgentError(f"the overlay has no IP {ip!r} (it has: {', '.join(sorted(overlay.ip_dict))})")
    entry = overlay.ip_dict[ip]
    base, span = int(entry["phys_addr"]), int(entry["addr_range"])
    for name, offset in offsets.items():
        if offset + 4 > span:
            raise AgentError(f"{name} at {offset:#x} is outside {ip}'s {span:#x}-byte window")
    mmio = MMIO(base, span)
    return base, {name: int(mmio.read(offset)) & 0xFFFFFFFF for name, offset in offsets.items()}


def _register_argument(text: str) -> Tuple[str, int]:
    name, sep, offset = text.partition("=")
    try:
        if not sep or not name.isidentifier():
            raise ValueError
        value = int(offset, 0)
        if value < 0 or value % 4:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=OFFSET (a word-aligned offset)")
    return name, value


def load_parser(prog: str = "zynqmm_agent.py load") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="program the fabric and read back registers")
    parser.add_argument("bitstream")
    parser.add_argument("--ip", required=True, help="the IP whose registers are read")
    parser.add_argument("--register", action="append", type=_register_argument, required=True,
                        metavar="NAME=OFFSET")
    return parser


def register_report(bitstream: str, ip: str, base: int, values: Dict[str, int]) -> str:
    body = {"bitstream": bitstream, "ip": ip, "base": f"0x{base:08x}",
            "registers": {name: f"0x{value:08x}" for name, value in values.items()}}
    return f"{REGISTER_TAG} {json.dumps(body, sort_keys=True)}"


def load_main(argv: list, read_registers: RegisterReader = pynq_registers) -> int:
    """The loader: ``read_registers`` is pynq on the board; a stand-in fabric
    replaces it in tests and keeps the arguments and the report identical."""
    args = load_parser().parse_args(argv)
    if not os.path.isfile(args.bitstream):
        print(f"error: {args.bitstream} does not exist", file=sys.stderr)
        return 1
    try:
        base, values = read_registers(args.bitstream, args.ip, dict(args.register))
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(register_report(args.bitstream, args.ip, base, values), flush=True)
    return 0


# --- entry point --------------------------------------------------------------

def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(prog="zynqmm_agent.py")
    parser.add_argument("--root", default="/")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("begin")
    p = sub.add_parser("hash")
    p.add_argument("paths", nargs="+")
    p = sub.add_parser("commit")
    p.add_argument("staging")
    p.add_argument("name")
    p = sub.add_parser("discard")
    p.add_argument("path")
    sub.add_parser("links")
    p = sub.add_parser("switch")
    p.add_argument("name")
    p.add_argument("--expect-current")
    p = sub.add_parser("rollback")
    p.add_argument("--expect-current")
    p.add_argument("--expect-previous")
    p = sub.add_parser("status")
    p.add_argument("--status-file")
    args = parser.parse_args(argv)
    root = args.root
    try:
        if args.command == "begin":
            result = cmd_begin(root)
        elif args.command == "hash":
            result = cmd_hash(args.paths)
        elif args.command == "commit":
            result = cmd_commit(root, args.staging, args.name)
        elif args.command == "discard":
            result = cmd_discard(root, args.path)
        elif args.command == "links":
            result = cmd_links(root)
        elif args.command == "switch":
            result = cmd_switch(root, args.name, args.expect_current)
        elif args.command == "rollback":
            result = cmd_rollback(root, args.expect_current, args.expect_previous)
        else:
            result = cmd_status(root, args.status_file)
    except (AgentError, OSError) as exc:
        message = str(exc) if isinstance(exc, AgentError) else \
            f"{getattr(exc, 'filename', '') or ''}: {exc.strerror or exc}".lstrip(": ")
        print(json.dumps({"error": message}))
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
