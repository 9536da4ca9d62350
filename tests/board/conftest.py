"""Fixtures for the board tests: a private OpenSSH server on loopback that
stands in for a board, a stand-in fabric for the loader, and built overlays.

The server runs ``/usr/sbin/sshd`` with its own host key, authorized_keys and
configuration in a temporary folder, on a free loopback port; clients check
its host key through a known_hosts file written for that port.  Each test
gets its own board root folder, so nothing on this machine outside the
temporary folders is touched (except OpenSSH's privilege-separation folder
``/run/sshd``, created when missing, as the openssh-server package does).
"""
from __future__ import annotations

import contextlib
import getpass
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from board.deploy.ssh import Target
from overlays.manifest import write_manifest
from rtl.regmap.driver import MAP_VERSION, register_offsets

SSHD = "/usr/sbin/sshd"
REPO_ROOT = Path(__file__).resolve().parents[2]
PRIVSEP_DIR = Path("/run/sshd")
KR260_PART = "xck26-sfvc784-2LV-c"
# The stand-in fabric finds its identity registers in the bitstream after
# this marker, as a real build bakes them into the configuration data.
IDENTITY_MARK = b"ZYNQMM-FABRIC-IDENTITY"

STAND_IN_FABRIC = f'''\
"""A stand-in for the board's fabric: "programs" it with a bitstream made by
the board tests and answers register reads from the identity baked into it;
every load is appended to the log given with --log."""
import struct
import sys

sys.path.insert(0, {str(REPO_ROOT)!r})
from board.deploy import agent  # noqa: E402

MARK = {IDENTITY_MARK!r}
# The fabric's own register layout (rtl/regmap), fixed when it was "built".
BUILD_ID_OFFSET = {register_offsets()["system.BUILD_ID"]}
MAP_VERSION_OFFSET = {register_offsets()["system.MAP_VERSION"]}


def main():
    argv = sys.argv[1:]
    log = None
    if argv[:1] == ["--log"]:
        log, argv = argv[1], argv[2:]

    def fabric(bitstream, ip, offsets):
        data = open(bitstream, "rb").read()
        at = data.find(MARK)
        if at < 0 or ip != "fabric":
            raise agent.AgentError(f"{{bitstream}} does not configure an IP {{ip}}")
        build_id, map_version = struct.unpack(">II", data[at + len(MARK):at + len(MARK) + 8])
        image = {{BUILD_ID_OFFSET: build_id, MAP_VERSION_OFFSET: map_version}}
        if log:
            with open(log, "a") as stream:
                stream.write(bitstream + "\\n")
        return 0xA0000000, {{name: image.get(offset, 0) for name, offset in offsets.items()}}

    return agent.load_main(argv, fabric)


sys.exit(main())
'''


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    folder: Path

    def known_hosts_for(self, port: int) -> Path:
        """A known_hosts file trusting this server's key on another port
        (a relay in front of it)."""
        path = self.folder / f"known_hosts_{port}"
        key = (self.folder / "host_ed25519.pub").read_text().split()
        path.write_text(f"[{self.host}]:{port} {key[0]} {key[1]}\n")
        return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_banner(port: int, process: subprocess.Popen, limit_s: float = 20.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                if conn.recv(64).startswith(b"SSH-2.0-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not os.access(SSHD, os.X_OK):
        pytest.skip(f"no OpenSSH server at {SSHD} (Debian package openssh-server)")
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen is not installed (Debian package openssh-client)")
    created_privsep = False
    if not PRIVSEP_DIR.is_dir():
        if os.geteuid() != 0:
            pytest.skip(f"sshd needs {PRIVSEP_DIR}, which only root can create")
        PRIVSEP_DIR.mkdir(mode=0o755)
        created_privsep = True
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host_ed25519", "client_ed25519"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", key, "-f",
                        str(folder / key)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_ed25519.pub").read_text())
    process = port = None
    errors = ""
    for _attempt in range(5):
        port = _free_port()
        config = folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1",
            f"HostKey {folder / 'host_ed25519'}", f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "StrictModes no", "UsePAM no", "UseDNS no", "PrintMotd no",
            "MaxSessions 64", "MaxStartups 64",
            "Subsystem sftp internal-sftp", "LogLevel ERROR",
            # Bash skips the user's ~/.bashrc below the top shell level: the
            # board stand-in runs commands, not whatever this machine's login
            # rc files set up (they can cost half a second per command).
            "SetEnv SHLVL=1", ""]))
        log = open(folder / "sshd.log", "w")
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if _wait_for_banner(port, process):
            break
        process.kill()
        process.wait()
        errors = (folder / "sshd.log").read_text()
        process = None
    if process is None:
        pytest.fail(f"sshd did not start on loopback: {errors.strip()}")
    host_key = (folder / "host_ed25519.pub").read_text().split()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    try:
        yield SshServer("127.0.0.1", port, getpass.getuser(), folder / "client_ed25519",
                        known_hosts, folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if created_privsep:
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()


@pytest.fixture(scope="session")
def stand_in_fabric(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fabric") / "stand_in_fabric.py"
    path.write_text(STAND_IN_FABRIC)
    return path


@pytest.fixture
def board_root(tmp_path) -> Path:
    """The board's file system root for one test."""
    root = tmp_path / "board"
    root.mkdir()
    return root


@pytest.fixture
def make_target(sshd, stand_in_fabric, board_root):
    """A target on the loopback server whose loader is the stand-in fabric."""
    def make(**settings) -> Target:
        values = dict(name="loopback", host=sshd.host, port=sshd.port, user=sshd.user,
                      identity=sshd.client_key, known_hosts=sshd.known_hosts, board="kr260",
                      root=str(board_root), python=sys.executable, sudo=False,
                      loader=f"{sys.executable} -I -S {stand_in_fabric} --log {board_root / 'fabric-loads.log'}")
        values.update(settings)
        return Target(**values)
    return make


def bit_file(path: Path, build_id: int, map_version: int, size: int, part: str = KR260_PART) -> Path:
    """A .bit file with a Vivado header and a body carrying the fabric identity."""
    def field(key: str, text: str) -> bytes:
        raw = text.encode() + b"\x00"
        return key.encode() + len(raw).to_bytes(2, "big") + raw
    rng = random.Random(build_id)
    identity = IDENTITY_MARK + build_id.to_bytes(4, "big") + map_version.to_bytes(4, "big")
    body = rng.randbytes(size // 2) + identity + rng.randbytes(size - size // 2)
    header = (b"\x00\x09" + bytes.fromhex("0ff00ff00ff00ff000") + b"\x00\x01"
              + field("a", "zynqmm_wrapper;UserID=0XFFFFFFFF;Version=2024.2")
              + field("b", part) + field("c", "2026/01/02") + field("d", "03:04:05")
              + b"e" + len(body).to_bytes(4, "big"))
    path.write_bytes(header + body)
    return path


@contextlib.contextmanager
def _build_id_env(value: int):
    saved = os.environ.get("ZYNQMM_BUILD_ID")
    os.environ["ZYNQMM_BUILD_ID"] = f"0x{value:08x}"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("ZYNQMM_BUILD_ID", None)
        else:
            os.environ["ZYNQMM_BUILD_ID"] = saved


@pytest.fixture
def make_overlay(tmp_path):
    """A built overlay folder (zynqmm.bit, zynqmm.hwh, zynqmm.json).  The
    bitstream's baked-in identity can differ from what the manifest records
    (``fabric_build_id``, ``fabric_map_version``) to make a mismatch."""
    def make(build_id: int, *, fabric_build_id: int | None = None,
             fabric_map_version: int = MAP_VERSION, size: int = 96 * 1024) -> Path:
        folder = tmp_path / f"overlay-{build_id:08x}-{fabric_build_id or build_id:08x}"
        folder.mkdir()
        bit = bit_file(folder / "zynqmm.bit", fabric_build_id if fabric_build_id is not None
                       else build_id, fabric_map_version, size)
        hwh = folder / "zynqmm.hwh"
        hwh.write_text(f"<EDKSYSTEM><MODULES><MODULE INSTANCE=\"fabric\"/></MODULES>"
                       f"<!-- {build_id:08x} --></EDKSYSTEM>\n")
        with _build_id_env(build_id):
            write_manifest(bit, hwh, "kr260", KR260_PART, "2024.2")
        return folder
    return make
