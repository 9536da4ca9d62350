# Synthesis estimates, included by the top-level Makefile.
#   make synth                         Yosys synth_xilinx (UltraScale+) of every block:
#                                      resources and LUT levels, build/reports/synth.json
#   make synth SYNTH_BLOCKS="pricer"   only these blocks
#   make synth BOARD=pynqz2            what that board's overlay instantiates, for its family
#                                      (xc7 for PYNQ-Z2), and the fit: build/reports/synth-<board>.json
#                                      and fit-<board>.json (what `make overlay-check` reads)
# Results are cached per block, family and Verilog in build/synth/[<family>/]<block>/.

SYNTH_BLOCKS ?=
SYNTH_JOBS   ?= 2

.PHONY: synth

synth: python-env ## Yosys synthesis per block: LUT/FF/BRAM/DSP and LUT levels (build/reports/synth.json); BOARD=... for a board's fabric and its fit
	$(PY) -m rtl.synth --jobs $(SYNTH_JOBS) \
	  $(if $(filter command line,$(origin BOARD)),--board $(BOARD),\
	    --out $(BUILD)/reports/synth.json $(if $(strip $(SYNTH_BLOCKS)),--blocks $(SYNTH_BLOCKS)))
