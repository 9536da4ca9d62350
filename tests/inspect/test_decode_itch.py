"""`zynqmm decode` on generated market days: its counts must equal what the
generator says it wrote."""
import json

import pytest

from host.cli import main
from host.marketday.generator import generate_day


def decode_jsonl(path, capsys, *extra):
    assert main(["decode", str(path), "--jsonl", *extra]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    summary = json.loads(err.strip().splitlines()[-1])["summary"]
    return records, summary


@pytest.fixture(scope="module")
def faulty_day(tmp_path_factory):
    path = tmp_path_factory.mktemp("days") / "faulty.pcap"
    written = generate_day(out=str(path), symbols=5, messages=12_000, seed=21, feeds="A,B",
                           gap_rate=0.02, dup_rate=0.02, reorder_rate=0.02, vlan="100,200")
    return path, written


def test_faults_found_exactly_as_injected(faulty_day, capsys):
    path, written = faulty_day
    assert any(f["drops"] for f in written["faults"].values())  # the day really has faults
    _, summary = decode_jsonl(path, capsys, "--limit", "0")
    # --limit 0 stops at once; the full pass below covers the counts.
    assert summary["stopped_early"]
    records, summary = decode_jsonl(path, capsys)
    # Arbitration passes each sequence number once, in arrival order: messages lost on
    # every feed, or whose only copy came after a later one, are not printed.
    passed = written["expected_arbitration"]["passed"]
    assert passed > written["messages"] * 0.99
    assert sum(summary["by_type"].values()) == passed
    assert all(n <= written["messages_by_type"][t] for t, n in summary["by_type"].items())
    for name, addr in written["feeds"].items():
        got = summary["feeds"][addr["dst"]]
        for key, value in written["expected_feed_counts"][name].items():
            assert got[key] == value, (name, key)
    (stream,) = summary["streams"].values()
    for key, value in written["expected_arbitration"].items():
        got = len(stream[key]) if key == "gap_events" else stream[key]
        assert got == value, key
    # Every message printed once, in sequence order, apart from those lost on both feeds.
    seqs = [r["sequence_number"] for r in records]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert len(records) == passed
    assert summary["drops"] == {}


def test_jsonl_carries_every_field_in_snake_case(faulty_day, capsys):
    path, _ = faulty_day
    records, _ = decode_jsonl(path, capsys, "--limit", "400")
    adds = [r for r in records if r["message_type"] == "A"]
    assert adds, "no add orders in the first 400 messages"
    assert set(adds[0]) >= {"feed", "session", "sequence_number", "msg_index", "ts_ns", "stock_locate",
                            "tracking_number", "timestamp", "order_reference_number",
                            "buy_sell_indicator", "shares", "stock", "price"}
    directory = [r for r in records if r["message_type"] == "R"]
    assert directory and all(r["round_lots_only"] in ("Y", "N") for r in directory)


def test_symbol_filter_resolves_locates(faulty_day, capsys):
    path, _ = faulty_day
    records, _ = decode_jsonl(path, capsys, "--limit", "3000")
    directory = {r["stock_locate"]: r["stock"] for r in records if r["message_type"] == "R"}
    locate, symbol = sorted(directory.items())[1]
    only, _ = decode_jsonl(path, capsys, "--symbol", symbol, "--limit", "200")
    assert len(only) == 200
    assert all(r.get("stock") == symbol or r.get("stock_locate") == locate for r in only)
    assert any(r["message_type"] == "D" for r in only)  # deletes carry only the locate


def test_itch_file_decodes_to_the_same_messages(tmp_path, capsys):
    path = tmp_path / "day.itch.gz"
    written = generate_day(out=str(path), symbols=3, messages=4_000, seed=5)
    records, summary = decode_jsonl(path, capsys)
    assert summary["format"] == "itch"
    assert summary["by_type"] == written["messages_by_type"]
    assert [r["message_number"] for r in records] == list(range(1, 4_001))


def test_human_output_and_summary(faulty_day, capsys):
    path, _ = faulty_day
    assert main(["decode", str(path), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == ("233.54.12.1:26400 ZYNQMM0001 seq=1[0] S System Event stock_locate=0 "
                        "tracking_number=0 timestamp=12900000000000 event_code='O'")
    assert "messages by type" in out and "feeds" in out


def test_garbage_and_missing_files(tmp_path, capsys):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    assert main(["decode", str(junk)]) == 2
    assert "zynqmm decode:" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "missing.pcap")]) == 2
