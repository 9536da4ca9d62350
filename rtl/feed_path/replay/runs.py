"""The replay runs: a capture, the robustness fuzz, the throughput test.

Each writes its stimulus into a fresh run directory under ``build/sim/replay/runs/``,
runs the harness and the model (:func:`rtl.feed_path.replay.compare.replay`)
and returns the :class:`~rtl.feed_path.replay.compare.ReplayResult` with the
run's own figures added under ``extra``.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rtl.feed_path.equivalence import capture_frames, feed_addresses, model_config
from rtl.feed_path.model import FeedPathConfig

from . import throughput as tp
from .build import build, replay_dir
from .compare import ReplayResult, config_writes, read_addresses, replay
from .fuzz import fuzz_frames, kind_counts
from .stimulus import RunOptions, StimulusWriter, capture_stimulus


@dataclass
class Run:
    result: ReplayResult
    extra: dict = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.extra.get("errors")

    def figures(self) -> dict:
        return {**self.result.figures(), **self.extra, "ok": self.ok}


def run_dir(name: str) -> Path:
    """A fresh directory for one run under ``build/sim/replay/runs/``: runs of
    the same name in other processes (a test session, a bench) never share
    files.  A passing run removes it (unless kept); a failing one leaves it
    for inspection."""
    root = replay_dir() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))


def _finish(run: Run, keep: bool) -> Run:
    if run.ok and not keep and run.run_dir is not None:
        shutil.rmtree(run.run_dir, ignore_errors=True)
        run.run_dir = None
    return run


def load_summary(capture: Path) -> dict:
    path = Path(f"{capture}.summary.json")
    if not path.exists():
        raise FileNotFoundError(f"{path}: the capture's generator summary names the feeds' "
                                "addresses; give them with --feed A=IP:PORT --feed B=IP:PORT")
    return json.loads(path.read_text())


def run_capture(capture: str | Path, addresses: dict[tuple[int, int], int] | None = None,
                messages: int | None = None, options: RunOptions = RunOptions(),
                name: str = "capture", verilog: Path | None = None, keep: bool = False,
                log: Callable[[str], None] = print) -> Run:
    """A capture's frames, each on its feed's input, RTL against model."""
    capture = Path(capture)
    summary = load_summary(capture) if addresses is None or \
        Path(f"{capture}.summary.json").exists() else {}
    if addresses is None:
        addresses = feed_addresses(summary)
    config = model_config(addresses)
    exe = build(verilog, log=log)
    out = run_dir(name)
    started = time.perf_counter()
    stim = capture_stimulus(capture, out / "stimulus.bin", addresses, config_writes(config),
                            read_addresses(), options, messages)
    stimulus_seconds = time.perf_counter() - started
    log(f"{stim.frames} frames (A {stim.frames_by_feed[0]}, B {stim.frames_by_feed[1]}) "
        f"in {stimulus_seconds:.1f} s; simulating")
    result = replay(stim.path, config, out, exe, log)
    extra = {"capture": str(capture), "capture_messages": summary.get("messages"),
             "messages_limit": messages,
             "last_seq": stim.last_seq, "stimulus_seconds": round(stimulus_seconds, 3),
             "options": options.__dict__}
    return _finish(Run(result, extra, out), keep)


def day_frames(messages: int, seed: int, symbols: int = 24, rate: float = 0.002,
               vlan: int | None = 100):
    """Frames of a generated day, with its model configuration: the shortest
    system hours and a heartbeat a minute, so data packets dominate."""
    from host.marketday.generator import generate_day

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "day.pcap"
        summary = generate_day(path, symbols=symbols, messages=messages, seed=seed,
                               gap_rate=rate, dup_rate=rate, reorder_rate=rate,
                               vlan=None if vlan is None else [vlan], start="09:25",
                               end="16:05", heartbeat_interval=60, write_summary=False)
        addresses = feed_addresses(summary)
        return capture_frames(path, addresses), model_config(addresses)


def run_fuzz(bad_frames: int, day_messages: int, seed: int = 1,
             options: RunOptions = RunOptions(source_pause=0.2, sink_pause=0.3),
             name: str = "fuzz", verilog: Path | None = None, keep: bool = False,
             log: Callable[[str], None] = print) -> Run:
    """A generated day with ``bad_frames`` bad frames mixed in."""
    exe = build(verilog, log=log)
    day, config = day_frames(day_messages, seed)
    frames = fuzz_frames(day, bad_frames, seed)
    out = run_dir(name)
    with StimulusWriter(out / "stimulus.bin", config_writes(config), read_addresses(),
                        options) as writer:
        for f in frames:
            writer.add(f.feed, f.data, f.error, f.error_beat)
    kinds = kind_counts(frames)
    bad = sum(n for kind, n in kinds.items() if not kind.startswith("good"))
    log(f"{len(frames)} frames: {len(day)} of the day, {bad} bad; simulating")
    result = replay(out / "stimulus.bin", config, out, exe, log)
    extra = {"day_messages": day_messages, "day_frames": len(day), "bad_frames": bad,
             "kinds": kinds, "seed": seed, "options": options.__dict__}
    return _finish(Run(result, extra, out), keep)


def run_throughput(deletes: int, mode: str, name: str | None = None,
                   verilog: Path | None = None, keep: bool = False,
                   log: Callable[[str], None] = print) -> Run:
    """Back-to-back Order Delete frames on both feeds; see
    :mod:`rtl.feed_path.replay.throughput`.  ``extra`` holds the measured
    window: frames and messages per cycle, stalls, bubbles."""
    exe = build(verilog, log=log)
    config: FeedPathConfig = tp.config()
    frames, plan = tp.frames(deletes, mode)
    out = run_dir(name or f"throughput_{mode}")
    options = RunOptions(seed=3)
    with StimulusWriter(out / "stimulus.bin", config_writes(config), read_addresses(),
                        options) as writer:
        for feed, data, barrier in frames:
            writer.add(feed, data, barrier=barrier)
    result = replay(out / "stimulus.bin", config, out, exe, log)
    extra = throughput_figures(result, plan)
    return _finish(Run(result, extra, out), keep)


def throughput_figures(result: ReplayResult, plan: tp.ThroughputPlan) -> dict:
    window = result.window
    errors = []
    if window.get("count") != 1:
        errors.append(f"expected one measured window, the harness opened {window.get('count')}")
        return {"errors": errors}
    feeds = window["feeds"]
    first = min(f["first_beat"] for f in feeds)
    last = max(f["last_beat"] for f in feeds)
    cycles = last - first + 1
    frame_beats = (tp.delete_frame_bytes() + 7) // 8
    figures = {
        "mode": plan.mode,
        "frame_bytes": tp.delete_frame_bytes(),
        "frame_beats": frame_beats,
        "window_cycles": cycles,
        "window_frames": [f["frames"] for f in feeds],
        "window_stall_cycles": [f["stall_cycles"] for f in feeds],
        # Cycles in the window with no beat offered although frames were waiting.
        "bubbles": [f["last_beat"] - f["first_beat"] + 1 - f["beats"] - f["stall_cycles"]
                    for f in feeds],
        "frames_per_cycle": sum(f["frames"] for f in feeds) / cycles,
        "messages_per_cycle": plan.deletes / cycles,
        "records_in_window": window["records"],
    }
    if figures["window_frames"] != [plan.deletes, plan.deletes]:
        errors.append(f"window frames {figures['window_frames']}, expected {plan.deletes} per feed")
    # With back-pressure a feed also waits for the other's frame to start (frames
    # start in order), so only the deep run must keep tvalid high throughout.
    if plan.mode == "deep" and any(figures["bubbles"]):
        errors.append(f"tvalid was not held: {figures['bubbles']} idle cycles")
    figures["errors"] = errors
    return figures
