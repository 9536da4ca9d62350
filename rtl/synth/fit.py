"""Whether the synthesised fabric fits a board's device: used, available and
margin per resource, from ``build/reports/synth.json`` and the capacity in
``board/<name>/board.toml``.

Blocks nest (``feed_path`` holds the filter, sequencer, decoder and book;
the overlay's top block holds them all), so the blocks summed are the ones
the overlay instantiates, not every block in the report.  LUTs used as memory (LUT RAM, SRL) occupy CLB LUTs, so
they count against the LUT capacity as Vivado's utilisation report does.
Yosys' LUT counts are before Vivado packs two small LUTs into one LUT6, so
LUTs are an upper estimate.
"""
from __future__ import annotations

import json
from pathlib import Path

from board.boards import Board, load_board

RESOURCES = ("lut", "ff", "bram36", "dsp", "uram")


class SynthReportError(ValueError):
    """The synthesis report is missing, malformed or lacks a block."""


def _load(synth_json) -> dict:
    if isinstance(synth_json, dict):
        return synth_json
    path = Path(synth_json)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise SynthReportError(f"no synthesis report at {path} (run `make synth`): {exc}") from exc
    except ValueError as exc:
        raise SynthReportError(f"{path} is not JSON: {exc}") from exc


def _used(record: dict, block: str) -> dict[str, float]:
    try:
        return {"lut": record["lut"] + record.get("lutram", 0) + record.get("srl", 0),
                "ff": record["ff"], "bram36": record["bram"], "dsp": record["dsp"],
                "uram": record.get("uram", 0)}
    except (KeyError, TypeError) as exc:
        raise SynthReportError(f"block {block!r} in the synthesis report lacks {exc}") from exc


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def fit_report(synth_json, board: Board | str, blocks: list[str] | tuple[str, ...] | None = None
               ) -> dict:
    """Used, available, margin (available - used) and utilisation per resource
    for ``blocks`` (default: the overlay's fabric top, which contains the
    others) against ``board``'s capacity.  ``synth_json`` is the report dict or
    its path; ``board`` a :class:`Board` or a board name."""
    report = _load(synth_json)
    if isinstance(board, str):
        board = load_board(board)
    if blocks is None:
        from overlays.config import FABRIC_BLOCK

        blocks = (FABRIC_BLOCK,)
    if report.get("family") and board.family == "zynq7000" and report["family"] != "xc7":
        note = (f"synthesised for {report['family']}, {board.name} is Zynq-7000: "
                f"counts are indicative (CARRY4 and DSP48E1 there)")
    else:
        note = ""
    entries = report.get("blocks")
    if not isinstance(entries, dict):
        raise SynthReportError("synthesis report has no 'blocks' table")
    used = dict.fromkeys(RESOURCES, 0.0)
    for block in blocks:
        record = entries.get(block)
        if record is None:
            raise SynthReportError(f"block {block!r} is not in the synthesis report "
                                   f"(has {', '.join(entries) or 'none'}); run `make synth`")
        if "error" in record:
            raise SynthReportError(f"block {block!r} failed synthesis: "
                                   f"{record['error'].splitlines()[0]}")
        for name, amount in _used(record, block).items():
            used[name] += amount
    capacity = board.capacity.as_dict()
    resources = {}
    for name in RESOURCES:
        available = capacity[name]
        amount = used[name]
        resources[name] = {
            "used": _number(amount),
            "available": available,
            "margin": _number(available - amount),
            "utilisation": (amount / available) if available else (0.0 if not amount else None),
        }
    return {"board": board.name, "part": board.part, "blocks": list(blocks),
            "fits": all(r["margin"] >= 0 for r in resources.values()),
            "resources": resources, "note": note}
