"""The captures shipped in ``captures/``: how each is made and what it holds.

``python -m host.catalog --out captures`` (``make captures``) regenerates
every shipped capture from its recipe and rewrites ``captures/README.md``
with a table of what each holds. Generation is deterministic, so
regenerating produces the same bytes; the tests check the shipped files
against their recipes' summaries.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from host.inspect.order_entry_capture import write_order_entry_capture


@dataclass(frozen=True)
class MarketDayRecipe:
    file: str
    what: str
    symbols: int
    messages: int
    seed: int
    options: dict = field(default_factory=dict)
    # A real feed heartbeats every idle second; over a whole day those would
    # dwarf the few thousand messages shipped here, so the shipped days
    # heartbeat after a minute of silence instead.
    heartbeat_interval: float = 60.0

    def generate(self, out_dir: Path) -> dict:
        from host.marketday.generator import generate_day

        return generate_day(out=str(out_dir / self.file), symbols=self.symbols,
                            messages=self.messages, seed=self.seed,
                            heartbeat_interval=self.heartbeat_interval, **self.options)


MARKET_DAYS = [
    MarketDayRecipe("day-clean.pcap", "A and B feeds, no faults: the baseline day",
                    symbols=4, messages=2000, seed=11, options={"feeds": "A,B"}),
    MarketDayRecipe("day-faults-vlan.pcap",
                    "A and B feeds with drops, duplicates and reordering on each feed, one 802.1Q tag",
                    symbols=6, messages=3000, seed=12,
                    options={"feeds": "A,B", "gap_rate": 0.02, "dup_rate": 0.02, "reorder_rate": 0.02,
                             "vlan": "100"}),
    MarketDayRecipe("day-qinq.pcapng", "pcapng, feed A only, two 802.1Q tags (QinQ)",
                    symbols=3, messages=1500, seed=13, options={"feeds": "A", "vlan": "100,200"}),
    MarketDayRecipe("day-small.itch", "Nasdaq's length-prefixed daily ITCH 5.0 file format",
                    symbols=4, messages=3000, seed=14, options={}),
]

ORDER_ENTRY = "ouch-session.pcap"


def write_readme(out_dir: Path, rows: list[tuple[MarketDayRecipe, dict]], ouch: dict | None) -> None:
    lines = [
        "# captures/",
        "",
        "Small captures shipped with the project (regenerate with `make captures`;",
        "generation is deterministic, so the bytes come out the same). Bigger days for",
        "benchmarks are generated into `build/days/` by `make captures` and `make bench`.",
        "",
        "| file | what it holds | symbols | messages | packets (per feed) | faults (per feed) | seed |",
        "|---|---|---:|---:|---|---|---:|",
    ]
    for recipe, s in rows:
        packets = ", ".join(f"{k}: {v['data']} data + {v['heartbeats']} heartbeats"
                            for k, v in (s.get("packets_per_feed") or {}).items()) or "—"
        faults = []
        for feed, f in (s.get("faults") or {}).items():
            if any(f.get(k) for k in ("drops", "duplicates", "reorders")):
                faults.append(f"{feed}: {f.get('drops', 0)} drops / {f.get('duplicates', 0)} dups / "
                              f"{f.get('reorders', 0)} reorders")
        lines.append(f"| `{recipe.file}` | {recipe.what} | {recipe.symbols} | {s['messages']} | {packets} | "
                     f"{'; '.join(faults) or 'none'} | {recipe.seed} |")
    if ouch:
        lines.append(f"| `{ORDER_ENTRY}` | {ouch['what']} | — | {ouch['ouch_messages']} OUCH | "
                     f"{ouch['tcp_segments']} TCP segments | none | — |")
    lines += [
        "",
        "Each market day's `FILE.summary.json` is the generator's own account: messages by",
        "type, packets per feed, and the faults it injected, which are exactly the gaps,",
        "duplicates and out-of-order packets `zynqmm decode` must find.",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host.catalog", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="captures")
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in MARKET_DAYS:
        summary = recipe.generate(out_dir)
        rows.append((recipe, summary))
        print(f"{recipe.file}: {summary['messages']} messages")
    ouch = write_order_entry_capture(out_dir / ORDER_ENTRY)
    (out_dir / (ORDER_ENTRY + ".summary.json")).write_text(json.dumps(ouch, indent=2) + "\n")
    print(f"{ORDER_ENTRY}: {ouch['ouch_messages']} OUCH messages")
    write_readme(out_dir, rows, ouch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
