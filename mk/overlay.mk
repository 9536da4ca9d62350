# Overlay targets, included by the top-level Makefile.
#   make bitstream BOARD=kr260       Vivado batch build: .bit, .hwh and manifest in build/overlay/<board>/
#   make overlay-rtl BOARD=kr260     the board's fabric top with its [fabric] parameters -> build/rtl/<top>-<board>/
#   make overlay-check BOARD=kr260   TCL syntax and dry run, RTL files, map version, fit (no Vivado needed)
#   make overlay-verify BOARD=kr260  check a built bitstream against its manifest

BOARD ?= kr260

.PHONY: bitstream overlay-rtl overlay-check overlay-verify

overlay-rtl: python-env ## convert the board's fabric top with its board.toml [fabric] parameters (BOARD=...)
	$(PY) -m overlays.config --board $(BOARD)

bitstream: python-env rtl overlay-rtl ## build the overlay bitstream with Vivado (BOARD=kr260|zcu102|pynqz2)
	$(PY) -m overlays.build --board $(BOARD)

overlay-check: python-env rtl overlay-rtl ## check the overlay TCL, RTL files, map version and fit without Vivado (BOARD=...)
	$(PY) -m overlays.check --board $(BOARD)

overlay-verify: python-env ## verify build/overlay/<board>/zynqmm.bit and .hwh against their manifest
	$(PY) -m overlays.manifest verify $(BUILD)/overlay/$(BOARD)/zynqmm.json
