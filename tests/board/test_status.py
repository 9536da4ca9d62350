"""The status file contract and ``zynqmm status``, locally and from a board
over SSH."""
from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from board.deploy import agent, cli
from board.deploy.flash import flash
from board.deploy.status import (SCHEMA, FeedStatus, OrderCounts, OverlayStatus, RiskStatus,
                                 RuntimeStatus, example_status, local_status, now_utc,
                                 remote_status, render, status_file_from_config, write_status)
from rtl.regmap.driver import MAP_VERSION


def status_path(root: Path) -> Path:
    return root / agent.STATUS_PATH


def busy_status(**overrides) -> RuntimeStatus:
    values = dict(feeds={"A": FeedStatus(state="live", last_sequence=9_120_331, messages=4_410_207,
                                         gaps=2),
                         "B": FeedStatus(state="recovering", last_sequence=9_120_100,
                                         messages=4_409_990, gaps=5)},
                  orders=OrderCounts(open=12, sent=340, filled=80, cancelled=248, rejected=1),
                  risk=RiskStatus(state="ok"))
    values.update(overrides)
    return example_status(**values)


def test_written_status_reads_back_as_running(board_root):
    status = busy_status()
    write_status(status_path(board_root), status)
    assert json.loads(status_path(board_root).read_text())["schema"] == SCHEMA
    assert not [p for p in status_path(board_root).parent.iterdir() if p.name.startswith(".")]
    report = local_status(str(board_root))
    assert report.runtime_state == "running" and report.problems == []
    assert report.runtime == status and 0 <= report.age_s < 60
    text = render(report)
    assert "feed A    live, sequence 9120331, 4410207 messages, 2 gaps" in text
    assert "feed B    recovering" in text
    assert "orders    12 open; 340 sent, 80 filled, 248 cancelled, 1 rejected" in text
    assert "risk      ok" in text and "current   none" in text
    as_json = report.as_dict()
    assert as_json["runtime"]["status"]["orders"]["filled"] == 80
    json.dumps(as_json)


def test_absent_stale_and_invalid_status(board_root):
    report = local_status(str(board_root))
    assert report.runtime_state == "absent"
    assert report.problems == [f"no status file at {status_path(board_root)}: the runtime is not running"]

    old = now_utc() - timedelta(seconds=30)
    write_status(status_path(board_root), busy_status(written_at=old, interval_s=2.0))
    report = local_status(str(board_root))
    assert report.runtime_state == "stale" and "limit 8.0 s" in report.problems[0]

    status_path(board_root).write_text('{"schema": "zynqmm-status/1", "pid": -3}')
    report = local_status(str(board_root))
    assert report.runtime_state == "invalid"
    for field in ("pid", "written_at", "orders", "risk"):
        assert field in report.problems[0]
    status_path(board_root).write_text("{truncated")
    assert local_status(str(board_root)).runtime_state == "invalid"
    raw = json.loads(busy_status().to_json())
    raw["schema"] = "zynqmm-status/0"
    status_path(board_root).write_text(json.dumps(raw))
    assert "schema" in local_status(str(board_root)).problems[0]
    raw["schema"] = SCHEMA
    raw["feeds"]["A"]["gaps"] = -1
    raw["future_field"] = {"kept": "ignored"}
    status_path(board_root).write_text(json.dumps(raw))
    assert "feeds.A.gaps" in local_status(str(board_root)).problems[0]


def test_contract_rejects_bad_values():
    with pytest.raises(ValidationError, match="UTC offset"):
        example_status(written_at=now_utc().replace(tzinfo=None))
    with pytest.raises(ValidationError, match="0x-hex"):
        OverlayStatus(name="a" * 64, build_id="12", map_version="0x1")
    with pytest.raises(ValidationError):
        OverlayStatus(name="not-a-sha", build_id="0x1", map_version="0x1")
    with pytest.raises(ValidationError):
        RiskStatus(state="fine")


def test_risk_and_overlay_problems_are_reported(board_root):
    links = board_root / agent.OVERLAYS_DIR
    links.mkdir(parents=True)
    current = "c" * 64
    (links / current).mkdir()
    (links / current / agent.MANIFEST_NAME).write_text("{broken")
    os.symlink(current, links / "current")
    running = OverlayStatus(name="d" * 64, build_id="0x00000001", map_version=f"0x{MAP_VERSION:08x}")
    write_status(status_path(board_root),
                 busy_status(overlay=running, risk=RiskStatus(state="halted", reason="loss limit")))
    report = local_status(str(board_root))
    assert report.runtime_state == "running"
    problems = "\n".join(report.problems)
    assert "risk is halted: loss limit" in problems
    assert "the runtime runs overlay dddddddddddd, but current is cccccccccccc" in problems
    assert "current overlay:" in problems and "zynqmm.json" in problems


def test_status_file_comes_from_the_configuration(board_root, tmp_path):
    config = board_root / agent.CONFIG_PATH
    config.parent.mkdir(parents=True)
    config.write_text('[appliance]\nstatus_file = "/var/run/other/status.json"\n')
    expected = board_root / "var/run/other/status.json"
    assert status_file_from_config(config, str(board_root)) == str(expected)
    write_status(expected, busy_status())
    assert local_status(str(board_root)).runtime_state == "running"
    config.write_text("[appliance\n")
    with pytest.raises(ValueError):
        local_status(str(board_root))


def test_remote_status_of_a_flashed_board(make_target, make_overlay, board_root, tmp_path, capsys):
    target = make_target()
    report = remote_status(target)
    assert report.runtime_state == "absent" and report.overlays["current"] is None
    # reading the status writes nothing on the board
    assert list(board_root.iterdir()) == []

    overlay = make_overlay(0x20000001)
    flashed = flash(target, overlay)
    running = OverlayStatus(name=flashed.name, build_id=flashed.build_id,
                            map_version=flashed.map_version)
    write_status(status_path(board_root), busy_status(overlay=running))
    report = remote_status(target)
    assert report.runtime_state == "running" and report.problems == []
    assert report.where == target.display and report.service is None
    text = render(report)
    assert f"current   {flashed.name[:12]}  build 0x20000001" in text
    assert f"fabric    {flashed.name[:12]}  build 0x20000001" in text

    targets = tmp_path / "targets.toml"
    settings = {k: str(v) if isinstance(v, Path) else v
                for k, v in target.model_dump(exclude={"name"}).items() if v is not None}
    targets.write_text("[targets.rack1]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                     for k, v in settings.items()))
    parser = argparse.ArgumentParser(prog="zynqmm")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "--board", "rack1", "--targets", str(targets), "--json"])
    assert args.func(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["overlay"]["current"] == flashed.name
    assert shown["overlay"]["manifests"][flashed.name]["build_id"] == "0x20000001"
    assert shown["runtime"]["status"]["feeds"]["B"]["state"] == "recovering"
    args = parser.parse_args(["status", "--root", str(board_root)])
    assert args.func(args) == 0 and "running, pid" in capsys.readouterr().out
    status_path(board_root).unlink()
    args = parser.parse_args(["status", "--board", "rack1", "--targets", str(targets)])
    assert args.func(args) == 1
    assert "the runtime is not running" in capsys.readouterr().out
