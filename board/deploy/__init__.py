"""Putting zynqmm on a board: flashing overlays over SSH with rollback,
installing the runtime as a systemd appliance, and reading its status.

The host side (``ssh.py``, ``flash.py``, ``rollback.py``, ``install.py``,
``status.py``, ``cli.py``) drives a board over SSH; ``agent.py`` is the small
stdlib-only program that runs on the board itself; ``files/`` holds what the
install script puts on the board (systemd unit, logrotate, configuration).
"""
