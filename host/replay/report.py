"""The replay report: ``summary.json`` for machines, an HTML page with PNG
plots for people.

Plots (matplotlib, Agg backend, no display needed):

* ``latency_hist.png`` -- tick-to-order latency histogram (log-spaced bins);
* ``latency_cdf.png`` -- its cumulative distribution, quiet periods and
  bursts drawn apart;
* ``latency_day.png`` -- latency against the triggering message's ITCH
  time of day;
* ``quotes_mid.png`` -- the busiest underlying's mid (from the model's book
  updates) and the prices of the orders sent for its busiest option;
* ``order_rate.png`` -- requests per second over the run.

``summary.json`` always holds ``latency_ns`` (p50, p90, p99, p999, max),
``orders``, ``matched_orders``, ``match`` and ``first_divergence``, and
whatever else the run measured (sending rate and timing fidelity, capture
counts, final-state check, latency by message type, quiet against burst).
"""
from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

import numpy as np

PLOTS = ("latency_hist.png", "latency_cdf.png", "latency_day.png", "quotes_mid.png",
         "order_rate.png")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_summary(out_dir: str | Path, summary: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def write_plots(out_dir: Path, requests, expected=None) -> list[str]:
    plt = _pyplot()
    made = []
    timed = [r for r in requests if r.latency_ns is not None]
    lat_us = np.array([r.latency_ns for r in timed], dtype=np.float64) / 1000.0

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(lat_us):
        lo, hi = max(lat_us.min(), 0.1), max(lat_us.max(), 1.0)
        bins = np.logspace(np.log10(lo), np.log10(hi * 1.01), 60) if hi > lo else 20
        ax.hist(lat_us, bins=bins, color="#3b6ea8")
        ax.set_xscale("log")
    ax.set_xlabel("tick-to-order latency (µs)")
    ax.set_ylabel("requests")
    ax.set_title(f"Tick-to-order latency ({len(lat_us)} requests)")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_hist.png", dpi=100)
    plt.close(fig)
    made.append("latency_hist.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values, color in (
            ("all", lat_us, "#222222"),
            ("quiet", np.array([r.latency_ns for r in timed if not r.burst]) / 1000.0, "#3b8a3e"),
            ("burst", np.array([r.latency_ns for r in timed if r.burst]) / 1000.0, "#c0392b")):
        if len(values):
            xs = np.sort(values)
            ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=f"{label} ({len(xs)})",
                    color=color, drawstyle="steps-post")
    if len(lat_us):
        ax.set_xscale("log")
        ax.legend(loc="lower right")
    ax.set_xlabel("tick-to-order latency (µs)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "latency_cdf.png", dpi=100)
    plt.close(fig)
    made.append("latency_cdf.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    day = [(r.day_ns / 3.6e12, r.latency_ns / 1000.0) for r in timed if r.day_ns is not None]
    if day:
        xs, ys = zip(*day)
        ax.scatter(xs, ys, s=6, color="#3b6ea8")
        ax.set_yscale("log")
    ax.set_xlabel("time of day of the triggering message (hours, ITCH)")
    ax.set_ylabel("latency (µs)")
    ax.set_title("Latency over the day")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_day.png", dpi=100)
    plt.close(fig)
    made.append("latency_day.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if expected is not None:
        _quotes_against_mid(ax, requests, expected)
    ax.set_title("Quotes against the underlying mid")
    fig.tight_layout()
    fig.savefig(out_dir / "quotes_mid.png", dpi=100)
    plt.close(fig)
    made.append("quotes_mid.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    stamps = np.array([r.journal_ts for r in requests], dtype=np.int64)
    if len(stamps):
        seconds = (stamps - stamps.min()) / 1e9
        span = max(float(seconds.max()), 1e-3)
        width = max(span / 100, 1e-3)
        bins = np.arange(0, span + width, width)
        counts, edges = np.histogram(seconds, bins=bins)
        ax.step(edges[:-1], counts / width, where="post", color="#3b6ea8")
    ax.set_xlabel("seconds from the first request")
    ax.set_ylabel("requests per second")
    ax.set_title("Order rate")
    fig.tight_layout()
    fig.savefig(out_dir / "order_rate.png", dpi=100)
    plt.close(fig)
    made.append("order_rate.png")
    return made


def _quotes_against_mid(ax, requests, expected) -> None:
    universe = expected.universe
    by_symbol = {o.symbol: o for o in universe.options}
    priced = [r for r in requests if r.tick_stamp is not None and r.symbol in by_symbol
              and hasattr(r.msg, "price")]
    if not priced:
        ax.text(0.5, 0.5, "no priced orders", ha="center", transform=ax.transAxes)
        return
    busiest = Counter(r.symbol for r in priced).most_common(1)[0][0]
    option = by_symbol[busiest]
    mids = expected.mids.get(option.locate, [])
    origin = min([m[0] for m in mids[:1]] + [r.tick_stamp for r in priced])
    if mids:
        xs = [(t - origin) / 1e9 for t, _ in mids]
        ax.plot(xs, [m for _, m in mids], color="#555555", drawstyle="steps-post",
                label=f"{option.underlying} mid")
    ax.set_ylabel(f"{option.underlying} mid ($)")
    ax.set_xlabel("seconds from the first frame (replayed time)")
    right = ax.twinx()
    for side, color in (("B", "#3b8a3e"), ("S", "#c0392b")):
        pts = [((r.tick_stamp - origin) / 1e9, r.msg.price / 1e4) for r in priced
               if r.symbol == busiest and r.side == side]
        if pts:
            xs, ys = zip(*pts)
            right.scatter(xs, ys, s=10, color=color, label=f"{busiest} {'bid' if side == 'B' else 'ask'}")
    right.set_ylabel(f"{busiest} order price ($)")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)


def _table(rows) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _latency_rows(stats: dict) -> str:
    head = "<tr><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"
    body = ""
    for name, s in stats.items():
        if not s or not s.get("count"):
            continue
        body += (f"<tr><th>{html.escape(name)}</th><td>{s['count']}</td>"
                 + "".join(f"<td>{s[k] / 1000:.1f}</td>" for k in ("p50", "p90", "p99", "p999", "max"))
                 + "</tr>")
    return f"<table>{head}{body}</table><p class=note>µs</p>"


def write_html(out_dir: Path, summary: dict, plots: list[str]) -> Path:
    verdict = {True: "MATCH", False: "DIVERGED", None: "not checked"}[summary.get("match")]
    colour = {"MATCH": "#2e7d32", "DIVERGED": "#c62828"}.get(verdict, "#555")
    top = [("capture", summary.get("capture")), ("destination", summary.get("destination")),
           ("timing", summary.get("timing")), ("orders", summary.get("orders")),
           ("matched orders", summary.get("matched_orders")),
           ("divergences", summary.get("divergences")),
           ("conflated", summary.get("conflated")),
           ("records without request", summary.get("records_without_request"))]
    send = summary.get("send") or {}
    parts = [f"<h1>Replay report</h1><p class=verdict style='color:{colour}'>{verdict}</p>",
             _table([(k, v) for k, v in top if v is not None])]
    if send:
        parts.append("<h2>Sending</h2>" + _table(
            [(k, v) for k, v in send.items() if not isinstance(v, dict)]))
        for key in ("fidelity_wire", "fidelity_sender_clock"):
            fid = summary.get(key) or send.get(key)
            if fid:
                parts.append(f"<h3>Timing fidelity ({key.split('_', 1)[1].replace('_', ' ')})</h3>"
                             + _table(fid.items()))
    latency = {"all": summary.get("latency_ns", {}), "quiet": summary.get("latency_quiet", {}),
               "burst": summary.get("latency_burst", {})}
    latency.update({f"ITCH {k}": v for k, v in summary.get("latency_by_message_type", {}).items()})
    latency.update(summary.get("latency_by_request", {}))
    parts.append("<h2>Tick-to-order latency</h2>" + _latency_rows(latency))
    final = summary.get("final_state")
    if final:
        parts.append("<h2>Settled state</h2>" + _table(
            [(k, v) for k, v in final.items() if k != "mismatches"]))
    if summary.get("first_divergence"):
        parts.append("<h2>First divergence</h2><pre>"
                     + html.escape(json.dumps(summary["first_divergence"], indent=1,
                                              default=_jsonable)) + "</pre>")
        if summary.get("divergence_context"):
            parts.append("<h3>Context</h3><pre>" + html.escape(json.dumps(
                summary["divergence_context"], indent=1, default=_jsonable)) + "</pre>")
    if summary.get("per_day"):
        head = "<tr><th>capture</th><th>match</th><th>orders</th><th>matched</th><th>p50 µs</th><th>p99 µs</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(str(d['capture']))}</td><td>{d['match']}</td><td>{d['orders']}</td>"
            f"<td>{d['matched_orders']}</td>"
            f"<td>{(d.get('latency_ns') or {}).get('p50', 0) / 1000:.1f}</td>"
            f"<td>{(d.get('latency_ns') or {}).get('p99', 0) / 1000:.1f}</td></tr>"
            for d in summary["per_day"])
        parts.append(f"<h2>Days</h2><table>{head}{rows}</table>")
    for name in plots:
        parts.append(f"<h2>{html.escape(name[:-4].replace('_', ' '))}</h2>"
                     f"<img src='{html.escape(name)}' alt='{html.escape(name)}'>")
    if summary.get("rtl"):
        parts.append("<h2>RTL backend</h2><pre>" + html.escape(
            json.dumps(summary["rtl"], indent=1, default=_jsonable)) + "</pre>")
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:2px 8px;text-align:left}.verdict{font-size:1.6em;font-weight:bold}"
             "pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:40em}"
             "img{max-width:100%}.note{color:#777;font-size:.8em}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>zynqmm replay</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out_dir / "index.html"
    path.write_text(page)
    return path


def write_report(out_dir: str | Path, summary: dict, requests=(), expected=None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(out_dir, list(requests), expected)
    write_summary(out_dir, summary)
    return write_html(out_dir, summary, plots)
