"""Board files: they load, their facts are the ones the design relies on, and
malformed ones are refused with a specific message."""
import re
import shutil

import pytest

from board.boards import (VIVADO_VERSION, BoardError, FabricBuild, board_names, load_all,
                          load_board)
from overlays.config import BUILD_TCL


def test_the_three_boards_load():
    boards = load_all()
    assert sorted(boards) == ["kr260", "pynqz2", "zcu102"] == board_names()


@pytest.mark.parametrize("name, part, core_mhz, ingest, ps_ip", [
    ("kr260", "xck26-sfvc784-2LV-c", 250.0, "pl-mac", "xilinx.com:ip:zynq_ultra_ps_e"),
    ("zcu102", "xczu9eg-ffvb1156-2-e", 250.0, "pl-mac", "xilinx.com:ip:zynq_ultra_ps_e"),
    ("pynqz2", "xc7z020clg400-1", 125.0, "ps-bridge", "xilinx.com:ip:processing_system7"),
])
def test_board_facts(name, part, core_mhz, ingest, ps_ip):
    board = load_board(name)
    assert (board.part, board.core_mhz, board.ingest, board.ps_ip) == (part, core_mhz, ingest, ps_ip)
    assert board.constraints.is_file()
    assert board.capacity.lut > 0 and board.capacity.bram36 > 0 and board.capacity.dsp > 0


def test_kr260_reaches_the_fabric_through_sfp_and_rgmii():
    board = load_board("kr260")
    kinds = {p.name: (p.attach, p.kind) for p in board.ethernet}
    assert kinds["sfp0"] == ("pl-mac", "10gbase-r")
    assert kinds["rgmii0"] == kinds["rgmii1"] == ("pl-mac", "rgmii")
    assert board.reference_clocks[0].mhz == 156.25


def test_each_board_names_the_fabric_its_overlay_instantiates():
    fabrics = {name: board.fabric for name, board in load_all().items()}
    assert fabrics == {
        # The whole fabric's estimate is over the XCK26's LUTs even with one
        # pricer lane, and no lane fits the XC7Z020's 220 DSPs: the host prices.
        "kr260": FabricBuild("feed_path"),
        "zcu102": FabricBuild("fabric", pricer_lanes=2, pricer_scenarios=64),
        "pynqz2": FabricBuild("feed_path"),
    }
    assert not fabrics["pynqz2"].prices_in_fabric and fabrics["pynqz2"].as_dict() == {
        "top": "feed_path"}


def test_vivado_version_is_one_release_everywhere():
    required = re.search(r"set zynqmm_required_vivado (\S+)", BUILD_TCL.read_text()).group(1)
    assert required == VIVADO_VERSION
    assert {b.vivado for b in load_all().values()} == {VIVADO_VERSION}


@pytest.fixture
def board_copy(tmp_path):
    shutil.copytree(load_board("kr260").directory, tmp_path / "kr260")
    return tmp_path


@pytest.mark.parametrize("old, new, message", [
    ('family = "zynq_ultrascale_plus"', 'family = "spartan"', "family"),
    ('vivado = "2024.2"', 'vivado = "2023.1"', "Vivado 2024.2"),
    ("core_mhz = 250.0", "core_mhz = 200.0", "core_mhz"),
    ('feed_b = "rgmii0"', 'feed_b = "qsfp9"', "not an Ethernet interface"),
    ('feed_b = "rgmii0"', 'feed_b = "sfp0"', "two fabric Ethernet ports"),
    ('ip = "xilinx.com:ip:xxv_ethernet"', 'ip = "xilinx.com:ip:tri_mode_ethernet_mac"', "cannot carry"),
    ("lut = 117120", 'lut = "many"', "capacity.lut must be int"),
    ('part = "xck26-sfvc784-2LV-c"', 'part = "k26"', "part number"),
    ('constraints = "constraints.xdc"', 'constraints = "nope.xdc"', "does not exist"),
    ("tracked_locates = 64", "tracked_locates = 65", "tracked_locates"),
    ('top = "feed_path"', 'top = "pricer"', "fabric.top 'pricer' is not one of fabric, "
                                            "feed_path"),
    ('top = "feed_path"', 'top = "fabric"', "missing fabric.pricer_lanes"),
    ('top = "feed_path"', 'top = "feed_path"\npricer_lanes = 1',
     "fabric.pricer_lanes is set, but fabric.top 'feed_path' has no pricer"),
    ("[fabric]", "[fabric_options]", "missing fabric"),
])
def test_malformed_board_is_refused(board_copy, old, new, message):
    path = board_copy / "kr260" / "board.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(BoardError, match=re.escape(message)):
        load_board("kr260", board_copy)


@pytest.mark.parametrize("old, new, message", [
    ("pricer_lanes = 2", "pricer_lanes = 3", "fabric.pricer_lanes must be one of 1, 2, 4, 8"),
    ("pricer_lanes = 2", 'pricer_lanes = "2"', "fabric.pricer_lanes must be int"),
    ("pricer_lanes = 2", "pricer_lane = 2", "unknown fabric.pricer_lane"),
    ("pricer_scenarios = 64", "pricer_scenarios = 0", "fabric.pricer_scenarios must be 1..256"),
    ("pricer_scenarios = 64\n", "", "missing fabric.pricer_scenarios"),
])
def test_malformed_fabric_parameters_are_refused(tmp_path, old, new, message):
    shutil.copytree(load_board("zcu102").directory, tmp_path / "zcu102")
    path = tmp_path / "zcu102" / "board.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(BoardError, match=re.escape(message)):
        load_board("zcu102", tmp_path)


def test_unknown_board_and_broken_toml(board_copy):
    with pytest.raises(BoardError, match="no board 'zc706'"):
        load_board("zc706", board_copy)
    (board_copy / "kr260" / "board.toml").write_text("name = [unterminated\n")
    with pytest.raises(BoardError):
        load_board("kr260", board_copy)
