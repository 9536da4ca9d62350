"""A real wire: the appliance (``zynqmm run``, ps-bridge ingest, model
backend) in one network namespace, the replayer, its captures and the
exchange simulator in another, joined by a veth pair, with a real
multicast join.  Needs root and ``ip netns``; skipped, with the reason,
where namespaces cannot be made.  The wire join's handling of requests the
appliance sent before the capture began (its login's Account Query
Request) is tested without namespaces."""
import subprocess
from pathlib import Path

import pytest

from host.gateway.gateway import RX, SESSION, TX
from host.journal.journal import Record
from host.pcap.reader import iter_packets
from host.protocols import ouch50
from host.replay.backend import journal_to_pcap
from host.replay.capture import read_order_entry
from host.replay.lab import dump_toml, run_lab
from host.replay.match import join_wire, parse_journal
from host.replay.netns import NetnsError, VethPair, netns_unavailable
from host.replay.sender import Timing, tcpreplay_available
from host.replay.source import Selection

CONFIG = Path(__file__).with_name("replay.toml")
CAPTURE = Path("captures/day-clean.pcap")
# One underlying's messages (about half the day's packets), renumbered.
AAPL = Selection(symbols=frozenset({"AAPL"}))


@pytest.fixture(scope="module")
def namespaces():
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_paced_replay_over_multicast_matches(namespaces, tmp_path):
    summary, status = run_lab(CAPTURE, CONFIG, tmp_path, timing=Timing("pps", 500),
                              selection=AAPL)
    assert status == 0, summary.get("first_divergence")
    assert summary["match"] is True and summary["orders"] > 0
    assert summary["matched_orders"] == summary["orders"]
    # The appliance's login asked for its account before the replay's
    # capture began: journaled, not on the captured wire.
    assert summary["requests_by_type"]["AccountQueryRequest"] == 1
    assert summary["counts"]["requests_before_capture"] == 1
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
def test_tcpreplay_with_a_mis_configured_appliance_diverges(namespaces, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.read_text().replace("half_spread = 0.05", "half_spread = 0.07"))
    summary, status = run_lab(CAPTURE, CONFIG, tmp_path / "rep", timing=Timing("pps", 500),
                              selection=AAPL, line_rate=True, appliance_config=broken)
    assert status == 1 and summary["match"] is False
    assert summary["first_divergence"]["kind"] == "price_size_mismatch"
    assert "rated_pps" in summary["send"]["tool"]
    assert summary["fidelity_wire"]["pairs"] == summary["send"]["packets"] - 1


def test_namespaces_go_even_when_setup_fails(namespaces):
    pair = VethPair.named()
    pair.appliance_if = "x" * 20          # too long for Linux: creating the link fails
    with pytest.raises(NetnsError):
        pair.create()
    assert pair.replayer_ns not in _namespaces() and pair.appliance_ns not in _namespaces()


def test_config_writer_roundtrips():
    import tomllib

    data = tomllib.loads(CONFIG.read_text())
    assert tomllib.loads(dump_toml(data)) == data


# -- the wire join, without namespaces ----------------------------------------------------
def _enter(ref: int) -> ouch50.EnterOrder:
    return ouch50.EnterOrder(user_ref_num=ref, side="B", quantity=1, symbol="AAPLC000",
                             price=1_0000, time_in_force="0", display="Y", capacity="P",
                             intermarket_sweep_eligibility="N", cross_type="N",
                             cl_ord_id=f"C{ref}", appendage=ouch50.Appendage())


def _login_then_orders() -> list[Record]:
    """A journal as the appliance writes it: the login's Account Query
    Request and its answer at t=1000..1100, the replay's orders from t=5000."""
    answer = ouch50.AccountQueryResponse(timestamp=0, next_user_ref_num=1)
    return [Record(SESSION, 900, b"0000000001"),
            Record(TX, 1000, ouch50.AccountQueryRequest(appendage=ouch50.Appendage()).encode()),
            Record(RX, 1100, (1).to_bytes(8, "big") + answer.encode()),
            Record(TX, 5000, _enter(1).encode()), Record(TX, 5100, _enter(2).encode()),
            Record(TX, 5200, _enter(3).encode())]


def _wire(records, tmp_path, keep=lambda r: True):
    """The requests of a capture that saw ``records`` passing ``keep``."""
    journal_to_pcap([r for r in records if keep(r)], tmp_path / "orders.pcap")
    return read_order_entry(tmp_path / "orders.pcap").requests


def test_a_request_sent_before_the_capture_began_is_not_looked_for_on_the_wire(tmp_path):
    records = _login_then_orders()
    wire = _wire(records, tmp_path, keep=lambda r: r.timestamp_ns >= 3000)
    requests = parse_journal(records).requests
    join = join_wire(requests, wire, wire_started_ns=3000)
    assert join.mismatch is None and join.before_capture == 1
    assert join.counts["requests_before_capture"] == 1
    assert [r.wire_ts for r in requests] == [None, 5000, 5100, 5200]
    # Without the capture's start, the journal's Account Query stands
    # against the wire's first Enter Order.
    blind = join_wire(parse_journal(records).requests, wire, wire_started_ns=None)
    assert isinstance(blind.mismatch[0].msg, ouch50.AccountQueryRequest)


def test_a_request_stamped_before_the_capture_but_sent_after_it_is_joined(tmp_path):
    records = _login_then_orders()
    wire = _wire(records, tmp_path, keep=lambda r: r.timestamp_ns >= 1000)
    join = join_wire(parse_journal(records).requests, wire, wire_started_ns=1050)
    assert join.mismatch is None and join.before_capture == 0


def test_a_request_missing_from_the_wire_while_it_was_captured_diverges(tmp_path):
    records = _login_then_orders()
    # Enter Order 1 was journaled while the capture ran but never reached the wire.
    wire = _wire(records, tmp_path, keep=lambda r: r.timestamp_ns >= 3000 and r.timestamp_ns != 5000)
    join = join_wire(parse_journal(records).requests, wire, wire_started_ns=3000)
    request, wired = join.mismatch
    assert request.msg.user_ref_num == 1 and wired.msg.user_ref_num == 2
    # Passing over what may have left before the capture stops at the first
    # request stamped after it began: Enter Order 2 is missing, not excused.
    wire = _wire(records, tmp_path, keep=lambda r: r.timestamp_ns == 5200)
    join = join_wire(parse_journal(records).requests, wire, wire_started_ns=5050)
    request, wired = join.mismatch
    assert join.before_capture == 2
    assert request.msg.user_ref_num == 2 and wired.msg.user_ref_num == 3


def test_a_capture_that_saw_nothing_passes_over_only_what_came_before_it(tmp_path):
    records = _login_then_orders()
    join = join_wire(parse_journal(records).requests, [], wire_started_ns=3000)
    assert join.mismatch is None and join.before_capture == 1
    assert join.counts["requests_on_wire"] == 0 and join.counts["requests_journaled"] == 4
