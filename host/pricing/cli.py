"""``zynqmm pricer-accuracy`` and ``zynqmm price``.

``pricer-accuracy`` prices N random options with the fabric pricer's
bit-accurate model and with QuantLib in double precision, then prints per
output the maximum and mean error, the limit, pass/fail, and the worst cases
(``--json``: the maxima as one JSON object).  Exit status 1 when a limit is
exceeded.

``price`` prices the rows of a CSV file (columns S, K, T, sigma, r, q, type
and optionally model) with the fabric's arithmetic or in float64 and writes
price, delta, gamma, vega and theta per row (:mod:`host.pricing.batch`).  A
row that cannot be priced keeps its place with empty outputs and its reason
in the ``error`` column, and is reported on stderr; exit status 1 then.
"""
from __future__ import annotations

import csv
import json
import sys

import numpy as np

from host.pricing.accuracy import OUTPUTS, run
from host.pricing.batch import ENGINES, INPUT_COLUMNS, OUTPUT_COLUMNS, price_rows
from host.pricing.params import MODELS

UNITS = {"price": "/S", "delta": "abs", "gamma": "rel", "vega": "/S", "theta": "/S"}


def report(n: int, seed: int, model: str, worst: int = 3, out=None) -> bool:
    out = sys.stdout if out is None else out
    sample, errors = run(n, seed, model)
    print(f"pricer accuracy vs QuantLib: {n} options, model {model}, seed {seed}", file=out)
    print(f"{'output':<7} {'max err':>10} {'mean err':>10} {'unit':>4}  {'limit':<27} "
          f"{'max/limit':>9}  result", file=out)
    for name in OUTPUTS:
        e = errors[name]
        print(f"{name:<7} {e.max:10.3e} {e.mean:10.3e} {UNITS[name]:>4}  {e.limit:<27} "
              f"{e.worst_ratio:9.4f}  {'pass' if e.passed else 'FAIL'}", file=out)
    print("worst cases (by error / limit):", file=out)
    for name in OUTPUTS:
        ratios = np.nan_to_num(errors[name].limit_ratio, nan=-1.0)
        for i in np.argsort(ratios)[::-1][:worst]:
            case = {
                "S": round(float(sample.spot[i]), 4), "K": round(float(sample.strike[i]), 6),
                "put": bool(sample.is_put[i]), "sigma": round(float(sample.sigma[i]), 6),
                "T": round(float(sample.expiry[i]), 6), "r": round(float(sample.rate[i]), 6),
                "q": round(float(sample.dividend[i]), 6),
            }
            print(f"  {name:<6} {ratios[i]:8.4f} x limit  {json.dumps(case)}", file=out)
    return all(e.passed for e in errors.values())


# Keys of ``pricer-accuracy --json``: each output's largest error in the unit
# its limit is stated in.
JSON_KEYS = {"price": "price_max_abs_over_S", "delta": "delta_max_abs", "gamma": "gamma_max_rel",
             "vega": "vega_max_abs_over_S", "theta": "theta_max"}


def report_json(n: int, seed: int, model: str, out=None) -> bool:
    out = sys.stdout if out is None else out
    _, errors = run(n, seed, model)
    summary = {JSON_KEYS[name]: errors[name].max for name in OUTPUTS}
    summary.update({
        "theta_max_unit": "abs/S",
        "limits": {JSON_KEYS[name]: errors[name].limit for name in OUTPUTS},
        "max_over_limit": {JSON_KEYS[name]: errors[name].worst_ratio for name in OUTPUTS},
        "passed": all(e.passed for e in errors.values()),
        "options": n, "seed": seed, "model": model,
    })
    print(json.dumps(summary, indent=1), file=out)
    return summary["passed"]


def accuracy(args) -> int:
    if args.n < 1:
        print("zynqmm pricer-accuracy: --n must be at least 1", file=sys.stderr)
        return 2
    if args.json:
        return 0 if report_json(args.n, args.seed, args.model) else 1
    return 0 if report(args.n, args.seed, args.model, args.worst) else 1


def price_csv(args) -> int:
    try:
        with open(args.csv, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in INPUT_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                print(f"zynqmm price: {args.csv}: missing column(s) {', '.join(missing)} "
                      f"(need {', '.join(INPUT_COLUMNS)}, optional model)", file=sys.stderr)
                return 2
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"zynqmm price: cannot read {args.csv}: {exc}", file=sys.stderr)
        return 2
    values, errors = price_rows(records, args.model)
    reasons = {e.row: e.message for e in errors}
    try:
        with open(args.out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", *OUTPUT_COLUMNS, "error"])
            for number, row in enumerate(values, start=1):
                if number in reasons:
                    writer.writerow([number, *([""] * len(OUTPUT_COLUMNS)), reasons[number]])
                else:
                    writer.writerow([number, *(repr(float(v)) for v in row), ""])
    except OSError as exc:
        print(f"zynqmm price: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    for error in errors:
        print(f"zynqmm price: {error.message}", file=sys.stderr)
    print(f"priced {len(values) - len(errors)} of {len(values)} rows ({args.model}) into {args.out}",
          file=sys.stderr)
    return 1 if errors else 0


def register(sub) -> None:
    p = sub.add_parser("pricer-accuracy", help="fixed-point option pricer vs QuantLib",
                       description="Price random options with the fabric pricer's bit-accurate "
                                   "model and with QuantLib; print the errors per output against "
                                   "their limits (exit 1 when one is exceeded).")
    p.add_argument("--n", type=int, default=100_000, help="number of random options (default 100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--model", choices=MODELS, default="bs",
                   help="bs: Black-Scholes with dividend yield; black76: options on futures")
    p.add_argument("--worst", type=int, default=3, help="worst cases shown per output (default 3)")
    p.add_argument("--json", action="store_true",
                   help="print the largest errors as JSON (" + ", ".join(JSON_KEYS.values()) + ")")
    p.set_defaults(func=accuracy)

    q = sub.add_parser("price", help="price the option rows of a CSV file",
                       description="Price every row of a CSV file (S, K, T, sigma, r, q, type "
                                   "and optionally model) with the fabric's fixed point or in "
                                   "float64; rows that cannot be priced keep their place with "
                                   "their reason in the error column (exit 1 then).")
    q.add_argument("--csv", required=True, metavar="IN",
                   help="input CSV: S,K,T,sigma,r,q,type[,model] (type call/put, model bs/black76)")
    q.add_argument("--out", required=True, metavar="OUT", help="output CSV: row,price,delta,gamma,"
                   "vega,theta,error")
    q.add_argument("--model", choices=ENGINES, default="fabric",
                   help="fabric: the fabric pricer's fixed point, bit for bit (default); "
                        "float: float64 closed forms")
    q.set_defaults(func=price_csv)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="zynqmm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
