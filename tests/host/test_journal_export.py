"""Journal export: records written, exported to Parquet and CSV, read back
with pyarrow and the csv module and compared field by field; torn tails,
corruption, unknown kinds and undecodable payloads."""
import argparse
import csv
import json
import struct

import pyarrow.parquet as pq
import pytest

from host.exchange.records import encode_event, encode_in, encode_out
from host.journal import Journal, JournalCorrupt
from host.journal import cli as journal_cli
from host.journal.export import BASE_COLUMNS, ExportError, export, export_rows, verify
from host.journal.journal import MAGIC, encode_record
from host.protocols import ouch50
from host.protocols.ouch50 import Appendage
from tests.host.test_exchange import enter

ENTER = enter(7, "S", 250, symbol="ZAAC", price=123_4567, firm="ZMMF")
REJECT = ouch50.OrderRejected(timestamp=11, user_ref_num=8, reason=0x29, cl_ord_id="X",
                              appendage=Appendage())
CANCELED = ouch50.OrderCanceled(timestamp=12, user_ref_num=7, quantity=50, reason="Z",
                                appendage=None)

RECORDS = [
    ("session", b"0000000042", 1_700_000_000_000_000_001),
    ("tx", ENTER.encode(), 1_700_000_000_000_000_002),
    ("rx", struct.pack(">Q", 3) + REJECT.encode(), 1_700_000_000_000_000_003),
    ("ex_in", encode_in("ZMM01", ENTER.encode()), 1_700_000_000_000_000_004),
    ("ex_out", encode_out("ZMM01", 9, CANCELED.encode()), 1_700_000_000_000_000_005),
    ("ex_event", encode_event({"event": "login", "user": "ZMM01", "sequence": 4}),
     1_700_000_000_000_000_006),
    ("risk_breach", b"\x00\x01\xfe", 1_700_000_000_000_000_007),
    ("rx", b"\x00\x00\x00\x00\x00\x00\x00\x01J\x00", 1_700_000_000_000_000_008),
]


def expected_rows():
    """What each record must become, written out from the messages."""
    base = [dict(kind=k, timestamp_ns=ts) for k, _, ts in RECORDS]
    base[0].update(fields={"session": "0000000042"}, session="0000000042")
    enter_fields = {k: v for k, v in ENTER.to_dict().items() if k != "message_type"}
    base[1].update(direction="in", message_type="O", message="Enter Order", fields=enter_fields)
    reject_fields = {k: v for k, v in REJECT.to_dict().items() if k != "message_type"}
    base[2].update(direction="out", sequence=3, message_type="J", message="Rejected",
                   fields=reject_fields)
    base[3].update(user="ZMM01", direction="in", message_type="O", message="Enter Order",
                   fields=enter_fields)
    canceled_fields = {k: v for k, v in CANCELED.to_dict().items() if k != "message_type"}
    base[4].update(user="ZMM01", direction="out", sequence=9, message_type="C",
                   message="Order Canceled", fields=canceled_fields)
    base[5].update(user="ZMM01", sequence=4, fields={"event": "login"})
    base[6].update(payload_hex="0001fe")
    base[7].update(payload_hex="0000000000000001" + "4a00", error=True)
    return base


@pytest.fixture
def journal_path(tmp_path):
    path = tmp_path / "j.bin"
    with Journal(path) as j:
        j.append_batch(RECORDS)
    return path


def check_row(row, want, text):
    """``text``: values come from CSV, so compare as the CSV writer wrote them."""
    def same(value, expected):
        if text:
            return value == ("" if expected is None else str(expected))
        return value == expected

    for name in ("kind", "timestamp_ns", "user", "direction", "sequence", "message_type",
                 "message", "payload_hex"):
        assert same(row[name], want.get(name)), (name, row[name], want)
    if want.get("error"):
        assert row["error"] and "truncated" in row["error"].lower()
    else:
        assert same(row["error"], None)
    if "fields" in want:
        assert json.loads(row["fields"]) == want["fields"]
        for name, value in want["fields"].items():
            column = f"field_{name}" if name in BASE_COLUMNS else name
            expected = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
            if not text and name == "reason":
                expected = str(expected)   # a number here, a letter elsewhere: text column
            assert same(row[column], expected), (column, row[column], expected)
    else:
        assert same(row["fields"], None)


def test_round_trip_parquet_and_csv(journal_path, tmp_path):
    wanted = expected_rows()
    report = export(journal_path, tmp_path / "out.parquet")
    assert (report.records, report.exported) == (8, 8) and not report.torn
    assert report.decode_errors == {"rx": 1}
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names[:len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert str(table.schema.field("price").type) == "int64"
    assert str(table.schema.field("reason").type) == "string"
    rows = table.to_pylist()
    offsets = [r["offset"] for r in rows]
    assert offsets[0] == len(MAGIC) and offsets == sorted(offsets)
    for row, want in zip(rows, wanted, strict=True):
        check_row(row, want, text=False)
    assert rows[1]["price"] == 123_4567 and json.loads(rows[1]["appendage"]) == {"firm": "ZMMF"}
    assert rows[0]["time_utc"] == "2023-11-14T22:13:20.000000001Z"

    export(journal_path, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    for row, want in zip(csv_rows, wanted, strict=True):
        check_row(row, want, text=True)
    # Both formats carry the same cells.
    for prow, crow in zip(rows, csv_rows):
        assert {k: ("" if v is None else str(v)) for k, v in prow.items()} == crow


def test_kind_filter(journal_path, tmp_path):
    report = export(journal_path, tmp_path / "o.csv", kinds=["ex_out", "session"])
    assert report.exported == 2 and report.by_kind["tx"] == 1
    with open(tmp_path / "o.csv", newline="") as f:
        assert [r["kind"] for r in csv.DictReader(f)] == ["session", "ex_out"]


def test_torn_tail_is_reported_and_the_file_left_alone(journal_path, tmp_path):
    whole = journal_path.read_bytes()
    torn = whole + encode_record("tx", 99, ENTER.encode())[:-3]
    journal_path.write_bytes(torn)
    report = export(journal_path, tmp_path / "o.parquet")
    assert report.torn and report.recovery.torn_offset == len(whole)
    assert report.recovery.torn_bytes == len(torn) - len(whole)
    assert report.exported == 8 and pq.read_table(tmp_path / "o.parquet").num_rows == 8
    assert journal_path.read_bytes() == torn   # export never truncates


def test_corruption_refuses_with_the_offset(journal_path, tmp_path):
    data = bytearray(journal_path.read_bytes())
    second = len(MAGIC) + len(encode_record(*RECORDS[0][:1], RECORDS[0][2], RECORDS[0][1]))
    data[second + 14] ^= 0x01
    journal_path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as err:
        export(journal_path, tmp_path / "o.csv")
    assert err.value.offset == second
    assert not (tmp_path / "o.csv").exists()
    assert list(tmp_path.iterdir()) == [journal_path]   # no temporary left either


def test_empty_journal_and_bad_output(tmp_path):
    path = tmp_path / "empty.bin"
    Journal(path).close()
    rows, report = export_rows(path)
    assert rows == [] and report.records == 0
    report = export(path, tmp_path / "e.parquet")
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    with pytest.raises(ExportError):
        export(path, tmp_path / "e.xlsx")
    with pytest.raises(ExportError):
        export(path, tmp_path / "no" / "such" / "dir.csv")


def cli(*argv):
    parser = argparse.ArgumentParser()
    journal_cli.register(parser.add_subparsers())
    args = parser.parse_args(["journal", *argv])
    return args.func(args)


def test_cli_verify_and_export(journal_path, tmp_path, capsys):
    assert cli("verify", str(journal_path), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["by_kind"] == {"ex_event": 1, "ex_in": 1, "ex_out": 1, "risk_breach": 1,
                                 "rx": 2, "session": 1, "tx": 1}
    assert result["decode_errors"] == {"rx": 1} and result["torn_tail"] is None
    assert cli("export", str(journal_path), "--out", str(tmp_path / "x.csv"),
               "--kind", "tx") == 0
    assert "1 exported" in capsys.readouterr().out
    with open(journal_path, "ab") as f:
        f.write(b"\x00\x00\x00")
    assert cli("verify", str(journal_path)) == 0
    assert "torn tail at offset" in capsys.readouterr().out
    data = bytearray(journal_path.read_bytes())
    data[len(MAGIC) + 1] ^= 0xFF   # the first record's length
    journal_path.write_bytes(bytes(data))
    assert cli("export", str(journal_path), "--out", str(tmp_path / "y.csv")) == 1
    err = capsys.readouterr().err
    assert f"offset {len(MAGIC)}" in err and not (tmp_path / "y.csv").exists()
    assert cli("verify", str(tmp_path / "missing.bin")) == 2
    assert cli("export", str(journal_path), "--out", str(tmp_path / "z.txt")) == 2


def test_verify_counts_match_the_records(journal_path):
    report = verify(journal_path)
    assert sum(report.by_kind.values()) == report.records == len(RECORDS)


def test_risk_events_are_json_columns(tmp_path):
    path = tmp_path / "r.bin"
    event = {"outcome": "rejected", "reason": "order_size", "quantity": 5000}
    with Journal(path) as j:
        j.append("risk", json.dumps(event).encode(), 1)
        j.append("risk", b"[1, 2]", 2)
    rows, report = export_rows(path)
    assert json.loads(rows[0]["fields"]) == event
    assert (rows[0]["outcome"], rows[0]["quantity"]) == ("rejected", 5000)
    assert rows[1]["payload_hex"] == b"[1, 2]".hex() and "JSON object" in rows[1]["error"]
    assert report.decode_errors == {"risk": 1}
