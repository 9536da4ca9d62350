"""The shipped captures are what their recipes make, and decode to what the
generator says it wrote."""
import json
from pathlib import Path

import pytest

from host.catalog import MARKET_DAYS, ORDER_ENTRY, write_order_entry_capture
from host.cli import main

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def shipped_summary(name):
    return json.loads((CAPTURES / f"{name}.summary.json").read_text())


@pytest.mark.parametrize("recipe", MARKET_DAYS, ids=lambda r: r.file)
def test_shipped_day_is_reproduced_byte_for_byte(recipe, tmp_path):
    summary = recipe.generate(tmp_path)
    assert (tmp_path / recipe.file).read_bytes() == (CAPTURES / recipe.file).read_bytes(), \
        "captures/ is stale: run `make captures`"
    assert summary["messages_by_type"] == shipped_summary(recipe.file)["messages_by_type"]


def test_order_entry_capture_is_reproduced(tmp_path):
    write_order_entry_capture(tmp_path / ORDER_ENTRY)
    assert (tmp_path / ORDER_ENTRY).read_bytes() == (CAPTURES / ORDER_ENTRY).read_bytes()


@pytest.mark.parametrize("recipe", MARKET_DAYS, ids=lambda r: r.file)
def test_shipped_day_decodes_to_its_summary(recipe, capsys):
    written = shipped_summary(recipe.file)
    assert main(["decode", str(CAPTURES / recipe.file), "--summary-only", "--jsonl"]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["summary"]
    assert summary["drops"] == {}
    if recipe.file.endswith(".itch"):
        assert summary["by_type"] == written["messages_by_type"]
        return
    passed = written["expected_arbitration"]["passed"]
    assert sum(summary["by_type"].values()) == passed
    for name, addr in written["feeds"].items():
        got = summary["feeds"][addr["dst"]]
        for key, value in written["expected_feed_counts"][name].items():
            assert got[key] == value, (recipe.file, name, key)


def test_faulty_day_really_has_faults():
    faults = shipped_summary("day-faults-vlan.pcap")["faults"]
    for feed in faults.values():
        assert feed["drops"] > 5 and feed["duplicates"] > 5 and feed["reorders"] > 5


def test_book_on_the_clean_day_has_no_anomalies(capsys):
    assert main(["book", str(CAPTURES / "day-clean.pcap"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["anomalies"] == {}
    assert result["book_updates"] > 1000
    for book in result["books"].values():
        bids, asks = book["bids"], book["asks"]
        assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
        assert [a[0] for a in asks] == sorted(a[0] for a in asks)
