"""``zynqmm install`` over a real SSH session into a scratch root, the files
it installs (systemd unit, logrotate, configuration), the sd_notify helper,
and that a management token never shows up anywhere but its secrets file."""
from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from board.boards import board_names, load_board
from board.deploy import agent, cli
from board.deploy.install import (CONFIG_TEMPLATE, LOGROTATE, UNIT, InstallRefused, default_config,
                                  inline_secrets, install)
from board.deploy.sdnotify import Notifier, WatchdogFeeder, watchdog_interval_s
from board.deploy.status import local_status, remote_status, render

TOKEN = "tok-Q7vN2mZk9sLr4xWp1cYe"   # distinctive, so any leak is found by search


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return sorted(found)


@pytest.fixture
def site_config(tmp_path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(default_config("kr260").replace('name = "zynqmm"', 'name = "rack1-kr260"'))
    return path


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def test_install_into_a_prefix(make_target, board_root, site_config, token_file):
    lines: list[str] = []
    owner = pwd.getpwnam("nobody")   # a user other than the one logged in: gets a sudo rule
    result = install(make_target(), config=site_config, token_file=token_file, owner="nobody",
                     say=lines.append)
    assert result.exit_status == 0, result.output
    etc = board_root / "etc"
    assert (etc / "systemd/system/zynqmm.service").read_text() == UNIT.read_text()
    assert (etc / "logrotate.d/zynqmm").read_text() == LOGROTATE.read_text()
    config = etc / "zynqmm/zynqmm.toml"
    assert config.read_text() == site_config.read_text() and mode(config) == 0o640
    secrets = etc / "zynqmm/secrets.env"
    assert secrets.read_text() == f"ZYNQMM_TOKEN={TOKEN}\n" and mode(secrets) == 0o600
    assert "BOARD=KR260" in (etc / "zynqmm/environment").read_text()
    assert (board_root / agent.AGENT_PATH).read_text() == Path(agent.__file__).read_text()
    record = json.loads((board_root / "opt/zynqmm/install.json").read_text())
    assert (record["board"], record["config"], record["token"]) == ("kr260", "given", "given")
    for folder in ("opt/zynqmm/overlays", "var/lib/zynqmm", "var/log/zynqmm"):
        assert (board_root / folder).is_dir()
    assert (board_root / "opt/zynqmm/overlays").stat().st_uid == owner.pw_uid
    sudoers = etc / "sudoers.d/zynqmm"
    assert mode(sudoers) == 0o440
    assert ("nobody ALL=(root) NOPASSWD: /usr/local/share/pynq-venv/bin/python3 "
            "/opt/zynqmm/lib/zynqmm_agent.py load *") in sudoers.read_text()
    assert any("systemd: left alone" in line for line in result.output)
    assert any("management token: given" in line for line in result.output)
    # the private upload folder on the board is gone
    uploaded = next(line.rsplit(" ", 1)[1] for line in lines if "uploaded the install files" in line)
    assert uploaded.startswith("/tmp/zynqmm-install.") and not Path(uploaded).exists()
    # the token is in the secrets file and nowhere else: not in outputs, logs or records
    assert files_containing(board_root, TOKEN) == ["etc/zynqmm/secrets.env"]
    assert TOKEN not in "\n".join(result.output + lines)
    install_log = (board_root / "var/log/zynqmm/install.log").read_text()
    assert "management token: given" in install_log and TOKEN not in install_log


def test_reinstall_keeps_configuration_and_token(make_target, board_root, site_config, tmp_path):
    target = make_target()
    assert install(target).exit_status == 0
    config = board_root / "etc/zynqmm/zynqmm.toml"
    secrets = board_root / "etc/zynqmm/secrets.env"
    assert config.read_text() == default_config("kr260")
    generated = secrets.read_text()
    assert re.fullmatch(r"ZYNQMM_TOKEN=[0-9a-f]{64}\n", generated) and mode(secrets) == 0o600
    token = generated.strip().split("=", 1)[1]

    config.write_text(config.read_text() + "# edited on the board\n")
    edited = config.read_text()
    again = install(target)
    assert again.exit_status == 0
    assert config.read_text() == edited and secrets.read_text() == generated
    assert (board_root / "etc/zynqmm/zynqmm.toml.default").read_text() == default_config("kr260")
    assert any("management token: kept" in line for line in again.output)

    assert install(target, config=site_config).exit_status == 0
    assert config.read_text() == site_config.read_text()
    backups = list((board_root / "etc/zynqmm").glob("zynqmm.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == edited
    assert files_containing(board_root, token) == ["etc/zynqmm/secrets.env"]


def test_failing_install_script_is_reported_and_cleaned_up(make_target, board_root, tmp_path):
    wheel = tmp_path / "zynqmm-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))
    lines: list[str] = []
    result = install(make_target(), package=wheel, say=lines.append)
    assert result.exit_status == 1
    assert any("no pip in /usr/local/share/pynq-venv: install PYNQ first" in line
               for line in result.output)
    uploaded = next(line.rsplit(" ", 1)[1] for line in lines if "uploaded the install files" in line)
    assert not Path(uploaded).exists()
    assert "error: no pip" in (board_root / "var/log/zynqmm/install.log").read_text()


def test_inline_secrets_and_bad_input_are_refused_before_connecting(make_target, tmp_path):
    config = tmp_path / "leaky.toml"
    config.write_text(default_config("kr260") + '\n[exchange]\nusername = "ZMM01"\n'
                      'password = "hunter2-ABCDEFG"\n[metrics.extra]\napi_token = "xyz-secret-1"\n')
    offline = make_target(port=1)   # nothing listens: a connection attempt would fail differently
    with pytest.raises(InstallRefused) as refused:
        install(offline, config=config)
    message = str(refused.value)
    assert "exchange.password" in message and "metrics.extra.api_token" in message
    assert "hunter2" not in message and "xyz-secret" not in message
    assert inline_secrets('[metrics]\ntoken_env = "ZYNQMM_TOKEN"\ntoken_file = "/x"\n') == []

    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(InstallRefused, match="at least 16 URL-safe characters"):
        install(offline, token_file=short)
    (tmp_path / "broken.toml").write_text("[appliance\n")
    with pytest.raises(InstallRefused, match="not valid TOML"):
        install(offline, config=tmp_path / "broken.toml")
    with pytest.raises(InstallRefused, match="which board"):
        install(make_target(board=None, port=1))


def test_token_stays_out_of_cli_output_and_status(make_target, board_root, token_file, capsys,
                                                  tmp_path):
    target = make_target()
    targets = tmp_path / "targets.toml"
    settings = {k: str(v) if isinstance(v, Path) else v
                for k, v in target.model_dump(exclude={"name"}).items() if v is not None}
    targets.write_text("[targets.rack1]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                     for k, v in settings.items()))
    parser = argparse.ArgumentParser(prog="zynqmm")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["install", "--board", "rack1", "--targets", str(targets),
                              "--token-file", str(token_file)])
    assert args.func(args) == 0
    args = parser.parse_args(["status", "--board", "rack1", "--targets", str(targets), "--json"])
    assert args.func(args) == 1   # installed, not running
    captured = capsys.readouterr()
    assert "management token: given" in captured.out
    assert json.loads(captured.out[captured.out.index("{\n"):])["runtime"]["state"] == "absent"
    assert TOKEN not in captured.out + captured.err
    assert TOKEN not in render(local_status(str(board_root)))
    assert TOKEN not in render(remote_status(target))
    assert files_containing(board_root, TOKEN) == ["etc/zynqmm/secrets.env"]


@pytest.mark.parametrize("board", board_names())
def test_default_configuration_per_board(board):
    text = default_config(board)
    data = tomllib.loads(text)
    assert data["appliance"]["board"] == board and data["appliance"]["backend"] == "board"
    expected = "ps-bridge" if load_board(board).ingest == "ps-bridge" else "pl"
    assert data["appliance"]["ingest"] == expected
    assert data["appliance"]["status_file"] == "/run/zynqmm/status.json"
    assert inline_secrets(text) == [] and "@" not in text.replace("# ", "")
    assert "@BOARD@" in CONFIG_TEMPLATE.read_text()


def _unit(text: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_unit_runs_the_runtime_under_a_watchdog(tmp_path):
    unit = _unit(UNIT.read_text())
    assert unit["ExecStart"] == [
        "/usr/local/share/pynq-venv/bin/zynqmm run --config /etc/zynqmm/zynqmm.toml"]
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["on-failure"]
    assert int(unit["WatchdogSec"][0]) > 0 and unit["RuntimeDirectory"] == ["zynqmm"]
    assert "-/etc/zynqmm/secrets.env" in unit["EnvironmentFile"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # systemd's own parser: every key known, every value valid (ExecStart is
    # pointed at an existing program, the runtime is not on this machine).
    copy = tmp_path / "zynqmm.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/share/pynq-venv/bin/zynqmm", "/bin/true"))
    checked = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr


def test_logrotate_rules():
    text = LOGROTATE.read_text()
    header, _, body = text.partition("{")
    assert header.strip().splitlines()[-1].strip() == "/var/log/zynqmm/*.log"
    directives = [line.split()[0] for line in body.rstrip().rstrip("}").splitlines() if line.strip()]
    assert {"rotate", "compress", "missingok", "create"} <= set(directives)
    assert "copytruncate" not in directives
    logrotate = shutil.which("logrotate") or (Path("/usr/sbin/logrotate")
                                              if Path("/usr/sbin/logrotate").exists() else None)
    if logrotate:
        checked = subprocess.run([str(logrotate), "-d", str(LOGROTATE)], capture_output=True, text=True)
        assert "error" not in checked.stderr.lower(), checked.stderr


def _listen(address) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def test_sd_notify_datagrams(tmp_path):
    path = tmp_path / "notify"
    with _listen(str(path)) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.ready("overlay loaded")
        assert sock.recv(4096) == b"READY=1\nSTATUS=overlay loaded"
        assert notifier.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping() and sock.recv(4096) == b"STOPPING=1"
        with pytest.raises(ValueError, match="single lines"):
            notifier.status("two\nlines")
    name = f"zynqmm-test-{os.getpid()}"
    with _listen(b"\0" + name.encode()) as sock:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("feeds joined")
        assert sock.recv(4096) == b"STATUS=feeds joined"
    outside = Notifier({})
    assert not outside.enabled and outside.ready() is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.watchdog() is False and gone.errors == 1 and gone.last_error


def test_watchdog_interval_and_feeder(tmp_path):
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "7"}, pid=7) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval_s({}) is None
    path = tmp_path / "notify"
    now = [100.0]
    with _listen(str(path)) as sock:
        feeder = WatchdogFeeder(Notifier({"NOTIFY_SOCKET": str(path)}), 10.0, clock=lambda: now[0])
        sent = []
        for step in range(21):   # 0..20 s in 1 s steps: pings at 0, 5, 10, 15, 20
            now[0] = 100.0 + step
            sent.append(feeder.tick())
        assert [i for i, ping in enumerate(sent) if ping] == [0, 5, 10, 15, 20]
        assert [sock.recv(64) for _ in range(5)] == [b"WATCHDOG=1"] * 5
    assert WatchdogFeeder(Notifier({}), 10.0).tick() is False
    assert WatchdogFeeder.from_environment({"NOTIFY_SOCKET": str(path)}).period_s is None
