"""zynqmm console against an emulated board on a pseudo-terminal.

Every wait is bounded: the console's own --timeout, subprocess timeouts and
deadline-bounded reads of the test's pty.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from board.console import ConsoleLog, ConsoleSession, open_port
from board.console.cli import register, run
from board.console.emulator import PROFILES, BoardEmulator
from board.console.interactive import interact

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Kr260-s3cret!"
STAMPED_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} [<>#] ")


@pytest.fixture
def make_board():
    boards: list[BoardEmulator] = []

    def make(profile: str = "kr260", **options) -> BoardEmulator:
        options.setdefault("tick", 0.01)
        options.setdefault("password", PASSWORD)
        board = BoardEmulator.on_pty(profile, **options).start()
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.stop()


def console(board: BoardEmulator, *argv: str) -> int:
    """``zynqmm console --port <board> ARGV`` through the subcommand's own
    parser; the board is powered on once the port is open, as pyserial
    discards whatever arrived before."""
    parser = argparse.ArgumentParser(prog="zynqmm")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["console", "--port", board.slave_path, "--timeout", "5",
                              "--wake", "0", *argv])
    assert args.func is run

    def open_then_power_on(port: str, baud: int):
        serial_port = open_port(port, baud)
        board.power_on()
        return serial_port

    return run(args, open_serial=open_then_power_on)


def login_args(user: str = "ubuntu", password: str = PASSWORD) -> list[str]:
    return ["--login", user, "--password", password]


def test_login_and_run_captures_the_output_exactly(make_board, capsys):
    board = make_board()
    status = console(board, *login_args(), "--run", "uname -a")
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out == PROFILES["kr260"].uname + "\n"


@pytest.mark.parametrize("command, status, output", [
    ("sh -c 'exit 3'", 3, ""),
    ("false", 1, ""),
    ("cat /no/such/file", 1, "cat: /no/such/file: No such file or directory\n"),
    ("frobnicate", 127, "-bash: frobnicate: command not found\n"),
    # The device-tree model ends in NUL and no newline: the status still
    # comes back and the output is kept byte for byte.
    ("cat /proc/device-tree/model", 0, "ZynqMP KR260 revB\0"),
    ("echo one; echo two", 0, "one\ntwo\n"),
])
def test_run_exits_with_the_commands_status(make_board, capsys, command, status, output):
    board = make_board()
    assert console(board, *login_args(), "--run", command) == status
    assert capsys.readouterr().out == output


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_board_profile_boots_to_a_shell(make_board, capsys, profile):
    board = make_board(profile)
    user = PROFILES[profile].user
    assert console(board, *login_args(user), "--run", "cat /proc/device-tree/model") == 0
    assert capsys.readouterr().out == PROFILES[profile].model + "\0"


def test_wrong_password_fails_cleanly(make_board, capsys, tmp_path):
    board = make_board()
    log = tmp_path / "console.log"
    status = console(board, *login_args(password="not-the-password"), "--run", "uname -a",
                     "--log", str(log))
    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err == "zynqmm console: login as 'ubuntu' refused by the board: Login incorrect\n"
    assert "not-the-password" not in log.read_text()


def test_timeout_reports_the_last_lines_seen(make_board, capsys):
    board = make_board()
    status = console(board, "--timeout", "1", "--expect", "a line the board never prints")
    out, err = capsys.readouterr()
    assert status == 124
    assert err.startswith("zynqmm console: timed out after 1 s waiting for "
                          "/a line the board never prints/; last 20 lines from the board:\n")
    shown = [line[4:] for line in err.splitlines() if line.startswith("  | ")]
    assert len(shown) == 20
    assert shown[-1] == "kria login: "
    assert "[  OK  ] Reached target Multi-User System." in shown
    assert "Ubuntu 22.04.4 LTS kria ttyPS1" in shown


def test_timeout_with_a_silent_board_says_nothing_was_received(make_board, capsys):
    board = make_board(booted=True)
    board.power_on()
    # The login prompt went out before the console attached: it sees nothing.
    assert board.wait_until_idle()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["console", "--port", board.slave_path, "--timeout", "0.5",
                              "--wake", "0", "--login", "ubuntu", "--password", PASSWORD])
    assert run(args) == 124
    err = capsys.readouterr().err
    assert "waiting for the Linux login prompt" in err
    assert "(nothing received)" in err


def test_a_silent_board_is_woken_with_enter(make_board, capsys):
    board = make_board(booted=True)
    board.power_on()
    assert board.wait_until_idle()
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["console", "--port", board.slave_path, "--timeout", "5",
                              "--wake", "0.2", *login_args(), "--run", "whoami"])
    assert run(args) == 0
    assert capsys.readouterr().out == "ubuntu\n"


@pytest.mark.parametrize("profile, prompt", [("kr260", "ZynqMP> "), ("pynq-z2", "Zynq> ")])
def test_stop_at_the_uboot_prompt_then_boot_linux(make_board, capsys, tmp_path, profile, prompt):
    # A countdown of whole seconds leaves ample time to press the key; the
    # test itself does not wait for it to run out.
    board = make_board(profile, tick=1.0, autoboot_s=5)
    log = tmp_path / "uboot.log"
    status = console(board, "--stop-uboot", "--log", str(log),
                     "--send", "version", "--expect", r"U-Boot 2022\.01 \(",
                     "--expect", f"^{re.escape(prompt)}$",
                     "--send", "boot", *login_args(PROFILES[profile].user),
                     "--run", "hostname")
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out == PROFILES[profile].hostname + "\n"
    lines = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    stopped_at = lines.index("< Hit any key to stop autoboot:  5 ")
    # The key goes out while the countdown still shows 5, U-Boot answers at
    # its prompt, and the kernel starts only after "boot".
    assert lines[stopped_at + 1] == "> "
    assert lines[stopped_at + 3:stopped_at + 5] == [f"< {prompt}", "> version"]
    booted_at = lines.index("> boot")
    assert lines.index("< Starting kernel ...") > booted_at
    assert not any("Linux version" in line for line in lines[:booted_at])


def test_log_has_timestamps_both_directions_and_no_password(make_board, capsys, tmp_path):
    board = make_board()
    log = tmp_path / "console.log"
    # The command prints the password back: the console shows it (it was
    # asked for) but the transcript must not contain it.
    assert console(board, *login_args(), "--log", str(log), "--run", f"echo {PASSWORD}") == 0
    assert capsys.readouterr().out == PASSWORD + "\n"
    text = log.read_text()
    lines = text.splitlines()
    assert lines and all(STAMPED_LINE.match(line) for line in lines)
    assert PASSWORD not in text
    marks = [line.split(" ", 2)[1:] for line in lines]
    assert ["<", "Xilinx Zynq MP First Stage Boot Loader"] in marks
    assert ["<", "kria login: "] in marks
    assert [">", "ubuntu"] in marks
    assert [">", "[secret withheld]"] in marks
    assert ["<", "echo ******** ; echo __rc=$?"] not in marks   # only masking, no rewriting
    assert ["<", "********"] in marks


def test_transcript_lines_masking_and_control_characters():
    clock = iter([100.0, 101.0, 102.0, 103.0, 104.0]).__next__
    stream = io.StringIO()
    log = ConsoleLog(stream, clock=clock)
    log.add_secret("hunter2")
    log.received("Hit any key: 3 \b\b\b 2")      # t=100, line unfinished
    log.received(" \nPassword: ")                # t=101 finishes it, starts the prompt
    log.sent("hunter2", secret=True)             # t=102 flushes the prompt first
    log.received("you typed hunter2\n")          # t=103
    log.close()
    rows = [line.split(" ", 1) for line in stream.getvalue().splitlines()]
    stamps = [stamp for stamp, _ in rows]
    assert [rest for _, rest in rows] == [
        "< Hit any key: 3 \\x08\\x08\\x08 2 ",
        "< Password: ",
        "> [secret withheld]",
        "< you typed ********",
    ]
    # Each line carries the time its first character arrived.
    assert [s[-6:] for s in stamps] == [
        time_suffix(100.0), time_suffix(101.0), time_suffix(102.0), time_suffix(103.0)]


def time_suffix(when: float) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(when).isoformat(timespec="milliseconds")[-6:]


def test_expect_and_send_keep_command_line_order():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["console", "--port", "x", "--expect", "a", "--send", "b",
                              "--expect", "c", "--send", "d"])
    assert args.steps == [("expect", "a"), ("send", "b"), ("expect", "c"), ("send", "d")]
    assert parser.parse_args(["console", "--port", "x"]).steps == []


def read_until(fd: int, needle: bytes, seen: bytearray, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen; got {bytes(seen[-400:])!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.1))
        if ready:
            seen += os.read(fd, 4096)


def test_interactive_session_through_a_second_pty(make_board, tmp_path):
    board = make_board(booted=True)
    board.power_on()
    log = tmp_path / "interactive.log"
    keyboard, terminal = os.openpty()   # the engineer's terminal
    settings_before = termios.tcgetattr(terminal)
    proc = subprocess.Popen(
        [sys.executable, "-m", "board.console", "--port", board.slave_path, "--log", str(log)],
        stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT)
    seen = bytearray()
    try:
        read_until(keyboard, b"Ctrl-] quits", seen)
        for keys, answer in [(b"\r", b"kria login: "), (b"ubuntu\r", b"Password: "),
                             (PASSWORD.encode() + b"\r", b"ubuntu@kria:~$ "),
                             (b"echo hello from the bench\r",
                              b"hello from the bench\r\nubuntu@kria:~$ ")]:
            seen.clear()
            os.write(keyboard, keys)
            read_until(keyboard, answer, seen)
        os.write(keyboard, b"\x1d")
        assert proc.wait(timeout=10) == 0
        assert termios.tcgetattr(terminal) == settings_before, "terminal settings not restored"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(keyboard)
        os.close(terminal)
    text = log.read_text()
    assert PASSWORD not in text
    marks = [line.split(" ", 2)[1:] for line in text.splitlines()]
    assert [">", "ubuntu"] in marks
    assert [">", "[secret withheld]"] in marks
    assert [">", "echo hello from the bench"] in marks
    assert ["<", "hello from the bench"] in marks


def test_interactive_session_from_a_pipe(make_board):
    board = make_board(booted=True)
    board.power_on()
    port = open_port(board.slave_path)
    keys_read, keys_write = os.pipe()
    stdout, stderr = io.BytesIO(), io.StringIO()
    # Keys typed ahead: Enter wakes the getty; end of input ends the session.
    os.write(keys_write, b"\r")
    os.close(keys_write)
    session = ConsoleSession(port)
    try:
        status = interact(session, stdin_fd=keys_read, stdout=stdout, stderr=stderr)
    finally:
        session.close()
        os.close(keys_read)
    assert status == 0
    assert "quits" in stderr.getvalue()


def test_bad_port_is_a_clear_error_without_traceback(tmp_path):
    missing = tmp_path / "ttyUSB9"
    proc = subprocess.run(
        [sys.executable, "-m", "board.console", "--port", str(missing), "--run", "true"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"zynqmm console: cannot open serial port {missing}: "
                           "No such file or directory\n")
    assert "Traceback" not in proc.stderr
