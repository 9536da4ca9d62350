"""AXI-Lite conventions of the fabric's control bus.

32-bit data, byte strobes honoured, one outstanding transaction per
direction.  Each block decodes a 4 KiB window (12 address bits); the
interconnect in the top level places the windows at the bases the register
map declares.  An access to an offset no register occupies answers SLVERR
(reads return 0).
"""
from __future__ import annotations

from myhdl import Signal, intbv

DATA_WIDTH = 32
STRB_WIDTH = DATA_WIDTH // 8
ADDR_WIDTH = 12
WINDOW_BYTES = 1 << ADDR_WIDTH

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


class AxiLite:
    """MyHDL interface of an AXI-Lite slave port.  As a top-level port named
    ``s_axil`` it becomes ``s_axil_awaddr`` ... (cocotbext-axi's
    ``AxiLiteBus.from_prefix`` names)."""

    def __init__(self, addr_width: int = ADDR_WIDTH):
        self.awaddr = Signal(intbv(0)[addr_width:])
        self.awprot = Signal(intbv(0)[3:])
        self.awvalid = Signal(bool(0))
        self.awready = Signal(bool(0))
        self.wdata = Signal(intbv(0)[DATA_WIDTH:])
        self.wstrb = Signal(intbv(0)[STRB_WIDTH:])
        self.wvalid = Signal(bool(0))
        self.wready = Signal(bool(0))
        self.bresp = Signal(intbv(0)[2:])
        self.bvalid = Signal(bool(0))
        self.bready = Signal(bool(0))
        self.araddr = Signal(intbv(0)[addr_width:])
        self.arprot = Signal(intbv(0)[3:])
        self.arvalid = Signal(bool(0))
        self.arready = Signal(bool(0))
        self.rdata = Signal(intbv(0)[DATA_WIDTH:])
        self.rresp = Signal(intbv(0)[2:])
        self.rvalid = Signal(bool(0))
        self.rready = Signal(bool(0))
