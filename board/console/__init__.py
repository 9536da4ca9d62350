"""Serial console for the Zynq boards: interactive pass-through, timestamped
transcripts with secrets withheld, and scripted boot, login and command runs.

``zynqmm console`` (see :mod:`board.console.cli`) is the command line;
:class:`ConsoleSession` and the functions in :mod:`board.console.script` are
the same machinery for Python callers; :mod:`board.console.emulator` is a
board on a pseudo-terminal for trying it all without hardware.
"""
from board.console.session import (
    ConsoleError, ConsoleSession, ConsoleTimeout, LoginFailed, PortError, open_port,
)
from board.console.transcript import ConsoleLog

__all__ = [
    "ConsoleError", "ConsoleLog", "ConsoleSession", "ConsoleTimeout",
    "LoginFailed", "PortError", "open_port",
]
