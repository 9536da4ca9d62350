# zynqmm — set up, test, generate market days, benchmark.
# `make help` lists the targets.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         ?= .venv
PY           := $(VENV)/bin/python
ZYNQMM       := $(VENV)/bin/zynqmm
BUILD        ?= build
DEB_PACKAGES := iverilog tcpreplay tshark tcpdump iproute2 openssh-server
# Benchmarks run over a generated day of this many messages.
BENCH_MESSAGES ?= 5000000

.DEFAULT_GOAL := help
.PHONY: help setup python-env system-packages test demo replay-demo replay-lab captures bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

setup: python-env system-packages ## create .venv with pinned dependencies; Debian packages when root

python-env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c requirements.lock -e '.[dev]'
	touch $@

# Installs only what is missing, so re-running is cheap.  Without root it says
# what it would have installed and carries on: the Python side works without them.
system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "Debian packages present: $(DEB_PACKAGES)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "not root: skipping Debian packages$$missing (install them with sudo make system-packages)"; fi

test: python-env ## run the whole test suite
	$(PY) -m pytest -q

demo: python-env ## the whole appliance (model backend) on a shipped day against the exchange simulator; build/reports/demo.json
	$(ZYNQMM) demo --json $(BUILD)/reports/demo.json --state-dir $(BUILD)/demo/state

replay-demo: python-env ## the shipped day replayed into the model appliance, checked and reported in build/replay/demo
	$(ZYNQMM) replay captures/day-clean.pcap --to backend:model --config configs/demo.toml \
	  --pps 2000 --report $(BUILD)/replay/demo

replay-lab: python-env ## (root) appliance and replayer in two network namespaces over a veth; build/replay/lab
	$(ZYNQMM) replay-lab captures/day-clean.pcap --config tests/replay/replay.toml --pps 1000 \
	  --report $(BUILD)/replay/lab

captures: python-env ## regenerate the shipped captures and the big benchmark day
	$(PY) -m host.marketday.captures --out captures
	$(ZYNQMM) gen-day --symbols 200 --messages $(BENCH_MESSAGES) --seed 2026 --feeds A,B \
	  --gap-rate 0.0005 --dup-rate 0.0005 --reorder-rate 0.0005 --quiet \
	  --out $(BUILD)/days/bench-$(BENCH_MESSAGES).pcap

bench: python-env ## software rates, host quote-to-wire latency, RTL replay/fuzz/throughput; build/reports/*.json
	$(PY) -m host.bench --messages $(BENCH_MESSAGES) --out $(BUILD)/reports/bench.json
	$(MAKE) rtl-bench-replay

clean: ## remove generated files (keeps .venv)
	rm -rf $(BUILD)

include mk/rtl.mk
include mk/replay.mk
include mk/synth.mk
include mk/overlay.mk
