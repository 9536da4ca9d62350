"""Whole captures through the feed path's Verilog at simulator speed.

A Verilator C++ harness (``harness.cpp``, built by :mod:`.build`) drives the
generated Verilog of the ``feed_path`` top level with a binary stimulus file
(:mod:`.stimulus`: register writes, reads, frames of both feeds) and writes
the records, the payload arrivals at the sequencer and the final counters;
:mod:`.compare` replays the model on the arrivals the run saw and requires the
same records and counters bit for bit.  Stimuli come from a capture, from the
robustness fuzz (:mod:`.fuzz`) or from the throughput test (:mod:`.throughput`).
``python -m rtl.feed_path.replay`` is the command line.
"""
