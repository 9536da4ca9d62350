"""The overlay build TCL, dry-run under tclsh with Vivado stubbed: the IP it
instantiates, the files it adds, the ports its constraints place; the checks
behind ``make overlay-check``; and the Vivado-missing path of ``make bitstream``."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dataclasses

from board.boards import VIVADO_VERSION, FabricBuild, load_all, load_board
from overlays.check import dry_run_problems, map_version_problems, tcl_complete, xdc_ports
from overlays.config import TCL_FILES, config_tcl, fabric_sources
from overlays.dryrun import DryRunError, dry_run
from rtl.common.convert import REPO_ROOT
from rtl.regmap.map import MAP_VERSION

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh (Tcl 8.6) not installed")

EXPECTED_IP = {
    "kr260": {"xilinx.com:ip:zynq_ultra_ps_e", "xilinx.com:ip:xxv_ethernet",
              "xilinx.com:ip:tri_mode_ethernet_mac"},
    "zcu102": {"xilinx.com:ip:zynq_ultra_ps_e", "xilinx.com:ip:xxv_ethernet"},
    "pynqz2": {"xilinx.com:ip:processing_system7"},
}
NOT_EXPECTED_IP = {
    "kr260": {"xilinx.com:ip:processing_system7"},
    "zcu102": {"xilinx.com:ip:tri_mode_ethernet_mac", "xilinx.com:ip:processing_system7"},
    "pynqz2": {"xilinx.com:ip:xxv_ethernet", "xilinx.com:ip:tri_mode_ethernet_mac",
               "xilinx.com:ip:zynq_ultra_ps_e"},
}


def test_tcl_files_are_complete(tmp_path):
    assert len(TCL_FILES) >= 3 and tcl_complete() == []
    broken = tmp_path / "broken.tcl"
    broken.write_text("proc half {} {\n  puts x\n")
    assert tcl_complete([broken]) == [str(broken)]


TOPS = {"kr260": "feed_path", "zcu102": "fabric", "pynqz2": "feed_path"}


@pytest.mark.parametrize("name", ["kr260", "zcu102", "pynqz2"])
def test_dry_run_records_the_board_design(name, tmp_path):
    board = load_board(name)
    record = dry_run(board, tmp_path)
    ip = set(record.ip_cells().values())
    assert EXPECTED_IP[name] <= ip and not ip & NOT_EXPECTED_IP[name]
    assert {"xilinx.com:ip:axi_dma", "xilinx.com:ip:smartconnect"} <= ip
    top = TOPS[name]
    assert record.module_references() == {"fabric": top}
    # The board's own top, converted with its parameters, not the default fabric.
    assert [Path(p) for p in record.files_added()
            if p.endswith(".v") and not p.startswith("/dryrun/")] == fabric_sources(board)
    assert fabric_sources(board)[0].parent.name == f"{top}-{name}"
    assert fabric_sources(board)[0].name == f"{top}.v"
    assert fabric_sources()[0].parent.name == "fabric"
    assert record.files_added("constrs_1") == [str(board.constraints)]
    assert record.part() == board.part
    assert dry_run_problems(board, record) == []
    assert record.of("launch_runs")[0].option("-to_step") == "write_bitstream"


def test_dma_channels_follow_the_ingest_and_the_top(tmp_path):
    dmas, records = {}, {}
    for name in ("kr260", "zcu102", "pynqz2"):
        records[name] = record = dry_run(load_board(name), tmp_path / name)
        dmas[name] = sorted(c for c, v in record.ip_cells().items() if v.endswith("axi_dma"))
    # The whole fabric merges every record into one stream; the feed path
    # sends book records and feed events on two.
    assert dmas["zcu102"] == ["record_dma"]
    assert dmas["kr260"] == ["event_dma", "record_dma"]
    assert dmas["pynqz2"] == ["event_dma", "ingest_dma_a", "ingest_dma_b", "record_dma"]
    streams = {tuple(c.args) for c in records["pynqz2"].of("connect_bd_intf_net")}
    assert ("ingest_dma_a/M_AXIS_MM2S", "fabric/s_axis_a") in streams
    assert ("fabric/m_axis", "record_dma/S_AXIS_S2MM") in streams
    assert ("fabric/m_feed_event", "event_dma/S_AXIS_S2MM") in streams
    nets = {tuple(c.args) for c in records["pynqz2"].of("connect_bd_net")}
    for dma in dmas["pynqz2"]:
        # Every DMA is clocked, out of reset and interrupting.
        assert any(dma + "/axi_resetn" in net for net in nets), dma
        assert any(net[0].startswith(dma + "/") and "introut" in net[0] for net in nets), dma
    assert "set zynqmm(record_streams) [list {m_axis} {record_dma}]" in \
        config_tcl(load_board("zcu102"))


def test_dry_run_problems_catch_another_top(tmp_path):
    """The check compares the design with what the board file says: a board
    claiming the whole fabric does not match a feed-path design."""
    feed_only = load_board("pynqz2")
    record = dry_run(feed_only, tmp_path)
    claims_fabric = dataclasses.replace(feed_only, fabric=FabricBuild("fabric", 1, 64))
    problems = " | ".join(dry_run_problems(claims_fabric, record))
    assert "expected the board's fabric top fabric only" in problems
    assert "RTL added" in problems


def test_constraints_only_place_ports_the_design_has(tmp_path):
    for board in load_all().values():
        record = dry_run(board, tmp_path / board.name)
        assert xdc_ports(board.constraints) <= record.top_ports()
    assert {"sfp0_rx_p", "rgmii0_rd", "sfp0_refclk_clk_p"} <= xdc_ports(load_board("kr260").constraints)


def test_dry_run_refuses_another_vivado(tmp_path):
    with pytest.raises(DryRunError, match=f"needs Vivado {VIVADO_VERSION}, this is Vivado 2023.1"):
        dry_run(load_board("kr260"), tmp_path, vivado_version="2023.1")


def test_map_version_check_catches_stale_verilog(tmp_path):
    current = tmp_path / "current.v"
    current.write_text(f"assign v[63:32] = 'b{MAP_VERSION:032b};\n")
    stale = tmp_path / "stale.v"
    stale.write_text(f"assign v[63:32] = 'b{MAP_VERSION ^ 1:032b};\n")
    assert map_version_problems([current]) == []
    problems = map_version_problems([current, stale])
    assert len(problems) == 1 and "stale.v" in problems[0]
    registers = tmp_path / "REGISTERS.md"
    registers.write_text("Map version: `0x00000000`\n")
    assert "REGISTERS.md" in map_version_problems([current], registers)[0]


def _no_vivado_env():
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if not (Path(p) / "vivado").exists())
    env = {**os.environ, "PATH": path}
    env.pop("VIVADO", None)
    return env


def test_bitstream_without_vivado_names_the_release():
    done = subprocess.run([sys.executable, "-m", "overlays.build", "--board", "kr260"],
                          cwd=REPO_ROOT, env=_no_vivado_env(), capture_output=True, text=True)
    assert done.returncode == 3
    assert f"Vivado {VIVADO_VERSION} is required" in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_bitstream_without_vivado_fails_clearly(tmp_path):
    # The fragment's own recipe, with the top-level Makefile's prerequisites stubbed.
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"PY := {sys.executable}\nBUILD := build\npython-env:\nrtl:\n"
                        f"include {REPO_ROOT / 'mk' / 'overlay.mk'}\n"
                        f"overlay-rtl: ;\n")
    done = subprocess.run(["make", "-f", str(makefile), "bitstream", "BOARD=zcu102"],
                          cwd=REPO_ROOT, env=_no_vivado_env(), capture_output=True, text=True)
    assert done.returncode != 0
    assert f"Vivado {VIVADO_VERSION} is required to build the zcu102 bitstream" in done.stderr
