"""Resources and logic depth of a Xilinx netlist that Yosys wrote as JSON.

The depth is the longest combinational path between timing start points and
end points, counted in LUT levels, over the cell graph of the netlist:

* start points: flip-flop and latch outputs, block RAM / URAM outputs, DSP
  outputs behind their P register, shift-register and LUT-RAM outputs (the
  stored bit), and the top module's inputs;
* end points: every data, enable and reset pin of those same elements and the
  top module's outputs.

Counting rules, chosen to track how Vivado packs an UltraScale+ slice:

* each LUT1..LUT6 (and INV, which Vivado maps to a LUT1) is one level;
* MUXF7/MUXF8/MUXF9 add no level: they are the wide-function muxes behind the
  LUTs of the same slice and come with the LUT level that feeds them (they
  are counted separately as ``muxf``);
* carry logic is not a LUT level; it is counted separately in CARRY8 blocks.
  Yosys maps adders to CARRY4 cells, which Vivado retargets two to a CARRY8,
  so a path through ``n`` CARRY4 cells is reported as ``ceil(n / 2)``
  CARRY8 blocks (a CARRY8 cell counts as two CARRY4 halves).  Carry pins are
  followed bit by bit, so entering a carry cell at bit ``i`` and leaving it at
  bit ``j`` only counts when ``j >= i``.  On 7-series, where CARRY4 is the
  block itself, the carry figures are still in these CARRY8 units;
* a read through a LUT RAM or a variable-length shift register (address pin
  to data output) is one LUT level;
* a DSP48E2 (DSP48E1 on 7-series) is a timing boundary where its registers are: an input with its
  own register (AREG, BREG, ...) ends a path; an input without one but
  followed by MREG or PREG ends the path after one ``dsp`` stage (the
  multiplier or ALU it still has to cross); with no register at all the path
  crosses the DSP as one ``dsp`` stage.  Outputs are start points when PREG is
  set, and start one ``dsp`` stage late when only an earlier register exists.

The worst path is the one with the most LUT levels; ties go to the path with
more DSP stages, then more carry blocks, then more wide muxes.  A second,
independent search reports the longest carry path (CARRY8 blocks first,
then LUT levels), since a long adder chain costs time without adding LUTs.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field

# Path costs are packed into one integer so that adding two costs adds each
# field and comparing two costs compares fields in priority order.  Each field
# has 16 bits; no real path comes near 65535 cells of one kind.
_FIELD = 16
_MASK = (1 << _FIELD) - 1


def _pack(*fields: int) -> int:
    value = 0
    for item in fields:
        value = (value << _FIELD) | item
    return value


def _unpack(value: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        out.append(value & _MASK)
        value >>= _FIELD
    return out[::-1]


# Cost kinds, in the order of the LUT-depth objective.
LUT, DSP, CARRY, MUXF = range(4)
_KINDS = ("lut", "dsp", "carry4", "muxf")


@dataclass(frozen=True)
class Objective:
    """A priority order over the cost kinds."""
    name: str
    order: tuple[int, ...]

    def weight(self, kind: int, amount: int = 1) -> int:
        fields = [0] * len(self.order)
        fields[self.order.index(kind)] = amount
        return _pack(*fields)

    def decode(self, value: int) -> dict[str, int]:
        fields = _unpack(value, len(self.order))
        return {_KINDS[kind]: fields[i] for i, kind in enumerate(self.order)}


LUT_DEPTH = Objective("lut", (LUT, DSP, CARRY, MUXF))
CARRY_DEPTH = Objective("carry", (CARRY, LUT, DSP, MUXF))

_LUT_TYPES = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"}
_MUXF_TYPES = {"MUXF7", "MUXF8", "MUXF9"}
_FF_TYPES = {"FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1",
             "FDRSE", "FDCPE"}
_LATCH_TYPES = {"LDCE", "LDPE", "LDCPE"}
_SRL_TYPES = {"SRL16E", "SRLC16E", "SRLC32E"}
# UltraScale+ (E2) and 7-series (E1) primitives: the same roles, the same
# register attributes and pin names as far as this analysis reads them.
_BRAM36 = {"RAMB36E2": 1.0, "RAMB18E2": 0.5, "FIFO36E2": 1.0, "FIFO18E2": 0.5,
           "RAMB36E1": 1.0, "RAMB18E1": 0.5, "FIFO36E1": 1.0, "FIFO18E1": 0.5}
_URAM_TYPES = {"URAM288", "URAM288_BASE"}
_DSP_TYPES = {"DSP48E2", "DSP48E1"}
_CONSTANT_TYPES = {"GND", "VCC"}
# LUTs a distributed-RAM primitive occupies (UG574).
_LUTRAM_LUTS = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM512X1S": 8, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
    "RAM256X1D": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "RAM32X16DR8": 8, "RAM64X8SW": 8,
}
_CLOCK_PINS = {"CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "RDCLK", "WRCLK"}
_LUTRAM_ADDRESS = re.compile(r"^(A\d*|ADDR[A-H]|DPRA\d*)$")

# DSP48E2 inputs and the attribute naming their own input register.
_DSP_INPUT_REGISTER = {
    "A": "AREG", "ACIN": "AREG", "B": "BREG", "BCIN": "BREG", "C": "CREG", "D": "DREG",
    "CARRYIN": "CARRYINREG", "CARRYINSEL": "CARRYINSELREG", "OPMODE": "OPMODEREG",
    "ALUMODE": "ALUMODEREG", "INMODE": "INMODEREG",
}
# Cascade inputs have no register of their own.
_DSP_CASCADE_INPUTS = {"PCIN", "CARRYCASCIN", "MULTSIGNIN"}
_DSP_MULTIPLIER_INPUTS = {"A", "ACIN", "B", "BCIN", "D", "INMODE"}
_DSP_P_OUTPUTS = {"P", "PCOUT", "CARRYOUT", "CARRYCASCOUT", "MULTSIGNOUT", "PATTERNDETECT",
                  "PATTERNBDETECT", "OVERFLOW", "UNDERFLOW", "XOROUT"}


class NetlistError(ValueError):
    """The JSON is not a Yosys netlist of the expected top module."""


@dataclass
class Endpoint:
    """One end of a path: the cell (or top port) and pin, and the net there."""
    cell: str
    type: str
    port: str
    net: str
    src: str = ""
    register: str = ""      # for a flip-flop input: the register's (output net's) name

    def as_dict(self) -> dict:
        out = {"cell": self.cell, "type": self.type, "port": self.port, "net": self.net}
        if self.register:
            out["register"] = self.register
        if self.src:
            out["src"] = self.src
        return out


@dataclass
class Path:
    objective: str
    counts: dict[str, int]
    start: Endpoint
    end: Endpoint
    cells: list[tuple[str, str]] = field(default_factory=list)
    through: list[str] = field(default_factory=list)    # named nets between the ends

    @property
    def lut_levels(self) -> int:
        return self.counts["lut"]

    @property
    def carry8(self) -> int:
        return math.ceil(self.counts["carry4"] / 2)

    def as_dict(self) -> dict:
        return {"lut_levels": self.counts["lut"], "carry8": self.carry8,
                "muxf": self.counts["muxf"], "dsp_stages": self.counts["dsp"],
                "from": self.start.as_dict(), "to": self.end.as_dict(),
                "through": self.through,
                "cells": [{"cell": name, "type": kind} for name, kind in self.cells]}


@dataclass
class NetlistReport:
    top: str
    cell_types: dict[str, int]
    lut: int
    ff: int
    latch: int
    bram36: float
    uram: int
    dsp: int
    dsp_unregistered: int
    carry8: float
    muxf: int
    lutram: int
    srl: int
    unknown_types: list[str]
    combinational_loop_nets: int
    worst_path: Path | None
    worst_carry_path: Path | None

    @property
    def lut_levels(self) -> int:
        return self.worst_path.lut_levels if self.worst_path else 0

    def resources(self) -> dict:
        return {"lut": self.lut, "ff": self.ff, "bram": self.bram36, "uram": self.uram,
                "dsp": self.dsp, "carry": self.carry8, "lutram": self.lutram, "srl": self.srl,
                "muxf": self.muxf, "latch": self.latch}

    def as_dict(self) -> dict:
        carry_path = self.worst_carry_path
        return {**self.resources(), "lut_levels": self.lut_levels,
                "dsp_unregistered": self.dsp_unregistered,
                "carry_levels": carry_path.carry8 if carry_path else 0,
                "worst_path": self.worst_path.as_dict() if self.worst_path else None,
                "worst_carry_path": carry_path.as_dict() if carry_path else None,
                "cell_types": dict(sorted(self.cell_types.items())),
                "unknown_cell_types": self.unknown_types,
                "combinational_loop_nets": self.combinational_loop_nets}


def _parameter(cell: dict, name: str, default=0):
    """A cell parameter as int (Yosys writes bit strings) or as a plain string."""
    value = cell.get("parameters", {}).get(name)
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if re.fullmatch(r"[01]+", value):
        return int(value, 2)
    return value.rstrip(" ")


class _Graph:
    """Net bits and per-cell helper nodes with weighted timing arcs."""

    def __init__(self, objective: Objective):
        self.objective = objective
        self.next_id = 0
        self.edges: dict[int, list[tuple[int, int, int]]] = {}   # node -> (node, weight, cell)
        self.starts: dict[int, tuple[int, int]] = {}             # node -> (weight, start index)
        self.ends: list[tuple[int, int, int]] = []               # (node, weight, end index)

    def node(self) -> int:
        self.next_id -= 1
        return self.next_id      # helper nodes are negative; net bits are Yosys' positives

    def arc(self, source: int, target: int, weight: int, cell: int) -> None:
        self.edges.setdefault(source, []).append((target, weight, cell))

    def start(self, node: int, weight: int, start_index: int) -> None:
        held = self.starts.get(node)
        if held is None or weight > held[0]:
            self.starts[node] = (weight, start_index)

    def end(self, node: int, weight: int, end_index: int) -> None:
        self.ends.append((node, weight, end_index))


class Netlist:
    """A parsed top module: cells, nets and the names a designer can search for."""

    def __init__(self, data: dict, top: str, source_hint: str = ""):
        modules = data.get("modules")
        if not isinstance(modules, dict):
            raise NetlistError("not a Yosys JSON netlist: no 'modules' table")
        if top not in modules:
            raise NetlistError(f"top module {top!r} is not in the netlist "
                               f"(modules: {', '.join(sorted(modules)[:8])})")
        module = modules[top]
        self.top = top
        self.source_hint = source_hint
        self.ports: dict[str, dict] = module.get("ports", {})
        self.cell_names = list(module.get("cells", {}))
        self.cells = [module["cells"][name] for name in self.cell_names]
        self.bit_names = self._bit_names(module.get("netnames", {}))

    @staticmethod
    def _bit_names(netnames: dict) -> dict[int, str]:
        """Each net bit's most readable name: a public name before a generated
        one, then the shortest."""
        best: dict[int, tuple[int, int, str]] = {}
        for name, net in netnames.items():
            rank = int(net.get("hide_name", 0))
            bits = net.get("bits", [])
            offset = int(net.get("offset", 0))
            upto = bool(net.get("upto", 0))
            for index, bit in enumerate(bits):
                if not isinstance(bit, int):
                    continue
                if len(bits) == 1:
                    label = name
                else:
                    position = offset + (len(bits) - 1 - index if upto else index)
                    label = f"{name}[{position}]"
                key = (rank, len(label), label)
                if bit not in best or key < best[bit]:
                    best[bit] = key
        return {bit: key[2] for bit, key in best.items()}

    def net(self, bit) -> str:
        if not isinstance(bit, int):
            return f"constant {bit}"
        return self.bit_names.get(bit, f"net bit {bit}")

    def src(self, cell: dict) -> str:
        """The cell's source location in the block's Verilog, if Yosys kept one."""
        text = cell.get("attributes", {}).get("src", "")
        parts = [part for part in text.split("|") if "/share/" not in part]
        if self.source_hint:
            parts = [part for part in parts if self.source_hint in part] or parts
        return "|".join(parts)


def _is_clock(kind: str, port: str) -> bool:
    if kind in _FF_TYPES:
        return port == "C"
    if kind in _LATCH_TYPES:
        return port == "G"
    return port in _CLOCK_PINS


def _direction(cell: dict, port: str) -> str:
    directions = cell.get("port_directions")
    if not directions or port not in directions:
        raise NetlistError(f"cell of type {cell.get('type')} has no direction for port {port}; "
                           f"write the netlist with its cell library loaded")
    return directions[port]


def _pins(cell: dict):
    """(port, direction, bit index, net bit) for each connected, non-constant pin."""
    for port, bits in cell.get("connections", {}).items():
        direction = _direction(cell, port)
        for index, bit in enumerate(bits):
            if isinstance(bit, int):
                yield port, direction, index, bit


def _carry_arcs(cell: dict, width: int, graph: _Graph, cell_index: int, weight: int) -> None:
    """Bit-accurate arcs of CARRY4/CARRY8: output bit j depends on the carry-in
    and on the select and generate inputs of bits 0..j (of its own half when a
    CARRY8 is split into two CARRY4s)."""
    connections = cell.get("connections", {})
    split = _parameter(cell, "CARRY_TYPE", "SINGLE_CY8") == "DUAL_CY4"

    def bit(port: str, index: int):
        bits = connections.get(port, [])
        return bits[index] if index < len(bits) and isinstance(bits[index], int) else None

    carry_in = [b for b in (bit("CI", 0), bit("CYINIT", 0)) if b is not None]
    carry_in_top = [b for b in (bit("CI_TOP", 0),) if b is not None]
    for j in range(width):
        outputs = [b for b in (bit("O", j), bit("CO", j)) if b is not None]
        if not outputs:
            continue
        low = 4 if split and j >= 4 else 0
        sources = list(carry_in_top if split and j >= 4 else carry_in)
        for i in range(low, j + 1):
            sources += [b for b in (bit("S", i), bit("DI", i)) if b is not None]
        for source in sources:
            for target in outputs:
                graph.arc(source, target, weight, cell_index)


def _lutram_reads(cell: dict) -> dict[str, list[str]]:
    """Which address ports read which data outputs of a LUT RAM."""
    ports = cell.get("connections", {})
    outputs = [p for p in ports if _direction(cell, p) == "output"]
    addresses = [p for p in ports if _direction(cell, p) == "input" and _LUTRAM_ADDRESS.match(p)]
    reads: dict[str, list[str]] = {}
    for address in addresses:
        if address.startswith("ADDR"):
            targets = [o for o in outputs if o == "DO" + address[-1]]
        elif "SPO" in outputs or "DPO" in outputs:
            targets = ["DPO"] if address.startswith("DPRA") else ["SPO"]
        else:
            targets = outputs
        reads[address] = [t for t in targets if t in outputs]
    return reads


def _build_graph(netlist: Netlist, objective: Objective, starts: list, ends: list) -> _Graph:
    """The timing graph for one objective.  ``starts``/``ends`` collect the
    endpoint descriptions (shared between objectives: built in the same order)."""
    graph = _Graph(objective)
    record = not starts and not ends

    def new_start(endpoint: Endpoint) -> int:
        if record:
            starts.append(endpoint)
        new_start.count += 1
        return new_start.count - 1
    new_start.count = 0

    def new_end(endpoint: Endpoint) -> int:
        if record:
            ends.append(endpoint)
        new_end.count += 1
        return new_end.count - 1
    new_end.count = 0

    lut = objective.weight(LUT)
    muxf = objective.weight(MUXF)
    dsp = objective.weight(DSP)

    for name, port in netlist.ports.items():
        for index, bit in enumerate(port.get("bits", [])):
            if not isinstance(bit, int):
                continue
            label = name if len(port["bits"]) == 1 else f"{name}[{index}]"
            endpoint = Endpoint(netlist.top, "top port", label, label)
            if port.get("direction") in ("input", "inout"):
                graph.start(bit, 0, new_start(endpoint))
            if port.get("direction") in ("output", "inout"):
                graph.end(bit, 0, new_end(endpoint))

    for cell_index, (cell_name, cell) in enumerate(zip(netlist.cell_names, netlist.cells)):
        kind = cell.get("type", "")
        src = netlist.src(cell)

        def here(port: str, index: int, bit: int) -> Endpoint:
            width = len(cell["connections"][port])
            pin = port if width == 1 else f"{port}[{index}]"
            register = ""
            if (kind in _FF_TYPES or kind in _LATCH_TYPES) and _direction(cell, port) == "input":
                register = netlist.net(cell["connections"].get("Q", [None])[0])
            return Endpoint(cell_name, kind, pin, netlist.net(bit), src, register)

        if kind in _LUT_TYPES or kind in _MUXF_TYPES:
            weight = lut if kind in _LUT_TYPES else muxf
            pins = list(_pins(cell))
            outputs = [bit for _, d, _, bit in pins if d == "output"]
            for _, direction, _, bit in pins:
                if direction == "input":
                    for target in outputs:
                        graph.arc(bit, target, weight, cell_index)
        elif kind in ("CARRY4", "CARRY8"):
            halves = 1 if kind == "CARRY4" else 2
            _carry_arcs(cell, 4 * halves, graph, cell_index, objective.weight(CARRY))
        elif kind in _FF_TYPES or kind in _LATCH_TYPES or kind in _BRAM36 or kind in _URAM_TYPES:
            for port, direction, index, bit in _pins(cell):
                if _is_clock(kind, port):
                    continue
                if direction == "output":
                    graph.start(bit, 0, new_start(here(port, index, bit)))
                else:
                    graph.end(bit, 0, new_end(here(port, index, bit)))
        elif kind in _SRL_TYPES or kind in _LUTRAM_LUTS:
            reads = (_lutram_reads(cell) if kind in _LUTRAM_LUTS else
                     {p: ["Q"] for p in cell["connections"] if re.fullmatch(r"A\d*", p)})
            connections = cell["connections"]
            for port, direction, index, bit in _pins(cell):
                if _is_clock(kind, port):
                    continue
                if direction == "output":
                    graph.start(bit, 0, new_start(here(port, index, bit)))
                    continue
                if port in reads:
                    for target_port in reads[port]:
                        for target in connections.get(target_port, []):
                            if isinstance(target, int):
                                graph.arc(bit, target, lut, cell_index)
                # A shift register's tap address is read only; a RAM's address is
                # also sampled by the write.
                if kind in _LUTRAM_LUTS or port not in reads:
                    graph.end(bit, 0, new_end(here(port, index, bit)))
        elif kind in _DSP_TYPES:
            _dsp_arcs(cell, graph, cell_index, dsp, here, new_start, new_end)
        elif kind in _CONSTANT_TYPES:
            continue
        else:
            # Unknown primitive: treat it as a timing boundary and say so in the report.
            for port, direction, index, bit in _pins(cell):
                if direction == "output":
                    graph.start(bit, 0, new_start(here(port, index, bit)))
                else:
                    graph.end(bit, 0, new_end(here(port, index, bit)))
    return graph


def dsp_is_unregistered(cell: dict) -> bool:
    """True when some input reaches P without crossing any DSP register."""
    if _parameter(cell, "PREG") or _parameter(cell, "MREG"):
        return False
    return not all(_parameter(cell, _DSP_INPUT_REGISTER[port])
                   for port in ("A", "B", "C", "D") if port in cell.get("connections", {})
                   and any(isinstance(b, int) for b in cell["connections"][port]))


def _dsp_arcs(cell, graph: _Graph, cell_index: int, dsp: int, here, new_start, new_end) -> None:
    preg = bool(_parameter(cell, "PREG"))
    mreg = bool(_parameter(cell, "MREG")) and _parameter(cell, "USE_MULT", "MULTIPLY") != "NONE"
    core = graph.node()
    internal_register = mreg
    for port, direction, index, bit in _pins(cell):
        if _is_clock("DSP48E2", port) or direction != "input":
            continue
        register = _DSP_INPUT_REGISTER.get(port)
        if port in _DSP_CASCADE_INPUTS:
            register = ""
        if register is None or (register and _parameter(cell, register)):
            # CE*/RST* pins, and inputs with their own register, end here.
            internal_register |= bool(register)
            graph.end(bit, 0, new_end(here(port, index, bit)))
        elif preg or (mreg and port in _DSP_MULTIPLIER_INPUTS):
            graph.end(bit, dsp, new_end(here(port, index, bit)))
        else:
            graph.arc(bit, core, dsp, cell_index)
    for port, direction, index, bit in _pins(cell):
        if direction != "output":
            continue
        if port in _DSP_P_OUTPUTS and not preg:
            graph.arc(core, bit, 0, cell_index)
            if internal_register:
                graph.start(bit, dsp, new_start(here(port, index, bit)))
        else:
            graph.start(bit, 0, new_start(here(port, index, bit)))


def _longest(graph: _Graph, netlist: Netlist, starts: list[Endpoint],
             ends: list[Endpoint]) -> tuple[Path | None, int]:
    """Longest start-to-end path (by packed weight) and the number of nodes
    left out because they sit on a combinational loop."""
    indegree: dict[int, int] = {}
    nodes = set(graph.starts)
    for source, arcs in graph.edges.items():
        nodes.add(source)
        for target, _, _ in arcs:
            indegree[target] = indegree.get(target, 0) + 1
            nodes.add(target)
    arrival: dict[int, int] = {}
    previous: dict[int, tuple[int, int]] = {}     # node -> (node before, cell index)
    origin: dict[int, int] = {}                   # node -> start index of its best path
    for node, (weight, start_index) in graph.starts.items():
        arrival[node] = weight
        origin[node] = start_index
    ready = deque(node for node in nodes if indegree.get(node, 0) == 0)
    done = 0
    while ready:
        node = ready.popleft()
        done += 1
        here = arrival.get(node)
        for target, weight, cell_index in graph.edges.get(node, ()):
            if here is not None:
                candidate = here + weight
                if target not in arrival or candidate > arrival[target]:
                    arrival[target] = candidate
                    previous[target] = (node, cell_index)
                    origin[target] = origin[node]
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    loop_nodes = len(nodes) - done

    best = None
    for node, weight, end_index in graph.ends:
        if node in arrival and (best is None or arrival[node] + weight > best[0]):
            best = (arrival[node] + weight, node, end_index)
    if best is None:
        return None, loop_nodes
    total, node, end_index = best
    chain = []
    named = []
    end_node = node
    while node in previous:
        name = netlist.bit_names.get(node, "$") if node > 0 and node != end_node else "$"
        if not name.startswith("$"):
            named.append(name)
        node, cell_index = previous[node]
        if not chain or chain[-1] != cell_index:
            chain.append(cell_index)
    chain.reverse()
    named.reverse()
    cells = [(netlist.cell_names[i], netlist.cells[i].get("type", "")) for i in chain]
    path = Path(graph.objective.name, graph.objective.decode(total), starts[origin[best[1]]],
                ends[end_index], cells, named)
    return path, loop_nodes


def analyse(data: dict, top: str, source_hint: str = "") -> NetlistReport:
    """Resources and worst paths of module ``top`` in a Yosys JSON netlist.
    ``source_hint`` (e.g. the Verilog file name) picks the useful part of the
    cells' ``src`` attributes."""
    netlist = Netlist(data, top, source_hint)
    types: dict[str, int] = {}
    for cell in netlist.cells:
        types[cell.get("type", "")] = types.get(cell.get("type", ""), 0) + 1

    def count(kinds) -> int:
        return sum(n for t, n in types.items() if t in kinds)

    known = (_LUT_TYPES | _MUXF_TYPES | _FF_TYPES | _LATCH_TYPES | _SRL_TYPES | set(_BRAM36)
             | _URAM_TYPES | _DSP_TYPES | _CONSTANT_TYPES | set(_LUTRAM_LUTS)
             | {"CARRY4", "CARRY8"})
    unknown = sorted(t for t in types if t not in known)
    starts: list[Endpoint] = []
    ends: list[Endpoint] = []
    worst, loops = _longest(_build_graph(netlist, LUT_DEPTH, starts, ends), netlist, starts, ends)
    carry, _ = _longest(_build_graph(netlist, CARRY_DEPTH, starts, ends), netlist, starts, ends)
    if carry is not None and carry.counts["carry4"] == 0:
        carry = None
    return NetlistReport(
        top=top, cell_types=types, lut=count(_LUT_TYPES), ff=count(_FF_TYPES),
        latch=count(_LATCH_TYPES),
        bram36=sum(_BRAM36[t] * n for t, n in types.items() if t in _BRAM36),
        uram=count(_URAM_TYPES), dsp=count(_DSP_TYPES),
        dsp_unregistered=sum(1 for c in netlist.cells
                             if c.get("type") in _DSP_TYPES and dsp_is_unregistered(c)),
        carry8=types.get("CARRY8", 0) + types.get("CARRY4", 0) / 2,
        muxf=count(_MUXF_TYPES),
        lutram=sum(_LUTRAM_LUTS[t] * n for t, n in types.items() if t in _LUTRAM_LUTS),
        srl=count(_SRL_TYPES), unknown_types=unknown, combinational_loop_nets=loops,
        worst_path=worst, worst_carry_path=carry)
