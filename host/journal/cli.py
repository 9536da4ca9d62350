"""``zynqmm journal``: look into a journal without changing it.

``zynqmm journal verify JOURNAL`` scans every record, decodes the kinds it
knows and prints the counts by kind, decoding failures and the state of the
tail.  ``zynqmm journal export JOURNAL --out FILE.parquet|FILE.csv`` writes
one row per record (see :mod:`host.journal.export`).  A torn tail (a last
write cut short by a crash) is reported and left out; corruption before the
tail makes both refuse, naming the offset.  Exit status: 0 done (torn tail
included), 1 corrupt journal, 2 bad arguments or files.
"""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("journal", help="verify a journal or export it to Parquet/CSV",
                       description=__doc__.split("\n\n")[0])
    cmds = p.add_subparsers(dest="journal_command", metavar="ACTION")
    cmds.required = True
    v = cmds.add_parser("verify", help="counts by kind, decoding errors, torn tail")
    v.add_argument("journal")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=run_verify)
    e = cmds.add_parser("export", help="one row per record to Parquet or CSV")
    e.add_argument("journal")
    e.add_argument("--out", required=True, metavar="FILE.parquet|FILE.csv")
    e.add_argument("--kind", action="append", metavar="K",
                   help="export only records of this kind (repeatable)")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=run_export)


def _torn_text(report) -> str:
    r = report.recovery
    return (f"torn tail at offset {r.torn_offset}: {r.torn_bytes} bytes ({r.reason}), "
            "not included")


def _print(report, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), sort_keys=True))
        return
    print(f"{report.path}: {report.records} records{what}")
    for kind, n in sorted(report.by_kind.items()):
        errors = report.decode_errors.get(kind, 0)
        print(f"  {kind:<12} {n:>10}" + (f"  ({errors} not decodable)" if errors else ""))
    print("  tail: " + (_torn_text(report) if report.torn else "intact"))


def _guard(fn):
    from host.journal import JournalCorrupt, JournalError

    def wrapped(args) -> int:
        try:
            return fn(args)
        except JournalCorrupt as exc:
            print(f"zynqmm journal: {exc}; refusing (offset {exc.offset})", file=sys.stderr)
            return 1
        except JournalError as exc:
            print(f"zynqmm journal: {exc}", file=sys.stderr)
            return 2
    return wrapped


@_guard
def run_verify(args) -> int:
    from host.journal.export import verify

    report = verify(args.journal)
    _print(report, args.json, "")
    return 0


@_guard
def run_export(args) -> int:
    from host.journal.export import export

    report = export(args.journal, args.out, args.kind)
    if report.torn:
        print(f"zynqmm journal: {args.journal}: {_torn_text(report)}", file=sys.stderr)
    _print(report, args.json, f", {report.exported} exported to {report.output}")
    return 0
