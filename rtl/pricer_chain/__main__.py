"""``python -m rtl.pricer_chain``: convert the chain pricer with other build
parameters than ``make rtl``'s (smaller tables for tests, other lane counts
for benches) into ``build/rtl/<name>/pricer_chain.v``."""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from rtl.common.convert import REPO_ROOT, rtl_dir
from rtl.pricer_chain.model import ChainConfig

TOPLEVEL = "pricer_chain"


def elaborate(config: ChainConfig):
    from myhdl import ResetSignal, Signal

    from rtl.common.axil import AxiLite
    from rtl.common.axis import AxiStream
    from rtl.pricer_chain.hdl import DEST_WIDTH, TheoLanes, pricer_chain

    clk, rst = Signal(bool(0)), ResetSignal(0, active=1, isasync=False)
    return pricer_chain(clk, rst, AxiStream(DEST_WIDTH), TheoLanes(config.lanes), AxiLite(), config)


def _source_stamp(config: ChainConfig, name: str) -> str:
    """What the Verilog depends on: the block's and the pricer's sources, the
    shared conventions, its register declaration, MyHDL's version and the
    build parameters (not the rest of the register map or other blocks,
    which change for reasons of their own)."""
    import myhdl

    from rtl.regmap.map import PRICER_CHAIN

    digest = hashlib.sha256(repr((config, name, myhdl.__version__, PRICER_CHAIN)).encode())
    rtl = REPO_ROOT / "rtl"
    sources = [*sorted((rtl / "pricer").glob("*.py")), *sorted((rtl / "pricer_chain").glob("*.py")),
               *sorted((rtl / "common").glob("*.py")), rtl / "regmap" / "hdl.py",
               rtl / "regmap" / "spec.py", REPO_ROOT / "host" / "book" / "records.py"]
    for path in sources:
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def convert_variant(config: ChainConfig, name: str) -> Path:
    """Verilog of the block built with ``config``, reproducibly (the
    conversion runs with PYTHONHASHSEED=0, as ``rtl.blocks`` does).  The
    conversion takes a while, so an unchanged one is not redone."""
    target = rtl_dir(name) / f"{TOPLEVEL}.v"
    stamp_file = rtl_dir(name) / f"{TOPLEVEL}.stamp"
    stamp = _source_stamp(config, name)
    if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return target
    if os.environ.get("PYTHONHASHSEED") == "0":
        from rtl.common.convert import convert

        path = convert(elaborate(config), name, TOPLEVEL)
        stamp_file.write_text(stamp)
        return path
    command = [sys.executable, "-m", "rtl.pricer_chain", "--name", name,
               "--options", str(config.options), "--underlyings", str(config.underlyings),
               "--lanes", str(config.lanes), "--scenarios", str(config.scenarios)]
    done = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": "0"},
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"conversion failed:\n{done.stdout}{done.stderr}")
    return target


def main(argv=None) -> int:
    default = ChainConfig()
    parser = argparse.ArgumentParser(prog="python -m rtl.pricer_chain", description=__doc__)
    parser.add_argument("--name", default="pricer_chain",
                        help="build/rtl/<name>/ (default pricer_chain)")
    for field, value in (("options", default.options), ("underlyings", default.underlyings),
                         ("lanes", default.lanes), ("scenarios", default.scenarios)):
        parser.add_argument(f"--{field}", type=int, default=value, help=f"default {value}")
    args = parser.parse_args(argv)
    config = ChainConfig(args.options, args.underlyings, args.lanes, args.scenarios)
    print(convert_variant(config, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
