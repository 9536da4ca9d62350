"""Realistic Nasdaq TotalView-ITCH 5.0 market days for tests and benchmarks.

``generate_day(out, symbols, messages, seed, ...)`` writes a day as a
MoldUDP64 capture (pcap / pcapng, A/B feeds, optional VLAN tags and packet
faults) or as Nasdaq's daily ITCH file and returns a summary with the exact
counts a decoder must find; ``zynqmm gen-day`` is its command line.

Modules: ``universe`` (securities), ``schedule`` (clock, intensity,
non-order-flow events), ``kernel`` (numba order flow and ITCH encoding),
``feedsim`` (packets, feeds, faults, expected arbitration), ``generator``
(the streaming pipeline), ``rng`` (deterministic random numbers).
"""
from host.marketday.generator import GenerateError, bench_generate, generate_day

__all__ = ["GenerateError", "bench_generate", "generate_day"]
