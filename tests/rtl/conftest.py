"""Fixtures for the RTL tests: each block is converted and built once per
session for the simulator chosen by $SIM (default verilator)."""
from __future__ import annotations

import pytest

from rtl.blocks import BLOCKS, convert_block
from rtl.common import sim

# A fixed build ID keeps the Verilog, and so the simulator build, the same
# from commit to commit.
TEST_BUILD_ID = 0x5EED_0001


@pytest.fixture(scope="session")
def simulator() -> str:
    return sim.simulator()


@pytest.fixture(scope="session")
def built(simulator):
    """``built(block)`` -> the session's :class:`rtl.common.sim.SimBuild`."""
    builds: dict[str, sim.SimBuild] = {}

    def get(block: str) -> sim.SimBuild:
        if block not in builds:
            verilog = convert_block(block, TEST_BUILD_ID)
            builds[block] = sim.build(block, [verilog], BLOCKS[block].toplevel, simulator)
        return builds[block]
    return get
