"""The appliance on the model backend in this process, judged against the
model's expected run: a matching day, a deliberately mis-configured
appliance that must diverge, tampered journals, the report's files."""
import json
import shutil
from pathlib import Path

import pytest

from host.gateway.gateway import RX, TX
from host.journal.journal import Record
from host.protocols import ouch50
from host.replay.capture import read_order_entry
from host.replay.match import match_orders, read_journal
from host.replay.run import EXIT_DIVERGED, EXIT_MATCH, ReplayOptions, replay
from host.replay.sender import Timing
from host.runtime.quotes import TRIGGER

CONFIG = Path(__file__).with_name("replay.toml")
CAPTURE = Path("captures/day-clean.pcap")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    summary, status = replay(ReplayOptions(CAPTURE, "backend:model", Timing("top"),
                                           config=CONFIG, report=out, quiet=True))
    return summary, status, out


def test_the_model_appliance_matches_its_expected_run(good):
    summary, status, out = good
    assert status == EXIT_MATCH and summary["match"] is True
    assert summary["first_divergence"] is None
    assert summary["orders"] > 20 and summary["matched_orders"] == summary["orders"]
    final = summary["final_state"]
    assert final["mismatches"] == [] and final["sides_checked"] >= 12
    lat = summary["latency_ns"]
    assert lat["count"] > 0 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert set(summary["latency_by_message_type"]) <= set("ACDEFPUX")


def test_report_files(good):
    summary, _, out = good
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("latency_ns", "orders", "matched_orders", "match", "first_divergence"):
        assert key in on_disk
    for key in ("p50", "p90", "p99", "p999", "max"):
        assert key in on_disk["latency_ns"]
    for name in ("latency_hist.png", "latency_cdf.png", "latency_day.png", "quotes_mid.png",
                 "order_rate.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in (out / "index.html").read_text()
    # orders.pcap carries every journaled request, decodable as SoupBinTCP/OUCH
    wire = read_order_entry(out / "orders.pcap")
    journaled = [r for r in read_journal(out / "state" / "orders.journal") if r.kind == TX]
    assert len(wire.requests) == len(journaled) and wire.answers
    assert (out / "feed.pcap").stat().st_size > 0


def test_a_different_half_spread_in_the_appliance_diverges(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.read_text().replace("half_spread = 0.05", "half_spread = 0.07"))
    summary, status = replay(ReplayOptions(CAPTURE, "backend:model", Timing("top"),
                                           config=CONFIG, appliance_config=broken,
                                           report=tmp_path / "rep", quiet=True))
    assert status == EXIT_DIVERGED and summary["match"] is False
    first = summary["first_divergence"]
    assert first["kind"] == "price_size_mismatch"
    assert first["order"]["request"] == "EnterOrder" and first["expected_word"]
    context = summary["divergence_context"]
    assert context["feed_before"] and context["book"]["levels"] and context["quote_word"]
    assert context["feed_before"][-1]["seq"] == first["trigger_key"][0]
    assert "DIVERGED" in (tmp_path / "rep" / "index.html").read_text()


def _judge(good, records):
    from host.replay.expected import run_expected
    from host.runtime.config import load_config
    from host.runtime.directory import stock_locates

    config = load_config(CONFIG)
    expected = run_expected(good[2] / "feed.pcap", config,
                            locates=stock_locates(CAPTURE, config.underlyings()))
    return match_orders(expected, records, jitter_ns=None)


@pytest.fixture(scope="module")
def records(good):
    return read_journal(good[2] / "state" / "orders.journal")


def test_the_untouched_journal_matches(good, records):
    assert _judge(good, records).match


def test_a_changed_price_on_the_wire_is_a_divergence(good, records):
    tampered = list(records)
    i = next(i for i, r in enumerate(tampered) if r.kind == TX and r.payload[:1] == b"O")
    msg = ouch50.decode_inbound(tampered[i].payload)
    msg.price += 100
    tampered[i] = Record(TX, tampered[i].timestamp_ns, msg.encode())
    result = _judge(good, tampered)
    assert not result.match and result.divergences[0]["kind"] == "price_size_mismatch"


def test_an_order_without_its_trigger_is_a_divergence(good, records):
    i = next(i for i, r in enumerate(records) if r.kind == TRIGGER)
    result = _judge(good, records[:i] + records[i + 1:])
    assert result.divergences[0]["kind"] == "order_without_trigger"


def test_a_wrong_resting_price_shows_in_the_settled_state(good, records):
    # The exchange's answer to the newest request of a compared side says
    # the order rests a cent higher: that side no longer rests as the
    # model's last record wants.
    result = _judge(good, records)
    checked = set(result.checked_sides)
    assert checked
    victim = next(r for r in reversed(result.requests[:result.final_state["checkpoint_request"]])
                  if (r.symbol, r.side) in checked and r.kind != "CancelOrderRequest")
    ref = victim.msg.user_ref_num
    tampered = list(records)
    for i, r in enumerate(records):
        if r.kind != RX:
            continue
        answer = ouch50.decode_outbound(r.payload, 8)
        if getattr(answer, "user_ref_num", None) == ref and hasattr(answer, "price"):
            answer.price += 100
            tampered[i] = Record(RX, r.timestamp_ns, r.payload[:8] + answer.encode())
            break
    damaged = _judge(good, tampered)
    assert [(m["symbol"], m["side"]) for m in damaged.final_state["mismatches"]] == \
        [(victim.symbol, victim.side)]
    assert damaged.divergences[0]["kind"] == "final_state" and not damaged.match


def test_garbage_journal_records_are_counted_not_fatal(good, records):
    junk = [Record(TX, 0, b"\xff\x00"), Record(TRIGGER, 0, b"short"), Record(RX, 0, b"\x00" * 9)]
    result = _judge(good, junk + list(records))
    assert result.match
    assert result.counts["bad_trigger"] == 1 and any(k.startswith("bad_tx_") for k in result.counts)


def test_batch_needs_ray_only_when_asked(tmp_path, monkeypatch):
    import sys

    from host.replay.batch import BatchError, run_batch

    monkeypatch.setitem(sys.modules, "ray", None)
    day = tmp_path / "d.pcap"
    shutil.copy(CAPTURE, day)
    base = ReplayOptions(day, "backend:model", Timing("top"), config=CONFIG, quiet=True)
    with pytest.raises(BatchError, match="pip install ray"):
        run_batch([day], base, tmp_path / "rep", ray_address="auto")
    with pytest.raises(BatchError, match="backend"):
        run_batch([day], ReplayOptions(day, "iface:lo", config=CONFIG), tmp_path / "rep")
