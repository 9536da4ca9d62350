"""`zynqmm decode --protocol ouch` on a scripted order-entry session."""
import json

import pytest

from host.cli import main
from host.inspect.order_entry_capture import write_order_entry_capture


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("ouch") / "session.pcap"
    summary = write_order_entry_capture(path)
    return path, summary


def decode_jsonl(path, capsys, *extra):
    assert main(["decode", str(path), "--protocol", "ouch", "--jsonl", *extra]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    summary = json.loads(err.strip().splitlines()[-1])["summary"]
    return records, summary


def test_every_packet_once_despite_split_coalesced_and_retransmitted_segments(session, capsys):
    path, written = session
    records, summary = decode_jsonl(path, capsys)
    assert len(records) == written["soup_packets"]
    ouch = [r for r in records if "ouch_message" in r]
    assert len(ouch) == written["ouch_messages"]
    assert sum(r["ouch_direction"] == "inbound" for r in ouch) == written["ouch_inbound"]
    assert summary["tcp"]["retransmits"] == 1
    assert summary["drops"] == {}
    # The retransmitted partial fill is reported once; the two fills add up to the order.
    fills = [r for r in ouch if r["ouch_message"] == "OrderExecuted"]
    assert [f["quantity"] for f in fills] == [200, 300]
    assert [f["match_number"] for f in fills] == [88_000_101, 88_000_117]


def test_fields_and_appendages_decoded(session, capsys):
    path, _ = session
    records, _ = decode_jsonl(path, capsys)
    enters = [r for r in records if r.get("ouch_message") == "EnterOrder"]
    assert [e["user_ref_num"] for e in enters] == [1, 2, 3, 4]
    assert enters[0]["symbol"] == "ZAAB" and enters[0]["price"] == 1_023_400 and enters[0]["side"] == "B"
    assert enters[0]["appendage"] == {"firm": "ZMMF", "min_qty": 100}
    assert enters[1]["appendage"] == {"firm": "ZMMF", "post_only": "Y"}
    login = records[0]
    assert login["soup_packet"] == "LoginRequest" and login["username"] == "ZMM01"
    assert records[-1]["soup_packet"] == "EndOfSession"


def test_symbol_filter_and_limit(session, capsys):
    path, _ = session
    records, summary = decode_jsonl(path, capsys, "--symbol", "ZAAC")
    assert {r["symbol"] for r in records} == {"ZAAC"}
    assert len(records) == 2  # the order and its accept
    records, summary = decode_jsonl(path, capsys, "--limit", "3")
    assert len(records) == 3 and summary["stopped_early"]


def test_truncated_capture_is_counted_not_fatal(session, tmp_path, capsys):
    path, _ = session
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    records, summary = decode_jsonl(cut, capsys)
    assert 0 < len(records) < 24
    assert summary["drops"].get("pcap_truncated_record", 0) == 1


def test_itch_file_rejected_for_ouch(tmp_path, capsys):
    from host.pcap.itchfile import ItchFileWriter
    from host.protocols import itch50

    path = tmp_path / "day.itch"
    with ItchFileWriter(path) as w:
        for i in range(20):
            w.write(itch50.SystemEvent(stock_locate=0, tracking_number=i, timestamp=i, event_code="O").encode())
    assert main(["decode", str(path), "--protocol", "ouch"]) == 2
    assert "no TCP streams" in capsys.readouterr().err
