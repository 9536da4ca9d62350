"""The order book model's records against the golden host book.

Every model record must equal the golden record of the same message; the
only differences allowed are where the model said it could not be exact
(``FLAG_DEGRADED``).  Used by the order book's tests and by the feed path's
long equivalence run (``python -m rtl.feed_path.equivalence``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from rtl.order_book.model import FLAG_DEGRADED, Output, split_outputs

# The trades the block prints (crosses, Q, are not events of the book).
TRADE_KINDS_OF_THE_BLOCK = (ord("E"), ord("C"), ord("P"))


@dataclass
class Comparison:
    """Model records against the golden ones for the locates the model tracks."""

    identical_updates: int = 0
    degraded_updates: int = 0           # model records carrying FLAG_DEGRADED
    golden_only_while_degraded: int = 0  # golden records the degraded model did not make
    recovery_updates: int = 0           # model records closing a degraded stretch
    identical_trades: int = 0
    trades_missed_while_degraded: int = 0
    errors: list = field(default_factory=list)


def compare_with_golden(outputs: Iterable[Output], golden_updates: np.ndarray,
                        golden_trades: np.ndarray, tracked: set[int]) -> Comparison:
    """Every model record must equal the golden record of the same message,
    except records the model flagged as degraded and, while the locate was
    degraded in the model, golden records the model did not make.  The
    model's degraded state of a locate is that of its latest record (every
    change of it makes a record)."""
    result = Comparison()
    updates, trades = split_outputs(outputs)
    golden_updates = golden_updates[np.isin(golden_updates["stock_locate"], list(tracked))]
    keep = np.isin(golden_trades["stock_locate"], list(tracked)) & \
        np.isin(golden_trades["kind"], TRADE_KINDS_OF_THE_BLOCK)
    golden_trades = golden_trades[keep]

    def keyed(rows):
        return {(int(r["seq"]), int(r["msg_index"])): r for r in rows}

    model_rows, golden_rows = keyed(updates), keyed(golden_updates)
    if len(model_rows) != len(updates) or len(golden_rows) != len(golden_updates):
        result.errors.append("more than one update record for one message")
    degraded_now: dict[int, bool] = {}
    # Trades are checked in the same walk, so the degraded state is known.
    trade_rows: dict[tuple, list] = {}
    for row in golden_trades:
        trade_rows.setdefault((int(row["seq"]), int(row["msg_index"])), []).append(row)
    model_trades: dict[tuple, list] = {}
    for row in trades:
        model_trades.setdefault((int(row["seq"]), int(row["msg_index"])), []).append(row)
    for key in sorted(set(model_rows) | set(golden_rows) | set(trade_rows) | set(model_trades)):
        mine, gold = model_rows.get(key), golden_rows.get(key)
        locate = int((mine if mine is not None else gold)["stock_locate"]) \
            if mine is not None or gold is not None else None
        for trade in model_trades.get(key, []):
            expected = [g for g in trade_rows.get(key, []) if g.tobytes() == trade.tobytes()]
            if expected:
                result.identical_trades += 1
            else:
                result.errors.append(f"model trade at {key} not in golden: {trade}")
        missing = len(trade_rows.get(key, [])) - len(model_trades.get(key, []))
        if missing > 0:
            trade_locate = int(trade_rows[key][0]["stock_locate"])
            if degraded_now.get(trade_locate) or \
                    (mine is not None and int(mine["flags"]) & FLAG_DEGRADED):
                result.trades_missed_while_degraded += missing
            else:
                result.errors.append(f"golden trade at {key} missing: {trade_rows[key]}")
        if locate is None:
            continue
        was_degraded = degraded_now.get(locate, False)
        if mine is not None and int(mine["flags"]) & FLAG_DEGRADED:
            result.degraded_updates += 1
        elif mine is not None and gold is not None:
            if mine.tobytes() == gold.tobytes():
                result.identical_updates += 1
            else:
                result.errors.append(f"update at {key} differs:\n model  {mine}\n golden {gold}")
        elif mine is not None:
            if was_degraded:
                result.recovery_updates += 1
            else:
                result.errors.append(f"model-only update at {key}: {mine}")
        else:
            if was_degraded:
                result.golden_only_while_degraded += 1
            else:
                result.errors.append(f"golden update at {key} missing: {gold}")
        if mine is not None:
            degraded_now[locate] = bool(int(mine["flags"]) & FLAG_DEGRADED)
    return result
