"""The manifest of a built overlay: what a ``.bit`` / ``.hwh`` pair is and
where it came from, as JSON beside the bitstream, and its verification.

The manifest records the files' SHA-256, the register-map version the
fabric was built from (the host refuses a bitstream whose map it does not
know), the checkout's git revision, the board and part, the tool versions
and the build time.  :func:`verify_manifest` recomputes the hashes and
compares the map version with this checkout's, so a replaced or damaged
bitstream, or one built from another register map, is caught before loading.

    python -m overlays.manifest write --board kr260 --bit zynqmm.bit --hwh zynqmm.hwh
    python -m overlays.manifest verify zynqmm.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rtl.common.convert import REPO_ROOT, build_id
from rtl.regmap.map import MAP_VERSION

SCHEMA = "zynqmm-overlay-manifest/1"
_BIT_SYNC = bytes.fromhex("0ff00ff00ff00ff000")


class ManifestError(ValueError):
    """A manifest or the files it describes do not check out."""


@dataclass(frozen=True)
class BitHeader:
    """The text fields at the start of a Xilinx ``.bit`` file."""
    design: str
    part: str
    date: str
    time: str

    @property
    def tool_version(self) -> str | None:
        for item in self.design.split(";"):
            if item.startswith("Version="):
                return item.split("=", 1)[1]
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bit_header(path: Path) -> BitHeader:
    """Parse the header Vivado writes before the configuration data."""
    data = Path(path).read_bytes()[:4096]
    if len(data) < 13 or data[:2] != b"\x00\x09" or data[2:11] != _BIT_SYNC:
        raise ManifestError(f"{path}: not a Xilinx .bit file (no header)")
    offset = 13  # length + sync field, then the 16-bit count 0x0001
    fields: dict[str, str] = {}
    for key in "abcd":
        if offset + 3 > len(data) or chr(data[offset]) != key:
            raise ManifestError(f"{path}: .bit header field {key!r} missing")
        length = int.from_bytes(data[offset + 1:offset + 3], "big")
        raw = data[offset + 3:offset + 3 + length]
        if len(raw) != length:
            raise ManifestError(f"{path}: .bit header field {key!r} truncated")
        fields[key] = raw.rstrip(b"\x00").decode("ascii", "replace")
        offset += 3 + length
    return BitHeader(fields["a"], fields["b"], fields["c"], fields["d"])


def part_matches(header_part: str, part: str) -> bool:
    """Vivado writes the part in the header without the ``xc`` prefix and the
    speed grade on some families (``7z020clg400``); compare the device and
    package only."""
    def core(name: str) -> str:
        name = name.lower().replace("-", "")
        return name[2:] if name.startswith("xc") else name
    return core(part).startswith(core(header_part)) if header_part else False


def git_revision(root: Path = REPO_ROOT) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
        return head + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def manifest_path(bit: Path) -> Path:
    return Path(bit).with_suffix(".json")


def build_manifest(bit: Path, hwh: Path, board: str, part: str,
                   vivado: str | None = None, built_at: datetime | None = None) -> dict:
    bit, hwh = Path(bit), Path(hwh)
    header = read_bit_header(bit)
    if not part_matches(header.part, part):
        raise ManifestError(f"{bit}: built for part {header.part}, board {board} has {part}")
    built_at = built_at or datetime.now(timezone.utc)
    return {
        "schema": SCHEMA,
        "board": board,
        "part": part,
        "bitstream": {"file": bit.name, "bytes": bit.stat().st_size, "sha256": sha256_file(bit),
                      "header_part": header.part, "header_date": f"{header.date} {header.time}"},
        "hwh": {"file": hwh.name, "bytes": hwh.stat().st_size, "sha256": sha256_file(hwh)},
        "map_version": f"0x{MAP_VERSION:08x}",
        "build_id": f"0x{build_id():08x}",
        "git_revision": git_revision(),
        "tools": {"vivado": vivado or header.tool_version or "unknown",
                  "python": platform.python_version()},
        "built_at": built_at.isoformat(timespec="seconds"),
    }


def write_manifest(bit: Path, hwh: Path, board: str, part: str, vivado: str | None = None,
                   out: Path | None = None) -> Path:
    """Write the manifest beside the bitstream (``zynqmm.json`` for
    ``zynqmm.bit``) and return its path."""
    manifest = build_manifest(bit, hwh, board, part, vivado)
    target = Path(out) if out else manifest_path(bit)
    target.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return target


def verify_manifest(path: Path, expected_map_version: int = MAP_VERSION) -> dict:
    """Check the files next to the manifest against it; return the manifest or
    raise :class:`ManifestError` listing every problem."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: not a {SCHEMA} manifest")
    problems = []
    for key in ("bitstream", "hwh"):
        entry = manifest.get(key) or {}
        target = path.parent / str(entry.get("file", ""))
        if not entry.get("file") or not target.is_file():
            problems.append(f"{key}: {target} is missing")
            continue
        if target.stat().st_size != entry.get("bytes"):
            problems.append(f"{key}: {target.name} is {target.stat().st_size} bytes, "
                            f"the manifest says {entry.get('bytes')}")
        if sha256_file(target) != entry.get("sha256"):
            problems.append(f"{key}: {target.name} sha256 differs from the manifest")
    if manifest.get("map_version") != f"0x{expected_map_version:08x}":
        problems.append(f"map_version {manifest.get('map_version')} is not this checkout's "
                        f"0x{expected_map_version:08x} (rtl/regmap)")
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlays.manifest", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write the manifest beside the bitstream")
    write.add_argument("--board", required=True)
    write.add_argument("--bit", type=Path, required=True)
    write.add_argument("--hwh", type=Path, required=True)
    write.add_argument("--vivado")
    verify = commands.add_parser("verify", help="check a manifest against its files")
    verify.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            from board.boards import load_board
            board = load_board(args.board)
            print(write_manifest(args.bit, args.hwh, board.name, board.part, args.vivado))
        else:
            manifest = verify_manifest(args.manifest)
            print(f"ok: {manifest['board']} {manifest['bitstream']['file']} "
                  f"map {manifest['map_version']} rev {manifest['git_revision']}")
    except (ManifestError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
