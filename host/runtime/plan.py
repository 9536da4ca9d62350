"""The day's fabric configuration from the appliance configuration.

Filters pass the two feed addresses (feed A's filter A's, B's B's); the ITCH
decoder passes only the underlyings' locates, so the order book's slots go
to the stocks that are priced; the pricer's parameter table holds the
universe's rows in option-id order, each underlying's options a contiguous
run described by one entry of its underlying table; quoter and gate take
their settings from the ``[quoting]`` and ``[gate]`` sections.
"""
from __future__ import annotations

import ipaddress

from host.pricing.params import precompute
from host.runtime.chains import Universe
from host.runtime.config import AppConfig
from rtl.fabric.model import FabricConfig
from rtl.feed_path.model import FeedPathConfig
from rtl.frame_filter.model import FilterEntry
from rtl.itch_decoder.model import SubscriptionEntry
from rtl.pricer_chain.model import ChainConfig, Entry

# Fabric clock per board (MHz) for settings given in time units.
CORE_MHZ = {"kr260": 250.0, "zcu102": 250.0, "pynqz2": 125.0, None: 250.0}


def feed_config(app: AppConfig, locates) -> FeedPathConfig:
    tables = [[], []]
    for feed, (host, port) in enumerate(app.feed.addresses()):
        tables[feed].append(FilterEntry(int(ipaddress.IPv4Address(host)), port))
    return FeedPathConfig(filter_a=tables[0], filter_b=tables[1],
                          subscriptions=[SubscriptionEntry(loc) for loc in locates])


def fabric_config(app: AppConfig, universe: Universe,
                  chain: ChainConfig = ChainConfig()) -> FabricConfig:
    locates = list(universe.locates.values())
    if len(locates) > chain.underlyings:
        raise ValueError(f"{len(locates)} underlyings; the pricer's table holds {chain.underlyings}")
    rows = precompute(universe.specs())
    entries, first = [], 0
    for underlying, locate in universe.locates.items():
        count = sum(1 for o in universe.options if o.underlying == underlying)
        entries.append(Entry(locate=locate, first=first, count=count, enabled=True))
        first += count
    return FabricConfig(
        feed=feed_config(app, locates), chain=chain,
        microprice=app.feed.reference_price == "microprice", rows=rows,
        underlyings=tuple(entries), quoter=app.quoting.settings(),
        gate=app.gate.settings(locates, CORE_MHZ[app.appliance.board]))
