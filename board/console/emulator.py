"""A Zynq board's serial console on a pseudo-terminal, for trying the console
tooling (and testing it) without hardware.

The emulated board prints a boot log in the shape of the real one (FSBL,
ARM trusted firmware, U-Boot with its autoboot countdown, kernel messages,
systemd, getty), accepts one user, and runs a tiny shell that knows
``uname``, ``cat`` of a few files, ``echo`` with ``$?``, ``true``/``false``,
``sh -c 'exit N'``, ``hostname``, ``whoami``, ``exit`` and ``reboot``.
At the U-Boot prompt it knows ``version``, ``printenv``, ``echo``, ``boot``
and ``reset``.  The log lines are representative, not captured from a board.

    python -m board.console.emulator --board kr260

prints the pty to give ``zynqmm console --port``; press Enter in the
emulator's terminal to power the board on (again to power-cycle it).
"""
from __future__ import annotations

import argparse
import os
import select
import shlex
import sys
import threading
import time
import tty
from dataclasses import dataclass


@dataclass(frozen=True)
class BoardProfile:
    name: str
    hostname: str
    user: str
    password: str
    tty: str
    first_stage: tuple[str, ...]
    uboot: tuple[str, ...]
    uboot_prompt: str
    uboot_boot: tuple[str, ...]
    kernel: tuple[str, ...]
    getty_banner: str
    motd: tuple[str, ...]
    uname: str
    model: str


_SYSTEMD = (
    "[  OK  ] Reached target Local File Systems.",
    "[  OK  ] Started Journal Service.",
    "         Starting Network Configuration...",
    "[  OK  ] Started Network Configuration.",
    "[  OK  ] Started Serial Getty on {tty}.",
    "[  OK  ] Reached target Login Prompts.",
    "[  OK  ] Reached target Multi-User System.",
)

_ZYNQMP_UBOOT_BOOT = (
    "switch to partitions #0, OK",
    "mmc1 is current device",
    "Scanning mmc 1:1...",
    "Found U-Boot script /boot.scr",
    "2010 bytes read in 14 ms (140.6 KiB/s)",
    "## Executing script at 20000000",
    "21457280 bytes read in 1709 ms (12 MiB/s)",
    "## Loading kernel from FIT Image at 10000000 ...",
    "   Verifying Hash Integrity ... OK",
    "## Flattened Device Tree blob at 100000000",
    "   Loading Device Tree to 000000007bbe2000, end 000000007bbfefff ... OK",
    "",
    "Starting kernel ...",
    "",
)

PROFILES = {
    "kr260": BoardProfile(
        name="kr260", hostname="kria", user="ubuntu", password="ubuntu", tty="ttyPS1",
        first_stage=(
            "Xilinx Zynq MP First Stage Boot Loader",
            "Release 2022.2   Oct 21 2022  -  15:42:07",
            "PMU Firmware 2022.2     Oct 21 2022   15:42:07",
            "NOTICE:  BL31: Non secure code at 0x8000000",
            "NOTICE:  BL31: v2.6(release):xlnx_rebase_v2.6_2022.2",
            "NOTICE:  BL31: Built : 15:42:07, Oct 21 2022",
        ),
        uboot=(
            "", "", "U-Boot 2022.01 (Oct 21 2022 - 15:42:07 +0000)", "",
            "CPU:   ZynqMP", "Silicon: v3", "Chip:  zu5",
            "Model: ZynqMP SMK-K26 Rev1/B/A", "Board: Xilinx ZynqMP", "DRAM:  4 GiB",
            "PMUFW:  v1.1", "EL Level:       EL2", "MMC:   mmc@ff170000: 1",
            "In:    serial", "Out:   serial", "Err:   serial",
            "Bootmode: QSPI_MODE", "Net:   eth0: ethernet@ff0c0000",
        ),
        uboot_prompt="ZynqMP> ",
        uboot_boot=_ZYNQMP_UBOOT_BOOT,
        kernel=(
            "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]",
            "[    0.000000] Linux version 5.15.0-1027-xilinx-zynqmp (buildd@ubuntu) "
            "(gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0) #31-Ubuntu SMP Tue Jan 30 10:45:00 UTC 2024",
            "[    0.000000] Machine model: ZynqMP KR260 revB",
            "[    0.000000] earlycon: cdns0 at MMIO 0x00000000ff010000 (options '115200n8')",
            "[    1.052781] ff010000.serial: ttyPS1 at MMIO 0xff010000 (irq = 22) is a xuartps",
            "[    3.118032] macb ff0c0000.ethernet eth0: Cadence GEM rev 0x50070106 at 0xff0c0000",
            "[    4.812205] Run /init as init process",
            "[    6.401337] systemd[1]: Detected architecture arm64.",
        ),
        getty_banner="Ubuntu 22.04.4 LTS kria ttyPS1",
        motd=("Welcome to Ubuntu 22.04.4 LTS (GNU/Linux 5.15.0-1027-xilinx-zynqmp aarch64)", ""),
        uname="Linux kria 5.15.0-1027-xilinx-zynqmp #31-Ubuntu SMP Tue Jan 30 10:45:00 UTC 2024 "
              "aarch64 aarch64 aarch64 GNU/Linux",
        model="ZynqMP KR260 revB",
    ),
    "zcu102": BoardProfile(
        name="zcu102", hostname="xilinx-zcu102-20222", user="petalinux", password="petalinux",
        tty="ttyPS0",
        first_stage=(
            "Xilinx Zynq MP First Stage Boot Loader",
            "Release 2022.2   Oct 12 2022  -  08:13:54",
            "PMU Firmware 2022.2     Oct 12 2022   08:13:54",
            "NOTICE:  BL31: v2.6(release):xlnx_rebase_v2.6_2022.2",
            "NOTICE:  BL31: Built : 08:13:54, Oct 12 2022",
        ),
        uboot=(
            "", "", "U-Boot 2022.01 (Oct 12 2022 - 08:13:54 +0000)", "",
            "CPU:   ZynqMP", "Silicon: v3", "Board: Xilinx ZynqMP", "DRAM:  4 GiB",
            "MMC:   mmc@ff170000: 0", "In:    serial", "Out:   serial", "Err:   serial",
            "Bootmode: LVL_SHFT_SD_MODE1", "Net:   eth0: ethernet@ff0e0000",
        ),
        uboot_prompt="ZynqMP> ",
        uboot_boot=_ZYNQMP_UBOOT_BOOT,
        kernel=(
            "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]",
            "[    0.000000] Linux version 5.15.36-xilinx-v2022.2 (oe-user@oe-host) "
            "(aarch64-xilinx-linux-gcc (GCC) 11.2.0) #1 SMP PREEMPT Wed Oct 12 08:13:54 UTC 2022",
            "[    0.000000] Machine model: ZynqMP ZCU102 Rev1.0",
            "[    2.503112] macb ff0e0000.ethernet eth0: Cadence GEM rev 0x50070106 at 0xff0e0000",
            "[    4.120934] Run /sbin/init as init process",
        ),
        getty_banner="PetaLinux 2022.2 xilinx-zcu102-20222 ttyPS0",
        motd=(),
        uname="Linux xilinx-zcu102-20222 5.15.36-xilinx-v2022.2 #1 SMP PREEMPT "
              "Wed Oct 12 08:13:54 UTC 2022 aarch64 GNU/Linux",
        model="ZynqMP ZCU102 Rev1.0",
    ),
    "pynq-z2": BoardProfile(
        name="pynq-z2", hostname="pynq", user="xilinx", password="xilinx", tty="ttyPS0",
        first_stage=(
            "Xilinx First Stage Boot Loader",
            "Release 2022.1\tApr 18 2022-10:02:11",
            "Devcfg driver initialized",
            "Silicon Version 3.1",
            "Boot mode is SD",
            "SD: rc= 0",
            "Handoff Address: 0x04000000",
        ),
        uboot=(
            "", "", "U-Boot 2022.01 (Apr 18 2022 - 10:02:11 +0000)", "",
            "CPU:   Zynq 7z020", "Silicon: v3.1", "Model: Zynq PYNQ-Z2 Board",
            "DRAM:  ECC disabled 512 MiB", "MMC:   mmc@e0100000: 0",
            "In:    serial@e0000000", "Out:   serial@e0000000", "Err:   serial@e0000000",
            "Net:   ZYNQ GEM: e000b000, mdio bus e000b000, phyaddr 1, interface rgmii-id",
        ),
        uboot_prompt="Zynq> ",
        uboot_boot=(
            "switch to partitions #0, OK",
            "mmc0 is current device",
            "Scanning mmc 0:1...",
            "Found U-Boot script /boot.scr",
            "## Executing script at 03000000",
            "## Loading kernel from FIT Image at 10000000 ...",
            "",
            "Starting kernel ...",
            "",
        ),
        kernel=(
            "[    0.000000] Booting Linux on physical CPU 0x0",
            "[    0.000000] Linux version 5.15.19-xilinx-v2022.1 (oe-user@oe-host) "
            "(arm-xilinx-linux-gnueabi-gcc (GCC) 11.2.0) #1 SMP PREEMPT Mon Apr 11 17:52:14 UTC 2022",
            "[    0.000000] CPU: ARMv7 Processor [413fc090] revision 0 (ARMv7), cr=18c5387d",
            "[    0.000000] OF: fdt: Machine model: Zynq PYNQ-Z2 Board",
            "[    5.210446] Run /sbin/init as init process",
        ),
        getty_banner="PYNQ Linux, based on Ubuntu 22.04 pynq ttyPS0",
        motd=("Welcome to PYNQ Linux, based on Ubuntu 22.04 (GNU/Linux 5.15.19-xilinx-v2022.1 armv7l)", ""),
        uname="Linux pynq 5.15.19-xilinx-v2022.1 #1 SMP PREEMPT Mon Apr 11 17:52:14 UTC 2022 "
              "armv7l armv7l armv7l GNU/Linux",
        model="Zynq PYNQ-Z2 Board",
    ),
}


class _Stopped(Exception):
    pass


class _PowerCycle(Exception):
    pass


class BoardEmulator:
    """Plays a board on ``fd`` (the master side of a pty) in a thread.

    ``tick`` is the length of one autoboot second, ``line_delay`` the pause
    between boot-log lines, ``login_delay`` the pause before "Login
    incorrect"; tests make them short.  ``booted=True`` starts at the
    login prompt (the board was on before the console attached) and prints
    it again when Enter is pressed.  Nothing is printed before
    :meth:`power_on`.
    """

    def __init__(self, fd: int, profile: str | BoardProfile = "kr260", *,
                 user: str | None = None, password: str | None = None,
                 autoboot_s: int = 3, tick: float = 1.0, line_delay: float = 0.0,
                 login_delay: float = 0.0, booted: bool = False) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.user = user or self.profile.user
        self.password = self.profile.password if password is None else password
        self.autoboot_s = autoboot_s
        self.tick = tick
        self.line_delay = line_delay
        self.login_delay = login_delay
        self.booted = booted
        self._fd = fd
        os.set_blocking(fd, False)
        self._stop = threading.Event()
        self._power = threading.Event()
        self._cycle = threading.Event()
        self._pending = b""
        self._last_status = 0
        self.waiting_for_input = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"emulated-{self.profile.name}",
                                        daemon=True)
        self._slave_fd: int | None = None
        self.slave_path: str | None = None

    @classmethod
    def on_pty(cls, profile: str | BoardProfile = "kr260", **options) -> "BoardEmulator":
        """An emulator on a new pty; its device path is ``slave_path``."""
        master, slave = os.openpty()
        # Raw from the start: the slave's default line discipline would echo
        # the boot log back to the board before a console has opened it.
        tty.setraw(slave)
        emulator = cls(master, profile, **options)
        # Holding the slave open keeps the pty (and its settings) alive while
        # consoles come and go.
        emulator._slave_fd = slave
        emulator.slave_path = os.ttyname(slave)
        return emulator

    # -- control -------------------------------------------------------------
    def start(self) -> "BoardEmulator":
        self._thread.start()
        return self

    def power_on(self) -> None:
        if self._power.is_set():
            self._cycle.set()
        self._power.set()

    def wait_until_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the board has printed all it has to say and waits for
        a key (a prompt, or the autoboot countdown)."""
        return self.waiting_for_input.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        for fd in (self._fd, self._slave_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> "BoardEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the board -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._power.wait(0.05):
                if self._stop.is_set():
                    return
            start_booted = self.booted
            while True:
                try:
                    if not start_booted:
                        self._boot()
                    self._linux()
                except _PowerCycle:
                    start_booted = False
        except _Stopped:
            return

    def _check(self) -> None:
        if self._stop.is_set():
            raise _Stopped
        if self._cycle.is_set():
            self._cycle.clear()
            self._pending = b""
            raise _PowerCycle

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.02))

    def _write(self, text: str) -> None:
        data = text.replace("\n", "\r\n").encode()
        while data:
            self._check()
            _, ready, _ = select.select([], [self._fd], [], 0.05)
            if not ready:
                continue
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                continue
            data = data[written:]

    def _lines(self, lines) -> None:
        for line in lines:
            self._write(line.format(tty=self.profile.tty) + "\n")
            if self.line_delay:
                self._sleep(self.line_delay)

    def _read_key(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while not self._pending:
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.waiting_for_input.set()
            ready, _, _ = select.select([self._fd], [], [], min(left, 0.05))
            if ready:
                try:
                    self._pending += os.read(self._fd, 1024)
                except (BlockingIOError, OSError):
                    # EIO while nothing holds the slave open: no input yet.
                    time.sleep(0.02)
        self.waiting_for_input.clear()
        key, self._pending = self._pending[:1], self._pending[1:]
        return key

    def _read_line(self, echo: bool = True) -> str:
        line = b""
        while True:
            key = self._read_key(3600.0)
            if key is None:
                continue
            if key in (b"\r", b"\n"):
                # Swallow the LF of a CR LF so it does not end an empty line.
                if key == b"\r" and self._pending[:1] == b"\n":
                    self._pending = self._pending[1:]
                if echo:
                    self._write("\n")
                return line.decode("utf-8", errors="replace")
            if key in (b"\x7f", b"\b"):
                if line:
                    line = line[:-1]
                    if echo:
                        self._write("\b \b")
                continue
            line += key
            if echo:
                self._write(key.decode("latin-1"))

    def _boot(self) -> None:
        p = self.profile
        self._lines(p.first_stage)
        self._lines(p.uboot)
        self._pending = b""
        self._write(f"Hit any key to stop autoboot: {self.autoboot_s:2d} ")
        for remaining in range(self.autoboot_s, 0, -1):
            if self._read_key(self.tick) is not None:
                self._pending = b""
                self._write("\b\b\b 0 \n")
                if self._uboot_shell():
                    break
                return self._boot()
            self._write(f"\b\b\b{remaining - 1:2d} ")
        else:
            self._write("\n")
        self._lines(p.uboot_boot)
        self._lines(p.kernel)
        self._lines(_SYSTEMD)

    def _uboot_shell(self) -> bool:
        """U-Boot's prompt; True to go on booting, False after ``reset``."""
        p = self.profile
        while True:
            self._write(p.uboot_prompt)
            words = self._read_line().split()
            if not words:
                continue
            cmd = words[0]
            if cmd in ("boot", "bootd"):
                return True
            if cmd == "reset":
                self._write("resetting ...\n")
                return False
            if cmd == "version":
                self._write(f"{p.uboot[2]}\n")
            elif cmd == "printenv":
                self._write(f"bootcmd=run distro_bootcmd\nbootdelay={self.autoboot_s}\n"
                            "baudrate=115200\n")
            elif cmd == "echo":
                self._write(" ".join(words[1:]) + "\n")
            else:
                self._write(f"Unknown command '{cmd}' - try 'help'\n")

    def _linux(self) -> None:
        p = self.profile
        self._write(f"\n{p.getty_banner}\n\n")
        while True:
            self._write(f"{p.hostname} login: ")
            user = self._read_line().strip()
            if not user:
                continue
            self._write("Password: ")
            password = self._read_line(echo=False)
            self._write("\n")
            if user != self.user or password != self.password:
                self._sleep(self.login_delay)
                self._write("Login incorrect\n")
                continue
            self._lines(p.motd)
            self._shell()
            self._write(f"\n{p.getty_banner}\n\n")

    def _shell(self) -> None:
        p = self.profile
        self._last_status = 0
        while True:
            self._write(f"{self.user}@{p.hostname}:~$ ")
            line = self._read_line()
            for part in line.split(";"):
                if self._command(part.strip()) == "logout":
                    self._write("logout\n")
                    return

    def _command(self, text: str) -> str | None:
        if not text:
            return None
        p = self.profile
        try:
            words = shlex.split(text.replace("$?", str(self._last_status)))
        except ValueError:
            self._write("-bash: syntax error: unterminated quoted string\n")
            self._last_status = 2
            return None
        cmd, args = words[0], words[1:]
        status = 0
        if cmd == "exit" or cmd == "logout":
            return "logout"
        if cmd == "reboot":
            self._write("[  OK  ] Reached target Reboot.\n[   42.000000] reboot: Restarting system\n")
            raise _PowerCycle
        if cmd == "uname":
            self._write((p.uname if "-a" in args else p.uname.split()[2 if "-r" in args else 0]) + "\n")
        elif cmd == "echo":
            self._write(" ".join(args) + "\n")
        elif cmd == "cat":
            files = {"/proc/device-tree/model": p.model + "\0", "/etc/hostname": p.hostname + "\n"}
            for path in args:
                if path in files:
                    self._write(files[path])
                else:
                    self._write(f"cat: {path}: No such file or directory\n")
                    status = 1
        elif cmd == "hostname":
            self._write(p.hostname + "\n")
        elif cmd == "whoami":
            self._write(self.user + "\n")
        elif cmd == "true":
            status = 0
        elif cmd == "false":
            status = 1
        elif cmd == "sh" and args[:1] == ["-c"] and len(args) == 2 and args[1].split()[:1] == ["exit"]:
            status = int(args[1].split()[1]) if len(args[1].split()) > 1 else 0
        else:
            self._write(f"-bash: {cmd}: command not found\n")
            status = 127
        self._last_status = status
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m board.console.emulator",
        description="An emulated Zynq board console on a pseudo-terminal.")
    parser.add_argument("--board", choices=sorted(PROFILES), default="kr260")
    parser.add_argument("--password", default=None, help="the user's password (default: the image's)")
    parser.add_argument("--booted", action="store_true",
                        help="start at the login prompt instead of waiting for power-on")
    parser.add_argument("--autoboot", type=int, default=3, help="autoboot countdown in seconds")
    args = parser.parse_args(argv)
    emulator = BoardEmulator.on_pty(args.board, password=args.password, autoboot_s=args.autoboot,
                                    line_delay=0.02, login_delay=1.0, booted=args.booted)
    p = emulator.profile
    print(f"emulated {p.name} console on {emulator.slave_path} "
          f"(user {emulator.user}, password {emulator.password})")
    print(f"  zynqmm console --port {emulator.slave_path}")
    print("Enter here powers the board on (again: power-cycles it); Ctrl-C quits.")
    emulator.start()
    if args.booted:
        emulator.power_on()
    try:
        for _ in sys.stdin:
            emulator.power_on()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
