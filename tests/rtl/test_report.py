"""``rtl.report``: the measurement registry, the merge of figures and the
conversion to nanoseconds, on stand-in measurements (the real ones run the
RTL benches; test_feed_path_rtl exercises those)."""
from __future__ import annotations

import json

import pytest

from rtl import report

MODULE = __name__


def path_figures() -> dict:
    return {"feed_latency_cycles": 19, "feed_breakdown_cycles": {"mold_seq": 4, "order_book": 4},
            "frame_sizes": [83, 100]}


def pricer_figures() -> dict:
    return {"chain256_cycles": 271}


def clashing_figures() -> dict:
    return {"feed_latency_cycles": 1}


def not_a_dict():
    return [1, 2]


def failing():
    raise RuntimeError("simulator gone")


def test_every_registered_measurement_resolves():
    for entry in report.MEASUREMENTS:
        assert callable(report.resolve(entry))


@pytest.mark.parametrize("entry", ["tests.rtl.test_report", "tests.rtl.test_report:",
                                   ":path_figures", "tests.rtl.no_such_module:f",
                                   "tests.rtl.test_report:no_such_function",
                                   "tests.rtl.test_report:MODULE"])
def test_bad_entries_are_refused_by_name(entry):
    with pytest.raises(report.ReportError, match="measurement"):
        report.resolve(entry)


def test_figures_of_several_measurements_merge_and_remember_their_source():
    figures, sources = report.measure([f"{MODULE}:path_figures", f"{MODULE}:pricer_figures"])
    assert figures == {**path_figures(), **pricer_figures()}
    assert sources["chain256_cycles"] == f"{MODULE}:pricer_figures"
    assert sources["feed_latency_cycles"] == f"{MODULE}:path_figures"


@pytest.mark.parametrize("second, message", [("clashing_figures", "comes from both"),
                                             ("not_a_dict", "not dict"),
                                             ("failing", "simulator gone")])
def test_a_bad_measurement_stops_the_report(second, message):
    with pytest.raises(report.ReportError, match=message):
        report.measure([f"{MODULE}:path_figures", f"{MODULE}:{second}"])


def test_cycles_become_nanoseconds_at_both_core_clocks():
    assert report.CLOCKS_MHZ == {"zynq_ultrascale_plus": 250.0, "zynq7000": 125.0}
    figures, sources = report.measure([f"{MODULE}:path_figures"])
    result = report.report(figures, sources, 1.0)
    assert result["feed_latency_cycles"] == 19
    assert result["ns"]["feed_latency_cycles"] == {"250MHz": 76.0, "125MHz": 152.0}
    assert result["ns"]["feed_breakdown_cycles.order_book"] == {"250MHz": 16.0, "125MHz": 32.0}
    # Only cycle counts get a conversion.
    assert set(result["ns"]) == {"feed_latency_cycles", "feed_breakdown_cycles.mold_seq",
                                 "feed_breakdown_cycles.order_book"}
    json.dumps(result)


def test_command_line_writes_the_json_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "rtl.json"
    assert report.main(["--only", f"{MODULE}:path_figures", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["feed_latency_cycles"] == 19
    assert written["report"]["measurements"] == [f"{MODULE}:path_figures"]
    assert "feed_latency_cycles" in capsys.readouterr().out
    assert report.main(["--only", f"{MODULE}:failing", "--out", str(tmp_path / "x.json")]) == 1
    assert not (tmp_path / "x.json").exists()
