"""Orders against the expected run, and tick-to-order latency.

Every request the appliance sends is journaled (kind ``tx``) and followed
by its trigger (kind ``trigger``, :class:`host.runtime.quotes.Trigger`):
the MoldUDP64 sequence number and message index of the feed message that
caused it and the option.  The k-th request on the wire is the k-th ``tx``
record of the journal (one SoupBinTCP session sends requests in journal
order); their type and UserRefNum must agree.  The order-entry capture
usually starts after the appliance logged in, and the appliance already
sent requests by then (the Account Query Request of its first login, say):
those are the journal's leading requests stamped before the capture
started, and the join begins at the first of them that the wire carries
(or after them all).  A request stamped once the capture ran was written to
the socket later still (the journal stamps a request before it is sent), so
it must be on the wire in its place (see :func:`join_wire`).

What "expected" means
---------------------
The fabric's words (see :mod:`host.replay.expected`) depend only on the
order of the frames; which of them the risk gate turns into records
depends on its rate windows (fabric cycles), and which requests the host
sends for the records depends on when the exchange answers (the trader
never stacks a request on an unanswered order and conflates to the newest
wanted state).  So the rule is stated per request, against the trigger's
word in the model run on the same frames with the same configuration:

1. An Enter Order or Replace Order must carry exactly the symbol (the
   trigger's option), side, price and quantity that the trigger's word
   wants on that side.  A trigger with no word, a side the word does not
   want, or any other price or size is a divergence.  So is an Enter or
   Replace without a trigger.
2. A Cancel Order must name a trigger whose word withdraws that side (the
   side is not quoted after the gate's side rules, or the book update
   carries a pull-mask flag, which pulls every option of the underlying),
   or be a kill pull (trigger sequence 0).  A cancel without a trigger is a
   pre-trade risk action and is counted, not judged.
3. At the checkpoint -- just before the first kill pull or Mass Cancel
   (the end of the run), or the end of the journal -- every option's
   resting orders on each side, rebuilt from the journal's requests and the
   exchange's answers, must equal what the option's last record in the
   model run wants on that side (nothing, or one order at that price and
   size).  A side is excused, and counted by reason, where the comparison
   would not be sound: the gate's rate limit could have decided differently
   (some span of its window plus the arrival jitter holds as many of the
   option's words as the limit allows; see
   :meth:`~host.replay.expected.ExpectedRun.rate_sensitive_options`), the
   newest request for that side was refused by pre-trade risk (its wanted
   state never went out), risk cancelled one of the option's orders by
   itself, the exchange rejected or filled one of its orders, or one of its
   requests was still unanswered.

The first request that breaks rule 1 or 2 (or, if none does, the first
option that breaks rule 3) is the first divergence.  Records of the model
run that no request names are reported as ``records_without_request``
(conflated or already in place); the appliance's own ``conflated`` count is
reported beside it when the run provides it.

Latency
-------
Tick-to-order latency is the request's wire timestamp minus the wire
timestamp of the first packet (feed A or B) that carried its triggering
message, both from captures on the same interface (in backend mode: the
time the request was written to the socket minus the time the frame was
pushed into the fabric, both on the monotonic clock).  Kill pulls have no
tick and are left out.  A trigger is in a *burst* when at least
``burst_packets`` feed packets went out in the ``burst_window_ns`` before
its packet, else in a *quiet* period.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from host.gateway.gateway import RISK, RX, TX
from host.gateway.orders import OrderManager, OrderState
from host.journal.journal import Record, scan
from host.pcap.frames import parse_frame
from host.pcap.reader import iter_packets
from host.protocols import itch50, moldudp64, ouch50
from host.protocols.errors import DecodeError
from host.replay.expected import ExpectedRun, record_wants
from host.risk.events import RiskEvent, RiskEventError
from host.runtime.quotes import TRIGGER, Trigger

LATENCY_POINTS = (50, 90, 99, 99.9)
SIDES = ("B", "S")
_REQUEST_TYPES = (ouch50.EnterOrder, ouch50.ReplaceOrderRequest, ouch50.CancelOrderRequest)


def latency_stats(values_ns) -> dict:
    """p50, p90, p99, p999 and max in nanoseconds (and the count)."""
    arr = np.asarray(values_ns, dtype=np.float64)
    if not len(arr):
        return {"count": 0}
    out = {"count": int(len(arr))}
    for p in LATENCY_POINTS:
        out[f"p{str(p).replace('.', '')}"] = int(round(float(np.percentile(arr, p))))
    out["max"] = int(arr.max())
    out["min"] = int(arr.min())
    return out


def read_journal(path: str | Path) -> list[Record]:
    """The records of a journal file, read without opening it for writing
    (the appliance may still be appending; a torn tail is left out)."""
    data = Path(path).read_bytes()
    records, _ = scan(data, Path(path))
    return records


@dataclass
class Request:
    index: int
    msg: object
    journal_ts: int
    trigger: Trigger | None = None
    wire_ts: int | None = None
    symbol: str = ""
    side: str = ""
    verdict: str = ""
    problem: str = ""
    expected: tuple | None = None
    tick_ts: int | None = None
    tick_stamp: int | None = None        # the trigger frame's stamp in the expected run
    day_ns: int | None = None            # the triggering message's ITCH time of day
    latency_ns: int | None = None
    burst: bool | None = None
    itch_type: str = ""

    @property
    def kind(self) -> str:
        return type(self.msg).__name__

    def describe(self) -> dict:
        out = {"index": self.index, "request": self.kind, **_message_fields(self.msg),
               "symbol": self.symbol, "side": self.side}
        if self.trigger is not None:
            t = self.trigger
            out["trigger"] = {"seq": t.seq, "msg_index": t.msg_index, "option_id": t.option_id,
                              "ingress_cycle": t.ingress_cycle}
        if self.wire_ts is not None:
            out["wire_ts_ns"] = self.wire_ts
        if self.latency_ns is not None:
            out["latency_ns"] = self.latency_ns
        return out


def _message_fields(msg) -> dict:
    out = {}
    for name in ("user_ref_num", "orig_user_ref_num", "side", "quantity", "symbol", "price"):
        if hasattr(msg, name):
            value = getattr(msg, name)
            out[name] = value.strip() if isinstance(value, str) else value
    return out


@dataclass
class JournalView:
    requests: list[Request] = field(default_factory=list)
    # in journal order: ("tx", Request) | ("rx", OUCH answer) | ("risk", refused RiskEvent)
    events: list[tuple[str, object]] = field(default_factory=list)
    risk_refused_symbols: set[str] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)


def parse_journal(records: list[Record]) -> JournalView:
    view = JournalView()
    owner: dict[int, tuple[str, str]] = {}
    waiting: list[Request] = []          # requests still without their trigger, newest last
    for record in records:
        if record.kind == TX:
            try:
                msg = ouch50.decode_inbound(record.payload)
            except DecodeError as exc:
                view.counts[f"bad_tx_{exc.reason}"] += 1
                continue
            request = Request(len(view.requests), msg, record.timestamp_ns)
            if isinstance(msg, ouch50.EnterOrder):
                owner[msg.user_ref_num] = (msg.symbol.strip(), msg.side)
            elif isinstance(msg, ouch50.ReplaceOrderRequest):
                owner[msg.user_ref_num] = owner.get(msg.orig_user_ref_num, ("", ""))
            request.symbol, request.side = owner.get(getattr(msg, "user_ref_num", -1), ("", ""))
            view.requests.append(request)
            view.events.append(("tx", request))
            waiting.append(request)
            del waiting[:-8]
        elif record.kind == TRIGGER:
            try:
                trigger = Trigger.from_bytes(record.payload)
            except ValueError:
                view.counts["bad_trigger"] += 1
                continue
            for request in reversed(waiting):
                if getattr(request.msg, "user_ref_num", None) == trigger.user_ref_num:
                    request.trigger = trigger
                    waiting.remove(request)
                    break
            else:
                view.counts["trigger_without_request"] += 1
        elif record.kind == RX:
            try:
                msg = ouch50.decode_outbound(record.payload, 8)
            except DecodeError as exc:
                view.counts[f"bad_rx_{exc.reason}"] += 1
                continue
            view.events.append(("rx", msg))
        elif record.kind == RISK:
            try:
                event = RiskEvent.from_bytes(record.payload)
            except RiskEventError:
                view.counts["bad_risk_event"] += 1
                continue
            if not event.accepted and event.symbol:
                view.risk_refused_symbols.add(event.symbol.strip())
                view.events.append(("risk", event))
                view.counts[f"risk_refused_{event.reason}"] += 1
    return view


# -- feed timing -------------------------------------------------------------------------
@dataclass
class FeedIndex:
    """When each triggering message first reached the wire, and its ITCH type;
    every feed packet's timestamp (for the burst test)."""

    packet_ts: np.ndarray
    first_ts: dict[int, int]
    itch_type: dict[int, str]
    itch_time: dict[int, int] = field(default_factory=dict)   # ns since midnight (ITCH)

    @classmethod
    def from_capture(cls, path: str | Path, seqs, times_ns=None) -> "FeedIndex":
        """``times_ns``: use these per-packet times (in capture order) instead
        of the capture's timestamps (backend mode: push times)."""
        wanted = set(int(s) for s in seqs)
        stamps: list[int] = []
        first: dict[int, int] = {}
        types: dict[int, str] = {}
        day_ns: dict[int, int] = {}
        n = 0
        for packet in iter_packets(path):
            ts = packet.ts_ns if times_ns is None else (int(times_ns[n]) if n < len(times_ns)
                                                          else None)
            n += 1
            if ts is None:
                break
            frame = parse_frame(packet.data, verify_checksum=False)
            if isinstance(frame, str) or frame.ip_proto != 17:
                continue
            try:
                mold = moldudp64.decode_packet(frame.payload)
            except DecodeError:
                continue
            stamps.append(ts)
            if not mold.messages:
                continue
            # Packets hold a handful of messages: probing each is cheap.
            if not any(s in wanted for s in range(mold.sequence_number,
                                                  mold.next_sequence_number)):
                continue
            for seq, _, msg in mold.iter_messages():
                if seq in wanted and (seq not in first or ts < first[seq]):
                    first[seq] = ts
                    types[seq] = chr(msg[0]) if msg else "?"
                    if len(msg) >= 11:
                        day_ns[seq] = int.from_bytes(msg[5:11], "big")
        return cls(np.sort(np.asarray(stamps, dtype=np.int64)), first, types, day_ns)

    def packets_before(self, ts: int, window_ns: int) -> int:
        return int(np.searchsorted(self.packet_ts, ts, "left")
                   - np.searchsorted(self.packet_ts, ts - window_ns, "left"))


# -- the wire join -----------------------------------------------------------------------------
@dataclass
class WireJoin:
    before_capture: int                  # leading journal requests sent before the capture ran
    mismatch: tuple | None               # (journaled Request, WireMessage) where they first differ
    counts: Counter


def _same_request(request: Request, wired) -> bool:
    return (type(wired.msg) is type(request.msg)
            and getattr(wired.msg, "user_ref_num", None)
            == getattr(request.msg, "user_ref_num", None))


def join_wire(requests: list[Request], wire_requests, wire_started_ns: int | None) -> WireJoin:
    """Pair the captured requests with the journaled ones, setting each
    joined request's ``wire_ts``.

    Leading requests stamped before ``wire_started_ns`` may have left before
    the capture began; they are passed over up to the first one the wire's
    first request is.  From there the k-th captured request must be the
    k-th journaled one (type and UserRefNum); the first pair that differs
    is the mismatch.  A request stamped at or after ``wire_started_ns`` is
    never passed over: it was sent while the capture ran."""
    counts: Counter = Counter()
    start = 0
    if wire_started_ns is not None:
        first = wire_requests[0] if wire_requests else None
        while (start < len(requests) and requests[start].journal_ts < wire_started_ns
               and (first is None or not _same_request(requests[start], first))):
            start += 1
    mismatch = None
    for request, wired in zip(requests[start:], wire_requests):
        if not _same_request(request, wired):
            mismatch = (request, wired)
            break
        request.wire_ts = wired.ts_ns
    counts["requests_on_wire"] = len(wire_requests)
    counts["requests_journaled"] = len(requests)
    if start:
        counts["requests_before_capture"] = start
    if len(wire_requests) > len(requests) - start:
        counts["wire_requests_not_journaled"] = len(wire_requests) - (len(requests) - start)
    return WireJoin(start, mismatch, counts)


# -- the rule --------------------------------------------------------------------------------
@dataclass
class MatchResult:
    requests: list[Request]
    divergences: list[dict]
    final_state: dict
    counts: Counter
    latency: dict
    records_without_request: int
    checked_sides: list = field(default_factory=list)    # (symbol, side) compared at the checkpoint

    @property
    def match(self) -> bool:
        return not self.divergences

    def summary(self) -> dict:
        # Order requests (Enter, Replace, Cancel); Mass Cancel and the like are
        # in requests_by_type.  Cancels risk sent by itself are not judged.
        orders = [r for r in self.requests if isinstance(r.msg, _REQUEST_TYPES)]
        judged = [r for r in orders if r.verdict in ("ok", "kill_pull")]
        return {
            "orders": len(orders),
            "matched_orders": len(judged),
            "match": self.match,
            "first_divergence": self.divergences[0] if self.divergences else None,
            "divergences": sum(v for k, v in self.counts.items() if k.startswith("divergence_"))
            + len(self.final_state.get("mismatches", ())),
            "divergences_by_kind": dict(Counter(d["kind"] for d in self.divergences)),
            "requests_by_type": dict(Counter(r.kind for r in self.requests)),
            "verdicts": dict(Counter(r.verdict for r in self.requests)),
            "final_state": self.final_state,
            "records_without_request": self.records_without_request,
            "counts": dict(self.counts),
            **self.latency,
        }


def match_orders(expected: ExpectedRun, records: list[Record], *, wire_requests=None,
                 feed: FeedIndex | None = None, sent_clock: bool = False,
                 jitter_ns: int | None = 20_000_000, burst_window_ns: int = 1_000_000,
                 burst_packets: int = 8, max_divergences: int = 1000,
                 wire_started_ns: int | None = None) -> MatchResult:
    """Judge every journaled request (see the module docstring).

    ``wire_requests``: the requests as captured (:class:`~host.replay.capture.WireMessage`),
    in order; ``wire_started_ns``: the journal's clock (``time.time_ns``)
    no later than the moment that capture began, None when it covers every
    request the journal holds; ``sent_clock``: no wire, latency from the trigger's send time
    (backend mode, ``feed`` then holds push times); ``jitter_ns``: how much
    later than its stamp in the expected run the appliance may have stamped
    a frame, None when the appliance used the very same stamps (backend
    mode), so its gate decided exactly as the model's."""
    view = parse_journal(records)
    counts = Counter(view.counts)
    divergences: list[dict] = []
    universe = expected.universe

    def diverge(kind: str, request: Request | None, detail: str, **extra) -> None:
        counts[f"divergence_{kind}"] += 1
        if len(divergences) >= max_divergences:
            return
        entry = {"kind": kind, "detail": detail, **extra}
        if request is not None:
            entry["order"] = request.describe()
        divergences.append(entry)

    if wire_requests is not None:
        join = join_wire(view.requests, wire_requests, wire_started_ns)
        if join.mismatch is not None:
            request, wired = join.mismatch
            diverge("wire_differs_from_journal", request,
                    f"the wire carries {type(wired.msg).__name__} "
                    f"{_message_fields(wired.msg)} where the journal has this request")
        counts.update(join.counts)

    named_keys: set[tuple[int, int, int]] = set()
    risk_actions: set[str] = set()
    checkpoint = len(view.requests)
    for request in view.requests:
        msg, trigger = request.msg, request.trigger
        if isinstance(msg, ouch50.MassCancelRequest):
            request.verdict = "mass_cancel"
            checkpoint = min(checkpoint, request.index)
            continue
        if not isinstance(msg, _REQUEST_TYPES):
            request.verdict = "other_request"
            continue
        if trigger is None:
            if isinstance(msg, ouch50.CancelOrderRequest):
                request.verdict = "risk_action"
                risk_actions.add(request.symbol)
            else:
                request.verdict = "no_trigger"
                diverge("order_without_trigger", request,
                        "an order request with no trigger record in the journal")
            continue
        if trigger.seq == 0:
            if isinstance(msg, ouch50.CancelOrderRequest):
                request.verdict = "kill_pull"
                checkpoint = min(checkpoint, request.index)
            else:
                request.verdict = "bad_kill"
                diverge("order_from_kill", request, "a kill pull names an order that adds liquidity")
            continue
        if trigger.option_id >= len(universe.options):
            request.verdict = "unknown_option"
            diverge("unknown_option", request, f"option {trigger.option_id} is not configured")
            continue
        option = universe.by_id(trigger.option_id)
        key = (trigger.seq, trigger.msg_index, trigger.option_id)
        named_keys.add(key)
        word = expected.words.get(key)
        if word is not None:
            request.tick_stamp = word.stamp_ns
        if isinstance(msg, ouch50.EnterOrder):
            request.symbol, request.side = msg.symbol.strip(), msg.side
        if request.symbol != option.symbol:
            request.verdict = "wrong_symbol"
            diverge("wrong_symbol", request, f"the trigger names {option.symbol}, the order "
                    f"is for {request.symbol or '(unknown order)'}", trigger_key=list(key))
            continue
        if isinstance(msg, ouch50.CancelOrderRequest):
            withdrawn = (word.wants(request.side) is None) if word is not None else \
                _pulled_by_book(expected, trigger.seq, trigger.msg_index, option.locate)
            if word is None and not withdrawn:
                request.verdict = "no_word"
                diverge("no_expected_quote", request, "the model run has no quote for this "
                        "trigger and no book pull of the underlying", trigger_key=list(key))
            elif not withdrawn:
                request.verdict = "cancel_not_wanted"
                request.expected = word.wants(request.side)
                diverge("cancel_not_withdrawn", request, f"the model's quote still wants "
                        f"{_fmt(request.expected)} on side {request.side}", trigger_key=list(key),
                        expected_word=_word_dict(word))
            else:
                request.verdict = "ok"
            continue
        if word is None:
            request.verdict = "no_word"
            diverge("no_expected_quote", request, "the model run has no quote for this trigger",
                    trigger_key=list(key))
            continue
        want = word.wants(request.side)
        request.expected = want
        got = (int(msg.price), int(msg.quantity))
        if want is None:
            request.verdict = "side_not_wanted"
            diverge("side_not_wanted", request, f"the model's quote does not rest side "
                    f"{request.side}", trigger_key=list(key), expected_word=_word_dict(word))
        elif got != want:
            request.verdict = "price_size_mismatch"
            diverge("price_size_mismatch", request, f"order {_fmt(got)}, model {_fmt(want)}",
                    trigger_key=list(key), expected_word=_word_dict(word))
        else:
            request.verdict = "ok"

    final_state = _final_state(expected, view, checkpoint, risk_actions, jitter_ns, counts)
    checked_sides = final_state.pop("_checked")
    if not divergences and final_state["mismatches"]:
        first = final_state["mismatches"][0]
        divergences.append({"kind": "final_state", "detail": first["detail"], **first})
    elif final_state["mismatches"]:
        divergences.extend({"kind": "final_state", **m} for m in final_state["mismatches"])

    without = 0
    for record in expected.records:
        if (int(record["seq"]), int(record["msg_index"]), int(record["option_id"])) not in named_keys:
            without += 1
    latency = _latency(view.requests, feed, sent_clock, burst_window_ns, burst_packets)
    return MatchResult(view.requests, divergences, final_state, counts, latency, without,
                       checked_sides)


def _fmt(pair) -> str:
    return "nothing" if pair is None else f"{pair[1]} @ {pair[0] / 1e4:.4f}"


def _word_dict(word) -> dict:
    return {name: getattr(word, name) for name in word.__slots__}


def _pulled_by_book(expected: ExpectedRun, seq: int, msg_index: int, locate: int) -> bool:
    return any(w.withdraw_all and w.underlying == locate
               for (s, i, _), w in _words_of(expected, seq, msg_index))


def _words_of(expected: ExpectedRun, seq: int, msg_index: int):
    # The words of one message are few; a scan of the option range finds them.
    for option in range(len(expected.universe.options)):
        word = expected.words.get((seq, msg_index, option))
        if word is not None:
            yield (seq, msg_index, option), word


def _final_state(expected: ExpectedRun, view: JournalView, checkpoint: int,
                 risk_action_symbols: set[str], jitter_ns: int | None, counts: Counter) -> dict:
    manager = OrderManager()
    # (symbol, side) whose newest event before the checkpoint is a refusal:
    # the wanted state it carried never went out.
    refused_last: dict[tuple[str, str], bool] = {}
    for kind, item in view.events:
        if kind == "tx":
            if item.index >= checkpoint:
                break
            if item.symbol:
                refused_last[(item.symbol, item.side)] = False
            try:
                manager.sent(item.msg)
            except Exception as exc:          # an order manager refusal is an anomaly, not a crash
                counts[f"rebuild_refused_{type(exc).__name__}"] += 1
        elif kind == "risk":
            symbol = item.symbol.strip()
            for side in ((item.side,) if item.side in SIDES else SIDES):
                refused_last[(symbol, side)] = True
        else:
            manager.received(item)
    resting: dict[tuple[str, str], list] = {}
    unsettled: set[str] = set()
    exchange: set[str] = set()
    for order in manager.unique_orders():
        symbol = order.symbol.strip()
        if order.state in (OrderState.PENDING_NEW, OrderState.PENDING_REPLACE,
                           OrderState.PENDING_CANCEL):
            unsettled.add(symbol)
        if order.filled or order.state is OrderState.REJECTED:
            exchange.add(symbol)
        if order.state in (OrderState.LIVE, OrderState.PARTIALLY_FILLED):
            resting.setdefault((symbol, order.side), []).append(order)
    rate = set() if jitter_ns is None else expected.rate_sensitive_options(jitter_ns)
    reasons = Counter()
    mismatches = []
    checked = 0
    checked_sides = []
    for option in expected.universe.options:
        symbol = option.symbol
        record = expected.last_record.get(option.option_id)
        for side in SIDES:
            why = ("rate_window" if option.option_id in rate else
                   "risk_refused_last" if refused_last.get((symbol, side)) else
                   "risk_action" if symbol in risk_action_symbols else
                   "exchange" if symbol in exchange else
                   "unanswered" if symbol in unsettled else None)
            if why:
                reasons[why] += 1
                continue
            checked += 1
            checked_sides.append((symbol, side))
            want = record_wants(record, side)
            orders = resting.get((symbol, side), [])
            have = [(o.price, o.open_quantity) for o in orders]
            if (want is None and not have) or (want is not None and have == [want]):
                continue
            mismatches.append({
                "option_id": option.option_id, "symbol": symbol, "side": side,
                "expected": None if want is None else {"price": want[0], "size": want[1]},
                "resting": [{"price": p, "size": q} for p, q in have],
                "detail": f"{symbol} side {side}: resting "
                          f"{', '.join(_fmt(h) for h in have) or 'nothing'}, the model's last "
                          f"record wants {_fmt(want)}"})
    return {"checkpoint_request": checkpoint, "sides_checked": checked,
            "sides_excused": dict(reasons), "mismatches": mismatches,
            "_checked": checked_sides}


def _latency(requests: list[Request], feed: FeedIndex | None, sent_clock: bool,
             burst_window_ns: int, burst_packets: int) -> dict:
    if feed is None:
        return {"latency_ns": {"count": 0}, "latency_note": "no feed timing (no capture)"}
    # host path: quote record taken from the fabric -> request written to the
    # socket; long when the request waited for the exchange's answer to an
    # earlier one of the same order
    values, by_type, by_request, quiet, burst, host = [], {}, {}, [], [], []
    for request in requests:
        t = request.trigger
        if t is None or t.seq == 0:
            continue
        host.append(t.sent_ns - t.received_ns)
        tick = feed.first_ts.get(t.seq)
        done = t.sent_ns if sent_clock else request.wire_ts
        if tick is None or done is None:
            continue
        latency = int(done - tick)
        request.tick_ts, request.latency_ns = tick, latency
        request.itch_type = feed.itch_type.get(t.seq, "?")
        request.day_ns = feed.itch_time.get(t.seq)
        request.burst = feed.packets_before(tick, burst_window_ns) >= burst_packets
        values.append(latency)
        by_type.setdefault(request.itch_type, []).append(latency)
        by_request.setdefault(request.kind, []).append(latency)
        (burst if request.burst else quiet).append(latency)
    return {
        "latency_ns": latency_stats(values),
        "latency_by_message_type": {k: latency_stats(v) for k, v in sorted(by_type.items())},
        "latency_by_request": {k: latency_stats(v) for k, v in sorted(by_request.items())},
        "latency_quiet": latency_stats(quiet),
        "latency_burst": latency_stats(burst),
        "latency_host_path_ns": latency_stats(host),
        "burst_rule": {"window_ns": burst_window_ns, "packets": burst_packets},
    }


# -- divergence context -----------------------------------------------------------------------
def divergence_context(divergence: dict, expected: ExpectedRun, feed_capture: str | Path,
                       before: int = 8) -> dict:
    """The feed messages before the divergence's trigger (any stock, and the
    option's underlying), the book update it was priced from, the model's
    quote word and record for the trigger."""
    key = divergence.get("trigger_key")
    if key is None:
        order = divergence.get("order") or {}
        trig = order.get("trigger")
        key = [trig["seq"], trig["msg_index"], trig["option_id"]] if trig else None
    if key is None:
        option_id = divergence.get("option_id")
        if option_id is None:
            return {}
        record = expected.last_record.get(option_id)
        return {"last_record": _plain(record) if record is not None else None}
    seq, msg_index, option_id = (int(k) for k in key)
    locate = expected.universe.by_id(option_id).locate \
        if option_id < len(expected.universe.options) else None
    recent: deque = deque(maxlen=before)
    recent_underlying: deque = deque(maxlen=before)
    seen: set[int] = set()
    for packet in iter_packets(feed_capture):
        frame = parse_frame(packet.data, verify_checksum=False)
        if isinstance(frame, str) or frame.ip_proto != 17:
            continue
        try:
            mold = moldudp64.decode_packet(frame.payload)
        except DecodeError:
            continue
        if mold.sequence_number > seq + 256:
            break
        for s, _, raw in mold.iter_messages():
            if s > seq or s in seen:
                continue
            seen.add(s)
            try:
                text = _message_text(itch50.decode_message(raw))
            except DecodeError as exc:
                text = f"undecodable ({exc.reason})"
            entry = {"seq": s, "ts_ns": packet.ts_ns, "message": text}
            recent.append(entry)
            if locate is not None and len(raw) >= 3 and int.from_bytes(raw[1:3], "big") == locate:
                recent_underlying.append(entry)
    row = expected.book_rows.get((seq, msg_index))
    record = next((r for r in expected.records if (int(r["seq"]), int(r["msg_index"]),
                                                    int(r["option_id"])) == (seq, msg_index, option_id)),
                  None)
    word = expected.words.get((seq, msg_index, option_id))
    return {
        "feed_before": sorted(recent, key=lambda e: e["seq"]),
        "underlying_before": sorted(recent_underlying, key=lambda e: e["seq"]),
        "book": _book_text(row) if row is not None else None,
        "quote_word": _word_dict(word) if word is not None else None,
        "quote_record": _plain(record) if record is not None else None,
        "order": divergence.get("order"),
    }


def _message_text(msg) -> str:
    fields = msg.to_dict() if hasattr(msg, "to_dict") else {}
    return f"{type(msg).__name__} " + " ".join(f"{k}={v}" for k, v in fields.items()
                                                if k not in ("message_type", "tracking_number"))


def _book_text(row) -> dict:
    bid_p, bid_s, ask_p, ask_s = row[6], row[7], row[9], row[10]
    levels = [{"bid": f"{int(bid_s[i])} @ {int(bid_p[i]) / 1e4:.4f}" if bid_p[i] else "",
               "ask": f"{int(ask_s[i])} @ {int(ask_p[i]) / 1e4:.4f}" if ask_p[i] else ""}
              for i in range(len(bid_p))]
    return {"stock_locate": int(row[0]), "flags": int(row[1]), "seq": int(row[4]),
            "msg_index": int(row[3]), "levels": levels}


def _plain(record) -> dict:
    return {k: int(v) for k, v in dict(record).items()}

