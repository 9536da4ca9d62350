"""The replay harness on the RTL backend, for real: ``--to backend:rtl`` and
``--also-rtl`` run the appliance on the fabric's Verilog in the simulator
and judge it against the model run on the simulated fabric's timing.

The configuration is the replay tests' with a risk-gate window that binds at
the simulator's pace (two updates per 100 µs per option), so the end-state
check goes through rate-limited updates.  The shipped clean day up to 10:00
New York time (about 1300 packets) keeps each run to seconds.
"""
from pathlib import Path

import pytest

from host.replay.cli import main as replay_cli
from host.replay.expected import run_expected
from host.replay.match import match_orders, read_journal
from host.replay.run import EXIT_DIVERGED, EXIT_MATCH, ReplayOptions, _judge, replay
from host.replay.sender import Timing
from host.replay.source import Selection, first_timestamp, parse_time
from host.runtime.config import load_config
from host.runtime.directory import stock_locates

CONFIG = Path(__file__).with_name("replay.toml")
CAPTURE = Path("captures/day-clean.pcap")
END = "10:00"
UNBOUND_GATE = "max_updates = 255\nwindow_us = 1\n"
BINDING_GATE = "max_updates = 2\nwindow_us = 100\n"


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    text = CONFIG.read_text()
    assert UNBOUND_GATE in text and "half_spread = 0.05" in text
    folder = tmp_path_factory.mktemp("configs")
    rate, broken = folder / "rate.toml", folder / "broken.toml"
    rate.write_text(text.replace(UNBOUND_GATE, BINDING_GATE))
    broken.write_text(rate.read_text().replace("half_spread = 0.05", "half_spread = 0.07"))
    return rate, broken


def options(destination: str, config: Path, **more) -> ReplayOptions:
    end = parse_time(END, first_timestamp(CAPTURE))
    return ReplayOptions(CAPTURE, destination, Timing("top"), Selection(end_ns=end),
                         config=config, quiet=True, **more)


@pytest.fixture(scope="module")
def rtl_day(configs, tmp_path_factory):
    out = tmp_path_factory.mktemp("rtl")
    summary, status = replay(options("backend:rtl", configs[0], report=out))
    return summary, status, out


def expected_on_capture_timing(out: Path, config: Path):
    app = load_config(config)
    return run_expected(out / "feed.pcap", app,
                        locates=stock_locates(CAPTURE, app.underlyings()))


def test_the_rtl_appliance_gives_the_models_orders_and_end_state(rtl_day):
    summary, status, _ = rtl_day
    assert "error" not in summary and summary["send"]["destination"] == "backend:rtl"
    assert status == EXIT_MATCH and summary["match"] is True, summary["first_divergence"]
    assert summary["orders"] > 40 and summary["matched_orders"] == summary["orders"]
    final = summary["final_state"]
    # Every side compared exactly: none excused for a rate window.
    assert final["mismatches"] == [] and final["sides_checked"] >= 12
    assert "rate_window" not in final["sides_excused"]
    # The window did bind: the model, on the fabric's stamps, refused updates.
    assert summary["expected"]["gate"]["rate_limited"] > 0


def test_on_the_captures_timing_the_same_orders_do_not_match(rtl_day, configs):
    # What the stamps are for: judged against the model on the capture's
    # times, the RTL's end state differs (the window does not bind there),
    # and with the arrival jitter allowed every side would be excused.
    _, _, out = rtl_day
    expected = expected_on_capture_timing(out, configs[0])
    records = read_journal(out / "state" / "orders.journal")
    exact = match_orders(expected, records, jitter_ns=None)
    assert not exact.match
    assert {d["kind"] for d in exact.divergences} == {"final_state"}
    assert expected.counters["risk_gate"]["rate_limited"] == 0


def test_book_records_the_model_did_not_send_are_a_divergence(rtl_day, configs):
    summary, _, out = rtl_day
    records = read_journal(out / "state" / "orders.journal")
    locates = stock_locates(CAPTURE, load_config(configs[0]).underlyings())
    judged, status, _, _ = _judge(options("backend:rtl", configs[0]), load_config(configs[0]),
                                  out / "feed.pcap", records, locates, push_ns=[],
                                  record_cycles=[1000, 2000])
    assert status == EXIT_DIVERGED and judged["match"] is False
    first = judged["first_divergence"]
    assert first["kind"] == "fabric_records" and "book record 3" in first["detail"]
    # The orders themselves are still judged, and they are right.
    assert judged["matched_orders"] == judged["orders"] == summary["orders"]


def test_also_rtl_requires_the_same_orders_and_end_state(configs):
    summary, status = replay(options("backend:model", configs[0], also_rtl=True,
                                     rtl_packets=800))
    assert status == EXIT_MATCH and summary["match"] is True
    rtl = summary["rtl"]
    assert "skipped" not in rtl, rtl.get("skipped")
    assert rtl["packets"] == 800 and rtl["match"] is True, rtl["first_divergence"]
    assert rtl["orders"] > 10 and rtl["matched_orders"] == rtl["orders"]
    assert rtl["final_state"]["mismatches"] == []
    assert "rate_window" not in rtl["final_state"]["sides_excused"]
    assert rtl["expected"]["gate"]["rate_limited"] > 0


def test_a_different_configuration_on_the_rtl_backend_diverges(configs, tmp_path, capsys):
    import json

    rate, broken = configs
    report = tmp_path / "report"
    status = replay_cli(["replay", str(CAPTURE), "--to", "backend:rtl", "--config", str(rate),
                         "--appliance-config", str(broken), "--end", END, "--top-speed",
                         "--quiet", "--json", "--report", str(report)])
    assert status == EXIT_DIVERGED
    printed = json.loads(capsys.readouterr().out)
    on_disk = json.loads((report / "summary.json").read_text())
    for summary in (printed, on_disk):
        assert summary["match"] is False
        first = summary["first_divergence"]
        assert first["kind"] == "price_size_mismatch" and first["order"]["request"] == "EnterOrder"


def test_also_rtl_says_why_it_was_skipped(configs, monkeypatch):
    import host.replay.backend as backend
    from host.runtime.fabric import FabricError

    opened = backend.open_fabric

    def no_simulator(name, **options):
        if name == "rtl":
            raise FabricError("cannot start the fabric simulator: no verilator")
        return opened(name, **options)

    monkeypatch.setattr(backend, "open_fabric", no_simulator)
    summary, status = replay(options("backend:model", configs[0], also_rtl=True,
                                     rtl_packets=100))
    assert status == EXIT_MATCH and summary["match"] is True
    assert "no verilator" in summary["rtl"]["skipped"] and "match" not in summary["rtl"]
