"""A real wire: the appliance (``zynqmm run``, ps-bridge ingest, model
backend) in one network namespace, the replayer, its captures and the
exchange simulator in another, joined by a veth pair, with a real
multicast join.  Needs root and ``ip netns``; skipped, with the reason,
where namespaces cannot be made."""
import subprocess
from pathlib import Path

import pytest

from host.pcap.reader import iter_packets
from host.replay.capture import read_order_entry
from host.replay.lab import dump_toml, run_lab
from host.replay.netns import NetnsError, VethPair, netns_unavailable
from host.replay.sender import Timing, tcpreplay_available
from host.replay.source import Selection

CONFIG = Path(__file__).with_name("replay.toml")
CAPTURE = Path("captures/day-clean.pcap")
# One underlying's messages (about half the day's packets), renumbered.
AAPL = Selection(symbols=frozenset({"AAPL"}))


@pytest.fixture(scope="module", autouse=True)
def namespaces():
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_paced_replay_over_multicast_matches(tmp_path):
    summary, status = run_lab(CAPTURE, CONFIG, tmp_path, timing=Timing("pps", 500),
                              selection=AAPL)
    assert status == 0, summary.get("first_divergence")
    assert summary["match"] is True and summary["orders"] > 0
    assert summary["matched_orders"] == summary["orders"]
    assert summary["appliance_lost_frames"] == 0
    assert summary["final_state"]["sides_checked"] > 0
    sent = summary["send"]["packets"]
    assert sum(1 for _ in iter_packets(tmp_path / "feed.pcap")) == sent
    assert summary["fidelity_wire"]["pairs"] == sent - 1
    wire = read_order_entry(tmp_path / "orders.pcap")
    assert len(wire.requests) == summary["order_capture"]["requests"] > 0
    lat = summary["latency_ns"]
    assert lat["count"] > 0 and lat["p50"] > 0
    assert summary["conflated"] is not None
    assert summary["lab"]["replayer_ns"] not in _namespaces()


@pytest.mark.skipif(tcpreplay_available() is None, reason="tcpreplay is not installed")
def test_tcpreplay_with_a_mis_configured_appliance_diverges(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.read_text().replace("half_spread = 0.05", "half_spread = 0.07"))
    summary, status = run_lab(CAPTURE, CONFIG, tmp_path / "rep", timing=Timing("pps", 500),
                              selection=AAPL, line_rate=True, appliance_config=broken)
    assert status == 1 and summary["match"] is False
    assert summary["first_divergence"]["kind"] == "price_size_mismatch"
    assert "rated_pps" in summary["send"]["tool"]
    assert summary["fidelity_wire"]["pairs"] == summary["send"]["packets"] - 1


def test_namespaces_go_even_when_setup_fails():
    pair = VethPair.named()
    pair.appliance_if = "x" * 20          # too long for Linux: creating the link fails
    with pytest.raises(NetnsError):
        pair.create()
    assert pair.replayer_ns not in _namespaces() and pair.appliance_ns not in _namespaces()


def test_config_writer_roundtrips():
    import tomllib

    data = tomllib.loads(CONFIG.read_text())
    assert tomllib.loads(dump_toml(data)) == data
