"""Export a journal to Parquet or CSV: one row per record.

The journal is read without being changed (no torn-tail truncation): a torn
tail is reported in :class:`ExportReport` and left out, corruption before
the tail raises :class:`~host.journal.JournalCorrupt` naming the offset and
nothing is written.

Every row has the record's place and time (``offset``, ``timestamp_ns``,
``time_utc``), its ``kind``, and what its payload says where the kind is
known (:data:`DECODERS`):

* OUCH messages: the gateway's ``tx`` (inbound, as sent) and ``rx`` (u64
  sequence number + outbound), the exchange simulator's ``ex_in`` and
  ``ex_out`` (:mod:`host.exchange.records`).  ``direction`` is ``in``
  (client to exchange) or ``out``; ``user``, ``sequence``, ``message_type``
  and ``message`` (the specification's name) are filled where they exist,
  every field of the message is a column of its own (the appendage as JSON
  in ``appendage``), and ``fields`` holds them all as one JSON object;
* ``session`` (the gateway's SoupBinTCP session name), ``ex_event`` (JSON
  events) and ``risk`` (the pre-trade risk engine's JSON events): their
  values become columns the same way.

A record of an unknown kind, or one whose payload does not decode, keeps its
payload as hex in ``payload_hex``; a decoding failure is described in
``error``.  A column whose values mix types across messages (``reason`` is a
number in Rejected and a letter in Order Canceled) is written as text.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from host.journal.journal import JournalError, Record, Recovery, scan
from host.protocols import ouch50
from host.protocols.errors import DecodeError

#: The columns every row has, in this order; decoded fields follow.
BASE_COLUMNS = ("offset", "timestamp_ns", "time_utc", "kind", "user", "direction",
                "sequence", "message_type", "message", "fields", "payload_hex", "error")
_SEQ_BYTES = 8


class ExportError(JournalError):
    """The export cannot be done (bad output name, unwritable file)."""


# -- payload decoders --------------------------------------------------------------
# A decoder returns the base-column values it knows plus "fields" (a dict);
# it raises ValueError (DecodeError is one) when the payload is malformed.

def _ouch(raw: bytes, direction: str) -> dict[str, Any]:
    decode = ouch50.decode_inbound if direction == "in" else ouch50.decode_outbound
    msg = decode(raw)
    values = msg.to_dict()
    values.pop("message_type", None)
    return {"direction": direction, "message_type": msg.TYPE, "message": msg.NAME,
            "fields": values}


def _sequence_prefix(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < _SEQ_BYTES:
        raise ValueError(f"{len(payload)} bytes: no room for the sequence number")
    return int.from_bytes(payload[:_SEQ_BYTES], "big"), payload[_SEQ_BYTES:]


def _gateway_tx(payload: bytes) -> dict[str, Any]:
    return _ouch(payload, "in")


def _gateway_rx(payload: bytes) -> dict[str, Any]:
    sequence, raw = _sequence_prefix(payload)
    return {"sequence": sequence, **_ouch(raw, "out")}


def _gateway_session(payload: bytes) -> dict[str, Any]:
    return {"fields": {"session": payload.decode("ascii")}}


def _exchange_in(payload: bytes) -> dict[str, Any]:
    from host.exchange.records import decode_in

    user, raw = decode_in(payload)
    return {"user": user, **_ouch(raw, "in")}


def _exchange_out(payload: bytes) -> dict[str, Any]:
    from host.exchange.records import decode_out

    user, sequence, raw = decode_out(payload)
    return {"user": user, "sequence": sequence, **_ouch(raw, "out")}


def _exchange_event(payload: bytes) -> dict[str, Any]:
    from host.exchange.records import decode_event

    event = dict(decode_event(payload))
    out: dict[str, Any] = {}
    if isinstance(event.get("user"), str):
        out["user"] = event.pop("user")
    if isinstance(event.get("sequence"), int):
        out["sequence"] = event.pop("sequence")
    out["fields"] = event
    return out


def _json_object(payload: bytes) -> dict[str, Any]:
    value = json.loads(payload.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return {"fields": value}


DECODERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "risk": _json_object,
    "tx": _gateway_tx,
    "rx": _gateway_rx,
    "session": _gateway_session,
    "ex_in": _exchange_in,
    "ex_out": _exchange_out,
    "ex_event": _exchange_event,
}


def register_decoder(kind: str, decoder: Callable[[bytes], dict[str, Any]]) -> None:
    """Teach the export a record kind (e.g. a new subsystem's records)."""
    DECODERS[kind] = decoder


# -- rows --------------------------------------------------------------------------

def time_utc(timestamp_ns: int) -> str:
    seconds, nanos = divmod(timestamp_ns, 10**9)
    try:
        moment = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def record_row(record: Record) -> dict[str, Any]:
    """The export row of one record (base columns plus decoded fields)."""
    row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
    row.update(offset=record.offset, timestamp_ns=record.timestamp_ns,
               time_utc=time_utc(record.timestamp_ns), kind=record.kind)
    decoder = DECODERS.get(record.kind)
    if decoder is None:
        row["payload_hex"] = record.payload.hex()
        return row
    try:
        decoded = decoder(record.payload)
    except (ValueError, DecodeError) as exc:
        row["payload_hex"] = record.payload.hex()
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    fields = _jsonable(decoded.pop("fields", {}))
    row.update(decoded)
    row["fields"] = json.dumps(fields, sort_keys=True)
    for name, value in fields.items():
        if name in BASE_COLUMNS:
            name = f"field_{name}"
        row[name] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
    return row


@dataclass
class ExportReport:
    path: str
    records: int = 0
    exported: int = 0
    by_kind: Counter = field(default_factory=Counter)
    decode_errors: Counter = field(default_factory=Counter)
    recovery: Recovery | None = None
    output: str | None = None

    @property
    def torn(self) -> bool:
        return self.recovery is not None and self.recovery.torn

    def to_dict(self) -> dict[str, Any]:
        torn = None
        if self.torn:
            torn = {"offset": self.recovery.torn_offset, "bytes": self.recovery.torn_bytes,
                    "reason": self.recovery.reason}
        return {"journal": self.path, "records": self.records, "exported": self.exported,
                "by_kind": dict(sorted(self.by_kind.items())),
                "decode_errors": dict(sorted(self.decode_errors.items())),
                "torn_tail": torn, "output": self.output}


def read_records(path: str | os.PathLike) -> tuple[list[Record], Recovery]:
    """Every intact record and the tail's state, without touching the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: {exc.strerror or exc}") from exc
    return scan(data, path)


def export_rows(path: str | os.PathLike, kinds: Iterable[str] | None = None
                ) -> tuple[list[dict[str, Any]], ExportReport]:
    records, recovery = read_records(path)
    wanted = None if kinds is None else set(kinds)
    report = ExportReport(str(path), records=len(records), recovery=recovery)
    rows = []
    for record in records:
        report.by_kind[record.kind] += 1
        if wanted is not None and record.kind not in wanted:
            continue
        row = record_row(record)
        if row["error"] is not None:
            report.decode_errors[record.kind] += 1
        rows.append(row)
    report.exported = len(rows)
    return rows, report


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    extra: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in BASE_COLUMNS:
                extra.setdefault(name, None)
    return list(BASE_COLUMNS) + sorted(extra)


def _column_kind(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "uint64" if any(v > 2**63 - 1 for v in present) else "int64"
    if all(isinstance(v, float) for v in present):
        return "float64"
    return "string"


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_types = {"bool": pa.bool_, "int64": pa.int64, "uint64": pa.uint64,
                    "float64": pa.float64, "string": pa.string}

    arrays, names = [], []
    for name in columns_of(rows):
        values = [row.get(name) for row in rows]
        kind = _column_kind(values)
        if kind == "string":
            values = [_as_text(v) for v in values]
        arrays.append(pa.array(values, type=arrow_types[kind]()))
        names.append(name)
    pq.write_table(pa.Table.from_arrays(arrays, names=names), out)


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    names = columns_of(rows)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(n) is None else
                             (json.dumps(row[n]) if isinstance(row[n], bool) else row[n])
                             for n in names])


WRITERS = {".parquet": write_parquet, ".csv": write_csv}


def export(path: str | os.PathLike, out: str | os.PathLike,
           kinds: Iterable[str] | None = None) -> ExportReport:
    """Export a journal; the output's suffix (.parquet or .csv) picks the
    format.  The file appears complete or not at all."""
    out = Path(out)
    writer = WRITERS.get(out.suffix.lower())
    if writer is None:
        raise ExportError(f"{out}: unknown output format (use .parquet or .csv)")
    rows, report = export_rows(path, kinds)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise ExportError(f"{out}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(rows, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"{out}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    report.output = str(out)
    return report


def verify(path: str | os.PathLike) -> ExportReport:
    """Scan and decode every record without writing anything."""
    return export_rows(path)[1]
