"""The board catalogue: each ``board/<name>/board.toml`` loaded into a checked
:class:`Board`.

A board file states what the overlay build and the appliance need to know
about a board: the FPGA part, the core and reference clocks, which Ethernet
interfaces reach the fabric and through which IP, the PYNQ image it runs, the
device capacity the fit check compares against, which fabric top level the
overlay instantiates and with which build parameters (``[fabric]``), and the
default appliance configuration.  Loading validates all of it, so a typo
fails here and not an hour into a Vivado run.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

BOARD_ROOT = Path(__file__).resolve().parent

# The one Vivado release the overlay TCL and every board file are written for.
VIVADO_VERSION = "2024.2"

FAMILIES = {
    # family -> (PS IP, core clock in MHz the design conventions fix)
    "zynq_ultrascale_plus": ("xilinx.com:ip:zynq_ultra_ps_e", 250.0),
    "zynq7000": ("xilinx.com:ip:processing_system7", 125.0),
}
ATTACHMENTS = ("pl-mac", "ps-bridge")
ETHERNET_KINDS = {
    # kind -> IP allowed to carry it into the fabric
    "10gbase-r": ("xilinx.com:ip:xxv_ethernet",),
    "rgmii": ("xilinx.com:ip:tri_mode_ethernet_mac", "xilinx.com:ip:axi_dma"),
}
# The fabric top levels an overlay can instantiate (names in rtl/blocks.py):
# the whole fabric (feed path, chain pricer, quoter, risk gate), or the feed
# path alone, the host pricing, quoting and gating with the blocks' models.
FABRIC_TOPS = ("fabric", "feed_path")
# Chain pricer build parameters a board may set, within the pricer's own
# limits (rtl/pricer_chain/model.py ChainConfig).
PRICER_LANES = (1, 2, 4, 8)
PRICER_SCENARIOS_MAX = 256
_PART = re.compile(r"^x[a-z0-9]+-?[a-z0-9]+-[0-9][a-z0-9]*(-[a-z])?$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class BoardError(ValueError):
    """A board file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ReferenceClock:
    name: str
    mhz: float
    pins: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class EthernetPort:
    name: str
    attach: str          # "pl-mac": a MAC in the fabric; "ps-bridge": PS GEM, frames via DMA
    kind: str
    ip: str
    line_rate_gbps: float
    note: str = ""


@dataclass(frozen=True)
class Capacity:
    lut: int
    ff: int
    bram36: int
    dsp: int
    uram: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"lut": self.lut, "ff": self.ff, "bram36": self.bram36, "dsp": self.dsp,
                "uram": self.uram}


@dataclass(frozen=True)
class FabricBuild:
    """What the board's overlay instantiates: ``top`` (one of
    :data:`FABRIC_TOPS`) and, for the whole fabric, the chain pricer's lanes
    (copies of the pricing datapath, the bulk of the fabric's DSPs and LUTs)
    and scenario rows.  The chain's table sizes are the quoter's and risk
    gate's (``rtl.fabric.hdl.FABRIC_CHAIN``) on every board."""
    top: str
    pricer_lanes: int | None = None
    pricer_scenarios: int | None = None

    @property
    def prices_in_fabric(self) -> bool:
        return self.top == "fabric"

    def as_dict(self) -> dict:
        out = {"top": self.top}
        if self.prices_in_fabric:
            out.update(pricer_lanes=self.pricer_lanes, pricer_scenarios=self.pricer_scenarios)
        return out


@dataclass(frozen=True)
class ApplianceDefaults:
    feed_a: str
    feed_b: str
    record_dma_bytes: int
    tracked_locates: int


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    family: str
    part: str
    board_part: str
    constraints: Path
    vivado: str
    pynq_image: str
    pynq_version: str
    core_mhz: float
    core_source: str
    reference_clocks: tuple[ReferenceClock, ...]
    ethernet: tuple[EthernetPort, ...]
    capacity: Capacity
    fabric: FabricBuild
    appliance: ApplianceDefaults
    directory: Path

    @property
    def ps_ip(self) -> str:
        return FAMILIES[self.family][0]

    @property
    def core_period_ns(self) -> float:
        return 1000.0 / self.core_mhz

    @property
    def ingest(self) -> str:
        """How market data reaches the fabric: ``pl-mac`` or ``ps-bridge``."""
        return self.port(self.appliance.feed_a).attach

    def port(self, name: str) -> EthernetPort:
        for port in self.ethernet:
            if port.name == name:
                return port
        raise KeyError(f"{self.name}: no Ethernet interface {name!r}")

    def feed_ports(self) -> tuple[EthernetPort, EthernetPort]:
        return self.port(self.appliance.feed_a), self.port(self.appliance.feed_b)


def board_names(root: Path = BOARD_ROOT) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/board.toml"))


def load_board(name: str, root: Path = BOARD_ROOT) -> Board:
    path = root / name / "board.toml"
    if not path.is_file():
        raise BoardError(f"no board {name!r}: {path} does not exist "
                         f"(boards: {', '.join(board_names(root)) or 'none'})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"{path}: {exc}") from exc
    board = _parse(data, path)
    if board.name != name:
        raise BoardError(f"{path}: name {board.name!r} differs from its folder {name!r}")
    return board


def load_all(root: Path = BOARD_ROOT) -> dict[str, Board]:
    return {name: load_board(name, root) for name in board_names(root)}


def _parse(data: dict, path: Path) -> Board:
    where = str(path)

    def need(table: dict, key: str, kind, context: str = ""):
        if key not in table:
            raise BoardError(f"{where}: missing {context}{key}")
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BoardError(f"{where}: {context}{key} must be {kind.__name__}, got {value!r}")
        return value

    def table(key: str) -> dict:
        return need(data, key, dict)

    name = need(data, "name", str)
    if not _NAME.match(name):
        raise BoardError(f"{where}: board name {name!r} must be lower-case snake_case")
    family = need(data, "family", str)
    if family not in FAMILIES:
        raise BoardError(f"{where}: family {family!r} is not one of {', '.join(FAMILIES)}")
    part = need(data, "part", str)
    if not _PART.match(part):
        raise BoardError(f"{where}: part {part!r} does not look like a Xilinx part number")
    constraints = path.parent / need(data, "constraints", str)
    if not constraints.is_file():
        raise BoardError(f"{where}: constraints file {constraints} does not exist")

    tools = table("tools")
    vivado = need(tools, "vivado", str, "tools.")
    if vivado != VIVADO_VERSION:
        raise BoardError(f"{where}: tools.vivado is {vivado}, the overlay is written for "
                         f"Vivado {VIVADO_VERSION}")
    pynq = table("pynq")

    clocks = table("clocks")
    core_mhz = need(clocks, "core_mhz", float, "clocks.")
    expected_core = FAMILIES[family][1]
    if core_mhz != expected_core:
        raise BoardError(f"{where}: clocks.core_mhz is {core_mhz}, {family} runs the core at "
                         f"{expected_core} MHz")
    references = []
    for entry in need(clocks, "reference", list, "clocks."):
        clock = ReferenceClock(need(entry, "name", str, "clocks.reference."),
                               need(entry, "mhz", float, "clocks.reference."),
                               tuple(need(entry, "pins", list, "clocks.reference.")),
                               entry.get("note", ""))
        if clock.mhz <= 0:
            raise BoardError(f"{where}: reference clock {clock.name} has {clock.mhz} MHz")
        references.append(clock)

    ports = []
    for entry in need(data, "ethernet", list):
        port = EthernetPort(need(entry, "name", str, "ethernet."),
                            need(entry, "attach", str, "ethernet."),
                            need(entry, "kind", str, "ethernet."),
                            need(entry, "ip", str, "ethernet."),
                            need(entry, "line_rate_gbps", float, "ethernet."),
                            entry.get("note", ""))
        if port.attach not in ATTACHMENTS:
            raise BoardError(f"{where}: {port.name}: attach {port.attach!r} is not one of "
                             f"{', '.join(ATTACHMENTS)}")
        if port.kind not in ETHERNET_KINDS:
            raise BoardError(f"{where}: {port.name}: kind {port.kind!r} is not one of "
                             f"{', '.join(ETHERNET_KINDS)}")
        if port.ip not in ETHERNET_KINDS[port.kind]:
            raise BoardError(f"{where}: {port.name}: {port.ip} cannot carry {port.kind}")
        if (port.attach == "ps-bridge") != (port.ip == "xilinx.com:ip:axi_dma"):
            raise BoardError(f"{where}: {port.name}: ps-bridge ingest goes through AXI DMA, "
                             f"and only ps-bridge does")
        ports.append(port)
    if len({p.name for p in ports}) != len(ports):
        raise BoardError(f"{where}: duplicate Ethernet interface names")

    capacity_table = table("capacity")
    capacity = Capacity(**{key: need(capacity_table, key, int, "capacity.")
                           for key in ("lut", "ff", "bram36", "dsp")},
                        uram=capacity_table.get("uram", 0))
    if min(capacity.as_dict().values()) < 0 or capacity.lut == 0:
        raise BoardError(f"{where}: capacity must be positive")

    fabric = _fabric_build(table("fabric"), where, need)

    appliance_table = table("appliance")
    appliance = ApplianceDefaults(need(appliance_table, "feed_a", str, "appliance."),
                                  need(appliance_table, "feed_b", str, "appliance."),
                                  need(appliance_table, "record_dma_bytes", int, "appliance."),
                                  need(appliance_table, "tracked_locates", int, "appliance."))
    names = {p.name for p in ports}
    for feed in (appliance.feed_a, appliance.feed_b):
        if feed not in names:
            raise BoardError(f"{where}: appliance feed {feed!r} is not an Ethernet interface "
                             f"of this board")
    attaches = {next(p.attach for p in ports if p.name == f)
                for f in (appliance.feed_a, appliance.feed_b)}
    if len(attaches) != 1:
        raise BoardError(f"{where}: feeds A and B must reach the fabric the same way")
    if attaches == {"pl-mac"} and appliance.feed_a == appliance.feed_b:
        raise BoardError(f"{where}: feeds A and B need two fabric Ethernet ports")
    if not 0 < appliance.tracked_locates <= 64:
        raise BoardError(f"{where}: tracked_locates must be 1..64 (the order book's slots)")
    if appliance.record_dma_bytes <= 0 or appliance.record_dma_bytes % 4096:
        raise BoardError(f"{where}: record_dma_bytes must be a positive multiple of 4096")

    return Board(name=name, title=need(data, "title", str), family=family, part=part,
                 board_part=need(data, "board_part", str), constraints=constraints,
                 vivado=vivado, pynq_image=need(pynq, "image", str, "pynq."),
                 pynq_version=need(pynq, "version", str, "pynq."), core_mhz=core_mhz,
                 core_source=need(clocks, "core_source", str, "clocks."),
                 reference_clocks=tuple(references), ethernet=tuple(ports), capacity=capacity,
                 fabric=fabric, appliance=appliance, directory=path.parent)


def _fabric_build(table: dict, where: str, need) -> FabricBuild:
    top = need(table, "top", str, "fabric.")
    if top not in FABRIC_TOPS:
        raise BoardError(f"{where}: fabric.top {top!r} is not one of {', '.join(FABRIC_TOPS)}")
    pricer_keys = ("pricer_lanes", "pricer_scenarios")
    known = {"top", *pricer_keys}
    unknown = sorted(set(table) - known)
    if unknown:
        raise BoardError(f"{where}: unknown fabric.{unknown[0]} (fabric keys: "
                         f"{', '.join(sorted(known))})")
    if top != "fabric":
        present = [key for key in pricer_keys if key in table]
        if present:
            raise BoardError(f"{where}: fabric.{present[0]} is set, but fabric.top {top!r} has "
                             f"no pricer (the host prices)")
        return FabricBuild(top)
    lanes = need(table, "pricer_lanes", int, "fabric.")
    if lanes not in PRICER_LANES:
        raise BoardError(f"{where}: fabric.pricer_lanes must be one of "
                         f"{', '.join(map(str, PRICER_LANES))}, got {lanes}")
    scenarios = need(table, "pricer_scenarios", int, "fabric.")
    if not 1 <= scenarios <= PRICER_SCENARIOS_MAX:
        raise BoardError(f"{where}: fabric.pricer_scenarios must be 1..{PRICER_SCENARIOS_MAX}, "
                         f"got {scenarios}")
    return FabricBuild(top, lanes, scenarios)
