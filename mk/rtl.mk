# Fabric targets, included by the top-level Makefile.
#   make rtl            MyHDL -> Verilog under build/rtl/<block>/, REGISTERS.md refreshed
#   make sim            RTL tests under cocotb (SIM=verilator, the default, or SIM=icarus)
#   make rtl-report     fabric latencies measured in simulation -> build/reports/rtl.json

SIM ?= verilator

.PHONY: rtl sim rtl-report

rtl: python-env ## convert the MyHDL blocks to Verilog in build/rtl/; refresh rtl/regmap/REGISTERS.md
	PYTHONHASHSEED=0 $(PY) -m rtl
	$(PY) -m rtl.regmap

sim: python-env ## run the RTL tests: generated Verilog vs the models under cocotb (SIM=verilator|icarus)
	SIM=$(SIM) $(PY) -m pytest tests/rtl -q

rtl-report: python-env ## fabric latencies in cycles and ns, measured in RTL simulation; writes build/reports/rtl.json
	SIM=$(SIM) $(PY) -m rtl.report
