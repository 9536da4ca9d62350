"""``zynqmm rollback``: make the previous overlay current again.

The previous overlay gets the same checks as a fresh flash: its files are
hashed on the board against its manifest, its map version must be this
host's, and after loading it the fabric's build-ID and map-version registers
must match.  Only then are ``current`` and ``previous`` swapped, so running
rollback twice returns to where it started.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass

from board.deploy.flash import (FlashRefused, hash_on_board, load_checked, manifest_problems,
                                restore_current, service_guard, with_service_restarted)
from board.deploy.ssh import Remote, RemoteError, Say, Target, connect, run_sync
from rtl.regmap.driver import MAP_VERSION


class RollbackRefused(FlashRefused):
    """Nothing to roll back to, or the previous overlay does not check out."""


@dataclass
class RollbackResult:
    target: str
    current: str
    previous: str | None
    build_id: str


async def rollback_async(target: Target, *, restart: bool = False,
                         say: Say = lambda line: None) -> RollbackResult:
    async with connect(target) as remote:
        await remote.install_agent()
        links = await remote.agent("links")
        current, previous = links.get("current"), links.get("previous")
        if not previous or previous == current:
            raise RollbackRefused("nothing to roll back to",
                                  [f"no previous overlay in {links['dir']} "
                                   f"(current: {(current or 'none')[:12]})"])
        manifest = links.get("manifests", {}).get(previous) or {}
        folder = posixpath.join(links["dir"], previous)
        problems = _previous_problems(manifest)
        if not problems:
            names = [manifest["bitstream"]["file"], manifest["hwh"]["file"]]
            problems = manifest_problems(manifest, await hash_on_board(remote, folder, names), folder)
        if problems:
            raise RollbackRefused(f"the previous overlay {previous[:12]} does not check out; "
                                  f"nothing was switched", problems)
        stopped = await service_guard(remote, links.get("service"), restart, say)
        return await with_service_restarted(remote, stopped, say,
                                            lambda: _rollback_on(remote, links, manifest, say))


def _previous_problems(manifest: dict) -> list[str]:
    if "error" in manifest:
        return [manifest["error"]]
    if not isinstance(manifest.get("bitstream"), dict) or not isinstance(manifest.get("hwh"), dict):
        return ["its manifest lacks the bitstream or hwh entry"]
    if manifest.get("map_version") != f"0x{MAP_VERSION:08x}":
        return [f"it was built for map version {manifest.get('map_version')}, this host's "
                f"register driver is 0x{MAP_VERSION:08x} (rtl/regmap)"]
    return []


async def _rollback_on(remote: Remote, links: dict, manifest: dict, say: Say) -> RollbackResult:
    current, previous = links.get("current"), links["previous"]
    try:
        problems = await load_checked(remote, posixpath.join(links["dir"], previous), manifest)
    except RemoteError as exc:
        problems = [str(exc)]
    if problems:
        restored = await restore_current(remote, links, say)
        raise RollbackRefused(f"the previous overlay {previous[:12]} was refused; nothing was "
                              f"switched, {restored}", problems)
    swapped = await remote.agent("rollback", "--expect-current", current or "none",
                                 "--expect-previous", previous)
    say(f"current -> {previous[:12]}" + (f", previous -> {current[:12]}" if current else ""))
    return RollbackResult(remote.target.display, swapped["current"], swapped.get("previous"),
                          manifest["build_id"])


def rollback(target: Target, **options) -> RollbackResult:
    return run_sync(rollback_async(target, **options))
