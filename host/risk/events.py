"""Pre-trade risk decisions and the events that record them.

Every request the risk engine judges yields a :class:`RiskDecision` (accept,
or reject with the reason, the check it belongs to and the breach action)
and a :class:`RiskEvent`: the decision plus what the request was, numbered
and stamped with the engine's monotonic clock.  Events serialize to compact
JSON (:meth:`RiskEvent.to_bytes`) so the gateway's journal can hold them as
records of kind ``risk``; :meth:`RiskEvent.from_bytes` refuses anything that
is not exactly such a record with :class:`RiskEventError`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from host.risk.limits import Action, Check

#: Outcome of an accepted request.
ACCEPTED = "accepted"
#: Engine state changes that are events without a request.
KILL_RESET = "kill_reset"

#: Every reason a request can be refused for, and the check it belongs to
#: (None: not configurable, always a plain reject).
REASONS: dict[str, Check | None] = {
    "killed": None,
    "unknown_order": Check.ORDER_STATE,
    "order_not_working": Check.ORDER_STATE,
    "invalid_order": Check.INVALID_ORDER,
    "unknown_symbol": Check.UNKNOWN_SYMBOL,
    "restricted_symbol": Check.RESTRICTED,
    "order_size": Check.ORDER_SIZE,
    "order_notional": Check.ORDER_NOTIONAL,
    "no_theo": Check.MARKS,
    "no_underlying_bbo": Check.MARKS,
    "stale_theo": Check.MARKS,
    "no_mark": Check.MARKS,
    "price_band_theo": Check.PRICE_BAND,
    "price_band_underlying": Check.PRICE_BAND,
    "duplicate_order": Check.DUPLICATE,
    "duplicate_user_ref_num": Check.DUPLICATE,
    "duplicate_cl_ord_id": Check.DUPLICATE,
    "self_trade": Check.SELF_TRADE,
    "position_option": Check.POSITION,
    "position_underlying": Check.POSITION,
    "position_stock": Check.POSITION,
    "delta_underlying": Check.GREEKS,
    "gamma_underlying": Check.GREEKS,
    "vega_underlying": Check.GREEKS,
    "delta_total": Check.GREEKS,
    "gamma_total": Check.GREEKS,
    "vega_total": Check.GREEKS,
    "capital": Check.CAPITAL,
    "throttle_orders": Check.THROTTLE,
    "throttle_cancels": Check.THROTTLE,
    "throttle_messages": Check.THROTTLE,
}


class RiskEventError(ValueError):
    """Bytes that are not a serialized risk event."""


@dataclass(frozen=True)
class RiskDecision:
    accepted: bool
    reason: str = ACCEPTED
    check: Check | None = None
    action: Action | None = None     # None when accepted
    detail: str = ""

    @classmethod
    def accept(cls) -> "RiskDecision":
        return _ACCEPT

    def __bool__(self) -> bool:
        return self.accepted


_ACCEPT = RiskDecision(True)


@dataclass(frozen=True)
class RiskEvent:
    sequence: int                # per engine, from 1
    clock_ns: int                # the engine's monotonic clock
    accepted: bool
    reason: str                  # ACCEPTED, a key of REASONS, or KILL_RESET
    check: str | None            # Check value
    action: str | None           # Action value
    message_type: str            # OUCH type code of the request ("" for state events)
    user_ref_num: int | None
    symbol: str
    side: str
    quantity: int | None
    price: int | None
    detail: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "RiskEvent":
        try:
            data = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RiskEventError(f"risk event is not JSON text: {exc}") from None
        if not isinstance(data, dict):
            raise RiskEventError(f"risk event must be a JSON object, got {type(data).__name__}")
        expected = {f.name for f in fields(cls)}
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise RiskEventError(f"risk event fields differ: missing {sorted(missing)}, "
                                 f"unexpected {sorted(extra)}")
        for name, kinds in _FIELD_KINDS.items():
            value = data[name]
            if not any(_is(value, kind) for kind in kinds):
                raise RiskEventError(f"risk event field {name}={value!r} has the wrong type")
        if data["check"] is not None and data["check"] not in _CHECKS:
            raise RiskEventError(f"risk event names an unknown check {data['check']!r}")
        if data["action"] is not None and data["action"] not in _ACTIONS:
            raise RiskEventError(f"risk event names an unknown action {data['action']!r}")
        return cls(**data)

    @property
    def kill(self) -> bool:
        return self.action == Action.KILL.value


_CHECKS = frozenset(c.value for c in Check)
_ACTIONS = frozenset(a.value for a in Action)
_FIELD_KINDS = {
    "sequence": (int,), "clock_ns": (int,), "accepted": (bool,), "reason": (str,),
    "check": (str, None), "action": (str, None), "message_type": (str,),
    "user_ref_num": (int, None), "symbol": (str,), "side": (str,),
    "quantity": (int, None), "price": (int, None), "detail": (str,),
}


def _is(value, kind) -> bool:
    if kind is None:
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
