# Synthesis estimates, included by the top-level Makefile.
#   make synth                         Yosys synth_xilinx (UltraScale+) of every block:
#                                      resources and LUT levels, build/reports/synth.json
#   make synth SYNTH_BLOCKS="pricer"   only these blocks
# Results are cached per block on its Verilog in build/synth/<block>/.

SYNTH_BLOCKS ?=
SYNTH_JOBS   ?= 2

.PHONY: synth

synth: python-env ## Yosys synthesis for UltraScale+ per block: LUT/FF/BRAM/DSP and LUT levels (build/reports/synth.json)
	$(PY) -m rtl.synth --jobs $(SYNTH_JOBS) --out $(BUILD)/reports/synth.json \
	  $(if $(strip $(SYNTH_BLOCKS)),--blocks $(SYNTH_BLOCKS))
