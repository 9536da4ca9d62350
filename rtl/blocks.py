"""The blocks ``make rtl`` converts, and how to elaborate each top level.

MyHDL orders parts of its output (sensitivity lists, reset assignments) by
iterating sets of names, so the text depends on Python's string hashing.
Conversion therefore runs with ``PYTHONHASHSEED=0`` (in a child process when
this one was started otherwise): the same design always gives the same
Verilog, and unchanged Verilog never triggers a simulator rebuild.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from myhdl import ResetSignal, Signal

from rtl.common.axil import AxiLite
from rtl.common.axis import AxiStream
from rtl.common.convert import REPO_ROOT, build_id, convert, rtl_dir


class BlockTop(NamedTuple):
    toplevel: str
    elaborate: Callable[[int], object]


def _clock_and_reset():
    return Signal(bool(0)), ResetSignal(0, active=1, isasync=False)


def _system(ident: int):
    from rtl.regmap.hdl import system_registers

    clk, rst = _clock_and_reset()
    return system_registers(clk, rst, AxiLite(), ident)


def _frame_filter(ident: int):
    from rtl.frame_filter.hdl import PayloadStream, frame_filter

    clk, rst = _clock_and_reset()
    return frame_filter(clk, rst, AxiStream(), PayloadStream(), AxiLite())


def _itch_decoder(ident: int):
    from rtl.common.events import EventPort
    from rtl.common.message_stream import ItchStream
    from rtl.itch_decoder.hdl import itch_decoder

    clk, rst = _clock_and_reset()
    return itch_decoder(clk, rst, ItchStream(), EventPort(), AxiLite())


def _mold_seq(ident: int):
    from rtl.common.message_stream import ItchStream
    from rtl.feed_path.status import FeedEventPort
    from rtl.frame_filter.hdl import PayloadStream
    from rtl.mold_seq.hdl import mold_seq

    clk, rst = _clock_and_reset()
    # The filter's payload stream without its tdest, which the sequencer has no use for.
    return mold_seq(clk, rst, PayloadStream(0), PayloadStream(0), ItchStream(), FeedEventPort(),
                    AxiLite())


def _order_book(ident: int):
    from rtl.common.events import EventPort
    from rtl.feed_path.status import FeedEventPort
    from rtl.order_book.hdl import DEST_WIDTH, order_book

    clk, rst = _clock_and_reset()
    return order_book(clk, rst, EventPort(), AxiStream(DEST_WIDTH), FeedEventPort(), AxiLite())


def _feed_path(ident: int):
    from rtl.feed_path.hdl import ADDR_WIDTH, DEST_WIDTH, feed_path

    clk, rst = _clock_and_reset()
    return feed_path(clk, rst, AxiStream(), AxiStream(), AxiStream(DEST_WIDTH), AxiStream(),
                     AxiLite(ADDR_WIDTH), ident)


def _pricer(ident: int):
    from rtl.pricer.hdl import OptionPort, ResultPort, SpotPort, SpotTermsPort, pricer

    clk, rst = _clock_and_reset()
    return pricer(clk, rst, SpotPort(), SpotTermsPort(), OptionPort(), ResultPort())


def _quoter(ident: int):
    from rtl.common.theo_stream import TheoPort
    from rtl.quoter.hdl import quoter
    from rtl.quoter.stream import QuotePort

    clk, rst = _clock_and_reset()
    return quoter(clk, rst, TheoPort(), QuotePort(), AxiLite())


def _risk_gate(ident: int):
    from rtl.quoter.stream import QuotePort
    from rtl.risk_gate.hdl import risk_gate

    clk, rst = _clock_and_reset()
    return risk_gate(clk, rst, QuotePort(), AxiStream(), AxiLite())


def _quote_path(ident: int):
    from rtl.common.theo_stream import TheoPort
    from rtl.risk_gate.quote_path import ADDR_WIDTH, quote_path

    clk, rst = _clock_and_reset()
    return quote_path(clk, rst, TheoPort(), AxiStream(), AxiLite(ADDR_WIDTH))


def _pricer_chain(ident: int):
    from rtl.pricer_chain.__main__ import elaborate
    from rtl.pricer_chain.model import ChainConfig

    return elaborate(ChainConfig())

def _fabric(ident: int):
    from rtl.fabric.hdl import ADDR_WIDTH, DEST_WIDTH, fabric

    clk, rst = _clock_and_reset()
    return fabric(clk, rst, AxiStream(), AxiStream(), AxiStream(DEST_WIDTH), AxiLite(ADDR_WIDTH),
                  ident)


BLOCKS: dict[str, BlockTop] = {
    "system": BlockTop("system_registers", _system),
    "frame_filter": BlockTop("frame_filter", _frame_filter),
    "itch_decoder": BlockTop("itch_decoder", _itch_decoder),
    "mold_seq": BlockTop("mold_seq", _mold_seq),
    "order_book": BlockTop("order_book", _order_book),
    "feed_path": BlockTop("feed_path", _feed_path),
    "pricer": BlockTop("pricer", _pricer),
    "quoter": BlockTop("quoter", _quoter),
    "risk_gate": BlockTop("risk_gate", _risk_gate),
    "pricer_chain": BlockTop("pricer_chain", _pricer_chain),
    "quote_path": BlockTop("quote_path", _quote_path),
    "fabric": BlockTop("fabric", _fabric),
}


# The Python a block's Verilog is made from: the fabric's sources and the
# host modules that declare the record layouts and register fields.
SOURCE_ROOTS = ("rtl", "host")
STAMP_NAME = "source.stamp"


def source_stamp(ident: int) -> str:
    """What a conversion depends on: every ``.py`` file under
    :data:`SOURCE_ROOTS`, the build ID and the MyHDL and Python versions."""
    import hashlib
    import platform

    import myhdl

    digest = hashlib.sha256(f"{ident}:{myhdl.__version__}:{platform.python_version()}".encode())
    for root in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _up_to_date(name: str, stamp: str) -> bool:
    target = rtl_dir(name) / f"{BLOCKS[name].toplevel}.v"
    stamp_file = rtl_dir(name) / STAMP_NAME
    return target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp


def convert_blocks(names: list[str] | None = None, ident: int | None = None,
                   force: bool = False) -> list[Path]:
    """Write ``build/rtl/<name>/<toplevel>.v`` for each block (all by default)
    and return the paths.  A block whose Verilog was written from the same
    sources and build ID (:func:`source_stamp`) is not converted again unless
    ``force``: elaborating the larger blocks takes minutes."""
    names = list(BLOCKS) if names is None else list(names)
    for name in names:
        if name not in BLOCKS:
            raise KeyError(f"no block {name!r}; blocks are {', '.join(BLOCKS)}")
    ident = build_id() if ident is None else ident
    stamp = source_stamp(ident)
    todo = [n for n in names if force or not _up_to_date(n, stamp)]
    if todo and os.environ.get("PYTHONHASHSEED") == "0":
        for n in todo:
            (rtl_dir(n) / STAMP_NAME).unlink(missing_ok=True)
            convert(BLOCKS[n].elaborate(ident), n, BLOCKS[n].toplevel)
            (rtl_dir(n) / STAMP_NAME).write_text(stamp)
    else:
        # One process per block: MyHDL keeps naming state from one conversion
        # to the next, so a block's text would depend on what was converted
        # before it in the same process.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        for n in todo:
            command = [sys.executable, "-m", "rtl", "--build-id", str(ident), "--force", n]
            done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True,
                                  text=True)
            if done.returncode:
                raise RuntimeError(f"conversion of {n} failed:\n{done.stdout}{done.stderr}")
    return [rtl_dir(n) / f"{BLOCKS[n].toplevel}.v" for n in names]


def convert_block(name: str, ident: int | None = None) -> Path:
    return convert_blocks([name], ident)[0]
