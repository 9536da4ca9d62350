"""``zynqmm pricer-accuracy``: the fixed-point pricer against QuantLib.

Prices N random options with the fabric pricer's bit-accurate model and with
QuantLib in double precision, then prints per output the maximum and mean
error, the limit, pass/fail, and the worst cases.  Exit status 1 when a limit
is exceeded.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from host.pricing.accuracy import OUTPUTS, run
from host.pricing.params import MODELS

UNITS = {"price": "/S", "delta": "abs", "gamma": "rel", "vega": "/S", "theta": "/S"}


def report(n: int, seed: int, model: str, worst: int = 3, out=sys.stdout) -> bool:
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


def register(sub) -> None:
    p = sub.add_parser("pricer-accuracy", help="fixed-point option pricer vs QuantLib",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="number of random options (default 100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--model", choices=MODELS, default="bs",
                   help="bs: Black-Scholes with dividend yield; black76: options on futures")
    p.add_argument("--worst", type=int, default=3, help="worst cases shown per output (default 3)")
    p.set_defaults(func=lambda args: 0 if report(args.n, args.seed, args.model, args.worst) else 1)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="zynqmm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
