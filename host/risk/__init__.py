"""Pre-trade risk: limits, the engine that judges every outbound OUCH request,
the events that record its decisions, and the guard that puts it in the
order gateway's send path."""
from host.risk.engine import RiskEngine, working_exposure
from host.risk.events import (
    ACCEPTED, KILL_RESET, REASONS, RiskDecision, RiskEvent, RiskEventError,
)
from host.risk.guard import RiskGuard
from host.risk.limits import Action, Check, RiskLimits, ThrottleLimits, UnderlyingLimits
from host.risk.throttle import RateLimit, SlidingWindow

__all__ = [
    "ACCEPTED", "Action", "Check", "KILL_RESET", "REASONS", "RateLimit", "RiskDecision",
    "RiskEngine", "RiskEvent", "RiskEventError", "RiskGuard", "RiskLimits", "SlidingWindow",
    "ThrottleLimits", "UnderlyingLimits", "working_exposure",
]
