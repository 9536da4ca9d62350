"""Whether the synthesised fabric fits a board's device: used, available,
utilisation and margin per resource, against the capacity in
``board/<name>/board.toml`` and the most of it a fabric may take
(:data:`LIMITS`).

What is counted: the blocks the board's overlay instantiates
(:func:`overlays.config.fit_parts`), synthesised for the board's family (a
Zynq-7000 board with ``-family xc7``).  The feed path is synthesised whole;
the whole fabric as the sum of its three parts (feed path, chain pricer with
the board's lanes, quote path), each synthesised on its own, which leaves
out the fabric's own glue (a record fork, a 64-beat FIFO, two merges, the
AXI-Lite router), small next to parts of tens of thousands of LUTs.  LUTs used as
memory (LUT RAM, SRL) occupy CLB LUTs, so they count against the LUT
capacity as Vivado's utilisation report does.  Yosys counts LUTs before
Vivado packs two small LUTs into one LUT6, so LUTs are an upper estimate.

The limits, and why not 100 %:

* LUT and FF 85 %: placement and routing congest and timing closure at
  250 MHz gets hard well before a device is full, and the block design's
  own IP (SmartConnects, AXI DMAs, Ethernet MACs and their FIFOs) is not in
  the estimate and needs its share of the same slices;
* DSP 85 %: the pricer's multipliers cascade along DSP columns, and a
  nearly full device leaves no whole column segments for them;
* block RAM and UltraRAM 90 %: memories do not congest routing as logic
  does, but the MACs' receive FIFOs (4096 x 64 bits, about 8 BRAM36 each)
  come out of the same columns.

Results are only ever read here, never produced: :func:`cached_result`
takes a block's result from its work folder when it was made from the
Verilog the block has now; anything else is a missing estimate
(:class:`MissingEstimate`), to be made with ``make synth BOARD=<board>``.
"""
from __future__ import annotations

import json
from pathlib import Path

from board.boards import Board, load_board

RESOURCES = ("lut", "ff", "bram36", "dsp", "uram")
LIMITS = {"lut": 0.85, "ff": 0.85, "bram36": 0.90, "dsp": 0.85, "uram": 0.90}
LABELS = {"lut": "LUT", "ff": "FF", "bram36": "BRAM36", "dsp": "DSP", "uram": "URAM"}


class SynthReportError(ValueError):
    """The synthesis report is missing, malformed or lacks a block."""


class MissingEstimate(SynthReportError):
    """Blocks of a board's fabric have no synthesis result for their current
    Verilog."""

    def __init__(self, board: str, blocks: list[str], family: str):
        self.board, self.blocks, self.family = board, list(blocks), family
        super().__init__("; ".join(
            f"no synthesis estimate for block {block} ({family}): run `make synth BOARD={board}`"
            for block in self.blocks))


def synth_family(board: Board) -> str:
    """The ``synth_xilinx -family`` of a board's device."""
    from rtl.synth.run import FAMILIES

    return FAMILIES[board.family]


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


def fit_report(synth_json, board: Board | str, blocks: list[str] | tuple[str, ...] | None = None,
               limits: dict[str, float] = LIMITS, basis: str = "") -> dict:
    """Used, available, utilisation, limit, allowed (limit x available) and
    margin (available - used) per resource for the sum of ``blocks``
    (default: the default fabric top, which contains the others) against
    ``board``'s capacity; ``fits`` when every resource is within its limit.
    ``synth_json`` is the report dict or its path; ``board`` a :class:`Board`
    or a board name; ``basis`` says how the blocks make up the fabric."""
    report = _load(synth_json)
    if isinstance(board, str):
        board = load_board(board)
    if blocks is None:
        from overlays.config import FABRIC_BLOCK

        blocks = (FABRIC_BLOCK,)
    family = synth_family(board)
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
        made_for = record.get("family") or report.get("family")
        if made_for != family:
            # Another family's primitives (CARRY8 vs CARRY4, DSP48E2 vs E1,
            # RAMB36E2 vs E1) say little about this device.
            raise SynthReportError(f"block {block!r} was synthesised for "
                                   f"{made_for or 'no family'}, {board.name} needs {family}: "
                                   f"run `make synth BOARD={board.name}`")
        for name, amount in _used(record, block).items():
            used[name] += amount
    capacity = board.capacity.as_dict()
    resources = {}
    for name in RESOURCES:
        available = capacity[name]
        amount = used[name]
        allowed = limits[name] * available
        resources[name] = {
            "used": _number(amount),
            "available": available,
            "utilisation": (amount / available) if available else (0.0 if not amount else None),
            "limit": limits[name],
            "allowed": _number(round(allowed, 1)),
            "margin": _number(available - amount),
            "within_limit": amount <= allowed,
        }
    over = [name for name in RESOURCES if not resources[name]["within_limit"]]
    return {"board": board.name, "part": board.part, "family": family,
            "fabric": board.fabric.as_dict(), "blocks": list(blocks),
            "basis": basis or f"whole top: {', '.join(blocks)}", "fits": not over,
            "over_limit": over, "resources": resources}


def cached_result(job) -> dict | None:
    """The result kept in ``job``'s work folder when it was made from the
    Verilog, script and Yosys the job has now and succeeded; else None."""
    try:
        kept = json.loads((job.work_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if kept.get("key") != job.key() or "error" in kept:
        return None
    return {**kept, "cached": True}


def board_jobs(board: Board, timeout: float | None = None) -> tuple[list, str]:
    """Synthesis jobs for the parts of ``board``'s fabric, in its family,
    with their Verilog converted (unless already there from the same
    sources), and how the parts make up the fabric."""
    from overlays.config import fit_parts
    from rtl.synth.run import DEFAULT_TIMEOUT, SYNTH_BUILD_ID, SynthJob, work_dir

    family = synth_family(board)
    parts, basis = fit_parts(board, SYNTH_BUILD_ID)
    jobs = [SynthJob(part.name, part.top, (part.convert().resolve(),), work_dir(part.name, family),
                     timeout or DEFAULT_TIMEOUT, family) for part in parts]
    return jobs, basis


def board_fit(board: Board, jobs: list, basis: str, results: dict[str, dict] | None = None
              ) -> dict:
    """The fit of ``board``'s fabric from ``results`` (block -> record), by
    default the cached results of ``jobs``.  Raises :class:`MissingEstimate`
    naming every block without one."""
    if results is None:
        results = {job.block: cached_result(job) for job in jobs}
    family = synth_family(board)
    missing = [job.block for job in jobs if not results.get(job.block)]
    if missing:
        raise MissingEstimate(board.name, missing, family)
    report = {"family": family, "blocks": {job.block: results[job.block] for job in jobs}}
    fit = fit_report(report, board, [job.block for job in jobs], basis=basis)
    fit["estimates"] = {job.block: {"used": {name: _number(amount) for name, amount
                                             in _used(results[job.block], job.block).items()},
                                    "verilog": results[job.block].get("verilog"),
                                    "key": results[job.block].get("key"),
                                    "lut_levels": results[job.block].get("lut_levels")}
                        for job in jobs}
    return fit


def fit_rows(fit: dict) -> list[tuple[str, str, str, str, str, str]]:
    """Table rows: resource, used, available, utilisation, limit, verdict."""
    rows = []
    for name in RESOURCES:
        entry = fit["resources"][name]
        if not entry["available"] and not entry["used"]:
            continue
        share = entry["utilisation"]
        rows.append((LABELS[name], f"{entry['used']:g}", f"{entry['available']:g}",
                     "-" if share is None else f"{100 * share:.1f} %",
                     f"<= {100 * entry['limit']:.0f} %",
                     "ok" if entry["within_limit"] else "OVER"))
    return rows


def fit_text(fit: dict) -> str:
    """The fit as plain text: a header, one line per resource, the basis."""
    head = (f"fit of {fit['board']} ({fit['part']}, {fit['family']}), fabric "
            + ", ".join(f"{k}={v}" for k, v in fit["fabric"].items()))
    lines = [head, f"  {'resource':8} {'used':>9} {'available':>10} {'used %':>8}  "
                   f"{'limit':>7}"]
    for label, used, available, share, limit, verdict in fit_rows(fit):
        lines.append(f"  {label:8} {used:>9} {available:>10} {share:>8}  {limit:>7}  {verdict}")
    lines.append(f"  estimate: {fit['basis']}")
    for block, estimate in fit.get("estimates", {}).items():
        used = estimate["used"]
        lines.append(f"    {block}: " + ", ".join(
            f"{used[name]:g} {LABELS[name]}" for name in ("lut", "ff", "bram36", "dsp")))
    return "\n".join(lines)


def write_fit(fit: dict, out: Path) -> Path:
    from rtl.synth.run import write_report

    write_report(fit, out)
    return out
