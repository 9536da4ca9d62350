"""``zynqmm flash`` and ``zynqmm rollback`` against a real SSH session: the
loopback OpenSSH server stands in for the board, a stand-in fabric answers
the loader's register reads from the identity baked into each bitstream."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from board.deploy import agent, cli
from board.deploy.flash import (FlashRefused, flash, identity_offsets, parse_register_report,
                                register_problems, service_guard, with_service_restarted)
from board.deploy.rollback import RollbackRefused, rollback
from board.deploy.ssh import (ConnectionProblem, RemoteError, Target, TargetError, load_targets,
                              resolve_target)
from rtl.regmap.driver import MAP_VERSION


def overlays(root: Path) -> Path:
    return root / agent.OVERLAYS_DIR


def link(root: Path, name: str) -> str | None:
    path = overlays(root) / name
    return os.readlink(path) if path.is_symlink() else None


def sha_of(folder: Path) -> str:
    return json.loads((folder / "zynqmm.json").read_text())["bitstream"]["sha256"]


def loads(root: Path) -> list[str]:
    log = root / "fabric-loads.log"
    return [Path(line).parent.name for line in log.read_text().splitlines()] if log.exists() else []


def entries(root: Path) -> list[str]:
    return sorted(p.name for p in overlays(root).iterdir()) if overlays(root).exists() else []


class CuttingProxy:
    """A loopback TCP relay to the SSH server that drops the connection once
    the client has sent ``budget`` bytes, as a pulled cable would mid-copy."""

    def __init__(self, upstream_port: int, budget: int):
        self.upstream_port = upstream_port
        self.budget = budget
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        sent = [0]

        def pump(source, sink, counted: bool) -> None:
            try:
                while data := source.recv(65536):
                    if counted:
                        sent[0] += len(data)
                        if sent[0] > self.budget:
                            self.cut.set()
                            break
                    sink.sendall(data)
            except OSError:
                pass
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(upstream, client, False), daemon=True)
        back.start()
        pump(client, upstream, True)
        back.join(timeout=30)
        client.close()
        upstream.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=30)


def test_good_flash_switches_current_and_keeps_previous(make_target, make_overlay, board_root):
    target = make_target()
    first, second, third = (make_overlay(b) for b in (0x0A000001, 0x0A000002, 0x0A000003))
    lines: list[str] = []
    result = flash(target, first, say=lines.append)
    assert result.name == sha_of(first) and result.previous is None
    assert result.build_id == "0x0a000001" and result.map_version == f"0x{MAP_VERSION:08x}"
    assert link(board_root, "current") == sha_of(first) and link(board_root, "previous") is None
    on_board = overlays(board_root) / sha_of(first)
    for name in ("zynqmm.bit", "zynqmm.hwh", "zynqmm.json"):
        assert (on_board / name).read_bytes() == (first / name).read_bytes()
    assert loads(board_root) == [sha_of(first)]
    assert any("verified on the board" in line for line in lines)
    # the board's copy of the agent is this host's
    assert (board_root / agent.AGENT_PATH).read_bytes() == Path(agent.__file__).read_bytes()

    assert flash(target, second).previous == sha_of(first)
    assert (link(board_root, "current"), link(board_root, "previous")) == (sha_of(second), sha_of(first))
    third_result = flash(target, third)
    assert third_result.pruned == [sha_of(first)]
    assert (link(board_root, "current"), link(board_root, "previous")) == (sha_of(third), sha_of(second))
    assert entries(board_root) == sorted(["current", "previous", agent.HISTORY,
                                          sha_of(second), sha_of(third)])
    history = [json.loads(line) for line in (overlays(board_root) / agent.HISTORY).read_text().splitlines()]
    assert [h["current"] for h in history] == [sha_of(first), sha_of(second), sha_of(third)]


def test_reflashing_the_current_overlay_keeps_it(make_target, make_overlay, board_root):
    target = make_target()
    first = make_overlay(0x0A000010)
    flash(target, first)
    result = flash(target, first)
    assert link(board_root, "current") == sha_of(first) and result.previous is None
    assert loads(board_root) == [sha_of(first)] * 2


def test_corrupted_upload_is_refused_and_nothing_switched(make_target, make_overlay, board_root):
    target = make_target()
    good, other = make_overlay(0x0B000001), make_overlay(0x0B000002)
    flash(target, good)

    async def flip_a_byte(remote, staging):
        sftp = await remote.sftp()
        async with sftp.open(f"{staging}/zynqmm.bit", "r+b") as stream:
            await stream.seek(5000)
            byte = await stream.read(1)
            await stream.seek(5000)
            await stream.write(bytes([byte[0] ^ 0x10]))

    with pytest.raises(FlashRefused) as refused:
        flash(target, other, after_upload=flip_a_byte)
    assert "nothing was switched" in refused.value.summary
    assert any("zynqmm.bit on the board has sha256" in r for r in refused.value.reasons)
    assert link(board_root, "current") == sha_of(good)
    assert entries(board_root) == sorted(["current", agent.HISTORY, sha_of(good)])
    assert loads(board_root) == [sha_of(good)]   # the damaged bitstream never reached the fabric


def test_interrupted_copy_switches_nothing_and_a_rerun_succeeds(sshd, make_target, make_overlay,
                                                               board_root):
    good = make_overlay(0x0C000001)
    big = make_overlay(0x0C000002, size=3 * 1024 * 1024)
    flash(make_target(), good)
    proxy = CuttingProxy(sshd.port, budget=1024 * 1024)
    try:
        with pytest.raises(ConnectionProblem, match="connection lost while uploading zynqmm.bit"):
            flash(make_target(port=proxy.port,
                              known_hosts=sshd.known_hosts_for(proxy.port)), big)
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    assert link(board_root, "current") == sha_of(good)
    leftovers = [n for n in entries(board_root) if n.startswith(agent.STAGING_PREFIX)]
    assert len(leftovers) == 1 and sha_of(big) not in entries(board_root)
    partial = overlays(board_root) / leftovers[0] / "zynqmm.bit"
    assert not partial.exists() or partial.stat().st_size < (big / "zynqmm.bit").stat().st_size
    assert loads(board_root) == [sha_of(good)]

    result = flash(make_target(), big)
    assert result.cleared == leftovers
    assert (link(board_root, "current"), link(board_root, "previous")) == (sha_of(big), sha_of(good))
    assert not [n for n in entries(board_root) if n.startswith(".")]


@pytest.mark.parametrize("mismatch, reason", [
    ({"fabric_map_version": MAP_VERSION ^ 0x00010000}, "this host's register driver is"),
    ({"fabric_build_id": 0x0DEAD000}, "the fabric's build ID is 0x0dead000, the manifest says 0x0d000002"),
])
def test_register_mismatch_is_refused_and_current_reloaded(make_target, make_overlay, board_root,
                                                           mismatch, reason):
    target = make_target()
    good = make_overlay(0x0D000001)
    wrong = make_overlay(0x0D000002, **mismatch)
    flash(target, good)
    with pytest.raises(FlashRefused) as refused:
        flash(target, wrong)
    assert any(reason in r for r in refused.value.reasons), refused.value.reasons
    assert "was loaded again" in refused.value.summary
    assert link(board_root, "current") == sha_of(good)
    assert sha_of(wrong) not in entries(board_root)
    assert loads(board_root) == [sha_of(good), sha_of(wrong), sha_of(good)]


def test_manifest_for_another_map_is_refused_before_connecting(make_target, make_overlay, board_root):
    overlay = make_overlay(0x0E000001)
    manifest = json.loads((overlay / "zynqmm.json").read_text())
    manifest["map_version"] = f"0x{MAP_VERSION ^ 1:08x}"
    (overlay / "zynqmm.json").write_text(json.dumps(manifest))
    with pytest.raises(FlashRefused, match="map_version"):
        flash(make_target(port=1), overlay)   # nothing listens on port 1: no connection is tried
    with pytest.raises(FlashRefused, match="built for board kr260, the target is a zcu102"):
        flash(make_target(board="zcu102", port=1), make_overlay(0x0E000002))
    assert not overlays(board_root).exists()


def test_failing_loader_is_refused(make_target, make_overlay, board_root):
    with pytest.raises(FlashRefused) as refused:
        flash(make_target(loader="sh -c 'echo no FPGA manager >&2; exit 3'"), make_overlay(0x0F000001))
    assert any("the loader failed (exit status 3): no FPGA manager" in r for r in refused.value.reasons)
    assert link(board_root, "current") is None
    assert "no overlay was current before" in refused.value.summary


def test_rollback_restores_previous_and_toggles(make_target, make_overlay, board_root):
    target = make_target()
    first, second = make_overlay(0x10000001), make_overlay(0x10000002)
    flash(target, first)
    with pytest.raises(RollbackRefused, match="nothing to roll back to"):
        rollback(target)
    flash(target, second)
    result = rollback(target)
    assert (result.current, result.previous, result.build_id) == (sha_of(first), sha_of(second),
                                                                  "0x10000001")
    assert (link(board_root, "current"), link(board_root, "previous")) == (sha_of(first), sha_of(second))
    assert loads(board_root)[-1] == sha_of(first)
    rollback(target)
    assert (link(board_root, "current"), link(board_root, "previous")) == (sha_of(second), sha_of(first))
    events = [json.loads(line)["event"] for line in
              (overlays(board_root) / agent.HISTORY).read_text().splitlines()]
    assert events == ["flash", "flash", "rollback", "rollback"]


def test_rollback_refuses_a_damaged_previous(make_target, make_overlay, board_root):
    target = make_target()
    first, second = make_overlay(0x11000001), make_overlay(0x11000002)
    flash(target, first)
    flash(target, second)
    damaged = overlays(board_root) / sha_of(first) / "zynqmm.bit"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(RollbackRefused) as refused:
        rollback(target)
    assert any("zynqmm.bit on the board is" in r for r in refused.value.reasons)
    assert link(board_root, "current") == sha_of(second)
    assert loads(board_root) == [sha_of(first), sha_of(second)]


def test_host_key_is_checked(make_target, make_overlay, tmp_path):
    strangers = tmp_path / "known_hosts"
    strangers.write_text("")
    with pytest.raises(ConnectionProblem, match="host key not trusted"):
        flash(make_target(known_hosts=strangers), make_overlay(0x12000001))


def test_cli_flash_and_rollback_through_a_targets_file(make_target, make_overlay, board_root,
                                                       tmp_path, capsys):
    target = make_target()
    targets = tmp_path / "targets.toml"
    settings = {k: str(v) if isinstance(v, Path) else v
                for k, v in target.model_dump(exclude={"name"}).items() if v is not None}
    targets.write_text("[targets.rack1]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                     for k, v in settings.items()))
    parser = argparse.ArgumentParser(prog="zynqmm")
    cli.register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return args.func(args)

    first, second = make_overlay(0x13000001), make_overlay(0x13000002)
    assert run("flash", "--board", "rack1", "--targets", str(targets), "--overlay", str(first)) == 0
    assert run("flash", "--board", "rack1", "--targets", str(targets), "--overlay", str(second),
               "--json") == 0
    out = capsys.readouterr().out
    assert f"current is {sha_of(first)[:12]} (build 0x13000001" in out
    assert json.loads(out[out.index("{"):])["previous"] == sha_of(first)
    assert run("rollback", "--board", "rack1", "--targets", str(targets)) == 0
    assert link(board_root, "current") == sha_of(first)
    capsys.readouterr()
    wrong = make_overlay(0x13000003, fabric_build_id=0x13000004)
    assert run("flash", "--board", "rack1", "--targets", str(targets), "--overlay", str(wrong)) == 1
    err = capsys.readouterr().err
    assert "the fabric's build ID is 0x13000004, the manifest says 0x13000003" in err
    assert run("rollback", "--board", "nowhere:1", "--targets", str(targets)) == 2


def test_register_report_parsing_and_checks():
    line = agent.register_report("/x/zynqmm.bit", "fabric", 0xA0000000,
                                 {"build_id": 0x1234, "map_version": MAP_VERSION})
    report = parse_register_report("pynq says hello\n" + line + "\n")
    assert report.base == 0xA0000000 and report.registers["build_id"] == 0x1234
    manifest = {"build_id": "0x00001234", "map_version": f"0x{MAP_VERSION:08x}"}
    assert register_problems(manifest, report) == []
    assert len(register_problems(manifest, report, host_map_version=MAP_VERSION ^ 1)) == 1
    with pytest.raises(RemoteError, match="printed no 'zynqmm-registers' line"):
        parse_register_report("Traceback ...\n")
    with pytest.raises(RemoteError, match="garbled"):
        parse_register_report('zynqmm-registers {"registers": {"build_id": "zz"}}')
    missing = parse_register_report(agent.register_report("/b", "fabric", 0, {"build_id": 1}))
    assert register_problems(manifest, missing) == ["the loader did not report the map_version register"]
    assert identity_offsets() == {"build_id": 0x0, "map_version": 0x4}


def test_loader_arguments_are_checked(tmp_path, capsys):
    assert agent.load_main([str(tmp_path / "none.bit"), "--ip", "fabric", "--register", "a=0x0"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        agent.load_main(["x.bit", "--ip", "fabric", "--register", "build_id=0x3"])
    assert "word-aligned" in capsys.readouterr().err


def test_target_specs_and_targets_file_errors(tmp_path):
    spec = resolve_target("ubuntu@10.0.0.7:2222", tmp_path / "absent.toml")
    assert (spec.host, spec.port, spec.user, spec.root) == ("10.0.0.7", 2222, "ubuntu", "/")
    assert spec.use_sudo and spec.loader_argv()[-2:] == [
        "/opt/zynqmm/lib/zynqmm_agent.py", "load"]
    assert resolve_target("[fe80::1]:22", tmp_path / "absent.toml").host == "fe80::1"
    with pytest.raises(TargetError, match="neither a target"):
        resolve_target("a b", tmp_path / "absent.toml")
    with pytest.raises(TargetError, match="port"):
        resolve_target("host:99999", tmp_path / "absent.toml")
    bad = tmp_path / "targets.toml"
    bad.write_text('[targets.r1]\nhost = "h"\nboard = "kr999"\nroot = "relative"\nprot = 22\n')
    with pytest.raises(TargetError) as error:
        load_targets(bad)
    text = str(error.value)
    assert "targets.r1" in text and "board" in text and "root" in text and "prot" in text


def test_agent_guards_its_folder(tmp_path):
    root = str(tmp_path)
    begun = agent.cmd_begin(root)
    staging = begun["staging"]
    assert begun["links"]["current"] is None and begun["links"]["service"] is None
    (Path(staging) / "zynqmm.bit").write_bytes(b"x")
    with pytest.raises(agent.AgentError, match="not an overlay name"):
        agent.cmd_commit(root, staging, "../../etc")
    with pytest.raises(agent.AgentError, match="is not a folder of"):
        agent.cmd_commit(root, str(tmp_path), "a" * 64)
    with pytest.raises(agent.AgentError, match="is not a folder of"):
        agent.cmd_discard(root, str(tmp_path / "opt"))
    name = "a" * 64
    assert agent.cmd_commit(root, staging, name)["replaced"] is True
    with pytest.raises(agent.AgentError, match="no overlay"):
        agent.cmd_switch(root, "b" * 64, None)
    agent.cmd_switch(root, name, "none")
    assert agent.cmd_discard(root, str(overlays(tmp_path) / name)) == {"removed": None, "kept": name}
    with pytest.raises(agent.AgentError, match="current is a+ on the board, expected none"):
        agent.cmd_switch(root, name, "none")
    with pytest.raises(agent.AgentError, match="no previous overlay"):
        agent.cmd_rollback(root, None, None)
    assert agent.main(["--root", root, "rollback"]) == 1


class SystemctlRecorder:
    """Enough of a Remote for the service handling: records the commands."""

    def __init__(self, failing_verb: str | None = None):
        self.target = Target(name="t", host="h", user="ubuntu")
        self.commands: list[list[str]] = []
        self.failing_verb = failing_verb

    async def run(self, argv, input=None, what=None):
        self.commands.append(list(argv))
        failed = self.failing_verb in argv
        return SimpleNamespace(returncode=1 if failed else 0, stdout="",
                               stderr="Job for zynqmm.service failed" if failed else "")


def test_running_service_is_refused_or_stopped_and_started_again():
    remote = SystemctlRecorder()
    assert asyncio.run(service_guard(remote, "inactive", False, print)) is False
    assert asyncio.run(service_guard(remote, None, True, print)) is False
    with pytest.raises(FlashRefused, match="pass --restart"):
        asyncio.run(service_guard(remote, "active", False, print))
    assert remote.commands == []

    async def fails():
        raise RemoteError("the loader failed")

    async def succeeds():
        return "flashed"

    said: list[str] = []
    stopped = asyncio.run(service_guard(remote, "active", True, said.append))
    assert stopped and asyncio.run(with_service_restarted(remote, stopped, said.append, succeeds)) == "flashed"
    with pytest.raises(RemoteError, match="the loader failed"):
        asyncio.run(with_service_restarted(remote, True, said.append, fails))
    assert remote.commands == [["sudo", "-n", "systemctl", verb, "zynqmm.service"]
                               for verb in ("stop", "start", "start")]
    broken = SystemctlRecorder(failing_verb="start")
    with pytest.raises(RemoteError, match="the loader failed"):
        asyncio.run(with_service_restarted(broken, True, said.append, fails))
    assert "could not start zynqmm.service again" in said[-1]
    with pytest.raises(RemoteError, match="systemctl start zynqmm.service failed"):
        asyncio.run(with_service_restarted(broken, True, said.append, succeeds))
