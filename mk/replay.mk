# The feed path's Verilog under Verilator against its model, at simulator
# speed (rtl/feed_path/replay), included by the top-level Makefile.
#   make rtl-replay CAPTURE=path [MESSAGES=n] [SECTION=key]
#                                               one capture, RTL vs model (figures
#                                               under SECTION, default "capture")
#   make rtl-fuzz                               100k bad frames mixed into a day
#   make rtl-throughput                         back-to-back minimum packets, both feeds
#   make rtl-bench-replay                       all three of the above on a generated day,
#                                               figures in build/reports/rtl_replay.json
# The harness build (build/sim/replay/) is reused while the Verilog is unchanged.
# The model follows the harness's output as it is written: a run takes about
# as long as the slower of simulator and model (on two free cores).

REPLAY             := $(PY) -m rtl.feed_path.replay
REPLAY_REPORT      ?= $(BUILD)/reports/rtl_replay.json
REPLAY_DAY_MESSAGES ?= 1000000
FUZZ_BAD_FRAMES    ?= 100000
FUZZ_DAY_MESSAGES  ?= 40000
THROUGHPUT_DELETES ?= 4000
SOURCE_PAUSE       ?= 0
SINK_PAUSE         ?= 0

.PHONY: rtl-replay rtl-fuzz rtl-throughput rtl-bench-replay

rtl-replay: python-env ## CAPTURE=path [MESSAGES=n]: a capture through the feed path's Verilog vs the model
	@test -n "$(CAPTURE)" || { echo "usage: make rtl-replay CAPTURE=path [MESSAGES=n] [SECTION=key] [SOURCE_PAUSE=p] [SINK_PAUSE=p]"; exit 2; }
	$(REPLAY) --json $(REPLAY_REPORT) $(if $(SECTION),--section $(SECTION)) \
	  capture $(CAPTURE) $(if $(MESSAGES),--messages $(MESSAGES)) \
	  --source-pause $(SOURCE_PAUSE) --sink-pause $(SINK_PAUSE)

rtl-fuzz: python-env ## robustness fuzz: 100k bad frames in a generated day, gaps and backpressure, RTL vs model
	$(REPLAY) --json $(REPLAY_REPORT) fuzz --bad-frames $(FUZZ_BAD_FRAMES) \
	  --day-messages $(FUZZ_DAY_MESSAGES)

rtl-throughput: python-env ## back-to-back minimum MoldUDP64 packets on both feeds: stalls, drops, frames per cycle
	$(REPLAY) --json $(REPLAY_REPORT) throughput --deletes $(THROUGHPUT_DELETES)

rtl-bench-replay: rtl-fuzz rtl-throughput ## fuzz, throughput and a generated day RTL vs model; build/reports/rtl_replay.json
	$(REPLAY) --json $(REPLAY_REPORT) day --messages $(REPLAY_DAY_MESSAGES)
