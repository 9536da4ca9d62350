"""MyHDL to Verilog, into ``build/rtl/<block>/``.

The output is reproducible: MyHDL's date line is dropped and a file is only
rewritten when its text changes, so simulators and synthesis see unchanged
sources as unchanged.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

from myhdl import ToVerilogWarning

REPO_ROOT = Path(__file__).resolve().parents[2]

_DATE_LINE = re.compile(r"^// Date: .*\n", re.MULTILINE)
_FILE_LINE = re.compile(r"^// File: .*$", re.MULTILINE)
# Expected converter notes: AXI protection bits nobody uses, and signals
# named const_* that are constants on purpose (never driven).
_EXPECTED_WARNINGS = r"(Port is not used: \w*_(aw|ar)prot|Signal is not driven: \w*const_\w*)$"


def build_root() -> Path:
    """``build/`` of the checkout, or ``$ZYNQMM_BUILD`` when set."""
    return Path(os.environ.get("ZYNQMM_BUILD", REPO_ROOT / "build")).resolve()


def rtl_dir(block: str) -> Path:
    return build_root() / "rtl" / block


def build_id() -> int:
    """The 32-bit build ID baked into the system registers: ``$ZYNQMM_BUILD_ID``
    (decimal or 0x-hex) when set, else the first 8 hex digits of the checkout's
    commit, else 0."""
    value = os.environ.get("ZYNQMM_BUILD_ID")
    if value:
        number = int(value, 0)
        if not 0 <= number <= 0xFFFFFFFF:
            raise ValueError(f"ZYNQMM_BUILD_ID must fit 32 bits, got {value}")
        return number
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        return int(head[:8], 16)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def convert(instance, block: str, name: str) -> Path:
    """Convert an elaborated MyHDL block instance to ``build/rtl/<block>/<name>.v``
    and return that path."""
    out_dir = rtl_dir(block)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.v"
    with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EXPECTED_WARNINGS, category=ToVerilogWarning)
            instance.convert(hdl="Verilog", path=scratch, name=name, testbench=False)
        text = _DATE_LINE.sub("", (Path(scratch) / f"{name}.v").read_text())
        text = _FILE_LINE.sub(f"// File: {name}.v", text, count=1)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target
