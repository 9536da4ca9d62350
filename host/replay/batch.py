"""``zynqmm replay-batch``: many market days at once, one merged report.

Each day is an independent backend replay (:func:`host.replay.run.replay`
with ``--to backend:...``): its own exchange simulator, appliance and
expected run, its own report in ``REPORT/days/<name>/``.  Days run in
local processes (``multiprocessing``, one per core by default) or, with
``--ray ADDRESS``, as Ray tasks on a cluster (Ray is imported only then).
The merged ``REPORT/summary.json`` adds the days' order counts, matches
only when every day matched, and takes latency percentiles over the
union of all days' requests (each day's report keeps its own).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np

from host.replay.match import latency_stats
from host.replay.run import EXIT_DIVERGED, EXIT_FAILED, EXIT_MATCH, ReplayOptions, replay


class BatchError(RuntimeError):
    """The batch cannot run (no Ray, bad cluster address, a day failed to start)."""


def _day_name(path: Path, index: int) -> str:
    return f"{index:03d}-{path.stem}"


def _run_day(options: ReplayOptions) -> dict:
    summary, status = replay(options)
    latencies = []
    day_json = Path(options.report) / "latencies.json" if options.report else None
    if day_json is not None and day_json.exists():
        latencies = json.loads(day_json.read_text())
    return {"capture": str(options.capture), "status": status, "summary": summary,
            "latencies_ns": latencies}


def _day_options(base: ReplayOptions, capture: Path, report: Path, index: int) -> ReplayOptions:
    return dataclasses.replace(base, capture=capture, report=report / "days" /
                               _day_name(capture, index), quiet=True)


def run_batch(captures: list[Path], base: ReplayOptions, report: Path, *, jobs: int | None = None,
              ray_address: str | None = None, progress: bool = True) -> tuple[dict, int]:
    if not base.destination.startswith("backend:"):
        raise BatchError("replay-batch runs days on a backend (--to backend:model|rtl); a "
                         "network replay has one appliance and is one day at a time")
    missing = [str(c) for c in captures if not Path(c).exists()]
    if missing:
        raise BatchError(f"no such capture: {', '.join(missing)}")
    report = Path(report)
    report.mkdir(parents=True, exist_ok=True)
    days = [_day_options(base, Path(c), report, i) for i, c in enumerate(captures)]
    if ray_address:
        results = _run_ray(days, ray_address)
    else:
        results = _run_local(days, jobs or os.cpu_count() or 1, progress)
    return merge(results, report)


def _run_local(days: list[ReplayOptions], jobs: int, progress: bool) -> list[dict]:
    jobs = max(1, min(jobs, len(days)))
    if jobs == 1:
        return [_run_day(d) for d in days]
    # spawn: every day starts from a clean interpreter (asyncio loops,
    # numba state), never from a fork of this one.
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs) as pool:
        results = []
        iterator = pool.imap(_run_day, days)
        if progress:
            from rich.progress import track
            iterator = track(iterator, total=len(days), description="days")
        for result in iterator:
            results.append(result)
    return results


def _run_ray(days: list[ReplayOptions], address: str) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray, which is not installed: pip install ray") from None
    try:
        ray.init(address=address, ignore_reinit_error=True)
    except Exception as exc:   # Ray raises many kinds for a bad address
        raise BatchError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    remote = ray.remote(_run_day)
    return ray.get([remote.remote(d) for d in days])


def merge(results: list[dict], report: Path) -> tuple[dict, int]:
    per_day, latencies = [], []
    orders = matched = 0
    all_match = True
    failed = False
    for result in results:
        s = result["summary"]
        failed |= result["status"] == EXIT_FAILED
        all_match &= s.get("match") is True
        orders += int(s.get("orders") or 0)
        matched += int(s.get("matched_orders") or 0)
        latencies.extend(result["latencies_ns"])
        per_day.append({"capture": result["capture"], "status": result["status"],
                        "match": s.get("match"), "orders": s.get("orders"),
                        "matched_orders": s.get("matched_orders"),
                        "first_divergence": s.get("first_divergence"),
                        "latency_ns": s.get("latency_ns"), "error": s.get("error")})
    first = next((d for d in per_day if d["first_divergence"]), None)
    summary = {
        "days": len(results), "orders": orders, "matched_orders": matched,
        "match": all_match and not failed,
        "first_divergence": None if first is None else {"capture": first["capture"],
                                                        **first["first_divergence"]},
        "latency_ns": latency_stats(np.asarray(latencies, dtype=np.int64)),
        "per_day": per_day,
    }
    from host.replay.report import write_html, write_summary
    write_summary(report, summary)
    write_html(report, summary, [])
    status = EXIT_FAILED if failed else (EXIT_MATCH if summary["match"] else EXIT_DIVERGED)
    return summary, status
