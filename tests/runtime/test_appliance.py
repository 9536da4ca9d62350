"""The whole appliance on the model backend against the exchange simulator,
on a shipped capture: orders flow, every request's trigger is journaled, the
kill leaves nothing working, the journal rebuilds the same state, and the
management endpoint refuses requests without the token."""
import asyncio
import json
import urllib.error
import urllib.request

import pytest

from host.gateway import OrderState
from host.gateway.gateway import rebuild
from host.journal import Journal
from host.runtime.app import JOURNAL_NAME
from host.runtime.cli import DEMO_CAPTURE, DEMO_CONFIG
from host.runtime.config import load_config
from host.runtime.demo import run_demo
from host.runtime.quotes import TRIGGER, Trigger


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo")
    summary = asyncio.run(run_demo(load_config(DEMO_CONFIG), DEMO_CAPTURE, state))
    return summary, state


def test_orders_fills_and_kill(demo):
    summary, _ = demo
    assert summary["messages"] == 2000
    assert summary["quotes"] > 0 and summary["orders"] > 0 and summary["fills"] > 0
    assert summary["kill"] and summary["kill"][0]["cancel_requests"] > 0
    # After the kill every order has ended: nothing rests at the exchange.
    assert set(summary["order_states"]) <= {"canceled", "filled", "rejected"}


def test_every_request_has_its_trigger_and_the_journal_rebuilds(demo):
    _, state = demo
    with Journal(state / JOURNAL_NAME) as journal:
        triggers = [Trigger.from_bytes(r.payload) for r in journal if r.kind == TRIGGER]
        manager, _, _, counts = rebuild(journal)
    refs = {t.user_ref_num for t in triggers}
    requests = [o for o in manager.unique_orders()]
    assert requests and all(o.user_ref_nums[0] in refs for o in requests)
    # Orders entered because of a tick name the tick; only the kill's pulls
    # (cancel records of the gate) carry sequence 0.
    # (A cancel names the order's UserRefNum too: the first trigger is the enter's.)
    first = {}
    for t in triggers:
        first.setdefault(t.user_ref_num, t)
    assert [(o.snapshot(), first[o.user_ref_nums[0]]) for o in requests
            if first[o.user_ref_nums[0]].seq == 0] == []
    assert not counts.get("unknown_record_kind")
    manager.check_invariants()
    assert all(o.state in (OrderState.CANCELED, OrderState.FILLED, OrderState.REJECTED)
               for o in requests)


def test_management_endpoint_needs_the_token(monkeypatch, tmp_path):
    from host.runtime.management import ManagementServer

    class Stub:
        killed = False
        fabric = None

        def health(self):
            return {"ok": True}

        async def kill(self, reason):
            self.killed = True
            return {"reason": reason, "cancel_requests": 0, "command_to_last_cancel_us": 1.0}

    async def scenario():
        stub = Stub()
        server = ManagementServer(stub, "t0ken")
        port = await server.start()
        loop = asyncio.get_running_loop()

        def call(path, method="GET", token=None):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         headers=headers, data=b"" if method == "POST" else None)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        results = [await loop.run_in_executor(None, call, "/health"),
                   await loop.run_in_executor(None, call, "/kill", "POST", "wrong"),
                   await loop.run_in_executor(None, call, "/health", "GET", "t0ken"),
                   await loop.run_in_executor(None, call, "/kill", "GET", "t0ken"),
                   await loop.run_in_executor(None, call, "/kill", "POST", "t0ken")]
        await server.close()
        return stub, results

    stub, results = asyncio.run(scenario())
    assert [r[0] for r in results] == [401, 401, 200, 405, 200]
    assert all(b"t0ken" not in body for _, body in results)
    assert json.loads(results[4][1])["reason"] == "management endpoint" and stub.killed
