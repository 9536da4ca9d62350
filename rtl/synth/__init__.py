"""Synthesis estimates without Vivado: Yosys ``synth_xilinx`` for UltraScale+
on each block's generated Verilog, the resources it uses and its longest
register-to-register path in LUT levels (``make synth``), and the fit of the
fabric against a board's device (:func:`fit_report`)."""
from rtl.synth.fit import SynthReportError, fit_report
from rtl.synth.netlist import NetlistError, NetlistReport, analyse
from rtl.synth.run import (FAMILY, GOAL_LUT_LEVELS, SYNTH_FLAGS, SynthJob, block_jobs, run_jobs,
                           synth_block, synth_report, write_report)

__all__ = ["FAMILY", "GOAL_LUT_LEVELS", "SYNTH_FLAGS", "NetlistError", "NetlistReport",
           "SynthJob", "SynthReportError", "analyse", "block_jobs", "fit_report", "run_jobs",
           "synth_block", "synth_report", "write_report"]
