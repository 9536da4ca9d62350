"""The back of the quoting path as one top level: theo words in, quote and
cancel records out.

::

    s_theo -> quoter (window 0) -> quote port -> risk_gate (window 1) -> m_axis

The quoter and the gate are instantiated unchanged and joined by their own
port (:mod:`rtl.quoter.stream`); one AXI-Lite slave decodes both register
windows with the feed path's decoder (bits 14:12 pick the window: 0 the
quoter, 1 the gate; empty windows answer SLVERR).  The model is the two
models in a row (:func:`run_model`).  The top level is what the tests chain
and :func:`tests.rtl.quote_path_bench.measure` times; a fabric top places
the two windows at their register-map bases instead.
"""
from __future__ import annotations

from myhdl import block

from rtl.common.axil import AxiLite
from rtl.common.axis import AxiStream
from rtl.common.theo_stream import TheoPort
from rtl.feed_path.hdl import ADDR_WIDTH, axil_decode
from rtl.quoter.hdl import LATENCY_CYCLES as QUOTER_LATENCY
from rtl.quoter.hdl import quoter
from rtl.quoter.model import QuoterModel
from rtl.quoter.stream import QuotePort
from rtl.risk_gate.hdl import LATENCY_CYCLES as GATE_LATENCY
from rtl.risk_gate.hdl import risk_gate
from rtl.risk_gate.model import RiskGateModel

# Register windows inside this top level's AXI-Lite space.
WINDOWS = {"quoter": 0, "risk_gate": 1}
# Theo word taken -> first record beat valid, everything idle: the quote word
# leaves the quoter's output register in the cycle the gate takes it.
LATENCY_CYCLES = QUOTER_LATENCY + GATE_LATENCY


@block
def quote_path(clk, rst, s_theo: TheoPort, m_axis: AxiStream, s_axil: AxiLite):
    """Theo words on ``s_theo``, records on ``m_axis``, both blocks'
    registers on ``s_axil`` (:data:`ADDR_WIDTH` bits)."""
    quotes = QuotePort()
    quoter_bus, gate_bus = AxiLite(), AxiLite()
    quoting = quoter(clk, rst, s_theo, quotes, quoter_bus)
    gating = risk_gate(clk, rst, quotes, m_axis, gate_bus)
    decode = axil_decode(clk, rst, s_axil, {WINDOWS["quoter"]: quoter_bus,
                                            WINDOWS["risk_gate"]: gate_bus})
    return quoting, gating, decode


def run_model(quoter_model: QuoterModel, gate_model: RiskGateModel, theos) -> list[dict]:
    """Records of the chained models for theo words (field dicts)."""
    records = []
    for theo in theos:
        word = quoter_model.quote(theo)
        if word is not None:
            records += gate_model.process(word)
    return records


__all__ = ["ADDR_WIDTH", "LATENCY_CYCLES", "WINDOWS", "quote_path", "run_model"]
