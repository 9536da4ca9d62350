"""Pre-trade risk in the order gateway's send path.

:class:`RiskGuard` installs a :class:`~host.risk.engine.RiskEngine` as the
gateway's ``pre_trade`` hook, so every request (enter, replace, cancel, mass
cancel, ...) is judged before it is journaled or written to the socket, and
a refused one raises :class:`~host.gateway.PreTradeRejected` from
``OrderGateway.submit``.  It also:

* keeps the position book current from the gateway's executions (the book is
  first rebuilt from the gateway's journal, so a restart loses nothing) and
  tells the engine about every exchange message that changes an order, and
  has the engine's measures brought up to date after each read of them;
* journals risk events in the gateway's journal (kind ``risk``): every
  refusal and every kill reset, and accepted requests too with
  ``journal_accepts`` (they are already journaled as the requests sent);
* restores the kill switch from those records on start, so a kill survives
  a restart until an operator resets it (a kill's record and a reset's are
  fsynced before the call that made them returns, whatever the journal's
  durability: unlike orders, the exchange cannot give them back);
* carries out breach actions before the refused request's ``submit`` returns:
  ``pull_side`` cancels every non-terminal order of ours in that symbol and
  side, ``pull_all`` and ``kill`` send one Mass Cancel for the whole port.

Pull cancels name the order's current UserRefNum and, while a replace is
pending, the replacement's too: the exchange processes a port's requests in
order, so whichever of the two is live when the cancel arrives is canceled
and the other cancel is ignored.  Orders not yet accepted are canceled the
same way.  A pull that cannot be sent (connection down) is counted under
``action_failures``; the exchange's cancel-on-disconnect is the backstop.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable

from host.gateway import NotConnectedError, OrderGateway, PreTradeRejected
from host.gateway.gateway import RISK
from host.journal import JournalError
from host.positions.book import PositionBook, side_sign
from host.positions.instruments import Instruments, normalize_symbol
from host.positions.marks import Marks
from host.protocols import ouch50
from host.protocols.layout import Message
from host.risk.engine import RiskEngine
from host.risk.events import KILL_RESET, RiskDecision, RiskEvent, RiskEventError
from host.risk.limits import Action, RiskLimits

log = logging.getLogger(__name__)


class RiskGuard:
    def __init__(self, gateway: OrderGateway, limits: RiskLimits, instruments: Instruments, *,
                 marks: Marks | None = None, positions: PositionBook | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, journal_accepts: bool = False):
        self.gateway = gateway
        self.counts: Counter = Counter()
        self.marks = marks if marks is not None else Marks(instruments)
        self.positions = (positions if positions is not None
                          else PositionBook.from_journal(gateway.journal, instruments))
        if self.positions.on_message not in gateway.on_received:
            gateway.on_received.append(self.positions.on_message)
        self.engine = RiskEngine(limits, instruments, self.marks, self.positions,
                                 gateway.orders, clock=clock)
        # After the position book: an execution changes the position, then the order.
        gateway.on_received.append(self.engine.on_message)
        # The answers of one read are measured once they are all in, not by
        # the next check.
        gateway.after_received.append(self.engine.settle)
        self.engine.restore(self._recorded_events())
        self.journal_accepts = journal_accepts
        # Accepted requests are journaled as the requests sent: without
        # journal_accepts the engine need not build an event for them.
        (self.engine.listeners if journal_accepts else self.engine.refusal_listeners).append(
            self._record)
        self._acting = False
        gateway.pre_trade = self.pre_trade

    def _recorded_events(self) -> list[RiskEvent]:
        events = []
        for record in self.gateway.journal:
            if record.kind != RISK:
                continue
            try:
                events.append(RiskEvent.from_bytes(record.payload))
            except RiskEventError as exc:
                self.counts["bad_risk_records"] += 1
                log.warning("journal record at offset %d: %s", record.offset, exc)
        return events

    def _record(self, event: RiskEvent) -> None:
        if self.journal_accepts or not event.accepted or event.reason == KILL_RESET:
            self.gateway.journal.append(RISK, event.to_bytes())

    @property
    def killed(self) -> bool:
        return self.engine.killed

    def reset_kill(self, note: str = "") -> None:
        self.engine.reset_kill(note)
        self._make_durable()

    def _make_durable(self) -> None:
        # The kill state is ours alone (the exchange cannot replay it), so
        # its record is fsynced before the request that tripped it returns,
        # after the Mass Cancel has left.
        try:
            self.gateway.journal.sync()
        except JournalError as exc:
            self.counts["kill_not_durable"] += 1
            log.error("kill state not durable: %s", exc)

    # -- the hook -----------------------------------------------------------------
    def pre_trade(self, msg: Message) -> RiskDecision:
        decision = self.engine.check(msg, risk_action=self._acting)
        if (not decision.accepted and not self._acting
                and decision.action not in (None, Action.REJECT)):
            self._carry_out(decision.action, msg)
            if decision.action is Action.KILL:
                self._make_durable()
        return decision

    def _carry_out(self, action: Action, msg: Message) -> None:
        self._acting = True
        try:
            if action is Action.PULL_SIDE:
                self._pull_side(msg)
            else:
                self.gateway.submit(self.gateway.orders.mass_cancel())
                self.counts["mass_cancels"] += 1
        except (NotConnectedError, PreTradeRejected, ConnectionError) as exc:
            self.counts["action_failures"] += 1
            log.error("risk action %s could not be sent: %s", action.value, exc)
        finally:
            self._acting = False

    def _pull_side(self, msg: Message) -> None:
        if isinstance(msg, ouch50.EnterOrder):
            symbol, sign = normalize_symbol(msg.symbol), side_sign(msg.side)
        else:
            ref = getattr(msg, "orig_user_ref_num", getattr(msg, "user_ref_num", None))
            order = self.gateway.orders.orders.get(ref)
            if order is None:
                self.counts["pull_side_without_order"] += 1
                return
            symbol, sign = normalize_symbol(order.symbol), side_sign(order.side)
        for order in self.engine.working_orders(symbol):
            if side_sign(order.side) != sign:
                continue
            refs = [order.user_ref_num]
            if order.pending_replace is not None:
                refs.append(order.pending_replace[0])
            for ref in refs:
                self.gateway.submit(ouch50.CancelOrderRequest(
                    user_ref_num=ref, quantity=0, appendage=ouch50.Appendage()))
                self.counts["pull_cancels"] += 1
