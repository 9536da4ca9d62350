"""The register writes that load a fabric: one piece of code for every
backend that has registers (``rtl``: the Verilog under a simulator;
``board``: the bitstream over AXI-Lite).

A :class:`~rtl.fabric.model.FabricConfig` becomes ``(offset, value)`` pairs,
offsets from the base of the fabric's AXI-Lite space
(:func:`rtl.regmap.driver.register_offsets`), values built field by field
with :func:`rtl.regmap.driver.encode`.  Each block's table writes are the
ones its register map documents:

* frame filters (feed A's ``frame_filter``, feed B's ``frame_filter_b``):
  ``FILTER<n>_IP`` then ``FILTER<n>_PORT`` with the enable bit;
* ITCH decoder: ``SUB<n>`` (locate and enable), ``CONTROL.pass_all_locates``;
* MoldUDP64 sequencer: ``SESSION_CFG0..2`` (the session's ten bytes, first
  byte in the top bits) and ``CONTROL.session_from_register`` when the
  session is given, else the first well-formed packet's is followed;
* order book: ``CONTROL`` (auto_assign, refill, stale);
* chain pricer: parameter rows and underlying entries through
  :class:`host.pricing.chain_tables.ChainTableWriter` (staging words, then
  a commit bit that toggles), ``CONTROL.microprice``;
* quoter: spread, skew, sizes, minimum edge, requote threshold, the tick
  table;
* risk gate: band, price range, rate limit, the underlying table, and
  ``CONTROL`` (kill, pull mask) last, so quoting starts only once every
  table is in place.

A table row left out of the configuration keeps its reset value (empty,
disabled), which is what the models start from too.  Writes after the load
-- the kill bit, positions -- come from the same :class:`FabricRegisters`,
which remembers the commit toggles the pricer's tables need.
"""
from __future__ import annotations

from typing import Iterable

from host.pricing.chain_tables import ChainTableWriter
from host.pricing.chain_tables import absolute as chain_absolute
from host.pricing.params import PricingInputError
from rtl.fabric.model import FabricConfig
from rtl.frame_filter.model import FILTER_ENTRIES
from rtl.itch_decoder.model import SUBSCRIPTION_ENTRIES
from rtl.order_book.model import BookConfig
from rtl.pricer_chain.model import ChainConfig
from rtl.quoter.model import OPTIONS as QUOTER_OPTIONS
from rtl.regmap.driver import encode, register_offsets
from rtl.risk_gate.model import UNDERLYINGS as GATE_UNDERLYINGS

U32 = 0xFFFF_FFFF
SESSION_BYTES = 10
FILTER_WINDOWS = ("frame_filter", "frame_filter_b")


class RegisterConfigError(ValueError):
    """The configuration does not fit the fabric's tables."""


Writes = list[tuple[int, int]]


class FabricRegisters:
    """Register writes for one fabric from its reset on.

    ``tables``: the sizes of the chain pricer the fabric was built with
    (default: the configuration's own); rows and entries must fit them."""

    def __init__(self, config: FabricConfig, tables: ChainConfig | None = None):
        self.config = config
        self.tables = tables or config.chain
        self.offsets = register_offsets()
        self.chain = ChainTableWriter(self.tables)

    def _at(self, block: str, register: str, value: int) -> tuple[int, int]:
        return self.offsets[f"{block}.{register}"], int(value) & U32

    # ---- the load ---------------------------------------------------------------------
    def load(self) -> Writes:
        """Everything a freshly reset fabric needs for the configuration."""
        return (self.feed_writes() + self.chain_writes() + self.quoter_writes()
                + self.gate_writes())

    def feed_writes(self) -> Writes:
        feed = self.config.feed
        if feed.book != BookConfig():
            raise RegisterConfigError(f"the order book's sizes are build parameters "
                                      f"({BookConfig()}), not {feed.book}")
        writes = []
        for window, table in zip(FILTER_WINDOWS, (feed.filter_a, feed.filter_b)):
            if len(table) > FILTER_ENTRIES:
                raise RegisterConfigError(f"{len(table)} filter entries; the table has "
                                          f"{FILTER_ENTRIES}")
            for n, entry in enumerate(table):
                if entry is None:
                    continue
                writes.append(self._at(window, f"FILTER{n}_IP", entry.dst_ip))
                writes.append(self._at(window, f"FILTER{n}_PORT", encode(
                    "frame_filter", f"FILTER{n}_PORT",
                    **{f"filter{n}_port": entry.dst_port,
                       f"filter{n}_enable": int(entry.enabled)})))
        if len(feed.subscriptions) > SUBSCRIPTION_ENTRIES:
            raise RegisterConfigError(f"{len(feed.subscriptions)} subscriptions; the table has "
                                      f"{SUBSCRIPTION_ENTRIES}")
        for n, entry in enumerate(feed.subscriptions):
            if entry is None:
                continue
            writes.append(self._at("itch_decoder", f"SUB{n}", encode(
                "itch_decoder", f"SUB{n}", **{f"sub{n}_locate": entry.locate,
                                              f"sub{n}_enable": int(entry.enabled)})))
        writes.append(self._at("itch_decoder", "CONTROL", encode(
            "itch_decoder", "CONTROL", pass_all_locates=int(feed.pass_all_locates))))
        if feed.session is not None:
            if len(feed.session) != SESSION_BYTES:
                raise RegisterConfigError(f"a MoldUDP64 session has {SESSION_BYTES} bytes, "
                                          f"not {len(feed.session)}")
            word = int.from_bytes(feed.session, "big")
            writes += [self._at("mold_seq", "SESSION_CFG0", word >> 48),
                       self._at("mold_seq", "SESSION_CFG1", (word >> 16) & U32),
                       self._at("mold_seq", "SESSION_CFG2", (word & 0xFFFF) << 16)]
        writes.append(self._at("mold_seq", "CONTROL", encode(
            "mold_seq", "CONTROL", session_from_register=int(feed.session is not None))))
        writes.append(self._at("order_book", "CONTROL", encode(
            "order_book", "CONTROL", auto_assign=int(feed.auto_assign),
            refill=int(feed.refill), stale=int(feed.stale))))
        return writes

    def chain_writes(self) -> Writes:
        config, tables = self.config, self.tables
        named = []
        rows = () if config.rows is None else config.rows
        if len(rows) > tables.options:
            raise RegisterConfigError(f"{len(rows)} parameter rows; the fabric's table has "
                                      f"{tables.options}")
        if len(config.underlyings) > tables.underlyings:
            raise RegisterConfigError(f"{len(config.underlyings)} underlyings; the fabric's "
                                      f"table has {tables.underlyings}")
        try:
            for index, row in enumerate(rows):
                named += self.chain.row(index, row)
            for index, entry in enumerate(config.underlyings):
                named += self.chain.underlying(index, entry)
        except PricingInputError as exc:
            raise RegisterConfigError(str(exc)) from exc
        named.append(("CONTROL", encode("pricer_chain", "CONTROL",
                                        microprice=int(config.microprice))))
        return chain_absolute(named)

    def quoter_writes(self) -> Writes:
        s = self.config.quoter
        writes = [self._at("quoter", name.upper(), getattr(s, name))
                  for name in ("half_spread", "skew", "bid_size", "ask_size", "min_edge",
                               "requote_threshold")]
        for i, band in enumerate(s.ticks):
            writes += [self._at("quoter", f"TICK{i}_START", band.start),
                       self._at("quoter", f"TICK{i}_SIZE", band.size),
                       self._at("quoter", f"TICK{i}_RECIP", band.recip)]
        return writes

    def gate_writes(self) -> Writes:
        g = self.config.gate
        if len(g.underlyings) > GATE_UNDERLYINGS:
            raise RegisterConfigError(f"{len(g.underlyings)} gate entries; the table has "
                                      f"{GATE_UNDERLYINGS}")
        writes = [self._at("risk_gate", name.upper(), getattr(g, name))
                  for name in ("through_limit", "min_price", "max_price", "rate_count",
                               "rate_window")]
        for n, entry in enumerate(g.underlyings):
            writes.append(self._at("risk_gate", f"UNDERLYING{n}", encode(
                "risk_gate", f"UNDERLYING{n}", **{f"und{n}_locate": entry.locate,
                                                  f"und{n}_bid_enable": int(entry.bid_enable),
                                                  f"und{n}_ask_enable": int(entry.ask_enable),
                                                  f"und{n}_valid": int(entry.valid)})))
        writes.append(self.gate_control(g.kill))
        return writes

    # ---- after the load ---------------------------------------------------------------
    def gate_control(self, kill: bool) -> tuple[int, int]:
        return self._at("risk_gate", "CONTROL", encode(
            "risk_gate", "CONTROL", kill=int(kill), pull_mask=self.config.gate.pull_mask))

    def kill(self, kill: bool) -> Writes:
        """The risk gate's kill bit (its pull mask kept as configured)."""
        return [self.gate_control(kill)]

    def position(self, option_id: int, contracts: int) -> Writes:
        """An option's position in both tables that hold it: the quoter's
        (skew) and the chain pricer's (scenario sums)."""
        if not 0 <= option_id < QUOTER_OPTIONS:
            raise RegisterConfigError(f"option {option_id} outside the quoter's "
                                      f"{QUOTER_OPTIONS}-entry position table")
        if not -(1 << 31) <= contracts < 1 << 31:
            raise RegisterConfigError(f"position {contracts} does not fit 32 bits")
        return ([self._at("quoter", f"POSITION{option_id}", contracts)]
                + chain_absolute(self.chain.position(option_id, contracts)))


def register_writes(config: FabricConfig, tables: ChainConfig | None = None) -> Writes:
    """``(offset, value)`` writes that load ``config`` into a freshly reset fabric."""
    return FabricRegisters(config, tables).load()


def counter_registers() -> dict[str, dict[str, int]]:
    """block -> counter name -> offset: every ``COUNT_*`` register of the map,
    named as the blocks' models name their counters."""
    from rtl.regmap.map import REGISTER_MAP

    out: dict[str, dict[str, int]] = {}
    for spec in REGISTER_MAP:
        counters = {reg.name[len("COUNT_"):].lower(): spec.base + reg.offset
                    for reg in spec.registers if reg.name.startswith("COUNT_")}
        if counters:
            out[spec.name] = counters
    return out


def describe(writes: Iterable[tuple[int, int]]) -> list[str]:
    """Register names of writes (for logs and error messages)."""
    names = {offset: name for name, offset in register_offsets().items()}
    return [f"{names.get(offset, hex(offset))} = {value:#x}" for offset, value in writes]
