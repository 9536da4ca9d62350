"""Dry run of the overlay build TCL under plain ``tclsh``.

``overlays/zynqmm/dryrun.tcl`` stubs every Vivado command the build uses and
records each call; :func:`dry_run` runs it for a board and returns the record,
which tests and ``make overlay-check`` inspect: the IP instantiated, the
files added, the ports created.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from board.boards import Board
from overlays.config import BUILD_TCL, DRYRUN_TCL, write_config

# Top-level port names Vivado derives from an interface port of these types.
_INTERFACE_PINS = {
    "xilinx.com:interface:diff_clock_rtl:1.0": ("clk_p", "clk_n"),
    "xilinx.com:interface:rgmii_rtl:1.0": ("rd", "rx_ctl", "rxc", "td", "tx_ctl", "txc"),
    "xilinx.com:interface:mdio_rtl:1.0": ("mdc", "mdio_io"),
}


class DryRunError(RuntimeError):
    """The build TCL failed under the stubs, or tclsh is missing."""


@dataclass(frozen=True)
class Call:
    command: str
    args: tuple[str, ...]

    def option(self, name: str) -> str | None:
        if name in self.args:
            index = self.args.index(name)
            if index + 1 < len(self.args):
                return self.args[index + 1]
        return None


@dataclass(frozen=True)
class DryRun:
    calls: tuple[Call, ...]

    def of(self, command: str) -> list[Call]:
        return [c for c in self.calls if c.command == command]

    def ip_cells(self) -> dict[str, str]:
        """Cell name -> IP VLNV (without version) for every IP cell."""
        return {c.args[-1]: c.option("-vlnv") for c in self.of("create_bd_cell")
                if c.option("-type") == "ip"}

    def module_references(self) -> dict[str, str]:
        """Cell name -> module for every RTL module reference."""
        return {c.args[-1]: c.option("-reference") for c in self.of("create_bd_cell")
                if c.option("-type") == "module"}

    def files_added(self, fileset: str = "sources_1") -> list[str]:
        added = []
        for call in self.of("add_files"):
            if (call.option("-fileset") or "sources_1") == fileset:
                added.extend(a for a in call.args if not a.startswith("-") and a != fileset)
        return added

    def part(self) -> str | None:
        calls = self.of("create_project")
        return calls[0].option("-part") if calls else None

    def top_ports(self) -> set[str]:
        """Names of the top-level ports the design gets (interface ports expanded)."""
        ports = {c.args[-1] for c in self.of("create_bd_port")}
        for call in self.of("create_bd_intf_port"):
            vlnv = call.option("-vlnv")
            ports.update(f"{call.args[-1]}_{pin}" for pin in _INTERFACE_PINS.get(vlnv, ()))
        return ports


def dry_run(board: Board, out_dir: Path, vivado_version: str | None = None) -> DryRun:
    """Write the board's config and run ``build.tcl`` under the stubs, pretending
    to be ``vivado_version`` (default: the board's)."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        raise DryRunError("tclsh not found: install tcl (8.6) to dry-run the overlay TCL")
    config = write_config(board, out_dir)
    record = out_dir / "dryrun.record"
    command = [tclsh, str(DRYRUN_TCL), str(record), vivado_version or board.vivado,
               board.name, str(config), str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise DryRunError(f"{BUILD_TCL.name} failed its dry run for {board.name}: "
                          f"{(done.stderr or done.stdout).strip()}")
    return DryRun(tuple(_parse_record(record.read_text())))


def _parse_record(text: str):
    for line in text.splitlines():
        if line:
            command, *args = line.split("\x1f")
            yield Call(command, tuple(a.replace("\\n", "\n") for a in args))
