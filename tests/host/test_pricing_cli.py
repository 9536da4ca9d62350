"""``zynqmm price`` and ``zynqmm pricer-accuracy --json``; the float64
reference the CSV pricer offers, against QuantLib."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from host.cli import main as zynqmm
from host.pricing.batch import black_float, price_rows
from host.pricing.cli import JSON_KEYS

ROWS = [
    {"S": "100", "K": "100", "T": "0.5", "sigma": "0.2", "r": "0.03", "q": "0.01", "type": "call"},
    {"S": "100", "K": "110", "T": "0.5", "sigma": "0.2", "r": "0.03", "q": "0.01", "type": "put",
     "model": ""},
    {"S": "95", "K": "100", "T": "1", "sigma": "0.3", "r": "0.05", "q": "0.2", "type": "C",
     "model": "black76"},
    {"S": "2500.25", "K": "2400", "T": "0.01", "sigma": "1.2", "r": "-0.01", "q": "0", "type": "P",
     "model": "BS"},
]
BAD = [
    ({"S": "abc"}, "S 'abc' is not a number"),
    ({"S": ""}, "S is missing"),
    ({"T": "-1"}, "T (time to expiry in years) must be positive"),
    ({"T": "nan"}, "T must be finite"),
    ({"type": "straddle"}, "type 'straddle' is not call or put"),
    ({"model": "heston"}, "model 'heston' is not bs or black76"),
    ({"S": "1e9"}, "S 1000000000.0 outside the pricer's range"),
    ({"sigma": "0"}, "sigma (volatility) must be positive"),
    ({"K": "1e6"}, "K outside [0.125, 65536.0]"),
    ({"r": "0.9"}, "r outside [-0.05, 0.25]"),
]


def _write(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*"S K T sigma r q type model".split()])
        writer.writeheader()
        writer.writerows(rows)


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_fabric_and_float_agree_within_the_accuracy_limits():
    fabric, errors = price_rows(ROWS, "fabric")
    assert errors == []
    floats, errors = price_rows(ROWS, "float")
    assert errors == []
    spots = np.array([float(r["S"]) for r in ROWS])
    assert np.all(np.abs(fabric[:, 0] - floats[:, 0]) <= 1e-7 * spots)       # price
    assert np.all(np.abs(fabric[:, 1] - floats[:, 1]) <= 2e-7)               # delta
    assert np.all(np.abs(fabric[:, 2] - floats[:, 2]) <= 1e-5 * floats[:, 2])
    assert np.all(np.abs(fabric[:, 3] - floats[:, 3]) <= 1e-7 * spots)       # vega
    assert np.all(np.abs(fabric[:, 4] - floats[:, 4])
                  <= np.maximum(1e-6 * spots, 1e-5 * np.abs(floats[:, 4])))


def test_float_reference_matches_quantlib():
    ql = pytest.importorskip("QuantLib")
    for row in ROWS:
        s, k, t, sigma, r, q = (float(row[c]) for c in ("S", "K", "T", "sigma", "r", "q"))
        put = row["type"].lower().startswith("p")
        black76 = row.get("model", "").lower() == "black76"
        price, delta, gamma, vega, theta = (float(v) for v in black_float(
            s, k, t, sigma, r, q, put, black76))
        payoff = ql.PlainVanillaPayoff(ql.Option.Put if put else ql.Option.Call, k)
        discount = math.exp(-r * t)
        if black76:
            calc = ql.BlackCalculator(payoff, s, sigma * math.sqrt(t), discount)
            want = (calc.value(), calc.deltaForward(), calc.gammaForward())
        else:
            calc = ql.BlackCalculator(payoff, s * math.exp(-q * t) / discount, sigma * math.sqrt(t),
                                      discount)
            want = (calc.value(), calc.delta(s), calc.gamma(s))
        assert price == pytest.approx(want[0], rel=1e-12, abs=1e-12)
        assert delta == pytest.approx(want[1], rel=1e-12, abs=1e-12)
        assert gamma == pytest.approx(want[2], rel=1e-10)
        assert vega == pytest.approx(calc.vega(t), rel=1e-10)
        assert theta == pytest.approx(calc.theta(s, t), rel=1e-10)


@pytest.mark.parametrize("engine", ["fabric", "float"])
def test_price_command_writes_every_row_and_reports_bad_ones(tmp_path, capsys, engine):
    rows = list(ROWS)
    for change, _ in BAD:
        rows.append({**ROWS[0], **change})
    _write(tmp_path / "in.csv", rows)
    rc = zynqmm(["price", "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"),
                 "--model", engine])
    assert rc == 1
    out = _read(tmp_path / "out.csv")
    assert [int(r["row"]) for r in out] == list(range(1, len(rows) + 1))
    assert all(r["error"] == "" and float(r["price"]) > 0 for r in out[:len(ROWS)])
    err = capsys.readouterr().err
    for (change, message), result in zip(BAD, out[len(ROWS):]):
        number = int(result["row"])
        if engine == "float" and not any(k in change for k in ("S", "T", "type", "model", "sigma")):
            continue          # float64 takes strikes and rates the fabric refuses
        if engine == "float" and change.get("S") == "1e9":
            continue
        assert result["price"] == "", (change, result)
        assert result["error"].startswith(f"row {number}: "), result["error"]
        assert message in result["error"], (message, result["error"])
        assert f"zynqmm price: row {number}: " in err


def test_price_command_refuses_a_file_without_the_columns(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("S,K,T\n1,2,3\n")
    assert zynqmm(["price", "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "missing column(s) sigma, r, q, type" in capsys.readouterr().err
    missing = tmp_path / "nope.csv"
    assert zynqmm(["price", "--csv", str(missing), "--out", str(tmp_path / "o.csv")]) == 2


def test_all_good_rows_exit_zero(tmp_path):
    _write(tmp_path / "in.csv", ROWS)
    assert zynqmm(["price", "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv")]) == 0


def test_pricer_accuracy_json(capsys):
    assert zynqmm(["pricer-accuracy", "--n", "300", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("price_max_abs_over_S", "delta_max_abs", "gamma_max_rel", "vega_max_abs_over_S",
                "theta_max"):
        assert isinstance(report[key], float) and 0 <= report[key] < 1e-4, key
    assert set(JSON_KEYS.values()) <= set(report)
    assert report["passed"] is True and report["options"] == 300
    assert all(0 <= v <= 1 for v in report["max_over_limit"].values())
